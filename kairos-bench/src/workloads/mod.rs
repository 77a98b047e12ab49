//! The workloads W1 to W8, each driving the deployment through its API and reading the
//! outcome from its database.

use std::sync::LazyLock;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use chrono::Utc;
use deadpool_postgres::Pool;
use futures_util::StreamExt;
use futures_util::stream;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use kairos::config::Settings;
use serde_json::{Value, json};
use uuid::Uuid;

mod burn_down;
mod creates;
mod kinds;
mod memory;
mod schedules;
mod timing;

use crate::Options;
use crate::baselines::percentile;
use crate::report::{Bar, Report};

/// The deployment's counters a workload waits on, as they stood before it began.
#[derive(Debug, Clone, Copy)]
struct Counts {
    /// Jobs ended (succeeded, failed, or skipped by their schedule's overlap rule).
    ended: f64,
    /// Reports the result writer has written.
    written: f64,
    /// Fires skipped by their overlap rule: ended without a report.
    skipped: f64,
}

/// Jobs per batch request.
const BATCH: usize = 10_000;
/// How often a burn-down is sampled.
const SAMPLE: Duration = Duration::from_millis(500);

/// How long W6 watches resident memory settle after a load.
const SETTLE: Duration = Duration::from_secs(5);

/// The bench's own queries carry this comment, so that W5 can leave them out.
const MARK: &str = "/* kairos-bench */";

/// A run against one deployment.
pub struct Bench {
    options: Options,
    settings: Settings,
    pool: Pool,
    http: reqwest::Client,
    run: String,
}

impl Bench {
    /// # Errors
    /// When the deployment does not answer `/readyz`.
    pub async fn new(options: &Options, settings: &Settings, pool: Pool) -> anyhow::Result<Bench> {
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(128)
            // Shorter than the server's keep-alive (5 s), so that a request never goes out on
            // a connection the server is closing.
            .pool_idle_timeout(std::time::Duration::from_secs(2))
            .build()?;
        let ready = http
            .get(format!("{}/readyz", options.url))
            .send()
            .await
            .context("Kairos is not running")?;
        if !ready.status().is_success() {
            bail!(
                "Kairos at {} is not ready: {}",
                options.url,
                ready.text().await.unwrap_or_default()
            );
        }
        Ok(Bench {
            options: options.clone(),
            settings: settings.clone(),
            pool,
            http,
            run: Uuid::new_v4().simple().to_string()[..8].to_owned(),
        })
    }

    /// # Errors
    /// When a workload cannot reach the deployment.
    pub async fn run_all(&self, report: &mut Report) -> anyhow::Result<()> {
        // First, while the process is fresh: memory grown and freed by earlier workloads
        // would be reused and hide the cost of waiting jobs.
        if self.options.wants("w6") {
            self.memory(report).await?;
        }
        if self.options.wants("w1") {
            self.burn_down(report).await?;
        }
        if self.options.wants("w2") {
            self.create_rates(report).await?;
        }
        if self.options.wants("w3") {
            self.precision(report).await?;
        }
        if self.options.wants("w4") {
            self.scan_cost(report).await?;
        }
        if self.options.wants("w7") {
            self.schedules(report).await?;
        }
        if self.options.wants("w8") {
            self.kinds(report).await?;
        }
        Ok(())
    }

    fn tag(&self, workload: &str) -> String {
        format!("bench-{}-{workload}", self.run)
    }

    /// Creates `count` jobs through the batch endpoint, `make(n)` building job n.
    async fn create_batched(
        &self,
        count: usize,
        make: impl Fn(usize) -> Value,
    ) -> anyhow::Result<Duration> {
        let url = format!("{}/api/v1/jobs:batch", self.options.url);
        // The bodies are encoded before the clock starts: the figure is the deployment's, not
        // this client's JSON encoding.
        let batches: Vec<(usize, Vec<u8>)> = (0..count)
            .collect::<Vec<_>>()
            .chunks(BATCH)
            .map(|chunk| {
                let body = json!({ "jobs": chunk.iter().map(|n| make(*n)).collect::<Vec<_>>() });
                Ok((chunk.len(), serde_json::to_vec(&body)?))
            })
            .collect::<anyhow::Result<_>>()?;
        let bar = progress(count as u64, "creating");
        let started = Instant::now();
        let mut sends = stream::iter(batches.into_iter().map(|(jobs, body)| {
            let request = self
                .http
                .post(&url)
                .header("content-type", "application/json")
                .body(body)
                .send();
            async move {
                let response = request.await?;
                if response.status() != 201 {
                    bail!(
                        "batch refused: {}",
                        response.text().await.unwrap_or_default()
                    );
                }
                Ok::<usize, anyhow::Error>(jobs)
            }
        }))
        .buffer_unordered(2);
        while let Some(sent) = sends.next().await {
            bar.inc(sent? as u64);
        }
        bar.finish_and_clear();
        Ok(started.elapsed())
    }

    /// Waits until `count` more jobs have ended (by the deployment's `kairos_jobs_succeeded_total`,
    /// `kairos_jobs_failed_total` and `kairos_fires_skipped_total`, so that waiting costs the
    /// database nothing), counting
    /// from `before`, then until their results are recorded; returns completions per second
    /// sampled over time.
    async fn wait_finished(
        &self,
        tag: &str,
        count: usize,
        before: Counts,
        limit: Duration,
    ) -> anyhow::Result<Vec<f64>> {
        let bar = progress(count as u64, "running");
        let deadline = Instant::now() + limit;
        let mut samples = Vec::new();
        let mut last = 0.0;
        loop {
            let done = self.ended().await? - before.ended;
            bar.set_position(done.max(0.0) as u64);
            samples.push((done - last) / SAMPLE.as_secs_f64());
            last = done;
            if done >= count as f64 {
                bar.finish_and_clear();
                // The executors are done; now wait for the result writer to record them.
                self.wait_recorded(tag, count, before, deadline).await?;
                return Ok(samples);
            }
            if Instant::now() > deadline {
                bar.finish_and_clear();
                bail!("{tag}: only {done} of {count} jobs finished within {limit:?}");
            }
            tokio::time::sleep(SAMPLE).await;
        }
    }

