//! A real `kairos serve` process seen from outside: what its jobs can see of it, and what a
//! flood of hostile connections can take from it. Each test starts its own standalone process
//! (no servers needed) with the environment and the limits it is about.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use uuid::Uuid;

mod access;
mod cli;
mod dashboard;
mod install;
mod webdriver;

/// A standalone `kairos serve` on free ports, its logs in `target/process/<id>/`.
struct Server {
    child: Child,
    port: u16,
    probe_port: u16,
    folder: PathBuf,
    http: reqwest::Client,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().expect("address").port()
}

impl Server {
    /// Starts `kairos serve` through `/bin/sh -c "<prelude>; exec kairos serve"` (so that a
    /// test can lower its limits with `ulimit`), with only `env` and the ports in its
    /// environment, and waits until it is ready.
    async fn start(prelude: &str, env: &[(&str, &str)]) -> Server {
        let folder = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("target")
            .join("process")
            .join(Uuid::new_v4().simple().to_string());
        let config_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config");
        let binary = Path::new(env!("CARGO_BIN_EXE_kairos"));
        Server::start_in(binary, Some(&config_dir), folder, prelude, env).await
    }

    /// Starts `binary serve` in `folder` (created when missing; its log goes there), with
    /// `--config-dir` when given, as [`Server::start`] says.
    async fn start_in(
        binary: &Path,
        config_dir: Option<&Path>,
        folder: PathBuf,
        prelude: &str,
        env: &[(&str, &str)],
    ) -> Server {
        std::fs::create_dir_all(&folder).expect("a folder");
        let (port, probe_port) = (free_port(), free_port());
        let log = std::fs::File::create(folder.join("kairos.log")).expect("log file");
        let serve = match config_dir {
            Some(_) => "exec \"$0\" --config-dir \"$1\" serve",
            None => "exec \"$0\" serve",
        };
        let child = Command::new("/bin/sh")
            .arg("-c")
            .arg(format!("{prelude}; {serve}"))
            .arg(binary)
            .args(config_dir)
            .current_dir(&folder)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("KAIROS__HTTP__PORT", port.to_string())
            .env("KAIROS__HTTP__PROBE_PORT", probe_port.to_string())
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("kairos starts");
        let server = Server {
            child,
            port,
            probe_port,
            folder,
            http: reqwest::Client::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while !server.ready().await {
            assert!(
                Instant::now() < deadline,
                "not ready within 60 s: {}",
                server.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        server
    }

    async fn ready(&self) -> bool {
        self.http
            .get(format!("http://127.0.0.1:{}/readyz", self.port))
            .send()
            .await
            .is_ok_and(|response| response.status() == 200)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.folder.join("kairos.log")).unwrap_or_default()
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Creates `body` as a job (with `token`, if any) and waits until it succeeds; returns
    /// it as `GET /api/v1/jobs/{id}` shows it.
    async fn run_job(&self, body: &Value, token: Option<&str>) -> Value {
        let with_token = |request: reqwest::RequestBuilder| match token {
            Some(token) => request.bearer_auth(token),
            None => request,
        };
        let created: Value = with_token(self.http.post(self.url("/api/v1/jobs")))
            .json(body)
            .send()
            .await
            .expect("answered")
            .json()
            .await
            .expect("JSON");
        let id = created["job"]["id"].as_str().expect("created").to_owned();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let job: Value = with_token(self.http.get(self.url(&format!("/api/v1/jobs/{id}"))))
                .send()
                .await
                .expect("answered")
                .json()
                .await
                .expect("JSON");
            if job["job"]["status"] == "SUCCESS" {
                return job;
            }
            assert!(Instant::now() < deadline, "the job did not succeed: {job}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The process's peak resident memory so far, in bytes (`VmHWM`).
    fn peak_memory(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("the process runs");
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmHWM:"))
            .and_then(|kilobytes| {
                kilobytes
                    .trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
            .expect("VmHWM")
            * 1024
    }

    /// Answers `GET /healthz` on `port` within `limit`?
    async fn healthy_within(&self, port: u16, limit: Duration) -> Result<Duration, String> {
        let started = Instant::now();
        let answer = tokio::time::timeout(
            limit,
            self.http
                .get(format!("http://127.0.0.1:{port}/healthz"))
                .send(),
        )
        .await;
        match answer {
            Ok(Ok(response)) if response.status() == 200 => Ok(started.elapsed()),
            Ok(Ok(response)) => Err(format!("answered {}", response.status())),
            Ok(Err(error)) => Err(error.to_string()),
            Err(_) => Err(format!("no answer within {limit:?}")),
        }
    }
}

/// A job's shell sees none of the server's secrets: not its tokens, not its database password,
/// nor anything else of its environment but what `runner.shell.env` passes; and it runs in a
/// folder of its own, not the server's.
#[actix_web::test]
async fn a_job_sees_none_of_the_servers_secrets() {
    let server = Server::start(
        "true",
        &[
            ("KAIROS__AUTH__TOKENS", "token-sekrit-1"),
            ("KAIROS__DATABASE__PASSWORD", "password-sekrit-2"),
            ("UNRELATED_SECRET", "sekrit-3"),
            ("SHARED_SETTING", "passed-on"),
            (
                "KAIROS__RUNNER__SHELL__ENV",
                "SHARED_SETTING,GREETING=hello",
            ),
        ],
    )
    .await;
    let job = server
        .run_job(
            &json!({"command": "env; echo; pwd", "execute_at": "2020-01-01T00:00:00Z"}),
            Some("token-sekrit-1"),
        )
        .await;
    let id = job["job"]["id"].as_str().expect("an id").to_owned();
    let output = job["job"]["last_output"].as_str().expect("output");
    assert!(!output.contains("sekrit"), "a job saw a secret:\n{output}");
    assert!(
        !output.contains("KAIROS__"),
        "a job saw Kairos's settings:\n{output}"
    );
    for expected in [
        format!("KAIROS_JOB_ID={id}"),
        "KAIROS_ATTEMPT=1".to_owned(),
        "SHARED_SETTING=passed-on".to_owned(),
        "GREETING=hello".to_owned(),
    ] {
        assert!(output.contains(&expected), "{expected} missing:\n{output}");
    }
    let folder = output.trim_end().lines().last().expect("pwd");
    assert_ne!(
        PathBuf::from(folder),
        server.folder,
        "the job ran in the server's folder"
    );
    assert!(
        !PathBuf::from(folder).exists(),
        "the job's folder outlived it"
    );
}

/// Opens a connection that sends a request's headers, declaring a body of `declared` bytes,
/// and then `sent` bytes of it, and stalls. Returns the stream (`None` if it was refused).
async fn stalled_request(port: u16, path: &str, declared: usize, sent: usize) -> Option<TcpStream> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: kairos\r\nContent-Type: application/json\r\n\
         Content-Length: {declared}\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.ok()?;
    let chunk = vec![b' '; 64 * 1024];
    let mut left = sent;
    while left > 0 {
        let part = left.min(chunk.len());
        if stream.write_all(&chunk[..part]).await.is_err() {
            return Some(stream);
        }
        left -= part;
    }
    Some(stream)
}

/// The status of the answer on `stream`, if one comes within `limit`.
async fn answer_status(stream: &mut TcpStream, limit: Duration) -> Option<u16> {
    let mut answer = vec![0_u8; 1024];
    let read = tokio::time::timeout(limit, stream.read(&mut answer))
        .await
        .ok()?
        .ok()?;
    String::from_utf8_lossy(&answer[..read])
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Under `ulimit -n 1024`, 1,100 connections whose bodies stall hold the API's connections:
/// the process caps them below its file limit (so it never runs out of descriptors), the
/// probes keep answering on their own listener meanwhile, and each stalled request is
/// answered `408` once `http.body_timeout` is over, the ones beyond the cap after those
/// before them.
#[actix_web::test]
async fn stalled_bodies_cannot_exhaust_the_files_or_silence_the_probes() {
    let server = Server::start("ulimit -n 1024", &[("KAIROS__HTTP__BODY_TIMEOUT", "3s")]).await;
    let flood: Vec<TcpStream> = futures_util::future::join_all(
        (0..1100).map(|_| stalled_request(server.port, "/api/v1/jobs", 1000, 10)),
    )
    .await
    .into_iter()
    .flatten()
    .collect();
    assert_eq!(
        flood.len(),
        1100,
        "the flood's connections were not all made"
    );

    for _ in 0..5 {
        let took = server
            .healthy_within(server.probe_port, Duration::from_secs(1))
            .await
            .unwrap_or_else(|problem| panic!("the probe port did not answer: {problem}"));
        println!("/healthz on the probe port during the flood: {took:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let statuses = futures_util::future::join_all(flood.into_iter().map(|mut stream| async move {
        answer_status(&mut stream, Duration::from_secs(30)).await
    }))
    .await;
    let timed_out = statuses
        .iter()
        .filter(|status| **status == Some(408))
        .count();
    assert_eq!(timed_out, 1100, "answers: {statuses:?}");
    server
        .healthy_within(server.port, Duration::from_secs(5))
        .await
        .unwrap_or_else(|problem| panic!("the API port did not recover: {problem}"));
    let log = server.log();
    assert!(!log.contains("Too many open files"), "{log}");
    assert!(
        log.contains("open-file limit"),
        "the limit was not logged:\n{log}"
    );
}

/// 40 connections each sending 30 MB of a 31 MB batch and then stalling: a body is held only
/// if the memory budget (`http.max_body_memory`, 128 MiB) has room for it, the others are
/// refused with `503` at once, and the process's memory stays bounded.
#[actix_web::test]
async fn stalled_large_bodies_stay_within_the_memory_budget() {
    let server = Server::start("true", &[]).await;
    let before = server.peak_memory();
    let mut flood: Vec<TcpStream> = futures_util::future::join_all(
        (0..40).map(|_| stalled_request(server.port, "/api/v1/jobs:batch", 31_000_000, 30_000_000)),
    )
    .await
    .into_iter()
    .flatten()
    .collect();
    let peak = server.peak_memory();
    let mut refused = 0;
    for stream in &mut flood {
        if answer_status(stream, Duration::from_millis(100)).await == Some(503) {
            refused += 1;
        }
    }
    println!(
        "peak resident memory: {} MB before, {} MB with 40 stalled 31 MB bodies ({refused} refused at once)",
        before / 1_000_000,
        peak / 1_000_000
    );
    assert!(refused >= 36, "only {refused} of 40 refused");
    assert!(
        peak < 400_000_000,
        "the process grew to {} MB",
        peak / 1_000_000
    );
    server
        .healthy_within(server.port, Duration::from_secs(2))
        .await
        .unwrap_or_else(|problem| panic!("the API port stopped answering: {problem}"));
}
