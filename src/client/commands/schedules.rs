//! `kairos schedules …`: create, read, change and drive schedules.

use std::path::PathBuf;
use std::process::ExitCode;

use chrono::{DateTime, Utc};
use clap::Subcommand;
use reqwest::Method;
use serde_json::{Map, Value, json};

use super::read_fields;
use crate::client::output;
use crate::client::{Client, Failure};

/// `kairos schedules …`.
#[derive(Debug, Subcommand)]
pub enum SchedulesCommand {
    /// Create a schedule: `kairos schedules create --cron '0 * * * *' -- sync.sh`.
    #[command(
        after_help = "Examples:\n  kairos schedules create --name hourly --cron '0 * * * *' --timezone Europe/Paris -- sync.sh\n  \
        kairos schedules create --every 15m -- ./poll\n  kairos schedules create --file schedule.json"
    )]
    Create {
        #[command(flatten)]
        rule: RuleArgs,
        /// A JSON file of the schedule's fields (the flags override it).
        #[arg(long)]
        file: Option<PathBuf>,
        /// Create it paused.
        #[arg(long)]
        paused: bool,
        /// The command of each fire's shell job, after `--`.
        #[arg(last = true)]
        command: Vec<String>,
    },
    /// List schedules, newest first.
    List {
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Show a schedule, its next fires and its latest jobs.
    Get { id: String },
    /// Change the fields given.
    Update {
        id: String,
        #[command(flatten)]
        rule: RuleArgs,
        /// A JSON file of the fields to change.
        #[arg(long)]
        file: Option<PathBuf>,
        /// A new command for each fire's shell job, after `--`.
        #[arg(last = true)]
        command: Vec<String>,
    },
    /// Stop firing until resumed.
    Pause {
        id: String,
        #[arg(long)]
        note: Option<String>,
    },
    /// Fire again.
    Resume { id: String },
    /// One fire now.
    Trigger { id: String },
    /// The fires of a past range, each once.
    Backfill {
        id: String,
        #[arg(long)]
        from: DateTime<Utc>,
        #[arg(long)]
        to: DateTime<Utc>,
    },
    /// Delete a schedule (its jobs stay).
    Delete { id: String },
    /// The next fire times of a rule; nothing is stored.
    Preview {
        #[command(flatten)]
        rule: RuleArgs,
        #[arg(long, default_value_t = 10)]
        count: u32,
    },
}

/// A schedule's rule and the fields beside it.
#[derive(Debug, Clone, clap::Args)]
pub struct RuleArgs {
    /// A cron expression (5 or 6 fields, or `@hourly`…).
    #[arg(long, conflicts_with = "every")]
    cron: Option<String>,
    /// An interval (`15m`).
    #[arg(long)]
    every: Option<String>,
    /// The IANA zone the cron fields are read in (default UTC).
    #[arg(long)]
    timezone: Option<String>,
    #[arg(long)]
    name: Option<String>,
    /// skip (default), buffer_one, allow_all or cancel_previous.
    #[arg(long)]
    overlap: Option<String>,
}

impl RuleArgs {
    fn apply(&self, body: &mut Map<String, Value>) {
        let fields = [
            ("cron", &self.cron),
            ("every", &self.every),
            ("timezone", &self.timezone),
            ("name", &self.name),
            ("overlap", &self.overlap),
        ];
        for (key, value) in fields {
            if let Some(value) = value {
                body.insert(key.into(), json!(value));
            }
        }
    }
}

pub(super) async fn run(client: &Client, command: SchedulesCommand) -> Result<ExitCode, Failure> {
    let format = client.format;
    let view = match command {
        SchedulesCommand::Create {
            rule,
            file,
            paused,
            command,
        } => {
            let mut body = read_fields(file.as_ref())?;
            rule.apply(&mut body);
            if paused {
                body.insert("paused".into(), json!(true));
            }
            if !command.is_empty() {
                let job = body.entry("job").or_insert_with(|| json!({}));
                if let Some(job) = job.as_object_mut() {
                    job.insert("command".into(), json!(command.join(" ")));
                }
            }
            let body = Value::Object(body);
            client
                .call(Method::POST, "/api/v1/schedules", Some(&body))
                .await?
        }
        SchedulesCommand::List { limit } => {
            let page = client
                .call(
                    Method::GET,
                    &format!("/api/v1/schedules?limit={limit}"),
                    None,
                )
                .await?;
            output::schedules(format, &page["schedules"]);
            return Ok(ExitCode::SUCCESS);
        }
        SchedulesCommand::Get { id } => {
            client
                .call(Method::GET, &format!("/api/v1/schedules/{id}"), None)
                .await?
        }
        SchedulesCommand::Update {
            id,
            rule,
            file,
            command,
        } => {
            let mut body = read_fields(file.as_ref())?;
            rule.apply(&mut body);
            if !command.is_empty() {
                body.insert("job".into(), json!({"command": command.join(" ")}));
            }
            if body.is_empty() {
                return Err(Failure::Usage(
                    "nothing to change: give a flag or --file".into(),
                ));
            }
            let body = Value::Object(body);
            client
                .call(
                    Method::PATCH,
                    &format!("/api/v1/schedules/{id}"),
                    Some(&body),
                )
                .await?
        }
        SchedulesCommand::Pause { id, note } => {
            let body = note.map(|note| json!({"note": note}));
            client
                .call(
                    Method::POST,
                    &format!("/api/v1/schedules/{id}:pause"),
                    body.as_ref(),
                )
                .await?
        }
        SchedulesCommand::Resume { id } => {
            client
                .call(
                    Method::POST,
                    &format!("/api/v1/schedules/{id}:resume"),
                    None,
                )
                .await?
        }
        SchedulesCommand::Trigger { id } => {
            let fires = client
                .call(
                    Method::POST,
                    &format!("/api/v1/schedules/{id}:trigger"),
                    None,
                )
                .await?;
            output::fires(format, &fires["fires"]);
            return Ok(ExitCode::SUCCESS);
        }
        SchedulesCommand::Backfill { id, from, to } => {
            let body = json!({"from": from.to_rfc3339(), "to": to.to_rfc3339()});
            let fires = client
                .call(
                    Method::POST,
                    &format!("/api/v1/schedules/{id}:backfill"),
                    Some(&body),
                )
                .await?;
            output::fires(format, &fires["fires"]);
            return Ok(ExitCode::SUCCESS);
        }
        SchedulesCommand::Delete { id } => {
            client
                .call(Method::DELETE, &format!("/api/v1/schedules/{id}"), None)
                .await?;
            output::done(format, &json!({"deleted": id}));
            return Ok(ExitCode::SUCCESS);
        }
        SchedulesCommand::Preview { rule, count } => {
            let mut body = Map::new();
            rule.apply(&mut body);
            body.remove("name");
            body.remove("overlap");
            body.insert("count".into(), json!(count));
            let body = Value::Object(body);
            let fires = client
                .call(Method::POST, "/api/v1/schedules:preview", Some(&body))
                .await?;
            output::times(format, &fires["fires"]);
            return Ok(ExitCode::SUCCESS);
        }
    };
    output::schedule(format, &view);
    Ok(ExitCode::SUCCESS)
}
