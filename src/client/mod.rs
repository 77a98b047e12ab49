//! The `kairos` command-line client: `jobs`, `schedules` and `status` subcommands that talk
//! to a running Kairos over its public HTTP API only.
//!
//! Exit codes: 0 done, 1 the server refused (its error message is printed as it came), 2 a
//! usage error, 3 the server could not be reached. `jobs watch` exits 0 when the job ends
//! `SUCCESS` and 1 otherwise.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, ValueEnum};
use reqwest::{Method, StatusCode};
use serde_json::Value;

mod commands;
mod output;

pub use commands::{ClientCommand, JobsCommand, SchedulesCommand};
use output::Format;

/// Where Kairos is and how to show what it answers; flags of every client command.
#[derive(Debug, Clone, Args)]
pub struct Connection {
    /// The Kairos to talk to.
    #[arg(
        long,
        global = true,
        env = "KAIROS_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    pub url: String,
    /// An API token (`kairos token new`), sent as `Authorization: Bearer`.
    #[arg(long, global = true, env = "KAIROS_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// table (default on a terminal), json (default when piped) or jsonl.
    #[arg(short = 'o', long = "output", global = true, value_enum)]
    pub output: Option<OutputFormat>,
}

/// How answers are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Table,
    Json,
    Jsonl,
}

/// Why a command did not succeed, and its exit code.
#[derive(Debug)]
pub enum Failure {
    /// The server answered with an error (exit 1).
    Refused(String),
    /// The command line does not make a request (exit 2).
    Usage(String),
    /// The server could not be reached (exit 3).
    Unreachable(String),
}

impl Failure {
    fn exit(&self) -> ExitCode {
        match self {
            Failure::Refused(message) => {
                eprintln!("kairos: {message}");
                ExitCode::from(1)
            }
            Failure::Usage(message) => {
                eprintln!("kairos: {message}");
                ExitCode::from(2)
            }
            Failure::Unreachable(message) => {
                eprintln!("kairos: {message}");
                ExitCode::from(3)
            }
        }
    }
}

/// A client of one Kairos.
#[derive(Debug)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
    format: Format,
}

impl Client {
    fn new(connection: &Connection) -> Result<Self, Failure> {
        let format = match connection.output {
            Some(OutputFormat::Table) => Format::Table,
            Some(OutputFormat::Json) => Format::Json,
            Some(OutputFormat::Jsonl) => Format::Jsonl,
            None if std::io::stdout().is_terminal() => Format::Table,
            None => Format::Json,
        };
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|error| Failure::Usage(error.to_string()))?;
        Ok(Self {
            http,
            base: connection.url.trim_end_matches('/').to_owned(),
            token: connection.token.clone(),
            format,
        })
    }

    /// `method path` with `body`, answering the JSON of a 2xx answer (`null` for none).
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, Failure> {
        self.call_with(method, path, body, &[]).await
    }

    async fn call_with(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> Result<Value, Failure> {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.map_err(|error| {
            Failure::Unreachable(format!("cannot reach Kairos at {}: {error}", self.base))
        })?;
        let status = response.status();
        let text = response.text().await.map_err(|error| {
            Failure::Unreachable(format!("the answer of {} broke off: {error}", self.base))
        })?;
        let value = match text.trim() {
            "" => Value::Null,
            text => serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned())),
        };
        if status.is_success() {
            return Ok(value);
        }
        Err(Failure::Refused(refusal(status, &value)))
    }
}

/// The server's error as it came: `status code: message (field)`.
fn refusal(status: StatusCode, body: &Value) -> String {
    let error = &body["error"];
    match (error["code"].as_str(), error["message"].as_str()) {
        (Some(code), Some(message)) => {
            let field = error["field"]
                .as_str()
                .map(|field| format!(" (field `{field}`)"))
                .unwrap_or_default();
            let items = error["items"]
                .as_array()
                .map(|items| {
                    items
                        .iter()
                        .map(|item| format!("\n  job {}: {}", item["index"], item["message"]))
                        .collect::<String>()
                })
                .unwrap_or_default();
            format!("{} {code}: {message}{field}{items}", status.as_u16())
        }
        _ => format!("{status}: {body}"),
    }
}

/// Runs a client command; its exit code.
pub fn run(connection: &Connection, command: ClientCommand) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => return Failure::Usage(error.to_string()).exit(),
    };
    let outcome = runtime.block_on(async {
        let client = Client::new(connection)?;
        commands::run(&client, command).await
    });
    match outcome {
        Ok(code) => code,
        Err(failure) => failure.exit(),
    }
}
