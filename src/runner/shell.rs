//! Runs a job's command with `/bin/sh -c` in a process group of its own, under a timeout,
//! keeping a bounded amount of its output.
//!
//! A command sees nothing of Kairos's own environment (its tokens, its database password)
//! beyond what [`Environment`] passes, and runs in a fresh folder of its own per attempt
//! unless `runner.shell.working_dir` names one.
//!
//! The whole group is killed when the run times out, when the shell exits (so that a
//! background process left behind cannot hold the output pipes open or outlive its job), and
//! when the run is abandoned (the future is dropped, for example because its actor stopped).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncRead, AsyncReadExt};

use super::{AttemptContext, RunResult, Runner};
use crate::config::ShellSettings;
use crate::domain::{AttemptOutcome, ShellSpec};
pub use run_as::RunAs;

/// The variables every command gets from Kairos's environment, with the value used when
/// Kairos has none. `TZ` is passed only when set.
const BASIC_VARIABLES: [(&str, Option<&str>); 4] = [
    ("PATH", Some("/usr/local/bin:/usr/bin:/bin")),
    ("HOME", Some("/")),
    ("LANG", Some("C.UTF-8")),
    ("TZ", None),
];

/// What every command's environment holds besides its job's own variables, and where it
/// runs: read once, from `runner.shell` and Kairos's environment at start-up.
#[derive(Debug, Clone, Default)]
pub struct Environment {
    variables: Vec<(String, String)>,
    working_dir: Option<PathBuf>,
    /// The user commands run as (`runner.shell.user`); none: Kairos's own.
    run_as: Option<RunAs>,
}

impl Environment {
    /// The environment `settings` describe, reading the variables it copies from `lookup`
    /// (Kairos's own environment, in production).
    pub fn new(settings: &ShellSettings, lookup: impl Fn(&str) -> Option<String>) -> Self {
        let mut variables: Vec<(String, String)> = BASIC_VARIABLES
            .iter()
            .filter_map(|(name, default)| {
                let value = lookup(name).or_else(|| default.map(str::to_owned))?;
                Some(((*name).to_owned(), value))
            })
            .collect();
        for entry in &settings.env {
            let (name, value) = match entry.split_once('=') {
                Some((name, value)) => (name.to_owned(), Some(value.to_owned())),
                None => (entry.clone(), lookup(entry)),
            };
            variables.retain(|(existing, _)| *existing != name);
            if let Some(value) = value {
                variables.push((name, value));
            }
        }
        Self {
            variables,
            working_dir: settings.working_dir.clone(),
            run_as: None,
        }
    }

    /// Commands run as `run_as`, with its home as `HOME`.
    pub fn run_as(mut self, run_as: RunAs) -> Self {
        self.variables.retain(|(name, _)| name != "HOME");
        self.variables
            .push(("HOME".to_owned(), run_as.home.display().to_string()));
        self.run_as = Some(run_as);
        self
    }

    /// [`Environment::new`] over this process's environment.
    pub fn from_process(settings: &ShellSettings) -> Self {
        Self::new(settings, |name| std::env::var(name).ok())
    }
}

/// Runs `shell` jobs.
#[derive(Debug)]
pub struct ShellRunner {
    environment: Environment,
    /// Whether shell jobs may run, and which commands (checked again at run time, for jobs
    /// created before the settings changed).
    policy: ShellSettings,
    /// Bytes of stdout and of stderr kept per attempt; the rest is read and dropped.
    max_output_bytes: usize,
    /// How long a cancelled command has, after SIGTERM, before SIGKILL.
    cancel_grace: Duration,
}

impl ShellRunner {
    /// Runs commands in `environment`, keeping `max_output_bytes` of each output; a cancelled
    /// one gets `cancel_grace` between SIGTERM and SIGKILL.
    pub fn new(
        environment: Environment,
        policy: ShellSettings,
        max_output_bytes: usize,
        cancel_grace: Duration,
    ) -> Self {
        Self {
            environment,
            policy,
            max_output_bytes,
            cancel_grace,
        }
    }
}

