//! The timing workloads: W3 (how late jobs start, spread and in a herd) and W4 (the due-job
//! query as the table grows, and how late jobs start meanwhile).

use std::time::Duration;

use chrono::Utc;
use serde_json::{Value, json};

use super::{Bench, MARK};
use crate::baselines::percentile;
use crate::report::{Bar, Report};

/// W4: jobs per second started while the table holds the future jobs.
const LOAD_RATE: usize = 1_000;

/// W4: how far ahead the load's first job is due.
const LOAD_LEAD: Duration = Duration::from_secs(5);

/// W4: executions of the due-job query timed at each table size. The query takes tens of
/// microseconds, so a median of a few would move with whatever else the cores are doing.
const SCAN_SAMPLES: usize = 101;

impl Bench {
    /// Creates `count` no-op jobs named `tag`, due evenly over `over` from `lead` from now, and
    /// waits until all have ended.
    async fn spread(
        &self,
        tag: &str,
        count: usize,
        over: Duration,
        lead: Duration,
    ) -> anyhow::Result<()> {
        let start = Utc::now() + chrono::Duration::from_std(lead)?;
        let step = over.as_secs_f64() / count.max(1) as f64;
        let before = self.counts().await?;
        self.create_batched(count, |n| {
            let due = start + chrono::Duration::microseconds((n as f64 * step * 1e6) as i64);
            json!({"kind": "noop", "name": tag, "execute_at": due.to_rfc3339()})
        })
        .await?;
        self.wait_finished(tag, count, before, over + Duration::from_secs(120))
            .await?;
        Ok(())
    }

    /// W3: lateness of jobs spread over a minute, and of a herd due in one second.
    pub(super) async fn precision(&self, report: &mut Report) -> anyhow::Result<()> {
        let lead = Duration::from_secs(10);
        let spread = self.options.spread_jobs;
        let seconds = self.options.spread_secs;
        let tag = self.tag("w3-spread");
        println!("W3: {spread} no-op jobs spread over {seconds} s, starting in {lead:?}");
        self.spread(&tag, spread, Duration::from_secs(seconds), lead)
            .await?;
        self.lateness(report, "W3 precision, spread", &tag, Some(20.0))
            .await?;

        let herd = self.options.herd;
        let tag = self.tag("w3-herd");
        println!("W3: a herd of {herd} no-op jobs due in the same second");
        let due = (Utc::now() + chrono::Duration::from_std(lead)?).to_rfc3339();
        let before = self.counts().await?;
        self.create_batched(
            herd,
            |_| json!({"kind": "noop", "name": tag, "execute_at": due}),
        )
        .await?;
        self.wait_finished(&tag, herd, before, Duration::from_secs(180))
            .await?;
        self.lateness(report, "W3 precision, herd", &tag, Some(500.0))
            .await
    }

    pub(super) async fn lateness(
        &self,
        report: &mut Report,
        workload: &str,
        tag: &str,
        p99_bar_ms: Option<f64>,
    ) -> anyhow::Result<()> {
        let client = self.pool.get().await?;
        let row = client
            .query_one(
                &format!(
                    "{MARK} SELECT \
                         percentile_cont(0.5) WITHIN GROUP (ORDER BY late), \
                         percentile_cont(0.9) WITHIN GROUP (ORDER BY late), \
                         percentile_cont(0.99) WITHIN GROUP (ORDER BY late), \
                         max(late), count(*) FILTER (WHERE late < 0)::float8 \
                     FROM (SELECT EXTRACT(EPOCH FROM a.started_at - a.scheduled_at)::float8 * 1000 AS late \
                           FROM job_history a JOIN jobs j ON j.id = a.job_id \
                           WHERE j.name = $1 AND a.attempt = 1) AS l"
                ),
                &[&tag],
            )
            .await?;
        let timer = report.value("baseline", "tokio timer lateness p99");
        report.add(workload, "lateness p50", row.get(0), "ms", None, None);
        report.add(workload, "lateness p90", row.get(1), "ms", None, None);
        report.add(
            workload,
            "lateness p99",
            row.get(2),
            "ms",
            p99_bar_ms.map(Bar::AtMost),
            timer,
        );
        report.add(workload, "lateness max", row.get(3), "ms", None, None);
        report.add(
            workload,
            "early starts",
            row.get(4),
            "jobs",
            Some(Bar::AtMost(0.0)),
            None,
        );
        Ok(())
    }

