//! How the client prints what Kairos answers: aligned columns with relative times for people,
//! JSON (the API's own) or one JSON value per line for programs.

use chrono::{DateTime, Utc};
use serde_json::Value;

/// The chosen output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Table,
    Json,
    Jsonl,
}

/// Prints `value` as JSON: pretty for `json`, one line for `jsonl`.
fn print_json(format: Format, value: &Value) {
    match format {
        Format::Jsonl => println!("{value}"),
        _ => println!(
            "{}",
            serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
        ),
    }
}

/// Prints `items` as JSON: the array for `json`, one item per line for `jsonl`.
fn print_items(format: Format, items: &Value) {
    match (format, items.as_array()) {
        (Format::Jsonl, Some(items)) => items.iter().for_each(|item| println!("{item}")),
        _ => print_json(format, items),
    }
}

/// A row per item of the array `items` (none when it is not one).
fn rows(items: &Value, row: impl Fn(&Value) -> Vec<String>) -> Vec<Vec<String>> {
    items
        .as_array()
        .map(|items| items.iter().map(row).collect())
        .unwrap_or_default()
}

/// Prints rows under a header, each column as wide as its widest cell.
fn table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|cell| cell.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(header.iter().map(|cell| (*cell).to_owned()).collect());
    for row in rows {
        line(row.clone());
    }
}

