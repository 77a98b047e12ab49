//! `kairos jobs …`: create, read, list, cancel, re-run and follow jobs.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use chrono::{DateTime, Utc};
use clap::Subcommand;
use reqwest::Method;
use serde_json::{Value, json};

use super::read_fields;
use crate::client::output::{self, Format};
use crate::client::{Client, Failure};

/// `kairos jobs …`.
#[derive(Debug, Subcommand)]
pub enum JobsCommand {
    /// Create a job: `kairos jobs create --in 10m -- make report`.
    #[command(
        after_help = "Examples:\n  kairos jobs create --at 2026-12-24T18:00:00Z -- make report\n  \
        kairos jobs create --in 10m --name backup --retries 5 -- /usr/local/bin/backup\n  \
        kairos jobs create --kind http --file webhook.json --in 1h"
    )]
    Create {
        /// When it runs (RFC 3339); now when neither --at nor --in is given.
        #[arg(long, conflicts_with = "in_")]
        at: Option<DateTime<Utc>>,
        /// When it runs, from now (`30s`, `10m`, `2h`).
        #[arg(long = "in", value_parser = humantime::parse_duration)]
        in_: Option<Duration>,
        /// shell (default), http, kafka or noop.
        #[arg(long)]
        kind: Option<String>,
        #[arg(long)]
        name: Option<String>,
        /// Retries after a failed attempt (0 to 10; default 3).
        #[arg(long)]
        retries: Option<u32>,
        /// Seconds an attempt may run.
        #[arg(long)]
        timeout: Option<u32>,
        /// A metadata entry `key=value`; repeat for more.
        #[arg(long = "metadata", value_name = "KEY=VALUE")]
        metadata: Vec<String>,
        /// Creates nothing when this key created the same job before.
        #[arg(long)]
        idempotency_key: Option<String>,
        /// A JSON file of the job's fields (the flags override it).
        #[arg(long)]
        file: Option<PathBuf>,
        /// The command of a shell job, after `--`.
        #[arg(last = true)]
        command: Vec<String>,
    },
    /// Show a job and its attempts.
    Get { id: String },
    /// List jobs, newest first.
    List {
        /// SCHEDULED, DISPATCHED, RUNNING, RETRYING, SUCCESS, FAILED or CANCELLED.
        #[arg(long)]
        status: Option<String>,
        /// Only the jobs of this schedule.
        #[arg(long)]
        schedule: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Cancel a job (a running one is stopped).
    Cancel { id: String },
    /// Run a finished job again, as a new job.
    Rerun {
        id: String,
        /// When the new job runs (default now).
        #[arg(long)]
        at: Option<DateTime<Utc>>,
    },
    /// Print the stdout and stderr of a job's attempts.
    Logs {
        id: String,
        /// Only this attempt (from 1).
        #[arg(long)]
        attempt: Option<i64>,
    },
    /// Follow a job to its end; exit 0 on SUCCESS, 1 otherwise.
    Watch { id: String },
}

