//! The `kairos` command-line client against a running Kairos, standalone and distributed: every
//! command, its table and JSON output, and its exit codes.

use std::process::{Command, Output};

use serde_json::Value;
use uuid::Uuid;

use super::Server;

/// Runs `kairos args` against `server` (`-o` as given; piped, so JSON by default).
fn kairos(server: &Server, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kairos"))
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("KAIROS_URL", format!("http://127.0.0.1:{}", server.port))
        .output()
        .expect("kairos runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The JSON a successful command printed.
fn json(output: &Output) -> Value {
    assert!(
        output.status.success(),
        "failed: {}{}",
        stdout(output),
        stderr(output)
    );
    serde_json::from_str(&stdout(output))
        .unwrap_or_else(|error| panic!("not JSON ({error}): {}", stdout(output)))
}

/// Jobs: create (a command after `--`, flags, metadata), watch to its end, get, list, logs
/// (table and JSON), cancel a waiting one, re-run a finished one; a refusal exits 1 with the
/// server's message, a usage error 2, an unreachable server 3.
async fn jobs_commands(server: &Server) {
    let created = json(&kairos(
        server,
        &[
            "jobs",
            "create",
            "--in",
            "1s",
            "--name",
            "greeting",
            "--retries",
            "1",
            "--metadata",
            "team=ops",
            "--",
            "echo",
            "hello",
            "from",
            "the",
            "cli",
        ],
    ));
    let id = created["job"]["id"].as_str().expect("an id").to_owned();
    assert_eq!(created["job"]["metadata"]["team"], "ops");
    assert_eq!(created["job"]["max_retries"], 1);

    let watched = kairos(server, &["jobs", "watch", &id]);
    assert_eq!(watched.status.code(), Some(0), "{}", stderr(&watched));
    assert_eq!(json(&watched)["job"]["status"], "SUCCESS");

    let table = kairos(server, &["-o", "table", "jobs", "get", &id]);
    let shown = stdout(&table);
    let mut lines = shown.lines();
    let header: Vec<&str> = lines.next().expect("a header").split_whitespace().collect();
    assert_eq!(
        header,
        [
            "ID", "NAME", "KIND", "STATUS", "EXECUTE", "AT", "ATTEMPTS", "EXIT"
        ]
    );
    let row: Vec<&str> = lines.next().expect("a row").split_whitespace().collect();
    assert_eq!(row[..4], [id.as_str(), "greeting", "shell", "SUCCESS"]);
    assert_eq!(row.last(), Some(&"0"), "{shown}");
    assert!(
        shown.contains("ATTEMPT") && shown.contains("SUCCEEDED"),
        "{shown}"
    );

    let listed = json(&kairos(server, &["jobs", "list", "--status", "SUCCESS"]));
    assert!(
        listed
            .as_array()
            .expect("jobs")
            .iter()
            .any(|job| job["id"] == id.as_str())
    );
    let lines = kairos(server, &["-o", "jsonl", "jobs", "list"]);
    for line in stdout(&lines).lines() {
        serde_json::from_str::<Value>(line).expect("one job per line");
    }

    let logs = kairos(server, &["-o", "table", "jobs", "logs", &id]);
    assert_eq!(
        stdout(&logs),
        "== attempt 1 (SUCCEEDED, exit 0)\n-- stdout\nhello from the cli\n"
    );
    let logs = json(&kairos(server, &["jobs", "logs", &id, "--attempt", "1"]));
    assert_eq!(logs[0]["stdout"], "hello from the cli\n");

    let later = json(&kairos(
        server,
        &["jobs", "create", "--in", "1h", "--", "true"],
    ));
    let later_id = later["job"]["id"].as_str().expect("an id").to_owned();
    let cancelled = json(&kairos(server, &["jobs", "cancel", &later_id]));
    assert_eq!(cancelled["job"]["status"], "CANCELLED");
    let watched = kairos(server, &["jobs", "watch", &later_id]);
    assert_eq!(
        watched.status.code(),
        Some(1),
        "a cancelled job is no success"
    );

    let rerun = json(&kairos(server, &["jobs", "rerun", &id]));
    assert_eq!(rerun["job"]["rerun_of"], id.as_str());

    let refused = kairos(server, &["jobs", "cancel", &id]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        stderr(&refused).contains("409 job_final"),
        "{}",
        stderr(&refused)
    );
    let refused = kairos(
        server,
        &["jobs", "create", "--kind", "teleport", "--", "true"],
    );
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        stderr(&refused).contains("(field `kind`)"),
        "{}",
        stderr(&refused)
    );
    let usage = kairos(server, &["jobs", "create", "--in", "soon"]);
    assert_eq!(usage.status.code(), Some(2), "{}", stderr(&usage));
}

/// Schedules: create, list, get, update, preview, pause, resume, trigger, backfill, delete.
async fn schedules_commands(server: &Server) {
    let created = json(&kairos(
        server,
        &[
            "schedules",
            "create",
            "--name",
            "hourly",
            "--cron",
            "0 * * * *",
            "--timezone",
            "Europe/Paris",
            "--",
            "echo",
            "tick",
        ],
    ));
    let id = created["schedule"]["id"]
        .as_str()
        .expect("an id")
        .to_owned();
    assert_eq!(created["schedule"]["job"]["command"], "echo tick");

    let table = kairos(server, &["-o", "table", "schedules", "list"]);
    let shown = stdout(&table);
    let header: Vec<&str> = shown
        .lines()
        .next()
        .expect("a header")
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        [
            "ID", "NAME", "RULE", "TIMEZONE", "NEXT", "FIRE", "PAUSED", "MISSED"
        ]
    );
    assert!(
        shown.contains(&id) && shown.contains("0 * * * *"),
        "{shown}"
    );

    let got = json(&kairos(server, &["schedules", "get", &id]));
    assert_eq!(got["next_fires"].as_array().map(Vec::len), Some(10));
    // A rule with fires before the schedule was made, for the backfill below.
    let changed = json(&kairos(
        server,
        &[
            "schedules",
            "update",
            &id,
            "--cron",
            "*/10 * * * *",
            "--",
            "echo",
            "tock",
        ],
    ));
    assert_eq!(changed["schedule"]["cron"], "*/10 * * * *");
    assert_eq!(changed["schedule"]["job"]["command"], "echo tock");
    let paused = json(&kairos(
        server,
        &["schedules", "pause", &id, "--note", "maintenance"],
    ));
    assert_eq!(paused["schedule"]["pause_note"], "maintenance");
    let resumed = json(&kairos(server, &["schedules", "resume", &id]));
    assert_eq!(resumed["schedule"]["paused"], false);
    let triggered = json(&kairos(server, &["schedules", "trigger", &id]));
    let job = triggered[0]["job_id"].as_str().expect("a job").to_owned();
    let watched = kairos(server, &["jobs", "watch", &job]);
    assert_eq!(watched.status.code(), Some(0), "{}", stderr(&watched));

    let now = chrono::Utc::now();
    let from = (now - chrono::Duration::minutes(40)).to_rfc3339();
    let to = (now - chrono::Duration::minutes(1)).to_rfc3339();
    let backfilled = json(&kairos(
        server,
        &["schedules", "backfill", &id, "--from", &from, "--to", &to],
    ));
    assert!(
        (3..=4).contains(&backfilled.as_array().expect("fires").len()),
        "{backfilled}"
    );

    let changed = json(&kairos(
        server,
        &["schedules", "update", &id, "--every", "15m"],
    ));
    assert_eq!(changed["schedule"]["every"], "15m");

    let preview = json(&kairos(
        server,
        &[
            "schedules",
            "preview",
            "--cron",
            "0 9 * * MON",
            "--count",
            "3",
        ],
    ));
    assert_eq!(preview.as_array().map(Vec::len), Some(3));
    let deleted = kairos(server, &["schedules", "delete", &id]);
    assert!(deleted.status.success(), "{}", stderr(&deleted));
    let gone = kairos(server, &["schedules", "get", &id]);
    assert_eq!(gone.status.code(), Some(1));
    assert!(stderr(&gone).contains("404 not_found"), "{}", stderr(&gone));
}

