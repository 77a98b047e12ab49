//! W1 (burn-down of no-op and shell jobs) and W5 (the database's cost per job).

use super::*;

/// A burn-down's rates (jobs per second).
pub(super) struct Throughput {
    /// To the last result recorded in PostgreSQL.
    pub(super) recorded: f64,
    /// To the last attempt's end, as its executor reported it.
    pub(super) finished: f64,
}

/// A burn-down's outcome.
pub(super) struct BurnDown {
    pub(super) rate: Throughput,
    /// Completions per second, every [`SAMPLE`] from the first request on.
    samples: Vec<f64>,
}

/// How long a burn-down of `jobs` may take before the benchmark gives up.
pub(super) fn burn_down_limit(jobs: usize) -> Duration {
    Duration::from_secs(120).max(Duration::from_millis(jobs as u64 * 5))
}

impl Bench {
    /// Jobs per second for the jobs named `tag`, from the first attempt's start to the last
    /// result recorded in PostgreSQL (the end a user sees: the job reads `SUCCESS`), and to
    /// the last attempt's end as its executor reported it (the result is recorded after).
    pub(super) async fn throughput(&self, tag: &str, count: usize) -> anyhow::Result<Throughput> {
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

    /// W1 (burn-down) and W5 (database cost per job).
    pub(super) async fn burn_down(&self, report: &mut Report) -> anyhow::Result<()> {
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
    pub(super) async fn burn_down_once(&self, tag: &str) -> anyhow::Result<BurnDown> {
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
}