    /// W4: the due-job query's time with growing numbers of future jobs in the table.
    pub(super) async fn scan_cost(&self, report: &mut Report) -> anyhow::Result<()> {
        let tag = self.tag("w4");
        let client = self.pool.get().await?;
        let mut present: i64 = 0;
        let mut first: Option<f64> = None;
        for size in self.options.scan_sizes.clone() {
            println!("W4: the due-job query with {size} future jobs");
            if size > present {
                // Future jobs, far beyond any scan horizon, written straight into the table.
                client
                    .execute(
                        &format!(
                            "{MARK} INSERT INTO jobs (id, name, command, execute_at, timeout_secs, kind) \
                             SELECT gen_random_uuid(), $1, '', \
                                 timestamptz '2100-01-01' + make_interval(secs => n), 60, 'noop' \
                             FROM generate_series(1, $2::bigint) AS n"
                        ),
                        &[&tag, &(size - present)],
                    )
                    .await?;
                client
                    .batch_execute(&format!("{MARK} ANALYZE jobs"))
                    .await?;
                present = size;
            }
            let mut times = Vec::with_capacity(SCAN_SAMPLES);
            let mut buffers = Vec::with_capacity(SCAN_SAMPLES);
            for _ in 0..SCAN_SAMPLES {
                // The scanner's claim query, as EXPLAIN ANALYZE runs it (locks included).
                let plan: Value = client
                    .query_one(
                        &format!(
                            "{MARK} EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) \
                             SELECT id FROM jobs WHERE status = 'SCHEDULED' \
                                 AND execute_at < now() + interval '120 seconds' \
                             ORDER BY execute_at LIMIT 1000 FOR UPDATE SKIP LOCKED"
                        ),
                        &[],
                    )
                    .await?
                    .get(0);
                times.push(plan[0]["Execution Time"].as_f64().unwrap_or(f64::NAN));
                let node = &plan[0]["Plan"];
                let blocks = |key: &str| node[key].as_f64().unwrap_or(f64::NAN);
                buffers.push(blocks("Shared Hit Blocks") + blocks("Shared Read Blocks"));
            }
            times.sort_by(f64::total_cmp);
            buffers.sort_by(f64::total_cmp);
            let median = percentile(&times, 0.5);
            let base = *first.get_or_insert(median);
            let bar = (size != self.options.scan_sizes[0]).then_some(Bar::AtMost(2.0));
            report.add(
                "W4 scan cost",
                &format!("due-job query at {size} future jobs (median of {SCAN_SAMPLES})"),
                median,
                "ms",
                None,
                None,
            );
            report.add(
                "W4 scan cost",
                &format!("ratio to the smallest table, at {size}"),
                median / base,
                "x",
                bar,
                None,
            );
            // What the query reads does not depend on the machine's load: a slower query
            // reads more buffers, a busier machine does not.
            report.add(
                "W4 scan cost",
                &format!("buffers the query reads at {size} (median)"),
                percentile(&buffers, 0.5),
                "buffers",
                None,
                None,
            );
            let load = self.options.scan_load_secs;
            if load > 0 {
                let count = LOAD_RATE * load as usize;
                println!("W4: {LOAD_RATE} no-op jobs/s for {load} s with {size} future jobs");
                let load_tag = self.tag(&format!("w4-load-{size}"));
                self.spread(&load_tag, count, Duration::from_secs(load), LOAD_LEAD)
                    .await?;
                let workload = format!("W4 lateness at {size} future jobs, {LOAD_RATE} jobs/s");
                self.lateness(report, &workload, &load_tag, None).await?;
            }
        }
        println!("W4: removing the future jobs");
        client
            .execute(&format!("{MARK} DELETE FROM jobs WHERE name = $1"), &[&tag])
            .await?;
        client
            .batch_execute(&format!("{MARK} VACUUM ANALYZE jobs"))
            .await?;
        Ok(())
    }
}