/// A string field, or `-`.
fn text(value: &Value) -> String {
    match value {
        Value::Null => "-".to_owned(),
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// An instant relative to now: `in 5m`, `3h ago`, `now`.
pub fn relative(value: &Value) -> String {
    let Some(instant) = value
        .as_str()
        .and_then(|text| text.parse::<DateTime<Utc>>().ok())
    else {
        return text(value);
    };
    let seconds = (instant - Utc::now()).num_seconds();
    let magnitude = seconds.unsigned_abs();
    let amount = match magnitude {
        0..=1 => return "now".to_owned(),
        2..=119 => format!("{magnitude}s"),
        120..=7_199 => format!("{}m", magnitude / 60),
        7_200..=172_799 => format!("{}h", magnitude / 3600),
        _ => format!("{}d", magnitude / 86_400),
    };
    match seconds > 0 {
        true => format!("in {amount}"),
        false => format!("{amount} ago"),
    }
}

fn job_row(job: &Value) -> Vec<String> {
    vec![
        text(&job["id"]),
        text(&job["name"]),
        text(&job["kind"]),
        text(&job["status"]),
        relative(&job["execute_at"]),
        text(&job["attempts"]),
        text(&job["exit_code"]),
    ]
}

const JOB_COLUMNS: [&str; 7] = [
    "ID",
    "NAME",
    "KIND",
    "STATUS",
    "EXECUTE AT",
    "ATTEMPTS",
    "EXIT",
];

/// A job with its attempts (`{"job": …, "attempts": […]}`).
pub fn job(format: Format, answer: &Value) {
    if format != Format::Table {
        return print_json(format, answer);
    }
    table(&JOB_COLUMNS, &[job_row(&answer["job"])]);
    let attempts = rows(&answer["attempts"], |attempt| {
        vec![
            text(&attempt["attempt"]),
            text(&attempt["status"]),
            relative(&attempt["started_at"]),
            relative(&attempt["finished_at"]),
            text(&attempt["exit_code"]),
            text(&attempt["error"]),
        ]
    });
    if !attempts.is_empty() {
        println!();
        table(
            &["ATTEMPT", "STATUS", "STARTED", "FINISHED", "EXIT", "ERROR"],
            &attempts,
        );
    }
}

/// A list of jobs.
pub fn jobs(format: Format, jobs: &Value) {
    if format != Format::Table {
        return print_items(format, jobs);
    }
    table(&JOB_COLUMNS, &rows(jobs, job_row));
}

/// The stdout and stderr of a job's attempts (of one, when `only` is given).
pub fn logs(format: Format, answer: &Value, only: Option<i64>) {
    let attempts: Vec<Value> = answer["attempts"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|attempt| only.is_none_or(|only| attempt["attempt"].as_i64() == Some(only)))
        .map(|attempt| {
            serde_json::json!({
                "attempt": attempt["attempt"], "status": attempt["status"],
                "exit_code": attempt["exit_code"], "stdout": attempt["stdout"],
                "stderr": attempt["stderr"],
            })
        })
        .collect();
    if format != Format::Table {
        return print_items(format, &Value::Array(attempts));
    }
    for attempt in attempts {
        println!(
            "== attempt {} ({}, exit {})",
            text(&attempt["attempt"]),
            text(&attempt["status"]),
            text(&attempt["exit_code"])
        );
        for stream in ["stdout", "stderr"] {
            if let Some(output) = attempt[stream].as_str().filter(|output| !output.is_empty()) {
                println!("-- {stream}");
                print!("{output}");
                if !output.ends_with('\n') {
                    println!();
                }
            }
        }
    }
}

/// One line saying where a job stands, for `jobs watch`.
pub fn status_line(job: &Value) -> String {
    format!(
        "{} {}: attempt {}, due {}",
        text(&job["id"]),
        text(&job["status"]),
        text(&job["attempts"]),
        relative(&job["execute_at"])
    )
}

fn schedule_row(schedule: &Value) -> Vec<String> {
    let rule = match &schedule["cron"] {
        Value::String(cron) => cron.clone(),
        _ => format!("every {}", text(&schedule["every"])),
    };
    vec![
        text(&schedule["id"]),
        text(&schedule["name"]),
        rule,
        text(&schedule["timezone"]),
        relative(&schedule["next_fire_at"]),
        text(&schedule["paused"]),
        text(&schedule["missed_fires"]),
    ]
}

const SCHEDULE_COLUMNS: [&str; 7] = [
    "ID",
    "NAME",
    "RULE",
    "TIMEZONE",
    "NEXT FIRE",
    "PAUSED",
    "MISSED",
];

/// A schedule with its next fires and latest jobs (`{"schedule": …, …}`).
pub fn schedule(format: Format, view: &Value) {
    if format != Format::Table {
        return print_json(format, view);
    }
    table(&SCHEDULE_COLUMNS, &[schedule_row(&view["schedule"])]);
    let next = rows(&view["next_fires"], |at| vec![text(at), relative(at)]);
    if !next.is_empty() {
        println!();
        table(&["NEXT FIRES", ""], &next);
    }
    let last = rows(&view["last_fires"], |fire| {
        vec![
            relative(&fire["scheduled_for"]),
            text(&fire["job_id"]),
            text(&fire["status"]),
        ]
    });
    if !last.is_empty() {
        println!();
        table(&["FIRED", "JOB", "STATUS"], &last);
    }
}

/// A list of schedules.
pub fn schedules(format: Format, schedules: &Value) {
    if format != Format::Table {
        return print_items(format, schedules);
    }
    table(&SCHEDULE_COLUMNS, &rows(schedules, schedule_row));
}

/// Fires made and their jobs.
pub fn fires(format: Format, fires: &Value) {
    if format != Format::Table {
        return print_items(format, fires);
    }
    let fires = rows(fires, |fire| {
        vec![text(&fire["scheduled_for"]), text(&fire["job_id"])]
    });
    table(&["SCHEDULED FOR", "JOB"], &fires);
}

/// Instants, as a preview answers them.
pub fn times(format: Format, times: &Value) {
    if format != Format::Table {
        return print_items(format, times);
    }
    table(
        &["FIRE", ""],
        &rows(times, |at| vec![text(at), relative(at)]),
    );
}

/// What a command did, when the server answers nothing.
pub fn done(format: Format, what: &Value) {
    match format {
        Format::Table => {
            if let Some(fields) = what.as_object() {
                for (key, value) in fields {
                    println!("{key} {}", text(value));
                }
            }
        }
        _ => print_json(format, what),
    }
}

/// Readiness and, when readable, the actors.
pub fn status(format: Format, readiness: &Value, actors: Option<&Value>) {
    if format != Format::Table {
        let mut all = serde_json::json!({"readiness": readiness});
        if let Some(actors) = actors {
            all["actors"] = actors.clone();
        }
        return print_json(format, &all);
    }
    println!("status  {}", text(&readiness["status"]));
    println!("mode    {}", text(&readiness["mode"]));
    for dependency in ["store", "bus"] {
        let check = &readiness["checks"][dependency];
        let state = match check["ok"].as_bool() {
            Some(true) => "ok".to_owned(),
            _ => format!("DOWN: {}", text(&check["reason"])),
        };
        println!("{dependency:<7} {} ({state})", text(&check["location"]));
    }
    let Some(actors) = actors else {
        println!("actors  (the token may not read /api/v1/admin/actors)");
        return;
    };
    println!();
    let rows: Vec<Vec<String>> = ["scanner", "dispatcher", "executor", "result_writer"]
        .iter()
        .map(|kind| {
            let actor = &actors["actors"][*kind];
            let backlog = match &actor["backlog"] {
                Value::Object(fields) => fields
                    .iter()
                    .map(|(key, value)| format!("{key}={value}"))
                    .collect::<Vec<_>>()
                    .join(" "),
                _ => "-".to_owned(),
            };
            vec![
                (*kind).to_owned(),
                text(&actor["alive"]),
                text(&actor["restarts"]),
                backlog,
            ]
        })
        .collect();
    table(&["ACTOR", "ALIVE", "RESTARTS", "BACKLOG"], &rows);
}
