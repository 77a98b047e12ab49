//! Who may call a real process and what its jobs can reach: a token made by the CLI, and
//! commands run as another Unix user.

use std::process::Command;

use serde_json::json;
use uuid::Uuid;

use super::Server;

/// `kairos token new` prints a token once and the configuration entry holding its hash (never
/// the token): a server given that entry accepts the token within its role, refuses it beyond
/// (`403`) and logs the refusal under the token's name, not the token.
#[tokio::test]
async fn a_token_made_by_the_cli_works_within_its_role_only() {
    let output = Command::new(env!("CARGO_BIN_EXE_kairos"))
        .args(["token", "new", "--name", "ci", "--role", "writer"])
        .output()
        .expect("kairos token new runs");
    assert!(output.status.success(), "{output:?}");
    let printed = String::from_utf8(output.stdout).expect("text");
    let token = printed
        .lines()
        .find_map(|line| line.split(": ").nth(1).filter(|t| t.starts_with("kairos_")))
        .expect("a token")
        .to_owned();
    let entry = printed.lines().last().expect("an entry").to_owned();
    assert!(
        entry.contains("sha256") && !entry.contains(&token),
        "{printed}"
    );

    let config = std::env::temp_dir().join(format!("kairos-token-{}.toml", Uuid::new_v4()));
    std::fs::write(&config, format!("[auth]\ntokens = [{entry}]\n")).expect("written");
    let server = Server::start(
        "true",
        &[("KAIROS_CONFIG", config.to_str().expect("a path"))],
    )
    .await;
    let job = json!({"kind": "noop", "execute_at": "2099-01-01T00:00:00Z"});
    let jobs = server.url("/api/v1/jobs");
    let status = |request: reqwest::RequestBuilder| async move {
        request.send().await.expect("answered").status().as_u16()
    };
    let with_token = server.http.post(&jobs).bearer_auth(&token).json(&job);
    assert_eq!(status(with_token).await, 201);
    let admin = server.http.get(server.url("/api/v1/admin/actors"));
    assert_eq!(status(admin.bearer_auth(&token)).await, 403);
    assert_eq!(status(server.http.post(&jobs).json(&job)).await, 401);
    // The log's fields, without the colours of a terminal.
    let mut log = String::new();
    let mut in_escape = false;
    for c in server.log().chars() {
        match (in_escape, c) {
            (false, '\u{1b}') => in_escape = true,
            (true, 'm') => in_escape = false,
            (false, c) => log.push(c),
            (true, _) => {}
        }
    }
    assert!(
        log.lines()
            .any(|line| line.contains("refused") && line.contains("token=ci")),
        "{log}"
    );
    assert!(!log.contains(&token), "the token reached the log");
    let _ = std::fs::remove_file(config);
}

/// With `runner.shell.user` set (Kairos runs as root here), a job runs as that user: it
/// cannot read Kairos's environment through `/proc`, signal it, or open its data directory.
#[actix_web::test]
async fn a_job_run_as_another_user_cannot_reach_the_server() {
    assert!(
        nix::unistd::Uid::effective().is_root(),
        "this test runs Kairos as root, as the test command does, to run jobs as `nobody`"
    );
    let server = Server::start(
        "true",
        &[
            ("KAIROS__RUNNER__SHELL__USER", "nobody"),
            ("UNRELATED_SECRET", "sekrit-4"),
        ],
    )
    .await;
    let data = server.folder.join("kairos-data");
    let command = format!(
        "id -u; cat /proc/$PPID/environ && echo read-environ; kill -0 $PPID && echo signalled; \
         ls {} && echo listed-data; true",
        data.display()
    );
    let job = server
        .run_job(
            &json!({"command": command, "execute_at": "2020-01-01T00:00:00Z"}),
            None,
        )
        .await;
    let nobody = nix::unistd::User::from_name("nobody")
        .expect("the user database")
        .expect("nobody");
    let output = job["job"]["last_output"].as_str().expect("output");
    assert_eq!(
        output.lines().next(),
        Some(nobody.uid.to_string().as_str()),
        "{job}"
    );
    for reached in ["sekrit", "read-environ", "signalled", "listed-data"] {
        assert!(
            !output.contains(reached),
            "the job reached {reached}:\n{job}"
        );
    }
    let denied = job["attempts"][0]["stderr"].as_str().unwrap_or_default();
    assert!(
        denied.contains("ermission denied") || denied.contains("not permitted"),
        "{job}"
    );
}

/// Makes (once) the user `kairos-test-jobs`, whose supplementary group is `kairos-test-extra`;
/// the gid of that group.
fn user_with_a_supplementary_group() -> u32 {
    let run = |program: &str, args: &[&str]| {
        std::process::Command::new(program)
            .args(args)
            .status()
            .unwrap_or_else(|error| panic!("{program}: {error}"))
    };
    assert!(run("groupadd", &["--force", "--system", "kairos-test-extra"]).success());
    if nix::unistd::User::from_name("kairos-test-jobs")
        .expect("the user database")
        .is_none()
    {
        let made = run(
            "useradd",
            &[
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                "--groups",
                "kairos-test-extra",
                "kairos-test-jobs",
            ],
        );
        assert!(made.success(), "useradd kairos-test-jobs");
    }
    nix::unistd::Group::from_name("kairos-test-extra")
        .expect("the group database")
        .expect("the group")
        .gid
        .as_raw()
}

/// A job run as `runner.shell.user` has that user's groups, supplementary ones included, and
/// none of root's.
#[actix_web::test]
async fn a_job_run_as_another_user_has_its_groups() {
    assert!(
        nix::unistd::Uid::effective().is_root(),
        "this test runs Kairos as root, as the test command does"
    );
    let extra = user_with_a_supplementary_group();
    let server = Server::start(
        "true",
        &[("KAIROS__RUNNER__SHELL__USER", "kairos-test-jobs")],
    )
    .await;
    let job = server
        .run_job(
            &json!({"command": "id -u; id -G", "execute_at": "2020-01-01T00:00:00Z"}),
            None,
        )
        .await;
    let user = nix::unistd::User::from_name("kairos-test-jobs")
        .expect("the user database")
        .expect("the user");
    let output = job["job"]["last_output"].as_str().expect("output");
    let mut lines = output.lines();
    assert_eq!(lines.next(), Some(user.uid.to_string().as_str()), "{job}");
    let groups: Vec<u32> = lines
        .next()
        .expect("the groups")
        .split_whitespace()
        .map(|gid| gid.parse().expect("a gid"))
        .collect();
    assert!(groups.contains(&user.gid.as_raw()), "{groups:?}");
    assert!(
        groups.contains(&extra),
        "no supplementary group: {groups:?}"
    );
    assert!(!groups.contains(&0), "root's group stayed: {groups:?}");
}