#[async_trait::async_trait]
impl Runner for ShellRunner {
    type Spec = ShellSpec;

    async fn run(&self, spec: &ShellSpec, attempt: &AttemptContext) -> RunResult {
        if let Some((_, _, refusal)) = self.policy.refuses(&spec.command) {
            let mut refused = RunResult::failed(format!("not run: {refusal}"));
            refused.retryable = false;
            return refused;
        }
        let job = [
            ("KAIROS_JOB_ID", attempt.job_id.to_string()),
            ("KAIROS_ATTEMPT", attempt.attempt.to_string()),
            ("KAIROS_SCHEDULED_AT", attempt.scheduled_at.to_rfc3339()),
        ];
        let command = Command {
            command: &spec.command,
            timeout: attempt.timeout,
            job: &job,
            max_output_bytes: self.max_output_bytes,
            cancel: attempt,
            cancel_grace: self.cancel_grace,
        };
        match &self.environment.working_dir {
            Some(folder) => run_in(&command, &self.environment, folder).await,
            // The folder is removed when `scratch` drops, once the command and its group are
            // gone.
            None => match Scratch::create(self.environment.run_as.as_ref()) {
                Ok(scratch) => run_in(&command, &self.environment, &scratch.0).await,
                Err(error) => RunResult::failed(format!("cannot make the job's folder: {error}")),
            },
        }
    }
}

/// One run of a command.
struct Command<'a> {
    command: &'a str,
    timeout: Duration,
    /// The job's own variables, added to [`Environment`]'s.
    job: &'a [(&'a str, String)],
    max_output_bytes: usize,
    /// The attempt, whose cancel stops the command.
    cancel: &'a AttemptContext,
    cancel_grace: Duration,
}

/// How the wait for a command ended.
enum Waited {
    /// It exited, or waiting for it failed.
    Exited(std::io::Result<std::process::ExitStatus>),
    /// It ran past its timeout.
    TimedOut,
    /// Its job was cancelled.
    Cancelled,
}

/// Kills a process group when dropped, whatever path leaves the run.
struct GroupGuard(Pid);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        // ESRCH (the group is already gone) is the usual case and nothing to report.
        let _ = killpg(self.0, Signal::SIGKILL);
    }
}

/// A folder made for one attempt, removed (with what the command left in it) when dropped.
struct Scratch(PathBuf);

impl Scratch {
    /// A new private folder under the system's temporary folder, belonging to the user
    /// commands run as.
    fn create(run_as: Option<&RunAs>) -> std::io::Result<Self> {
        use std::os::unix::fs::DirBuilderExt;
        let path = std::env::temp_dir().join(format!("kairos-job-{}", uuid::Uuid::new_v4()));
        std::fs::DirBuilder::new().mode(0o700).create(&path)?;
        let scratch = Self(path);
        if let Some(run_as) = run_as {
            std::os::unix::fs::chown(
                &scratch.0,
                Some(run_as.uid.as_raw()),
                Some(run_as.gid.as_raw()),
            )?;
        }
        Ok(scratch)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Err(error) = std::fs::remove_dir_all(&self.0) {
            tracing::warn!(%error, folder = %self.0.display(), "cannot remove a job's folder");
        }
    }
}

