//! W2: the create rate, single creates at several concurrencies and the batch endpoint.

use super::*;

impl Bench {
    /// W2: single creates at concurrency 1, 16 and 64, and the batch endpoint.
    pub(super) async fn create_rates(&self, report: &mut Report) -> anyhow::Result<()> {
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
}
