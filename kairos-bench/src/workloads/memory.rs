//! W6: resident memory per pending job.

use super::*;

impl Bench {
    /// W6: resident memory per job waiting in memory for its time: the growth of the
    /// process's resident memory from `pending` waiting jobs to twice as many, each read once
    /// the memory has settled. Measured between two loads, the figure leaves out what the
    /// first load's requests left behind and the second reuses (request bodies, parsed
    /// JSON), and what the allocator frees back a little later.
    pub(super) async fn memory(&self, report: &mut Report) -> anyhow::Result<()> {
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
}
