//! The dashboard at `/ui`, driven in headless Chromium as a person would use it: sign in with
//! a token, create a job through the form (the API's refusal shown beside its field first),
//! see it succeed with its output, filter the list, cancel a waiting job, pause a schedule;
//! then the same pages at a phone's width and in dark mode. The browser's console must stay
//! free of errors throughout. Screenshots of each page go to `target/dashboard/`.

use std::path::PathBuf;

use serde_json::{Value, json};

use super::Server;
use super::webdriver::Browser;

const TOKEN: &str = "dashboard-token-5f1c";

/// Where the screenshots of a run in `mode` go.
fn shots(mode: &str) -> PathBuf {
    let folder = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("target")
        .join("dashboard")
        .join(mode);
    std::fs::create_dir_all(&folder).expect("a folder");
    folder
}

/// Fails on any error the console recorded since the last look, but those `expected`
/// (substrings of their messages).
async fn assert_quiet(browser: &Browser, step: &str, expected: &[&str]) {
    let errors: Vec<(String, String)> = browser
        .console()
        .await
        .into_iter()
        .filter(|(level, message)| {
            level == "SEVERE" && !expected.iter().any(|allowed| message.contains(allowed))
        })
        .collect();
    assert!(errors.is_empty(), "console errors while {step}: {errors:?}");
}

async fn api(server: &Server, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
    let request = server
        .http
        .request(method, server.url(path))
        .bearer_auth(TOKEN);
    let request = match body {
        Some(body) => request.json(&body),
        None => request,
    };
    let answer = request.send().await.expect("answered");
    assert!(answer.status().is_success(), "{path}: {}", answer.status());
    answer.json().await.expect("JSON")
}

async fn get(server: &Server, path: &str) -> Value {
    api(server, reqwest::Method::GET, path, None).await
}

/// Filters the jobs list by `status` and `name` through its form.
async fn filter_list(browser: &Browser, status: &str, name: &str) {
    browser
        .run(
            "document.getElementById('filter-status').value = arguments[0]",
            json!([status]),
        )
        .await;
    browser.type_into("#filter-name", name).await;
    browser.click("#filter-apply").await;
}

/// The ids of the jobs the list shows, with their statuses.
async fn listed(browser: &Browser) -> Vec<(String, String)> {
    let rows = browser
        .run(
            "return [...document.querySelectorAll('#jobs-table tbody tr')]\
             .map((row) => [row.dataset.jobId, row.dataset.status])",
            json!([]),
        )
        .await;
    serde_json::from_value(rows).expect("rows")
}

#[actix_web::test]
async fn the_dashboard_works_in_a_real_browser_standalone() {
    let server = Server::start("true", &[("KAIROS__AUTH__TOKENS", TOKEN)]).await;
    drive_the_dashboard(&server, "standalone").await;
}

#[actix_web::test]
async fn the_dashboard_works_in_a_real_browser_distributed() {
    let id = uuid::Uuid::new_v4().simple().to_string();
    let database = super::install::create_test_database(&id).await;
    let mut env = super::install::distributed_env(&id, &database);
    env.push(("KAIROS__AUTH__TOKENS", TOKEN.to_owned()));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let server = Server::start("true", &env).await;
    drive_the_dashboard(&server, "distributed").await;
    drop(server);
    super::install::drop_test_database(&database).await;
}

