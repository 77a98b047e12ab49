//! W8: the kinds beyond the no-op. `http` jobs burnt down against a local HTTP server, beside
//! a plain client calling the same server; `kafka` jobs burnt down, beside the produce
//! baseline; and how long a cancel takes to stop a running command's process group.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use chrono::Utc;
use futures_util::StreamExt;
use futures_util::stream;
use http_body_util::Full;
use hyper::body::Bytes;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use kairos::bus::kafka;
use serde_json::json;
use tokio::net::TcpListener;

use super::Bench;
use super::burn_down::burn_down_limit;
use crate::baselines::percentile;
use crate::report::{Bar, Report};

/// No-op jobs due over the second after the `http` jobs fall due together.
const BESIDE: usize = 1_000;

/// Running commands cancelled, one after another.
const CANCELS: usize = 40;

/// A local HTTP server answering `200 ok` to everything, counting requests.
async fn serve() -> anyhow::Result<(String, Arc<AtomicU64>)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let address = format!("http://{}", listener.local_addr()?);
    let served = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&served);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let counter = Arc::clone(&counter);
            tokio::spawn(async move {
                let service = service_fn(move |_request| {
                    counter.fetch_add(1, Ordering::Relaxed);
                    async {
                        Ok::<_, Infallible>(hyper::Response::new(Full::new(Bytes::from("ok"))))
                    }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok((address, served))
}

impl Bench {
    /// W8: `http` and `kafka` jobs burnt down, and cancel-to-killed latency.
    pub(super) async fn kinds(&self, report: &mut Report) -> anyhow::Result<()> {
        self.http_jobs(report).await?;
        self.kafka_jobs(report).await?;
        self.cancel_latency(report).await
    }

    async fn http_jobs(&self, report: &mut Report) -> anyhow::Result<()> {
        let (server, served) = serve().await?;
        let count = self.options.http_jobs;
        // The baseline: a plain client, with the concurrency of the jobs' calls
        // (`runner.http.max_concurrent_calls`), on the same server; the median of three runs,
        // as short runs move with the machine.
        let concurrency = self.settings.runner.http.max_concurrent_calls;
        let client = reqwest::Client::new();
        let mut rates = Vec::with_capacity(3);
        for _ in 0..3 {
            let started = Instant::now();
            let answered = stream::iter(0..count)
                .map(|_| {
                    let request = client.post(&server).body("{}").send();
                    async move {
                        request
                            .await
                            .is_ok_and(|response| response.status().is_success())
                    }
                })
                .buffer_unordered(concurrency)
                .filter(|ok| std::future::ready(*ok))
                .count()
                .await;
            rates.push(answered as f64 / started.elapsed().as_secs_f64());
        }
        rates.sort_by(f64::total_cmp);
        let baseline = rates[1];
        report.add(
            "baseline",
            &format!(
                "HTTP client, {concurrency} requests at a time, to a local server (median of 3)"
            ),
            baseline,
            "requests/s",
            None,
            None,
        );

        let served_before = served.load(Ordering::Relaxed);
        let body = json!({"order": 17});
        let rates = self
            .kind_burn_downs("w8-http", "http", count, BESIDE, |tag, _, due| {
                json!({"kind": "http", "url": server, "body": body, "name": tag, "execute_at": due})
            })
            .await?;
        anyhow::ensure!(
            served.load(Ordering::Relaxed) - served_before >= 2 * count as u64,
            "the server saw fewer requests than jobs"
        );
        rates.report(
            report,
            "http",
            "half the plain client's rate",
            Some(baseline),
        );
        if let Some(beside) = &rates.beside {
            self.lateness(
                report,
                "W8 kinds, no-op jobs due while the http jobs run",
                beside,
                None,
            )
            .await?;
        }
        Ok(())
    }

    async fn kafka_jobs(&self, report: &mut Report) -> anyhow::Result<()> {
        let topic = format!("bench-{}-w8-kafka", self.run);
        kafka::ensure_topics(&self.settings.kafka, std::slice::from_ref(&topic))
            .await
            .context("the target topic")?;
        let count = self.options.kafka_jobs;
        let rates = self
            .kind_burn_downs("w8-kafka", "kafka", count, 0, |tag, n, due| {
                json!({"kind": "kafka", "topic": topic, "key": n.to_string(),
                    "value": {"order": n}, "name": tag, "execute_at": due})
            })
            .await?;
        let produce = report.value("baseline", "Kafka produce (idempotent, acks=all)");
        rates.report(report, "kafka", "half the produce baseline", produce);
        Ok(())
    }

    /// Burns `count` jobs of `kind` down twice: created due now (the creates share the cores
    /// with the runs), then created ahead, all falling due at the same instant (a backlog
    /// that comes due, as delayed deliveries do), with `beside` no-op jobs due evenly over the
    /// second after that instant, whose lateness shows how other jobs fare meanwhile.
    /// `make(tag, n, due)` builds job n.
    async fn kind_burn_downs(
        &self,
        workload: &str,
        kind: &str,
        count: usize,
        beside: usize,
        make: impl Fn(&str, usize, &str) -> serde_json::Value,
    ) -> anyhow::Result<KindRates> {
        let tag = self.tag(&format!("{workload}-now"));
        println!("W8: {count} {kind} jobs due now");
        let now = Utc::now().to_rfc3339();
        let before = self.counts().await?;
        tokio::try_join!(
            self.create_batched(count, |n| make(&tag, n, &now)),
            self.wait_finished(&tag, count, before, burn_down_limit(count)),
        )?;
        let created_meanwhile = self.throughput(&tag, count).await?.recorded;

        let tag = self.tag(&format!("{workload}-due"));
        let lead = due_lead(count);
        println!("W8: {count} {kind} jobs created ahead, all due in {lead:?}");
        let due = Utc::now() + chrono::Duration::from_std(lead)?;
        let due_text = due.to_rfc3339();
        let before = self.counts().await?;
        self.create_batched(count, |n| make(&tag, n, &due_text))
            .await?;
        let beside_tag = self.tag(&format!("{workload}-beside"));
        if beside > 0 {
            let step = 1e6 / beside as f64;
            self.create_batched(beside, |n| {
                let at = due + chrono::Duration::microseconds((n as f64 * step) as i64);
                json!({"kind": "noop", "name": beside_tag, "execute_at": at.to_rfc3339()})
            })
            .await?;
        }
        anyhow::ensure!(
            Utc::now() < due,
            "creating {count} jobs took longer than their lead of {lead:?}"
        );
        self.wait_finished(&tag, count + beside, before, lead + burn_down_limit(count))
            .await?;
        let due_together = self.throughput(&tag, count).await?;
        if beside > 0 {
            // The no-op jobs' results, recorded beside the others'.
            self.wait_finished(&beside_tag, 0, before, burn_down_limit(count))
                .await?;
        }
        Ok(KindRates {
            created_meanwhile,
            due_together: due_together.recorded,
            due_together_ended: due_together.finished,
            beside: (beside > 0).then_some(beside_tag),
        })
    }

    /// Cancels running commands    /// Cancels running commands one after another: from the `202` to their process group
    /// gone (the shell and its child), p50, p99, max.
    async fn cancel_latency(&self, report: &mut Report) -> anyhow::Result<()> {
        println!("W8: {CANCELS} running commands cancelled");
        let folder = std::env::temp_dir().join(format!("kairos-bench-{}-cancel", self.run));
        std::fs::create_dir_all(&folder)?;
        let tag = self.tag("w8-cancel");
        let now = Utc::now().to_rfc3339();
        let mut jobs = Vec::with_capacity(CANCELS);
        for n in 0..CANCELS {
            let pids = folder.join(n.to_string());
            let body = json!({"command": format!("sleep 300 & echo \"$$ $!\" > {}; wait", pids.display()),
                "name": tag, "execute_at": now, "max_retries": 0});
            let created: serde_json::Value = self
                .http
                .post(format!("{}/api/v1/jobs", self.options.url))
                .json(&body)
                .send()
                .await?
                .error_for_status()?
                .json()
                .await?;
            let id = created["job"]["id"]
                .as_str()
                .context("a job id")?
                .to_owned();
            jobs.push((id, pids));
        }
        let mut latencies = Vec::with_capacity(CANCELS);
        for (n, (id, pids)) in jobs.iter().enumerate() {
            let processes = wait_for_pids(pids).await?;
            let response = self
                .http
                .post(format!("{}/api/v1/jobs/{id}:cancel", self.options.url))
                .send()
                .await?;
            let answered = Instant::now();
            anyhow::ensure!(
                response.status() == 202,
                "a cancel answered {}",
                response.status()
            );
            while processes.iter().any(|pid| alive(*pid)) {
                anyhow::ensure!(
                    answered.elapsed() < Duration::from_secs(60),
                    "job {id} not stopped"
                );
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            latencies.push(answered.elapsed().as_secs_f64() * 1000.0);
            // Spread the cancels over the heartbeat's phase (250 ms): a fixed pause would keep
            // every cancel at the same point of it.
            tokio::time::sleep(Duration::from_millis((n as u64 * 89) % 250)).await;
        }
        let _ = std::fs::remove_dir_all(&folder);
        latencies.sort_by(f64::total_cmp);
        for (name, q, bar) in [
            ("p50", 0.5, None),
            ("p99", 0.99, Some(Bar::AtMost(1000.0))),
            ("max", 1.0, None),
        ] {
            report.add(
                "W8 cancel",
                &format!("202 to the process group gone, {name}"),
                percentile(&latencies, q),
                "ms",
                bar,
                None,
            );
        }
        Ok(())
    }
}

/// A kind's two burn-downs, in jobs per second from the first attempt's start to the last
/// result recorded.
struct KindRates {
    /// Created due now, through the batch endpoint, while the first ones run.
    created_meanwhile: f64,
    /// Created ahead, all due at the same instant.
    due_together: f64,
    /// The same, to the last attempt's end (the last answer or acknowledgement).
    due_together_ended: f64,
    /// The tag of the no-op jobs due meanwhile, if any.
    beside: Option<String>,
}

impl KindRates {
    /// Adds both to `report`; the bar, half of `baseline`, is on the jobs falling due
    /// together: a bare client creates nothing.
    fn report(&self, report: &mut Report, kind: &str, bar: &str, baseline: Option<f64>) {
        report.add(
            "W8 kinds",
            &format!("{kind} jobs/s, created ahead and due together, to the last result recorded (bar: {bar})"),
            self.due_together,
            "jobs/s",
            baseline.map(|baseline| Bar::AtLeast(baseline * 0.5)),
            baseline,
        );
        report.add(
            "W8 kinds",
            &format!("{kind} jobs/s, created ahead and due together, to the last attempt's end"),
            self.due_together_ended,
            "jobs/s",
            None,
            baseline,
        );
        report.add(
            "W8 kinds",
            &format!("{kind} jobs/s, created due now while they run, to the last result recorded"),
            self.created_meanwhile,
            "jobs/s",
            None,
            baseline,
        );
    }
}

/// How far ahead W8 creates the jobs that fall due together: time to create them all (the
/// batch endpoint takes about 100,000 a second) with room to spare.
fn due_lead(jobs: usize) -> Duration {
    Duration::from_secs(5).max(Duration::from_micros(jobs as u64 * 100))
}

/// Waits until `file` holds the pids a job's command wrote (its shell and its child).
async fn wait_for_pids(file: &std::path::Path) -> anyhow::Result<Vec<i32>> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(text) = std::fs::read_to_string(file) {
            let pids: Vec<i32> = text
                .split_whitespace()
                .filter_map(|pid| pid.parse().ok())
                .collect();
            if pids.len() == 2 {
                return Ok(pids);
            }
        }
        anyhow::ensure!(Instant::now() < deadline, "the command never started");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Whether process `pid` still runs (a zombie has ended).
fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            stat.rsplit_once(')')
                .map(|(_, rest)| rest.trim_start().starts_with('Z'))
        })
        .is_some_and(|zombie| !zombie)
}