async fn run_in(spec: &Command<'_>, environment: &Environment, folder: &Path) -> RunResult {
    let run_as = environment.run_as.as_ref();
    let mut command = match run_as.and_then(|run_as| Some((run_as, run_as.setpriv.as_ref()?))) {
        // setpriv takes the user, its group and its supplementary groups, then becomes the
        // shell (same process: the group and the kill below still apply).
        Some((run_as, setpriv)) => {
            let mut command = tokio::process::Command::new(setpriv);
            command
                .arg(format!("--reuid={}", run_as.uid))
                .arg(format!("--regid={}", run_as.gid))
                .arg("--init-groups")
                .arg("--")
                .arg("/bin/sh");
            command
        }
        None => tokio::process::Command::new("/bin/sh"),
    };
    command
        .arg("-c")
        .arg(spec.command)
        .env_clear()
        .envs(
            environment
                .variables
                .iter()
                .map(|(key, value)| (key, value)),
        )
        .envs(spec.job.iter().map(|(key, value)| (key, value)))
        .current_dir(folder)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    if let Some(run_as) = run_as.filter(|run_as| run_as.setpriv.is_none()) {
        // The child takes the group, then the user, before `exec`; as root, std drops its
        // supplementary groups first.
        command.gid(run_as.gid.as_raw()).uid(run_as.uid.as_raw());
    }
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(error) => return RunResult::failed(format!("cannot start /bin/sh: {error}")),
    };
    // The child leads its own group, so its pid is the group id. A pid beyond i32 does not
    // exist on Linux.
    let guard = child
        .id()
        .and_then(|pid| i32::try_from(pid).ok())
        .map(|pid| GroupGuard(Pid::from_raw(pid)));
    let stdout = tokio::spawn(read_bounded(child.stdout.take(), spec.max_output_bytes));
    let stderr = tokio::spawn(read_bounded(child.stderr.take(), spec.max_output_bytes));

    let waited = tokio::select! {
        waited = tokio::time::timeout(spec.timeout, child.wait()) => match waited {
            Ok(exited) => Waited::Exited(exited),
            Err(_) => Waited::TimedOut,
        },
        () = spec.cancel.cancelled() => Waited::Cancelled,
    };
    if let (Waited::Cancelled, Some(group)) = (&waited, &guard) {
        // SIGTERM to the whole group first; what is left after the grace is killed below.
        let _ = killpg(group.0, Signal::SIGTERM);
        let _ = tokio::time::timeout(spec.cancel_grace, child.wait()).await;
    }
    // Kill what is left of the group: everything on timeout or cancel, stragglers after an
    // exit.
    drop(guard);
    let (outcome, exit_code, error) = match waited {
        Waited::Cancelled => {
            let _ = child.wait().await;
            (
                AttemptOutcome::Cancelled,
                None,
                Some("cancelled: its process group was stopped".to_owned()),
            )
        }
        Waited::Exited(Ok(status)) => match status.code() {
            Some(0) => (AttemptOutcome::Succeeded, Some(0), None),
            Some(code) => (
                AttemptOutcome::Failed,
                Some(code),
                Some(format!("exit code {code}")),
            ),
            None => (
                AttemptOutcome::Failed,
                None,
                Some(format!("terminated by a signal ({status})")),
            ),
        },
        Waited::Exited(Err(error)) => (
            AttemptOutcome::Failed,
            None,
            Some(format!("cannot wait for the command: {error}")),
        ),
        Waited::TimedOut => {
            // Reap the shell; the group was killed above.
            let _ = child.wait().await;
            (
                AttemptOutcome::TimedOut,
                None,
                Some(format!(
                    "timed out after {} s; its process group was killed",
                    spec.timeout.as_secs_f64()
                )),
            )
        }
    };
    RunResult {
        outcome,
        exit_code,
        stdout: stdout.await.unwrap_or_default(),
        stderr: stderr.await.unwrap_or_default(),
        error,
        retryable: true,
        retry_after: None,
    }
}

/// Reads `pipe` to its end, keeping the first `limit` bytes; marks what it dropped.
async fn read_bounded(pipe: Option<impl AsyncRead + Unpin>, limit: usize) -> String {
    let Some(mut pipe) = pipe else {
        return String::new();
    };
    let mut kept = Vec::with_capacity(limit.min(8 * 1024));
    let mut chunk = [0_u8; 8 * 1024];
    let mut dropped: usize = 0;
    loop {
        match pipe.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(read) => {
                let room = limit.saturating_sub(kept.len()).min(read);
                kept.extend_from_slice(&chunk[..room]);
                dropped += read - room;
            }
        }
    }
    let mut text = String::from_utf8_lossy(&kept).into_owned();
    if dropped > 0 {
        text.push_str(&format!("\n[output truncated: {dropped} more bytes]"));
    }
    text
}

mod run_as;
#[cfg(test)]
mod tests;
