//! The client's subcommands and the requests they make: `jobs`, `schedules` and `status`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;
use reqwest::Method;
use serde_json::{Map, Value};

use super::output;
use super::{Client, Failure};

mod jobs;
mod schedules;

pub use jobs::JobsCommand;
pub use schedules::SchedulesCommand;

/// A command of the client.
#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Create, read, list, cancel, re-run and follow jobs.
    #[command(subcommand)]
    Jobs(JobsCommand),
    /// Create, read, change and drive schedules.
    #[command(subcommand)]
    Schedules(SchedulesCommand),
    /// Readiness, mode, actors and backlog of the Kairos at --url.
    Status,
}

/// The JSON object of `file`, or an empty one.
fn read_fields(file: Option<&PathBuf>) -> Result<Map<String, Value>, Failure> {
    let Some(file) = file else {
        return Ok(Map::new());
    };
    let text = std::fs::read_to_string(file)
        .map_err(|error| Failure::Usage(format!("{}: {error}", file.display())))?;
    match serde_json::from_str(&text) {
        Ok(Value::Object(fields)) => Ok(fields),
        Ok(_) => Err(Failure::Usage(format!(
            "{} holds no JSON object",
            file.display()
        ))),
        Err(error) => Err(Failure::Usage(format!("{}: {error}", file.display()))),
    }
}

pub(super) async fn run(client: &Client, command: ClientCommand) -> Result<ExitCode, Failure> {
    match command {
        ClientCommand::Jobs(command) => jobs::run(client, command).await,
        ClientCommand::Schedules(command) => schedules::run(client, command).await,
        ClientCommand::Status => status(client).await,
    }
}

/// Readiness from `/readyz`, and the actors from the admin route when the token may read it.
async fn status(client: &Client) -> Result<ExitCode, Failure> {
    let readiness = match client.call(Method::GET, "/readyz", None).await {
        Ok(ready) => ready,
        // 503 answers the same body, with the reasons.
        Err(Failure::Refused(_)) => client
            .http
            .get(format!("{}/readyz", client.base))
            .send()
            .await
            .map_err(|error| Failure::Unreachable(error.to_string()))?
            .json()
            .await
            .map_err(|error| Failure::Unreachable(error.to_string()))?,
        Err(other) => return Err(other),
    };
    let actors = client
        .call(Method::GET, "/api/v1/admin/actors", None)
        .await
        .ok();
    output::status(client.format, &readiness, actors.as_ref());
    Ok(match readiness["status"].as_str() {
        Some("ready") => ExitCode::SUCCESS,
        _ => ExitCode::from(1),
    })
}
