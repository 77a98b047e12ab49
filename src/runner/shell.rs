//! Runs a job's command with `/bin/sh -c` in a process group of its own, under a timeout,
//! keeping a bounded amount of its output.
//!
//! The whole group is killed when the run times out, when the shell exits (so that a
//! background process left behind cannot hold the output pipes open or outlive its job), and
//! when the run is abandoned (the future is dropped, for example because its actor stopped).

use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::domain::AttemptOutcome;

/// What to run.
#[derive(Debug, Clone)]
pub struct ShellCommand {
    pub command: String,
    pub timeout: Duration,
    /// Variables added to the command's environment.
    pub env: Vec<(String, String)>,
    /// Bytes of stdout and of stderr kept; the rest is read and dropped.
    pub max_output_bytes: usize,
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunResult {
    pub outcome: AttemptOutcome,
    pub exit_code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    /// Why the run failed, in words; `None` on success.
    pub error: Option<String>,
}

/// Kills a process group when dropped, whatever path leaves the run.
struct GroupGuard(Pid);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        // ESRCH (the group is already gone) is the usual case and nothing to report.
        let _ = killpg(self.0, Signal::SIGKILL);
    }
}

/// Runs `spec` and reports how it ended. Never fails: a command that cannot be started is a
/// failed run.
pub async fn run(spec: &ShellCommand) -> RunResult {
    let mut command = tokio::process::Command::new("/bin/sh");
    command
        .arg("-c")
        .arg(&spec.command)
        .envs(spec.env.iter().map(|(key, value)| (key, value)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(error) => {
            return RunResult {
                outcome: AttemptOutcome::Failed,
                exit_code: None,
                stdout: String::new(),
                stderr: String::new(),
                error: Some(format!("cannot start /bin/sh: {error}")),
            };
        }
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
    use super::*;

    fn spec(command: &str, timeout_ms: u64) -> ShellCommand {
        ShellCommand {
            command: command.into(),
            timeout: Duration::from_millis(timeout_ms),
            env: vec![("KAIROS_JOB_ID".into(), "job-1".into())],
            max_output_bytes: 16,
        }
    }

    #[tokio::test]
    async fn a_zero_exit_succeeds_with_its_output_and_environment() {
        let result = run(&spec("echo $KAIROS_JOB_ID; echo oops >&2", 10_000)).await;
        assert_eq!(result.outcome, AttemptOutcome::Succeeded);
        assert_eq!(result.exit_code, Some(0));
        assert_eq!(result.stdout, "job-1\n");
        assert_eq!(result.stderr, "oops\n");
        assert_eq!(result.error, None);
    }

    #[tokio::test]
    async fn a_non_zero_exit_fails_naming_the_code() {
        let result = run(&spec("exit 3", 10_000)).await;
        assert_eq!(result.outcome, AttemptOutcome::Failed);
        assert_eq!(result.exit_code, Some(3));
        assert_eq!(result.error.as_deref(), Some("exit code 3"));
    }

    #[tokio::test]
    async fn output_beyond_the_limit_is_dropped_and_marked() {
        let result = run(&spec("printf '%040d' 0", 10_000)).await;
        assert_eq!(
            result.stdout,
            format!("{}\n[output truncated: 24 more bytes]", "0".repeat(16))
        );
    }

    #[tokio::test]
    async fn a_run_past_its_timeout_is_killed_with_its_children() {
        let pid_file = std::env::temp_dir().join(format!("kairos-runner-{}", uuid::Uuid::new_v4()));
        let command = format!("sleep 30 & echo $! > {}; wait", pid_file.display());
        let result = run(&spec(&command, 300)).await;
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
}