    /// Waits until the database shows all `count` jobs named `tag` final. Polled only once
    /// the executors are done.
    async fn wait_recorded(
        &self,
        tag: &str,
        count: usize,
        before: Counts,
        deadline: Instant,
    ) -> anyhow::Result<()> {
        // Each job's result is a report of its own: until the writer has written `count` more,
        // the database need not be asked. (Asked every 0.5 s from the executors' end, the
        // query below had to step over every dead in-flight entry of the listing index, up to
        // 1.9 s each after W6, and the result writer slowed to a few thousand results a
        // second beside it.)
        // A skipped fire ends without a report.
        let skipped = self.metric(SKIPPED).await? - before.skipped;
        while self.metric("kairos_reports_written_total").await? - before.written
            < count as f64 - skipped
        {
            if Instant::now() > deadline {
                bail!("{tag}: fewer than {count} reports written in time");
            }
            tokio::time::sleep(SAMPLE).await;
        }
        let client = self.pool.get().await?;
        // Looks for one job still in flight, through the listing index: counting them (or the
        // finished ones) at every poll cost PostgreSQL tens of milliseconds beside the writer.
        let in_flight = "FROM jobs WHERE name = $1 \
             AND status IN ('SCHEDULED', 'DISPATCHED', 'RUNNING', 'RETRYING')";
        let any = format!("{MARK} SELECT EXISTS (SELECT 1 {in_flight})");
        loop {
            let waiting: bool = client.query_one(&any, &[&tag]).await?.get(0);
            if !waiting {
                return Ok(());
            }
            if Instant::now() > deadline {
                let count_query = format!("{MARK} SELECT count(*) {in_flight}");
                let waiting: i64 = client.query_one(&count_query, &[&tag]).await?.get(0);
                bail!("{tag}: {waiting} of {count} results not recorded in time");
            }
            tokio::time::sleep(SAMPLE).await;
        }
    }

    /// The deployment's counters a workload waits on, read before it starts (from one
    /// sample of `/metrics`).
    async fn counts(&self) -> anyhow::Result<Counts> {
        let text = self.metrics_text().await?;
        Ok(Counts {
            ended: ended_in(&text)?,
            written: metric_in(&text, "kairos_reports_written_total")?,
            skipped: metric_in(&text, SKIPPED)?,
        })
    }

    /// Jobs that ended so far in the deployment (one process: the one `scripts/bench` starts).
    async fn ended(&self) -> anyhow::Result<f64> {
        ended_in(&self.metrics_text().await?)
    }

    /// (statements, commits) the database has executed so far, the bench's own left out.
    async fn database_counters(&self) -> anyhow::Result<(f64, f64)> {
        let client = self.pool.get().await?;
        let row = client
            .query_one(
                &format!(
                    "{MARK} SELECT \
                         (SELECT COALESCE(sum(calls), 0)::float8 FROM pg_stat_statements \
                          WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) \
                            AND query NOT LIKE '%kairos-bench%'), \
                         (SELECT xact_commit::float8 FROM pg_stat_database WHERE datname = current_database())"
                ),
                &[],
            )
            .await
            .context("pg_stat_statements is needed for W5 (scripts/services up installs it)")?;
        Ok((row.get(0), row.get(1)))
    }

    /// A sample of the deployment's metric `name`.
    async fn metric(&self, name: &str) -> anyhow::Result<f64> {
        metric_in(&self.metrics_text().await?, name)
    }

    /// A sample of the deployment's `/metrics`.
    async fn metrics_text(&self) -> anyhow::Result<String> {
        Ok(self
            .http
            .get(format!("{}/metrics", self.options.url))
            .send()
            .await?
            .text()
            .await?)
    }

    async fn delete_tagged(&self, tag: &str) -> anyhow::Result<()> {
        let client = self.pool.get().await?;
        client
            .execute(&format!("{MARK} DELETE FROM jobs WHERE name = $1"), &[&tag])
            .await?;
        Ok(())
    }
}

/// The value of metric `name` in a `/metrics` text.
fn metric_in(text: &str, name: &str) -> anyhow::Result<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .with_context(|| format!("`{name}` is not in /metrics"))
}

/// Jobs ended (succeeded or failed), in a `/metrics` text.
/// Fires a schedule's overlap rule ended `SKIPPED` (at their time, without running).
const SKIPPED: &str = "kairos_fires_skipped_total";

/// Jobs ended: succeeded, failed, or skipped by their overlap rule (a final status too).
fn ended_in(text: &str) -> anyhow::Result<f64> {
    Ok(metric_in(text, "kairos_jobs_succeeded_total")?
        + metric_in(text, "kairos_jobs_failed_total")?
        + metric_in(text, SKIPPED)?)
}

/// Every progress bar of the run, so that two shown at once (W1 creates while its first jobs
/// run) do not draw over each other.
static BARS: LazyLock<MultiProgress> = LazyLock::new(MultiProgress::new);

fn progress(length: u64, what: &str) -> ProgressBar {
    let bar = BARS.add(ProgressBar::new(length));
    bar.set_style(
        ProgressStyle::with_template("  {msg:>9} {bar:40} {pos}/{len} {per_sec} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_message(what.to_owned());
    bar
}