pub(super) async fn run(client: &Client, command: JobsCommand) -> Result<ExitCode, Failure> {
    let format = client.format;
    match command {
        JobsCommand::Create {
            at,
            in_,
            kind,
            name,
            retries,
            timeout,
            metadata,
            idempotency_key,
            file,
            command,
        } => {
            let mut body = read_fields(file.as_ref())?;
            let when = match (at, in_) {
                (Some(at), _) => Some(at),
                (None, Some(delay)) => Some(
                    Utc::now()
                        + chrono::Duration::from_std(delay)
                            .map_err(|error| Failure::Usage(format!("--in: {error}")))?,
                ),
                (None, None) => None,
            };
            if let Some(when) = when {
                body.insert("execute_at".into(), json!(when.to_rfc3339()));
            }
            body.entry("execute_at")
                .or_insert_with(|| json!(Utc::now().to_rfc3339()));
            if !command.is_empty() {
                body.insert("command".into(), json!(command.join(" ")));
            }
            let optional = [
                ("kind", kind.map(Value::from)),
                ("name", name.map(Value::from)),
                ("max_retries", retries.map(Value::from)),
                ("timeout_secs", timeout.map(Value::from)),
            ];
            for (key, value) in optional {
                if let Some(value) = value {
                    body.insert(key.into(), value);
                }
            }
            if !metadata.is_empty() {
                let entries = body
                    .entry("metadata")
                    .or_insert_with(|| json!({}))
                    .as_object_mut()
                    .ok_or_else(|| Failure::Usage("`metadata` must be an object".into()))?;
                for entry in metadata {
                    let (key, value) = entry.split_once('=').ok_or_else(|| {
                        Failure::Usage(format!("--metadata `{entry}`: write it key=value"))
                    })?;
                    entries.insert(key.into(), json!(value));
                }
            }
            let headers: Vec<(&str, &str)> = idempotency_key
                .as_deref()
                .map(|key| ("Idempotency-Key", key))
                .into_iter()
                .collect();
            let body = Value::Object(body);
            let job = client
                .call_with(Method::POST, "/api/v1/jobs", Some(&body), &headers)
                .await?;
            output::job(format, &job);
        }
        JobsCommand::Get { id } => {
            let job = client
                .call(Method::GET, &format!("/api/v1/jobs/{id}"), None)
                .await?;
            output::job(format, &job);
        }
        JobsCommand::List {
            status,
            schedule,
            limit,
        } => {
            let mut query = vec![format!("limit={limit}")];
            query.extend(status.map(|status| format!("status={status}")));
            query.extend(schedule.map(|schedule| format!("schedule_id={schedule}")));
            let page = client
                .call(
                    Method::GET,
                    &format!("/api/v1/jobs?{}", query.join("&")),
                    None,
                )
                .await?;
            output::jobs(format, &page["jobs"]);
        }
        JobsCommand::Cancel { id } => {
            let job = client
                .call(Method::POST, &format!("/api/v1/jobs/{id}:cancel"), None)
                .await?;
            output::job(format, &job);
        }
        JobsCommand::Rerun { id, at } => {
            let body = at.map(|at| json!({"execute_at": at.to_rfc3339()}));
            let job = client
                .call(
                    Method::POST,
                    &format!("/api/v1/jobs/{id}:rerun"),
                    body.as_ref(),
                )
                .await?;
            output::job(format, &job);
        }
        JobsCommand::Logs { id, attempt } => {
            let job = client
                .call(Method::GET, &format!("/api/v1/jobs/{id}"), None)
                .await?;
            output::logs(format, &job, attempt);
        }
        JobsCommand::Watch { id } => return watch(client, &id).await,
    }
    Ok(ExitCode::SUCCESS)
}

/// Polls a job until it is final, with a live status line on a terminal.
async fn watch(client: &Client, id: &str) -> Result<ExitCode, Failure> {
    let live = client.format == Format::Table && std::io::stderr().is_terminal();
    let mut last_line = String::new();
    loop {
        let job = client
            .call(Method::GET, &format!("/api/v1/jobs/{id}"), None)
            .await?;
        let status = job["job"]["status"].as_str().unwrap_or("?").to_owned();
        let line = output::status_line(&job["job"]);
        if line != last_line {
            if live {
                eprint!("\r\x1b[2K{line}");
                let _ = std::io::stderr().flush();
            } else if client.format == Format::Table {
                eprintln!("{line}");
            }
            last_line = line;
        }
        if matches!(status.as_str(), "SUCCESS" | "FAILED" | "CANCELLED") {
            if live {
                eprintln!();
            }
            output::job(client.format, &job);
            return Ok(match status.as_str() {
                "SUCCESS" => ExitCode::SUCCESS,
                _ => ExitCode::from(1),
            });
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
