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
    let (_cancel, cancelled) = tokio::sync::watch::channel(false);
    let attempt = AttemptContext {
        job_id: JOB,
        attempt: 1,
        scheduled_at: chrono::Utc::now(),
        timeout: Duration::from_millis(timeout_ms),
        cancel: cancelled,
    };
    let spec = ShellSpec {
        command: command.into(),
    };
    ShellRunner::new(
        environment,
        settings(&[]),
        max_output,
        Duration::from_secs(10),
    )
    .run(&spec, &attempt)
    .await
}

fn settings(env: &[&str]) -> ShellSettings {
    ShellSettings {
        env: env.iter().map(|entry| (*entry).to_owned()).collect(),
        working_dir: None,
        enabled: true,
        allowed_commands: crate::config::CommandPatterns::default(),
        user: None,
    }
}

fn environment(env: &[&str]) -> Environment {
    Environment::new(&settings(env), |name| match name {
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

#[tokio::test]
async fn a_command_the_settings_no_longer_allow_fails_without_running() {
    let ran = std::env::temp_dir().join(format!("kairos-refused-{}", uuid::Uuid::new_v4()));
    let mut policy = settings(&[]);
    policy.allowed_commands =
        crate::config::CommandPatterns::try_from(vec!["echo [a-z]+".to_owned()]).expect("valid");
    let runner = ShellRunner::new(environment(&[]), policy, 1024, Duration::from_secs(10));
    let (_stop, cancel) = tokio::sync::watch::channel(false);
    let attempt = AttemptContext {
        job_id: uuid::Uuid::now_v7(),
        attempt: 1,
        scheduled_at: chrono::Utc::now(),
        timeout: Duration::from_secs(5),
        cancel,
    };
    let spec = |command: String| ShellSpec { command };
    let refused = runner
        .run(&spec(format!("touch {}", ran.display())), &attempt)
        .await;
    assert_eq!(refused.outcome, AttemptOutcome::Failed);
    assert!(!refused.retryable);
    assert!(!ran.exists(), "a refused command ran");
    // A match must be whole: a pattern's text inside a longer command does not do.
    let refused = runner.run(&spec("echo ok; id".into()), &attempt).await;
    assert_eq!(refused.outcome, AttemptOutcome::Failed);
    let allowed = runner.run(&spec("echo ok".into()), &attempt).await;
    assert_eq!(allowed.outcome, AttemptOutcome::Succeeded, "{allowed:?}");
}
