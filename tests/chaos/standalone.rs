//! The standalone mode outlives its process: a real `kairos serve` with no servers
//! configured, killed with SIGKILL and started again on the same data directory.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::cluster::{SERIAL, SETTLE_LIMIT, crate_dir};
use crate::instance::{Instance, free_port, wait_ready};

/// A standalone deployment: a data directory and a port, and the processes started on them.
pub struct Standalone {
    data_dir: PathBuf,
    pub logs: PathBuf,
    pub run_log: PathBuf,
    pub port: u16,
    pub http: reqwest::Client,
}

impl Standalone {
    pub fn new() -> Self {
        let logs = crate_dir()
            .join("target")
            .join("chaos")
            .join(Uuid::new_v4().simple().to_string());
        std::fs::create_dir_all(&logs).expect("log folder");
        Self {
            data_dir: logs.join("kairos-data"),
            run_log: logs.join("runs.log"),
            logs,
            port: free_port(),
            http: reqwest::Client::new(),
        }
    }

    /// Starts `kairos serve` with nothing but the data directory, the port and a 2 s scan
    /// configured (the environment is cleared, so no `KAIROS_…` variable of the caller
    /// leaks in), on `port`, logging to `log`.
    fn spawn(&self, port: u16, log: &str) -> Child {
        let stderr = std::fs::File::create(self.logs.join(log)).expect("log file");
        Command::new(env!("CARGO_BIN_EXE_kairos"))
            .arg("--config-dir")
            .arg(crate_dir().join("config"))
            .arg("serve")
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("KAIROS__STANDALONE__DATA_DIR", &self.data_dir)
            .env("KAIROS__HTTP__PORT", port.to_string())
            .env("KAIROS__HTTP__PROBE_PORT", "0")
            .env("KAIROS__SCANNER__INTERVAL", "2s")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("kairos starts")
    }

    /// Starts the process and waits until it is ready.
    pub async fn start(&self, log: &str) -> Instance {
        let instance = Instance::new(self.port, self.spawn(self.port, log));
        wait_ready(&self.http, self.port, &self.logs).await;
        instance
    }

    fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.logs.join(name)).unwrap_or_default()
    }

    async fn create(&self, body: Value) -> Uuid {
        let response = self
            .http
            .post(format!("http://127.0.0.1:{}/api/v1/jobs", self.port))
            .json(&body)
            .send()
            .await
            .expect("answered");
        assert_eq!(response.status(), 201, "job not created");
        let created: Value = response.json().await.expect("JSON");
        created["job"]["id"]
            .as_str()
            .and_then(|id| Uuid::parse_str(id).ok())
            .expect("an id")
    }

    async fn job(&self, id: Uuid) -> Value {
        self.http
            .get(format!("http://127.0.0.1:{}/api/v1/jobs/{id}", self.port))
            .send()
            .await
            .expect("answered")
            .json()
            .await
            .expect("JSON")
    }

    /// Waits until `condition` holds for job `id`, within [`SETTLE_LIMIT`].
    async fn wait_for(&self, id: Uuid, what: &str, condition: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + SETTLE_LIMIT;
        loop {
            let job = self.job(id).await;
            if condition(&job) {
                return job;
            }
            assert!(
                Instant::now() < deadline,
                "job {id} never {what}: {job}; logs in {}",
                self.logs.display()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// How often each (job, attempt) ran, from the run log.
    fn runs(&self, id: Uuid) -> Vec<String> {
        let prefix = format!("{id} ");
        std::fs::read_to_string(&self.run_log)
            .unwrap_or_default()
            .lines()
            .filter_map(|line| line.strip_prefix(&prefix).map(str::to_owned))
            .collect()
    }

    /// Every job, read page by page from the API.
    async fn all_jobs(&self) -> Vec<Value> {
        let mut jobs = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut url = format!("http://127.0.0.1:{}/api/v1/jobs?limit=500", self.port);
            if let Some(cursor) = &cursor {
                url.push_str(&format!("&cursor={cursor}"));
            }
            let page: Value = self
                .http
                .get(url)
                .send()
                .await
                .expect("answered")
                .json()
                .await
                .expect("JSON");
            jobs.extend(page["jobs"].as_array().expect("jobs").iter().cloned());
            match page["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_owned()),
                None => return jobs,
            }
        }
    }

    fn logged(&self) -> String {
        format!(
            "echo \"$KAIROS_JOB_ID $KAIROS_ATTEMPT\" >> {}",
            self.run_log.display()
        )
    }
}

fn time(value: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(value.as_str().expect("a time"))
        .expect("RFC 3339")
        .with_timezone(&Utc)
}

fn is_final(job: &Value) -> bool {
    is_final_job(&job["job"])
}

fn is_final_job(job: &Value) -> bool {
    matches!(job["status"].as_str(), Some("SUCCESS" | "FAILED"))
}

/// Killed with SIGKILL while one job runs, twenty wait for their time and one is due later,
/// then started again once the twenty are overdue: the running job's attempt is recorded
/// `LOST` and run again, the overdue jobs run at once, the later one at its time, and
/// nothing runs twice.
#[actix_web::test]
async fn a_killed_standalone_process_runs_its_jobs_after_a_restart() {
    let _serial = SERIAL.lock().await;
    let standalone = Standalone::new();
    let mut first = standalone.start("first.log").await;
    let announced = standalone.log("first.log");
    for expected in [
        "standalone".to_owned(),
        standalone.data_dir.join("kairos.db").display().to_string(),
        format!("http://127.0.0.1:{}", standalone.port),
    ] {
        assert!(
            announced.contains(&expected),
            "`kairos serve` did not print {expected}:\n{announced}"
        );
    }

    let log = standalone.logged();
    let long = standalone
        .create(json!({
            "command": format!("{log}; [ \"$KAIROS_ATTEMPT\" -gt 1 ] || sleep 300"),
            "execute_at": Utc::now().to_rfc3339(),
            "timeout_secs": 600,
        }))
        .await;
    let due = Utc::now() + chrono::Duration::seconds(3);
    let mut waiting = Vec::new();
    for _ in 0..20 {
        waiting.push(
            standalone
                .create(json!({"command": log, "execute_at": due.to_rfc3339()}))
                .await,
        );
    }
    let later_due = Utc::now() + chrono::Duration::seconds(25);
    let later = standalone
        .create(json!({"command": log, "execute_at": later_due.to_rfc3339()}))
        .await;
    standalone
        .wait_for(long, "started", |job| job["job"]["status"] == "RUNNING")
        .await;

    first.kill_hard();
    // Restart once the twenty are overdue: they must then run at once.
    while Utc::now() < due + chrono::Duration::seconds(1) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _second = standalone.start("second.log").await;
    let restarted = Utc::now();

    let done = standalone.wait_for(long, "finished", is_final).await;
    assert_eq!(done["job"]["status"], "SUCCESS");
    let statuses: Vec<&Value> = done["attempts"]
        .as_array()
        .expect("attempts")
        .iter()
        .map(|attempt| &attempt["status"])
        .collect();
    assert_eq!(statuses, [&json!("LOST"), &json!("SUCCEEDED")]);
    assert_eq!(standalone.runs(long), ["1", "2"]);

    for id in waiting {
        let job = standalone.wait_for(id, "finished", is_final).await;
        assert_eq!(job["job"]["status"], "SUCCESS", "{job}");
        assert_eq!(standalone.runs(id), ["1"], "job {id} ran other than once");
        let started = time(&job["attempts"][0]["started_at"]);
        assert!(
            started - restarted < chrono::Duration::seconds(5),
            "an overdue job started {} after the restart",
            started - restarted
        );
    }

    let job = standalone.wait_for(later, "finished", is_final).await;
    assert_eq!(job["job"]["status"], "SUCCESS");
    assert_eq!(standalone.runs(later), ["1"]);
    let lateness = time(&job["attempts"][0]["started_at"]) - later_due;
    assert!(
        lateness >= chrono::Duration::zero() && lateness < chrono::Duration::seconds(1),
        "the later job started {lateness} from its time"
    );
}

/// SIGTERM a standalone process while far more jobs are due than it has run slots (2 s jobs,
/// 64 slots), then start it again: it stops within seconds, every attempt that finished
/// before it exited is recorded, the jobs that had not started are handed back and run after
/// the restart, and every job runs exactly once: none twice, no attempt lost.
#[actix_web::test]
async fn sigterm_with_more_due_jobs_than_run_slots_runs_each_job_once() {
    let _serial = SERIAL.lock().await;
    for jobs in [1000, 300] {
        sigterm_then_restart(jobs).await;
    }
}

async fn sigterm_then_restart(jobs: usize) {
    let standalone = Standalone::new();
    let mut first = standalone.start("first.log").await;
    let due = Utc::now() + chrono::Duration::seconds(1);
    let job = json!({
        "command": format!("sleep 2; {}", standalone.logged()),
        "execute_at": due.to_rfc3339(),
        "max_retries": 0,
        "timeout_secs": 60,
    });
    let created = standalone
        .http
        .post(format!(
            "http://127.0.0.1:{}/api/v1/jobs:batch",
            standalone.port
        ))
        .json(&json!({"jobs": vec![job; jobs]}))
        .send()
        .await
        .expect("answered");
    assert_eq!(created.status(), 201);
    let ids: Vec<String> = created.json::<Value>().await.expect("JSON")["ids"]
        .as_array()
        .expect("ids")
        .iter()
        .map(|id| id.as_str().expect("an id").to_owned())
        .collect();
    tokio::time::sleep(Duration::from_secs(5)).await;

    let signalled = Instant::now();
    let status = first.terminate(Duration::from_secs(60));
    let stopping = signalled.elapsed();
    assert_eq!(status.code(), Some(0), "a SIGTERM'd process exits 0");
    let ran_before = std::fs::read_to_string(&standalone.run_log)
        .unwrap_or_default()
        .lines()
        .count();
    assert!(
        ran_before > 0 && ran_before < jobs,
        "{ran_before} of {jobs} jobs ran before the stop"
    );

    let _second = standalone.start("second.log").await;
    let deadline = Instant::now() + SETTLE_LIMIT;
    let listed = loop {
        let listed = standalone.all_jobs().await;
        if listed.iter().all(is_final_job) {
            break listed;
        }
        assert!(
            Instant::now() < deadline,
            "not every job ended; logs in {}",
            standalone.logs.display()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(listed.len(), jobs);
    for job in &listed {
        assert_eq!(job["status"], "SUCCESS", "{job}");
        assert_eq!(job["attempts"], 1, "an attempt was lost or repeated: {job}");
    }
    let mut runs = std::collections::HashMap::<String, Vec<String>>::new();
    for line in std::fs::read_to_string(&standalone.run_log)
        .unwrap_or_default()
        .lines()
    {
        let (id, attempt) = line.split_once(' ').expect("`<job id> <attempt>`");
        runs.entry(id.to_owned())
            .or_default()
            .push(attempt.to_owned());
    }
    let duplicate_runs: usize = runs.values().map(|runs| runs.len() - 1).sum();
    println!(
        "| scenario | jobs | lost | duplicate runs | lost attempts | stop took | run before the stop |"
    );
    println!(
        "| standalone SIGTERM, then restart | {jobs} | 0 | {duplicate_runs} | 0 | {:.2} s | {ran_before} |",
        stopping.as_secs_f64()
    );
    assert_eq!(duplicate_runs, 0, "a graceful stop runs nothing twice");
    for id in &ids {
        assert_eq!(
            runs.get(id).map(Vec::as_slice),
            Some(&["1".to_owned()][..]),
            "job {id}"
        );
    }
    assert!(
        stopping < Duration::from_secs(15),
        "the stop took {stopping:?}: jobs that had not started ran during it"
    );
}

/// A second process on a data directory in use stops at once, saying why, and the first
/// goes on serving.
#[actix_web::test]
async fn a_second_process_on_the_same_data_directory_is_refused() {
    let standalone = Standalone::new();
    let _first = standalone.start("first.log").await;
    let port = free_port();
    let mut second = Instance::new(port, standalone.spawn(port, "second.log"));
    let status = second.wait_for_exit(Duration::from_secs(30));
    assert!(!status.success(), "the second process started");
    let said = standalone.log("second.log");
    assert!(
        said.contains("in use by another Kairos process"),
        "the second process did not say why:\n{said}"
    );
    let ready = standalone
        .http
        .get(format!("http://127.0.0.1:{}/readyz", standalone.port))
        .send()
        .await
        .expect("the first still answers");
    assert_eq!(ready.status(), 200);
}
