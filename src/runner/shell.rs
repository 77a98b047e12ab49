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
        }
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
    /// Bytes of stdout and of stderr kept per attempt; the rest is read and dropped.
    max_output_bytes: usize,
}

impl ShellRunner {
    /// Runs commands in `environment`, keeping `max_output_bytes` of each output.
    pub fn new(environment: Environment, max_output_bytes: usize) -> Self {
        Self {
            environment,
            max_output_bytes,
        }
    }
}

#[async_trait::async_trait]
impl Runner for ShellRunner {
    type Spec = ShellSpec;

    async fn run(&self, spec: &ShellSpec, attempt: &AttemptContext) -> RunResult {
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
        };
        match &self.environment.working_dir {
            Some(folder) => run_in(&command, &self.environment, folder).await,
            // The folder is removed when `scratch` drops, once the command and its group are
            // gone.
            None => match Scratch::create() {
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
    /// A new private folder under the system's temporary folder.
    fn create() -> std::io::Result<Self> {
        use std::os::unix::fs::DirBuilderExt;
        let path = std::env::temp_dir().join(format!("kairos-job-{}", uuid::Uuid::new_v4()));
        std::fs::DirBuilder::new().mode(0o700).create(&path)?;
        Ok(Self(path))
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
    let mut command = tokio::process::Command::new("/bin/sh");
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

    let waited = tokio::time::timeout(spec.timeout, child.wait()).await;
    // Kill what is left of the group: everything on timeout, stragglers after an exit.
    drop(guard);
    let (outcome, exit_code, error) = match waited {
        Ok(Ok(status)) => match status.code() {
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
        Ok(Err(error)) => (
            AttemptOutcome::Failed,
            None,
            Some(format!("cannot wait for the command: {error}")),
        ),
        Err(_) => {
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

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;

    const JOB: Uuid = Uuid::from_u128(1);

    /// Runs `command` as attempt 1 of job [`JOB`] in `environment`, keeping `max_output`
    /// bytes of each output.
    async fn run(
        command: &str,
        timeout_ms: u64,
        max_output: usize,
        environment: Environment,
    ) -> RunResult {
        let attempt = AttemptContext {
            job_id: JOB,
            attempt: 1,
            scheduled_at: chrono::Utc::now(),
            timeout: Duration::from_millis(timeout_ms),
        };
        let spec = ShellSpec {
            command: command.into(),
        };
        ShellRunner::new(environment, max_output)
            .run(&spec, &attempt)
            .await
    }

    fn environment(env: &[&str]) -> Environment {
        let settings = ShellSettings {
            env: env.iter().map(|entry| (*entry).to_owned()).collect(),
            working_dir: None,
        };
        Environment::new(&settings, |name| match name {
            "PATH" => Some("/usr/bin:/bin".into()),
            "SECRET" => Some("from-the-server".into()),
            "SHARED" => Some("copied".into()),
            _ => None,
        })
    }

    #[tokio::test]
    async fn a_zero_exit_succeeds_with_its_output_and_environment() {
        let result = run(
            "echo $KAIROS_JOB_ID; echo oops >&2",
            10_000,
            4096,
            environment(&[]),
        )
        .await;
        assert_eq!(result.outcome, AttemptOutcome::Succeeded);
        assert_eq!(result.exit_code, Some(0));
        assert_eq!(result.stdout, format!("{JOB}\n"));
        assert_eq!(result.stderr, "oops\n");
        assert_eq!(result.error, None);
    }

    #[tokio::test]
    async fn a_non_zero_exit_fails_naming_the_code() {
        let result = run("exit 3", 10_000, 4096, environment(&[])).await;
        assert_eq!(result.outcome, AttemptOutcome::Failed);
        assert_eq!(result.exit_code, Some(3));
        assert_eq!(result.error.as_deref(), Some("exit code 3"));
    }

    #[tokio::test]
    async fn output_beyond_the_limit_is_dropped_and_marked() {
        let result = run("printf '%040d' 0", 10_000, 16, environment(&[])).await;
        assert_eq!(
            result.stdout,
            format!("{}\n[output truncated: 24 more bytes]", "0".repeat(16))
        );
    }

    #[tokio::test]
    async fn a_run_past_its_timeout_is_killed_with_its_children() {
        let pid_file = std::env::temp_dir().join(format!("kairos-runner-{}", uuid::Uuid::new_v4()));
        let command = format!("sleep 30 & echo $! > {}; wait", pid_file.display());
        let result = run(&command, 300, 4096, environment(&[])).await;
        assert_eq!(result.outcome, AttemptOutcome::TimedOut);
        let child: i32 = std::fs::read_to_string(&pid_file)
            .expect("pid written")
            .trim()
            .parse()
            .expect("a pid");
        std::fs::remove_file(&pid_file).ok();
        // The kill is asynchronous: wait, with a bound, for the child to be gone (or to be a
        // zombie awaiting its reaper).
        let gone = || {
            std::fs::read_to_string(format!("/proc/{child}/stat"))
                .map_or(true, |stat| stat.contains(") Z "))
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !gone() && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(
            gone(),
            "the background child {child} outlived its timed-out job"
        );
    }

    /// A command's environment holds the basic variables, the job's own and those
    /// `runner.shell.env` names, and nothing else of the server's.
    #[tokio::test]
    async fn a_command_sees_only_the_variables_it_is_given() {
        let result = run(
            "env | sort",
            10_000,
            4096,
            environment(&["SHARED", "GREETING=hello"]),
        )
        .await;
        let mut names: Vec<&str> = result
            .stdout
            .lines()
            .filter_map(|line| line.split_once('=').map(|(name, _)| name))
            .filter(|name| !matches!(*name, "PWD" | "SHLVL" | "_" | "OLDPWD"))
            .collect();
        names.sort_unstable();
        assert_eq!(
            names,
            [
                "GREETING",
                "HOME",
                "KAIROS_ATTEMPT",
                "KAIROS_JOB_ID",
                "KAIROS_SCHEDULED_AT",
                "LANG",
                "PATH",
                "SHARED"
            ],
            "{}",
            result.stdout
        );
        assert!(result.stdout.contains("SHARED=copied\n"));
        assert!(!result.stdout.contains("from-the-server"));
    }

    /// Each attempt runs in a folder of its own, which is gone once the attempt ends.
    #[tokio::test]
    async fn a_command_runs_in_a_fresh_folder_that_is_removed_after() {
        let command = "pwd; touch left-behind; ls -A";
        let first = run(command, 10_000, 4096, environment(&[])).await;
        let second = run(command, 10_000, 4096, environment(&[])).await;
        let folder = |result: &RunResult| {
            let mut lines = result.stdout.lines();
            let folder = PathBuf::from(lines.next().expect("pwd"));
            assert_eq!(lines.collect::<Vec<_>>(), ["left-behind"], "{result:?}");
            folder
        };
        let (first, second) = (folder(&first), folder(&second));
        assert_ne!(first, second);
        assert!(
            first.starts_with(std::env::temp_dir()),
            "{}",
            first.display()
        );
        assert!(
            !first.exists() && !second.exists(),
            "a job's folder outlived it"
        );
    }
}
