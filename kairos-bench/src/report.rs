//! The results table and its JSON.

use std::path::Path;

use serde::Serialize;

/// One measured figure.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub workload: String,
    pub figure: String,
    pub value: f64,
    pub unit: String,
    /// The bar it must meet, in words (`>= 20000`), if any.
    pub bar: Option<String>,
    pub met: Option<bool>,
    /// The physical baseline it compares to, and the ratio value / baseline.
    pub baseline: Option<f64>,
    pub ratio: Option<f64>,
}

/// A figure sampled over time.
#[derive(Debug, Clone, Serialize)]
pub struct Series {
    pub workload: String,
    pub figure: String,
    pub unit: String,
    /// Seconds between samples.
    pub every_secs: f64,
    pub values: Vec<f64>,
}

/// All rows of a run.
#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub machine: String,
    pub date: String,
    pub rows: Vec<Row>,
    pub series: Vec<Series>,
}

/// Whether larger or smaller is better for a bar.
#[derive(Debug, Clone, Copy)]
pub enum Bar {
    AtLeast(f64),
    AtMost(f64),
}

impl Report {
    pub fn new() -> Self {
        let cores = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
        let memory = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|text| {
                text.lines()
                    .next()
                    .map(|line| line.split_whitespace().nth(1).unwrap_or("?").to_owned())
            })
            .and_then(|kib| kib.parse::<f64>().ok())
            .map_or_else(
                || "?".to_owned(),
                |kib| format!("{:.0} GiB", kib / 1024.0 / 1024.0),
            );
        Report {
            machine: format!("{cores} cores, {memory}"),
            date: chrono::Utc::now().to_rfc3339(),
            rows: Vec::new(),
            series: Vec::new(),
        }
    }

    /// Adds a figure, with its bar and baseline when it has them, and prints it at once.
    pub fn add(
        &mut self,
        workload: &str,
        figure: &str,
        value: f64,
        unit: &str,
        bar: Option<Bar>,
        baseline: Option<f64>,
    ) {
        let (bar_text, met) = match bar {
            Some(Bar::AtLeast(limit)) => (Some(format!(">= {limit:.0}")), Some(value >= limit)),
            Some(Bar::AtMost(limit)) => (Some(format!("<= {limit}")), Some(value <= limit)),
            None => (None, None),
        };
        let ratio = baseline
            .filter(|base| *base != 0.0)
            .map(|base| value / base);
        let row = Row {
            workload: workload.into(),
            figure: figure.into(),
            value,
            unit: unit.into(),
            bar: bar_text,
            met,
            baseline,
            ratio,
        };
        println!(
            "  {} {}: {}",
            row.workload,
            row.figure,
            format_value(row.value, &row.unit)
        );
        self.rows.push(row);
    }

    /// Adds a figure sampled every `every_secs`, and prints it at once, in thousands.
    pub fn add_series(
        &mut self,
        workload: &str,
        figure: &str,
        unit: &str,
        every_secs: f64,
        values: Vec<f64>,
    ) {
        let thousands: Vec<String> = values
            .iter()
            .map(|value| format!("{:.1}", value / 1000.0))
            .collect();
        println!(
            "  {workload} {figure}, every {every_secs} s, thousands of {unit}: {}",
            thousands.join(" ")
        );
        self.series.push(Series {
            workload: workload.into(),
            figure: figure.into(),
            unit: unit.into(),
            every_secs,
            values,
        });
    }

    /// The value of an earlier row, for ratios.
    pub fn value(&self, workload: &str, figure: &str) -> Option<f64> {
        self.rows
            .iter()
            .find(|row| row.workload == workload && row.figure == figure)
            .map(|row| row.value)
    }

    pub fn print(&self) {
        println!();
        println!("Machine: {}; {}", self.machine, self.date);
        println!("| workload | figure | value | bar | met | baseline | ratio |");
        println!("|---|---|---|---|---|---|---|");
        for row in &self.rows {
            println!(
                "| {} | {} | {} | {} | {} | {} | {} |",
                row.workload,
                row.figure,
                format_value(row.value, &row.unit),
                row.bar.clone().unwrap_or_default(),
                row.met.map_or(String::new(), |met| if met {
                    "yes".into()
                } else {
                    "**no**".into()
                }),
                row.baseline
                    .map_or(String::new(), |base| format_value(base, &row.unit)),
                row.ratio
                    .map_or(String::new(), |ratio| format!("{ratio:.2}")),
            );
        }
    }

    /// # Errors
    /// When the file cannot be written.
    pub fn write_json(&self, path: &Path) -> anyhow::Result<()> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(path, serde_json::to_vec_pretty(self)?)?;
        Ok(())
    }
}

fn format_value(value: f64, unit: &str) -> String {
    if value.abs() >= 100.0 {
        format!("{value:.0} {unit}")
    } else {
        format!("{value:.3} {unit}")
    }
}