async fn drive_the_dashboard(server: &Server, mode: &str) {
    let browser = Browser::start(1280, 900).await;
    let shots = shots(mode);
    let ui = server.url("/ui/");

    // A token is asked for once, and kept.
    browser.open(&ui).await;
    browser.type_into("#login-token", TOKEN).await;
    browser.click("#login-submit").await;
    browser
        .until(
            "the overview shows the job counts",
            "return document.querySelectorAll('#status-counts .count').length === 8 \
             && document.querySelectorAll('figure.chart').length === 2 \
             && document.querySelector('#actors table') !== null",
            json!([]),
        )
        .await;
    let scope = browser.text("#scope").await;
    let expected = match mode {
        "distributed" => "This process's view",
        _ => "This process (",
    };
    assert!(scope.starts_with(expected), "{scope}");
    assert_quiet(&browser, "signing in", &[]).await;

    // The form shows the API's refusal beside the field, then creates the job.
    browser.open(&format!("{ui}#/new")).await;
    browser.type_into("#field-name", "browser-made-job").await;
    browser.click("#job-form-submit").await;
    let refusal = browser
        .until(
            "the command's error is shown beside it",
            "return document.querySelector('.field-error[data-for=\"command\"]').textContent",
            json!([]),
        )
        .await;
    assert!(
        refusal
            .as_str()
            .is_some_and(|text| text.contains("command")),
        "{refusal}"
    );
    browser.screenshot(&shots.join("new-job-refused.png")).await;
    assert_quiet(
        &browser,
        "submitting a job without a command",
        &["status of 400"],
    )
    .await;
    browser
        .type_into("#field-command", "echo hello-from-the-browser")
        .await;
    browser.click("#job-form-submit").await;
    let status = browser
        .until(
            "the job's page shows SUCCESS",
            "const status = document.getElementById('job-status'); \
             return status && status.textContent === 'SUCCESS' && location.hash",
            json!([]),
        )
        .await;
    let made = status
        .as_str()
        .and_then(|hash| hash.strip_prefix("#/jobs/"))
        .expect("the job's page")
        .to_owned();
    let output = browser.text("#stdout-1").await;
    assert_eq!(output.trim(), "hello-from-the-browser");
    let stored = get(server, &format!("/api/v1/jobs/{made}")).await;
    assert_eq!(stored["job"]["name"], "browser-made-job");
    assert_eq!(stored["job"]["status"], "SUCCESS");
    browser.screenshot(&shots.join("job.png")).await;
    assert_quiet(&browser, "creating a job", &[]).await;

    // Run again from its page: a new job, which succeeds too.
    browser.click("#job-rerun").await;
    browser.confirm().await;
    let again = browser
        .until(
            "the new job's page shows SUCCESS",
            "const status = document.getElementById('job-status'); \
             return !location.hash.endsWith(arguments[0]) && status \
                 && status.textContent === 'SUCCESS' && location.hash",
            json!([made]),
        )
        .await;
    let again = again
        .as_str()
        .and_then(|hash| hash.strip_prefix("#/jobs/"))
        .expect("the new job's page")
        .to_owned();
    let stored = get(server, &format!("/api/v1/jobs/{again}")).await;
    assert_eq!(stored["job"]["rerun_of"], made.as_str());
    assert_eq!(stored["job"]["command"], "echo hello-from-the-browser");
    assert_quiet(&browser, "re-running a job", &[]).await;

    // A waiting job, cancelled from its page after a confirmation.
    let in_an_hour = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    let waiting = api(
        server,
        reqwest::Method::POST,
        "/api/v1/jobs",
        Some(json!({"name": "waits-an-hour", "command": "echo never", "execute_at": in_an_hour})),
    )
    .await["job"]["id"]
        .as_str()
        .expect("an id")
        .to_owned();
    browser.open(&format!("{ui}#/jobs/{waiting}")).await;
    browser.click("#job-cancel").await;
    browser.confirm().await;
    browser.until_text("#job-status", "CANCELLED").await;
    let stored = get(server, &format!("/api/v1/jobs/{waiting}")).await;
    assert_eq!(stored["job"]["status"], "CANCELLED");
    assert_eq!(stored["job"]["cancelled_by"], "token-1");
    assert_quiet(&browser, "cancelling a job", &[]).await;

    // The list, filtered by status and name through the filter form.
    browser.open(&format!("{ui}#/jobs")).await;
    browser.find("#jobs-table").await;
    filter_list(&browser, "CANCELLED", "WAITS").await;
    browser
        .until(
            "the list shows only the cancelled job",
            "const rows = [...document.querySelectorAll('#jobs-table tbody tr')]; \
             return rows.length === 1 && rows[0].dataset.jobId === arguments[0]",
            json!([waiting]),
        )
        .await;
    assert!(
        browser
            .run("return location.hash", json!([]))
            .await
            .as_str()
            .is_some_and(|hash| hash.contains("status=CANCELLED") && hash.contains("name=WAITS")),
        "the filter is in the address"
    );
    filter_list(&browser, "SUCCESS", "").await;
    browser
        .until(
            "the list shows the succeeded job",
            "return location.hash.includes('status=SUCCESS') && \
             [...document.querySelectorAll('#jobs-table tbody tr')]\
             .some((row) => row.dataset.jobId === arguments[0])",
            json!([made]),
        )
        .await;
    let rows = listed(&browser).await;
    assert!(
        rows.iter().all(|(_, status)| status == "SUCCESS"),
        "{rows:?}"
    );
    // A creation time range starting tomorrow (in the browser's zone) holds none of them.
    browser
        .run(
            "const at = new Date(Date.now() + 86400000); \
             const pad = (n) => String(n).padStart(2, '0'); \
             document.getElementById('filter-after').value = \
                 `${at.getFullYear()}-${pad(at.getMonth() + 1)}-${pad(at.getDate())}T00:00`",
            json!([]),
        )
        .await;
    browser.click("#filter-apply").await;
    browser
        .until(
            "a range from tomorrow lists nothing",
            "return location.hash.includes('created_after=') \
                 && document.getElementById('no-jobs') !== null",
            json!([]),
        )
        .await;
    browser.open(&format!("{ui}#/jobs")).await;
    browser
        .until(
            "the whole list shows the three jobs",
            "return document.querySelectorAll('#jobs-table tbody tr').length === 3",
            json!([]),
        )
        .await;
    browser.screenshot(&shots.join("jobs.png")).await;
    assert_quiet(&browser, "filtering the list", &[]).await;

    // A schedule made with its form: its page lists its next fires, and it is paused from
    // there.
    browser.open(&format!("{ui}#/new?what=schedule")).await;
    browser.type_into("#field-name", "hourly-digest").await;
    browser.type_into("#field-cron", "0 * * * *").await;
    browser.type_into("#field-job-command", "echo digest").await;
    browser.click("#schedule-form-submit").await;
    let schedule = browser
        .until(
            "the new schedule's page is shown",
            "return location.hash.startsWith('#/schedules/') && location.hash",
            json!([]),
        )
        .await
        .as_str()
        .and_then(|hash| hash.strip_prefix("#/schedules/"))
        .expect("the schedule's page")
        .to_owned();
    let stored = get(server, &format!("/api/v1/schedules/{schedule}")).await;
    assert_eq!(stored["schedule"]["cron"], "0 * * * *");
    assert_eq!(stored["schedule"]["job"]["command"], "echo digest");
    browser.open(&format!("{ui}#/schedules")).await;
    browser
        .find(&format!(
            "#schedules-table tr[data-schedule-id=\"{schedule}\"]"
        ))
        .await;
    browser.screenshot(&shots.join("schedules.png")).await;
    browser.open(&format!("{ui}#/schedules/{schedule}")).await;
    browser
        .until(
            "the next fires are listed",
            "return document.querySelectorAll('#next-fires li').length === 10",
            json!([]),
        )
        .await;
    browser.screenshot(&shots.join("schedule.png")).await;
    browser.click("#schedule-pause").await;
    browser.confirm().await;
    browser.until_text("#schedule-state", "PAUSED").await;
    let stored = get(server, &format!("/api/v1/schedules/{schedule}")).await;
    assert_eq!(stored["schedule"]["paused"], true);
    assert_quiet(&browser, "pausing a schedule", &[]).await;

    // The overview counts what happened.
    browser.open(&ui).await;
    browser
        .until(
            "the overview counts two successes and one cancel",
            "const count = (status) => document.querySelector(`.count[data-status=\"${status}\"] .number`)?.textContent; \
             return count('SUCCESS') === '2' && count('CANCELLED') === '1'",
            json!([]),
        )
        .await;
    browser.screenshot(&shots.join("overview.png")).await;

    // Dark mode: the page follows the system's preference.
    browser.color_scheme("dark").await;
    let background = browser
        .until(
            "the page turns dark",
            "const color = getComputedStyle(document.body).backgroundColor; \
             return color === 'rgb(15, 18, 22)' && color",
            json!([]),
        )
        .await;
    assert_eq!(background, "rgb(15, 18, 22)");
    browser.screenshot(&shots.join("overview-dark.png")).await;
    browser.open(&format!("{ui}#/jobs/{made}")).await;
    browser.find("#stdout-1").await;
    browser.screenshot(&shots.join("job-dark.png")).await;
    browser.color_scheme("light").await;

    // A phone's width: nothing is wider than the screen.
    browser.resize(390, 844).await;
    for (page, shot) in [("#/jobs", "jobs-phone.png"), ("#/", "overview-phone.png")] {
        browser.open(&format!("{ui}{page}")).await;
        browser
            .until(
                "the page is drawn",
                "return document.querySelector('#jobs-table, #actors table') !== null",
                json!([]),
            )
            .await;
        let overflow = browser
            .run(
                "return document.documentElement.scrollWidth - window.innerWidth",
                json!([]),
            )
            .await;
        assert!(
            overflow.as_i64().is_some_and(|pixels| pixels <= 0),
            "{page} is {overflow} px wider than a phone"
        );
        browser.screenshot(&shots.join(shot)).await;
    }
    assert_quiet(&browser, "the phone and dark views", &[]).await;

    // Signing out forgets the token: the next visit asks again.
    browser.click("#sign-out").await;
    browser.find("#login-token").await;
    browser.open(&ui).await;
    browser.find("#login-token").await;
    let kept = browser
        .run("return localStorage.getItem('kairos.token')", json!([]))
        .await;
    assert_eq!(kept, Value::Null);
}
