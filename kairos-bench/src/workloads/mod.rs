//! The workloads W1 to W6, each driving the deployment through its API and reading the
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

mod timing;

use crate::Options;
use crate::baselines::percentile;
use crate::report::{Bar, Report};

/// A burn-down's rates (jobs per second).
struct Throughput {
    /// To the last result recorded in PostgreSQL.
    recorded: f64,
    /// To the last attempt's end, as its executor reported it.
    finished: f64,
}

/// A burn-down's outcome.
struct BurnDown {
    rate: Throughput,
    /// Completions per second, every [`SAMPLE`] from the first request on.
    samples: Vec<f64>,
}

/// How long a burn-down of `jobs` may take before the benchmark gives up.
fn burn_down_limit(jobs: usize) -> Duration {
    Duration::from_secs(120).max(Duration::from_millis(jobs as u64 * 5))
}

/// The deployment's counters a workload waits on, as they stood before it began.
#[derive(Debug, Clone, Copy)]
struct Counts {
    /// Jobs ended (succeeded or failed).
    ended: f64,
    /// Reports the result writer has written.
    written: f64,
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

    /// Waits until `count` more jobs have ended (by the deployment's `kairos_jobs_succeeded_total`
    /// and `kairos_jobs_failed_total`, so that waiting costs the database nothing), counting
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
        while self.metric("kairos_reports_written_total").await? - before.written < count as f64 {
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
        })
    }

    /// Jobs that ended so far in the deployment (one process: the one `scripts/bench` starts).
    async fn ended(&self) -> anyhow::Result<f64> {
        ended_in(&self.metrics_text().await?)
    }

    /// Jobs per second for the jobs named `tag`, from the first attempt's start to the last
    /// result recorded in PostgreSQL (the end a user sees: the job reads `SUCCESS`), and to
    /// the last attempt's end as its executor reported it (the result is recorded after).
    async fn throughput(&self, tag: &str, count: usize) -> anyhow::Result<Throughput> {
        let client = self.pool.get().await?;
        let row = client
            .query_one(
                &format!(
                    "{MARK} SELECT \
                         EXTRACT(EPOCH FROM max(updated_at) - min(started_at))::float8, \
                         EXTRACT(EPOCH FROM max(finished_at) - min(started_at))::float8 \
                     FROM jobs WHERE name = $1"
                ),
                &[&tag],
            )
            .await?;
        let rate = |seconds: Option<f64>| count as f64 / seconds.unwrap_or(f64::INFINITY).max(1e-3);
        Ok(Throughput {
            recorded: rate(row.get(0)),
            finished: rate(row.get(1)),
        })
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

    /// W1 (burn-down) and W5 (database cost per job).
    async fn burn_down(&self, report: &mut Report) -> anyhow::Result<()> {
        let jobs = self.options.jobs;
        let runs = usize::from(self.options.burn_downs);
        let (statements_before, commits_before) = self.database_counters().await?;
        let mut burns = Vec::with_capacity(runs);
        for run in 1..=runs {
            println!("W1: {jobs} no-op jobs due now (burn-down {run} of {runs})");
            burns.push(self.burn_down_once(&self.tag(&format!("w1-{run}"))).await?);
        }
        // The bench's own statements carry the mark; its counter reads and its polls of the
        // recorded results are commits too, a handful a run: leaving them in errs on the high
        // side.
        let polls = 2.0 * runs as f64;
        let (statements_after, commits_after) = self.database_counters().await?;
        for (run, burn) in burns.iter().enumerate() {
            report.add(
                "W1 burn-down",
                &format!("no-op jobs/s to the last result recorded, run {}", run + 1),
                burn.rate.recorded,
                "jobs/s",
                None,
                None,
            );
        }
        burns.sort_by(|a, b| a.rate.recorded.total_cmp(&b.rate.recorded));
        let median = &burns[(burns.len() - 1) / 2];
        report.add(
            "W1 burn-down",
            &format!("no-op jobs/s, first start to last result recorded (median of {runs})"),
            median.rate.recorded,
            "jobs/s",
            Some(Bar::AtLeast(20_000.0)),
            report.value("baseline", crate::baselines::PG_LIFECYCLE),
        );
        report.add(
            "W1 burn-down",
            "no-op jobs/s, first start to last attempt finished (executors), that run",
            median.rate.finished,
            "jobs/s",
            None,
            None,
        );
        report.add(
            "W1 burn-down",
            "peak completions/s (0.5 s samples), that run",
            median.samples.iter().copied().fold(0.0, f64::max),
            "jobs/s",
            None,
            None,
        );
        report.add_series(
            "W1 burn-down",
            "completions/s in that run",
            "jobs/s",
            SAMPLE.as_secs_f64(),
            median.samples.clone(),
        );
        let all = (jobs * runs) as f64;
        let statements = (statements_after - statements_before) / all;
        let commits = (commits_after - commits_before - polls) / all;
        report.add(
            "W5 database cost",
            "statements per job",
            statements,
            "",
            Some(Bar::AtMost(4.0)),
            None,
        );
        report.add(
            "W5 database cost",
            "commits per job",
            commits,
            "",
            Some(Bar::AtMost(1.0)),
            None,
        );

        let shell = self.options.shell_jobs;
        let shell_tag = self.tag("w1-shell");
        let limit = burn_down_limit(shell);
        println!("W1: {shell} shell jobs (`true`) due now");
        let now = Utc::now().to_rfc3339();
        let before = self.counts().await?;
        tokio::try_join!(
            self.create_batched(
                shell,
                |_| json!({"command": "true", "name": shell_tag, "execute_at": now}),
            ),
            self.wait_finished(&shell_tag, shell, before, limit),
        )?;
        let spawn = report.value("baseline", "spawn /bin/sh -c true");
        let rate = self.throughput(&shell_tag, shell).await?;
        report.add(
            "W1 burn-down",
            "shell jobs/s to the last result recorded (vs spawn baseline, bar ratio 0.5)",
            rate.recorded,
            "jobs/s",
            spawn.map(|s| Bar::AtLeast(s * 0.5)),
            spawn,
        );
        Ok(())
    }

    /// One burn-down: `options.jobs` no-op jobs due now, named `tag`, created through the
    /// batch endpoint; its rates, and its completions per second from the first request on.
    async fn burn_down_once(&self, tag: &str) -> anyhow::Result<BurnDown> {
        let jobs = self.options.jobs;
        let now = Utc::now().to_rfc3339();
        let before = self.counts().await?;
        // Completions are sampled from the first request on: the jobs start while the later
        // batches are still being created.
        let (_, samples) = tokio::try_join!(
            self.create_batched(
                jobs,
                |_| json!({"kind": "noop", "name": tag, "execute_at": now}),
            ),
            self.wait_finished(tag, jobs, before, burn_down_limit(jobs)),
        )?;
        Ok(BurnDown {
            rate: self.throughput(tag, jobs).await?,
            samples,
        })
    }

    /// W2: single creates at concurrency 1, 16 and 64, and the batch endpoint.
    async fn create_rates(&self, report: &mut Report) -> anyhow::Result<()> {
        let url = format!("{}/api/v1/jobs", self.options.url);
        let tag = self.tag("w2");
        for concurrency in [1_usize, 16, 64] {
            let count = self.options.creates;
            println!("W2: {count} single creates at concurrency {concurrency}");
            let bar = progress(count as u64, "creating");
            let started = Instant::now();
            let mut latencies: Vec<f64> = stream::iter(0..count)
                .map(|_| {
                    let body =
                        json!({"kind": "noop", "name": tag, "execute_at": "2100-01-01T00:00:00Z"});
                    let request = self.http.post(&url).json(&body).send();
                    let bar = bar.clone();
                    async move {
                        let sent = Instant::now();
                        let created = request.await.is_ok_and(|response| response.status() == 201);
                        bar.inc(1);
                        created.then(|| sent.elapsed().as_secs_f64() * 1000.0)
                    }
                })
                .buffer_unordered(concurrency)
                .filter_map(std::future::ready)
                .collect()
                .await;
            let elapsed = started.elapsed().as_secs_f64();
            bar.finish_and_clear();
            latencies.sort_by(f64::total_cmp);
            let bar_64 = (concurrency == 64).then_some(Bar::AtLeast(5_000.0));
            let figure = format!("single creates/s at concurrency {concurrency}");
            report.add(
                "W2 create rate",
                &figure,
                latencies.len() as f64 / elapsed,
                "jobs/s",
                bar_64,
                None,
            );
            report.add(
                "W2 create rate",
                &format!("p50 latency at concurrency {concurrency}"),
                percentile(&latencies, 0.5),
                "ms",
                None,
                None,
            );
            report.add(
                "W2 create rate",
                &format!("p99 latency at concurrency {concurrency}"),
                percentile(&latencies, 0.99),
                "ms",
                None,
                None,
            );
        }
        let count = self.options.batch_creates;
        let runs = usize::from(self.options.batch_runs);
        let mut rates = Vec::with_capacity(runs);
        for run in 1..=runs {
            println!("W2: {count} jobs through the batch endpoint (run {run} of {runs})");
            let elapsed = self
                .create_batched(
                    count,
                    |_| json!({"kind": "noop", "name": tag, "execute_at": "2100-01-01T00:00:00Z"}),
                )
                .await?;
            let rate = count as f64 / elapsed.as_secs_f64();
            report.add(
                "W2 create rate",
                &format!("batch creates/s, run {run}"),
                rate,
                "jobs/s",
                None,
                None,
            );
            rates.push(rate);
        }
        rates.sort_by(f64::total_cmp);
        let pg = report.value("baseline", "PostgreSQL batched insert");
        report.add(
            "W2 create rate",
            &format!("batch creates/s (median of {runs})"),
            percentile(&rates, 0.5),
            "jobs/s",
            Some(Bar::AtLeast(100_000.0)),
            pg,
        );
        self.delete_tagged(&tag).await
    }

    /// W6: resident memory per job waiting in memory for its time: the growth of the
    /// process's resident memory from `pending` waiting jobs to twice as many, each read once
    /// the memory has settled. Measured between two loads, the figure leaves out what the
    /// first load's requests left behind and the second reuses (request bodies, parsed
    /// JSON), and what the allocator frees back a little later.
    async fn memory(&self, report: &mut Report) -> anyhow::Result<()> {
        let pending = self.options.pending;
        let tag = self.tag("w6");
        println!(
            "W6: {pending} then {} no-op jobs waiting in memory",
            pending * 2
        );
        // Within the scan horizon, so that they are dispatched at once and wait in executors,
        // and far enough for all of them to be created first.
        let due = (Utc::now() + Duration::from_secs(30).min(self.settings.scanner.horizon() / 2))
            .to_rfc3339();
        let before = self.counts().await?;
        let waiting_before = self.metric("kairos_executor_waiting").await?;
        let mut resident = Vec::new();
        for load in 1..=2 {
            self.create_batched(
                pending,
                |_| json!({"kind": "noop", "name": tag, "execute_at": due}),
            )
            .await?;
            let deadline = Instant::now() + Duration::from_secs(120);
            let target = waiting_before + (pending * load) as f64 * 0.99;
            while self.metric("kairos_executor_waiting").await? < target {
                if Instant::now() > deadline {
                    bail!("W6: the jobs did not reach their executors within 120 s");
                }
                tokio::time::sleep(SAMPLE).await;
            }
            resident.push(self.settled_resident_memory().await?);
        }
        let per_job = (resident[1] - resident[0]) / pending as f64;
        report.add(
            "W6 memory",
            "resident bytes per pending job",
            per_job,
            "B",
            Some(Bar::AtMost(2048.0)),
            None,
        );
        // Let them run, and their results be recorded, before the next workload starts: W1
        // had begun while the result writer still wrote these 200,000 results.
        self.wait_finished(&tag, pending * 2, before, Duration::from_secs(300))
            .await
            .map(|_| ())
    }

    /// The deployment's resident memory once it stops falling: the lowest of the samples
    /// taken every [`SAMPLE`] over [`SETTLE`].
    async fn settled_resident_memory(&self) -> anyhow::Result<f64> {
        let mut lowest = f64::INFINITY;
        let until = Instant::now() + SETTLE;
        while Instant::now() < until {
            lowest = lowest.min(self.metric("kairos_resident_memory_bytes").await?);
            tokio::time::sleep(SAMPLE).await;
        }
        Ok(lowest)
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
fn ended_in(text: &str) -> anyhow::Result<f64> {
    Ok(metric_in(text, "kairos_jobs_succeeded_total")?
        + metric_in(text, "kairos_jobs_failed_total")?)
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
