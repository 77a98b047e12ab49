//! W7: schedules. How precisely 1,000 every-second schedules fire, whether any fire is made
//! twice or missed; and what the retention pass deleting old finished jobs costs W1.

use super::*;

impl Bench {
    /// W7: the fires of `schedules` every-second schedules, then W1 beside the retention pass.
    pub(super) async fn schedules(&self, report: &mut Report) -> anyhow::Result<()> {
        self.fires(report).await?;
        if self.options.old_jobs == 0 {
            return Ok(());
        }
        self.retention_beside_w1(report).await
    }

    async fn fires(&self, report: &mut Report) -> anyhow::Result<()> {
        let tag = self.tag("w7");
        let (schedules, seconds) = (self.options.schedules, self.options.schedule_secs);
        let lead = chrono::Duration::seconds(15);
        let start = Utc::now() + lead;
        let start =
            start - chrono::Duration::nanoseconds(i64::from(start.timestamp_subsec_nanos()));
        let end = start + chrono::Duration::seconds(seconds - 1);
        println!("W7: {schedules} schedules firing every second for {seconds} s, from {start}");
        let url = format!("{}/api/v1/schedules", self.options.url);
        let body = json!({"name": tag, "every": "1s",
                          "start_at": start.to_rfc3339(), "end_at": end.to_rfc3339(),
                          "job": {"kind": "noop", "name": tag}});
        let bar = progress(schedules as u64, "creating");
        let mut creates = stream::iter((0..schedules).map(|_| {
            let request = self.http.post(&url).json(&body).send();
            async move {
                let response = request.await?;
                if response.status() != 201 {
                    bail!(
                        "schedule refused: {}",
                        response.text().await.unwrap_or_default()
                    );
                }
                Ok::<(), anyhow::Error>(())
            }
        }))
        .buffer_unordered(16);
        while let Some(created) = creates.next().await {
            created?;
            bar.inc(1);
        }
        bar.finish_and_clear();
        anyhow::ensure!(
            Utc::now() < start,
            "creating the schedules took longer than their lead"
        );
        let fires = schedules * usize::try_from(seconds)?;
        let before = self.counts().await?;
        self.wait_finished(&tag, fires, before, Duration::from_secs(180))
            .await?;
        self.lateness(report, "W7 schedules", &tag, Some(20.0))
            .await?;
        let client = self.pool.get().await?;
        let row = client
            .query_one(
                &format!(
                    "{MARK} SELECT count(*), count(DISTINCT (schedule_id, scheduled_for)), \
                         count(*) FILTER (WHERE attempts > 1), \
                         (SELECT COALESCE(sum(missed_fires), 0)::int8 FROM schedules WHERE name = $1) \
                     FROM jobs WHERE name = $1"
                ),
                &[&tag],
            )
            .await?;
        let (jobs, distinct, rerun, missed): (i64, i64, i64, i64) =
            (row.get(0), row.get(1), row.get(2), row.get(3));
        let expected = i64::try_from(fires)?;
        report.add(
            "W7 schedules",
            "jobs made for one fire beyond the first, or run more than once",
            (jobs - distinct + rerun) as f64,
            "jobs",
            Some(Bar::AtMost(0.0)),
            None,
        );
        report.add(
            "W7 schedules",
            &format!("fires missed of {expected} (without a job, or counted missed)"),
            (expected - distinct + missed) as f64,
            "fires",
            Some(Bar::AtMost(0.0)),
            None,
        );
        self.delete_tagged(&tag).await?;
        client
            .execute(
                &format!("{MARK} DELETE FROM schedules WHERE name = $1"),
                &[&tag],
            )
            .await?;
        Ok(())
    }

    /// W1's burn-down beside the retention pass: the median of `burn_downs` runs with no old
    /// jobs, then with `old_jobs` finished jobs older than `jobs.retention` in the table, which
    /// the pass deletes meanwhile (at its configured pace).
    async fn retention_beside_w1(&self, report: &mut Report) -> anyhow::Result<()> {
        let runs = usize::from(self.options.burn_downs);
        let median = |rates: &mut Vec<f64>| {
            rates.sort_by(f64::total_cmp);
            rates[(rates.len() - 1) / 2]
        };
        let mut without = Vec::new();
        for run in 1..=runs {
            println!("W7: W1 burn-down {run} of {runs}, no old jobs");
            let tag = self.tag(&format!("w7-w1-{run}"));
            without.push(self.burn_down_once(&tag).await?.rate.recorded);
            self.delete_tagged(&tag).await?;
        }
        let old_jobs = self.options.old_jobs;
        println!("W7: {old_jobs} finished jobs (with their attempts) written 30 days old");
        let old = self.tag("w7-old");
        let client = self.pool.get().await?;
        // UUIDv7 ids of their (old) creation time: the pass finds them through the listing
        // index, by id.
        client
            .batch_execute(&format!(
                "{MARK} INSERT INTO jobs (id, name, kind, command, execute_at, status, \
                     timeout_secs, attempts, created_at, updated_at, started_at, finished_at) \
                 SELECT (lpad(to_hex((EXTRACT(EPOCH FROM t) * 1000)::int8), 12, '0') || '7' \
                         || substr(md5(n::text), 1, 3) || '8' || substr(md5(n::text), 4, 15))::uuid, \
                     '{old}', 'noop', '', t, 'SUCCESS', 60, 1, t, t, t, t \
                 FROM generate_series(1, {old_jobs}) AS n, \
                     LATERAL (SELECT now() - interval '30 days' + n * interval '1 ms' AS t) AS at; \
                 INSERT INTO job_attempts (job_id, attempt, epoch, status, scheduled_at, started_at, finished_at) \
                 SELECT id, 1, 0, 'SUCCEEDED', execute_at, started_at, finished_at \
                 FROM jobs WHERE name = '{old}'"
            ))
            .await?;
        // As a table that grew over days would be: vacuumed and analysed, so that W1 does not
        // run beside autovacuum's first pass over a million fresh rows.
        client
            .batch_execute(&format!("{MARK} VACUUM ANALYZE jobs, job_attempts"))
            .await?;
        let purged_before = self.metric("kairos_jobs_purged_total").await?;
        let mut with = Vec::new();
        for run in 1..=runs {
            println!("W7: W1 burn-down {run} of {runs}, the retention pass deleting old jobs");
            let tag = self.tag(&format!("w7-w1-old-{run}"));
            with.push(self.burn_down_once(&tag).await?.rate.recorded);
            self.delete_tagged(&tag).await?;
        }
        let purged = self.metric("kairos_jobs_purged_total").await? - purged_before;
        let without = median(&mut without);
        let with = median(&mut with);
        report.add(
            "W7 retention",
            &format!("W1 no-op jobs/s, no old jobs (median of {runs})"),
            without,
            "jobs/s",
            None,
            None,
        );
        report.add(
            "W7 retention",
            &format!(
                "W1 no-op jobs/s, the pass deleting old jobs (median of {runs}; bar: within 10 %)"
            ),
            with,
            "jobs/s",
            Some(Bar::AtLeast(without * 0.9)),
            Some(without),
        );
        report.add(
            "W7 retention",
            "old jobs deleted by the pass during those runs",
            purged,
            "jobs",
            None,
            None,
        );
        client
            .execute(&format!("{MARK} DELETE FROM jobs WHERE name = $1"), &[&old])
            .await?;
        Ok(())
    }
}
