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

/// Concurrent requests of the plain client: the executors' run slots
/// (`executor.max_concurrent_runs`).
const CLIENT_CONCURRENCY: usize = 64;

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
        // The baseline: a plain client, with the executors' concurrency, on the same server.
        let client = reqwest::Client::new();
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
            .buffer_unordered(CLIENT_CONCURRENCY)
            .filter(|ok| std::future::ready(*ok))
            .count()
            .await;
        let baseline = answered as f64 / started.elapsed().as_secs_f64();
        report.add(
            "baseline",
            "HTTP client, 64 requests at a time, to a local server",
            baseline,
            "requests/s",
            None,
            None,
        );

        let tag = self.tag("w8-http");
        println!("W8: {count} http jobs due now, against a local server");
        let now = Utc::now().to_rfc3339();
        let before = self.counts().await?;
        let served_before = served.load(Ordering::Relaxed);
        tokio::try_join!(
            self.create_batched(count, |_| json!({"kind": "http", "url": server,
                "body": {"order": 17}, "name": tag, "execute_at": now})),
            self.wait_finished(&tag, count, before, burn_down_limit(count)),
        )?;
        let rate = self.throughput(&tag, count).await?;
        anyhow::ensure!(
            served.load(Ordering::Relaxed) - served_before >= count as u64,
            "the server saw fewer requests than jobs"
        );
        report.add(
            "W8 kinds",
            "http jobs/s to the last result recorded (bar: half the plain client's rate)",
            rate.recorded,
            "jobs/s",
            Some(Bar::AtLeast(baseline * 0.5)),
            Some(baseline),
        );
        Ok(())
    }

    async fn kafka_jobs(&self, report: &mut Report) -> anyhow::Result<()> {
        let topic = format!("bench-{}-w8-kafka", self.run);
        kafka::ensure_topics(&self.settings.kafka, std::slice::from_ref(&topic))
            .await
            .context("the target topic")?;
        let count = self.options.kafka_jobs;
        let tag = self.tag("w8-kafka");
        println!("W8: {count} kafka jobs due now");
        let now = Utc::now().to_rfc3339();
        let before = self.counts().await?;
        tokio::try_join!(
            self.create_batched(count, |n| json!({"kind": "kafka", "topic": topic,
                "key": n.to_string(), "value": {"order": n}, "name": tag, "execute_at": now})),
            self.wait_finished(&tag, count, before, burn_down_limit(count)),
        )?;
        let rate = self.throughput(&tag, count).await?;
        let produce = report.value("baseline", "Kafka produce (idempotent, acks=all)");
        report.add(
            "W8 kinds",
            "kafka jobs/s to the last result recorded (bar: half the produce baseline)",
            rate.recorded,
            "jobs/s",
            produce.map(|produce| Bar::AtLeast(produce * 0.5)),
            produce,
        );
        Ok(())
    }

    /// Cancels running commands one after another: from the `202` to their process group
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
