//! `kairos-bench`: drives a running Kairos deployment (the services plus one or more
//! `kairos serve` processes), prints a table of figures beside the bars and the machine's
//! physical baselines, and writes the same as JSON.
//!
//! `scripts/bench` starts everything and runs it; `docs/performance.md` holds the results.

mod baselines;
mod report;
mod workloads;

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Parser;
use kairos::config::{Settings, Sources};

use crate::report::Report;

/// Measures Kairos and the machine it runs on.
#[derive(Debug, Clone, Parser)]
#[command(name = "kairos-bench")]
pub struct Options {
    /// The Kairos API to drive.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// The folder holding Kairos's default.toml (for the database and Kafka to observe).
    #[arg(long, default_value = "config")]
    pub config_dir: PathBuf,
    /// W1: no-op jobs burnt down.
    #[arg(long, default_value_t = 200_000)]
    pub jobs: usize,
    /// W1: burn-downs of `jobs` run one after another; the figures are the median run's
    /// (this machine's load moves a single run by several per cent).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..))]
    pub burn_downs: u16,
    /// W1: shell jobs (`true`) burnt down, against the spawn baseline.
    #[arg(long, default_value_t = 5_000)]
    pub shell_jobs: usize,
    /// W2: single creates per concurrency level.
    #[arg(long, default_value_t = 5_000)]
    pub creates: usize,
    /// W2: jobs created through the batch endpoint.
    #[arg(long, default_value_t = 100_000)]
    pub batch_creates: usize,
    /// W2: runs of `batch_creates`, one after another; the figure is the median run's.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..))]
    pub batch_runs: u16,
    /// W3: jobs spread evenly over `spread_secs`.
    #[arg(long, default_value_t = 100_000)]
    pub spread_jobs: usize,
    #[arg(long, default_value_t = 60)]
    pub spread_secs: u64,
    /// W3: jobs due in the same second.
    #[arg(long, default_value_t = 10_000)]
    pub herd: usize,
    /// W4: future jobs in the table when the due-job query is timed.
    #[arg(long, value_delimiter = ',', default_value = "10000,1000000,10000000")]
    pub scan_sizes: Vec<i64>,
    /// W4: seconds of 1,000 no-op jobs/s run at each table size, for their lateness (0: none).
    #[arg(long, default_value_t = 10)]
    pub scan_load_secs: u64,
    /// W6: jobs per load; the figure is the growth of resident memory from one load waiting
    /// to two.
    #[arg(long, default_value_t = 100_000)]
    pub pending: usize,
    /// W7: schedules made, each firing every second.
    #[arg(long, default_value_t = 1_000)]
    pub schedules: usize,
    /// W7: how many seconds the schedules fire.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(i64).range(1..))]
    pub schedule_secs: i64,
    /// W7: finished jobs older than the retention in the table while W1 runs again (0: W1 is
    /// not run again).
    #[arg(long, default_value_t = 1_000_000)]
    pub old_jobs: i64,
    /// W8: `http` jobs burnt down against a local HTTP server (and requests of the plain
    /// client beside them).
    #[arg(long, default_value_t = 20_000)]
    pub http_jobs: usize,
    /// W8: `kafka` jobs burnt down.
    #[arg(long, default_value_t = 20_000)]
    pub kafka_jobs: usize,
    /// Run only these workloads (w1, w2, w3, w4, w6, w7, w8; W5 comes with W1) and skip the baselines
    /// unless `baselines` is listed; default: everything.
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
    /// Where to write the JSON results.
    #[arg(long, default_value = "target/bench/results.json")]
    pub out: PathBuf,
}

impl Options {
    /// Whether `workload` is to run.
    pub fn wants(&self, workload: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|only| only == workload)
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let options = Options::parse();
    let settings = Settings::load(&Sources {
        directory: Some(options.config_dir.clone()),
        ..Sources::default()
    })
    .context("loading the configuration")?;
    anyhow::ensure!(
        settings.backend() == kairos::config::Backend::Distributed,
        "the benchmark measures the distributed mode: configure PostgreSQL and Kafka \
         (KAIROS_ENV=distributed, as scripts/bench does)"
    );
    let pool = kairos::store::postgres::connect(&settings.database)?;
    let mut report = Report::new();

    if options.wants("baselines") {
        println!("== physical baselines");
        baselines::run(&settings, &pool, &mut report).await?;
    }
    println!("== workloads against {}", options.url);
    let bench = workloads::Bench::new(&options, &settings, pool).await?;
    bench.run_all(&mut report).await?;

    report.print();
    report.write_json(&options.out)?;
    println!("JSON written to {}", options.out.display());
    Ok(())
}