/// `status` shows readiness, the mode and the actors.
fn status_command(server: &Server, mode: &str) {
    let table = kairos(server, &["-o", "table", "status"]);
    let shown = stdout(&table);
    assert!(table.status.success(), "{shown}{}", stderr(&table));
    assert!(shown.starts_with("status  ready\n"), "{shown}");
    assert!(shown.contains(&format!("mode    {mode}\n")), "{shown}");
    assert!(
        shown.contains("ACTOR") && shown.contains("result_writer"),
        "{shown}"
    );
    let all = json(&kairos(server, &["status"]));
    assert_eq!(all["readiness"]["mode"], mode);
}

#[actix_web::test]
async fn the_client_drives_a_standalone_kairos() {
    let server = Server::start("true", &[]).await;
    jobs_commands(&server).await;
    schedules_commands(&server).await;
    status_command(&server, "standalone");
}

#[actix_web::test]
async fn the_client_drives_a_distributed_kairos() {
    let id = Uuid::new_v4().simple().to_string();
    let database = super::install::create_test_database(&id).await;
    let topics = super::install::distributed_env(&id, &database);
    let env: Vec<(&str, &str)> = topics.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let server = Server::start("true", &env).await;
    jobs_commands(&server).await;
    schedules_commands(&server).await;
    status_command(&server, "distributed");
    drop(server);
    super::install::drop_test_database(&database).await;
}

#[test]
fn an_unreachable_server_exits_3_and_completions_are_printed() {
    let output = Command::new(env!("CARGO_BIN_EXE_kairos"))
        .args(["--url", "http://127.0.0.1:9", "jobs", "list"])
        .output()
        .expect("kairos runs");
    assert_eq!(output.status.code(), Some(3));
    assert!(stderr(&output).contains("cannot reach Kairos at http://127.0.0.1:9"));
    for shell in ["bash", "zsh", "fish"] {
        let script = Command::new(env!("CARGO_BIN_EXE_kairos"))
            .args(["completions", shell])
            .output()
            .expect("kairos runs");
        assert!(script.status.success());
        assert!(stdout(&script).contains("schedules"), "{shell}");
    }
}
