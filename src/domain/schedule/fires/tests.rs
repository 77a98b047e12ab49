use super::*;

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .expect("an RFC 3339 instant")
        .with_timezone(&Utc)
}

fn cron_fires(expression: &str, zone: &str, from: &str, count: usize) -> Vec<String> {
    let fires = Fires::new(
        &Recurrence::Cron(expression.into()),
        zone,
        at(from),
        None,
        None,
    )
    .expect("a valid schedule");
    fires
        .upcoming(at(from), count)
        .iter()
        .map(|fire| fire.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .collect()
}

#[test]
fn a_six_field_expression_fires_on_its_seconds() {
    assert_eq!(
        cron_fires("*/20 * * * * *", "UTC", "2026-12-07T10:00:05Z", 4),
        [
            "2026-12-07T10:00:20Z",
            "2026-12-07T10:00:40Z",
            "2026-12-07T10:01:00Z",
            "2026-12-07T10:01:20Z"
        ]
    );
    // From a fraction of a second: the fires are still on whole seconds.
    assert_eq!(
        cron_fires("*/20 * * * * *", "UTC", "2026-12-07T10:00:19.998870Z", 2),
        ["2026-12-07T10:00:20Z", "2026-12-07T10:00:40Z"]
    );
    // Five fields: minute precision; `L`, `W`, `#` and macros.
    assert_eq!(
        cron_fires("30 2 * * *", "UTC", "2026-12-07T10:00:00Z", 1),
        ["2026-12-08T02:30:00Z"]
    );
    assert_eq!(
        cron_fires("0 0 L * *", "UTC", "2026-02-01T00:00:00Z", 2),
        ["2026-02-28T00:00:00Z", "2026-03-31T00:00:00Z"]
    );
    assert_eq!(
        cron_fires("0 9 * * 5#L", "UTC", "2026-12-01T00:00:00Z", 1),
        ["2026-12-25T09:00:00Z"]
    );
    assert_eq!(
        cron_fires("0 9 15W * *", "UTC", "2026-08-01T00:00:00Z", 1),
        ["2026-08-14T09:00:00Z"]
    );
    assert_eq!(
        cron_fires("@hourly", "UTC", "2026-12-07T10:20:00Z", 2),
        ["2026-12-07T11:00:00Z", "2026-12-07T12:00:00Z"]
    );
}

#[test]
fn berlin_a_time_in_the_spring_gap_fires_at_the_gaps_end_and_a_repeated_time_once() {
    // 2026-03-29: 02:00 CET becomes 03:00 CEST; 02:30 does not exist.
    assert_eq!(
        cron_fires("0 30 2 * * *", "Europe/Berlin", "2026-03-28T12:00:00Z", 2),
        ["2026-03-29T01:00:00Z", "2026-03-30T00:30:00Z"]
    );
    // 2026-10-25: 03:00 CEST becomes 02:00 CET; 02:30 happens twice, and fires once.
    assert_eq!(
        cron_fires("0 30 2 * * *", "Europe/Berlin", "2026-10-24T12:00:00Z", 2),
        ["2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"]
    );
}

#[test]
fn berlin_hourly_follows_absolute_time_across_both_changes() {
    assert_eq!(
        cron_fires("0 0 * * * *", "Europe/Berlin", "2026-03-28T23:30:00Z", 3),
        [
            "2026-03-29T00:00:00Z",
            "2026-03-29T01:00:00Z",
            "2026-03-29T02:00:00Z"
        ]
    );
    assert_eq!(
        cron_fires("0 0 * * * *", "Europe/Berlin", "2026-10-24T23:30:00Z", 4),
        [
            "2026-10-25T00:00:00Z",
            "2026-10-25T01:00:00Z",
            "2026-10-25T02:00:00Z",
            "2026-10-25T03:00:00Z"
        ]
    );
}

#[test]
fn new_york_fixed_times_and_minutes_across_both_changes() {
    // 2026-03-08: 02:00 EST becomes 03:00 EDT.
    assert_eq!(
        cron_fires(
            "0 30 2 * * *",
            "America/New_York",
            "2026-03-07T12:00:00Z",
            2
        ),
        ["2026-03-08T07:00:00Z", "2026-03-09T06:30:00Z"]
    );
    // 2026-11-01: 02:00 EDT becomes 01:00 EST; 01:30 fires at its first occurrence only.
    assert_eq!(
        cron_fires(
            "0 30 1 * * *",
            "America/New_York",
            "2026-10-31T12:00:00Z",
            2
        ),
        ["2026-11-01T05:30:00Z", "2026-11-02T06:30:00Z"]
    );
    // Every minute through the repeated hour: each absolute minute fires once.
    let minutes = cron_fires("0 * * * * *", "America/New_York", "2026-11-01T05:58:30Z", 4);
    assert_eq!(
        minutes,
        [
            "2026-11-01T05:59:00Z",
            "2026-11-01T06:00:00Z",
            "2026-11-01T06:01:00Z",
            "2026-11-01T06:02:00Z"
        ]
    );
    // From inside the second pass, the search goes forward.
    assert_eq!(
        cron_fires("0 * * * * *", "America/New_York", "2026-11-01T06:30:30Z", 2),
        ["2026-11-01T06:31:00Z", "2026-11-01T06:32:00Z"]
    );
}

#[test]
fn sao_paulo_a_gap_at_midnight_fires_at_one() {
    // 2018-11-04: 00:00 (-03) became 01:00 (-02): that day had no midnight.
    assert_eq!(
        cron_fires(
            "0 0 0 * * *",
            "America/Sao_Paulo",
            "2018-11-03T12:00:00Z",
            2
        ),
        ["2018-11-04T03:00:00Z", "2018-11-05T02:00:00Z"]
    );
    // 2019-02-17: 00:00 (-02) went back to 23:00 (-03) of the 16th; 23:30 fired once.
    assert_eq!(
        cron_fires(
            "0 30 23 * * *",
            "America/Sao_Paulo",
            "2019-02-16T12:00:00Z",
            2
        ),
        ["2019-02-17T01:30:00Z", "2019-02-18T02:30:00Z"]
    );
}

#[test]
fn every_counts_from_its_anchor_within_its_bounds() {
    let anchor = at("2026-12-07T10:00:00.250Z");
    let fires = Fires::new(
        &Recurrence::Every(Duration::from_secs(10)),
        "UTC",
        anchor,
        None,
        Some(at("2026-12-07T10:00:40Z")),
    )
    .expect("valid");
    let upcoming: Vec<DateTime<Utc>> = fires.upcoming(at("2026-12-07T10:00:05Z"), 10);
    assert_eq!(
        upcoming,
        [
            at("2026-12-07T10:00:10.250Z"),
            at("2026-12-07T10:00:20.250Z"),
            at("2026-12-07T10:00:30.250Z")
        ]
    );
    assert_eq!(
        fires.after(anchor - chrono::Duration::seconds(1)),
        Some(anchor)
    );
}

#[test]
fn bad_timings_are_refused_naming_their_field() {
    let refuse = |recurrence: Recurrence, zone: &str| {
        Fires::new(&recurrence, zone, Utc::now(), None, None)
            .expect_err("refused")
            .field
    };
    assert_eq!(refuse(Recurrence::Cron("61 * * * *".into()), "UTC"), "cron");
    assert_eq!(refuse(Recurrence::Cron("* * *".into()), "UTC"), "cron");
    assert_eq!(
        refuse(Recurrence::Cron("* * * * * * * *".into()), "UTC"),
        "cron"
    );
    assert_eq!(
        refuse(Recurrence::Cron("0 0 * * *".into()), "Mars/Olympus"),
        "timezone"
    );
    assert_eq!(
        refuse(Recurrence::Every(Duration::from_millis(10)), "UTC"),
        "every"
    );
}

#[test]
fn jitter_is_the_same_for_the_same_fire_and_within_its_bound() {
    let schedule = Uuid::from_u128(7);
    let fire = at("2026-12-07T10:00:00Z");
    assert_eq!(jitter(schedule, fire, 30), jitter(schedule, fire, 30));
    assert!(jitter(schedule, fire, 30) <= chrono::Duration::seconds(30));
    assert_eq!(jitter(schedule, fire, 0), chrono::Duration::zero());
    let spread: std::collections::HashSet<i64> = (0..50)
        .map(|n| jitter(schedule, fire + chrono::Duration::seconds(n), 30).num_milliseconds())
        .collect();
    assert!(spread.len() > 40, "jitter barely varies: {spread:?}");
}

#[test]
fn a_plan_makes_due_fires_and_catches_up_once() {
    let fires = Fires::new(
        &Recurrence::Every(Duration::from_secs(1)),
        "UTC",
        at("2026-12-07T10:00:00Z"),
        None,
        None,
    )
    .expect("valid");
    let now = at("2026-12-07T10:10:00Z");
    // Healthy: the fires ahead, up to the horizon.
    let plan_ahead = plan(
        &fires,
        now,
        now + chrono::Duration::seconds(3),
        now,
        Duration::from_secs(1),
        Duration::from_secs(60),
        100,
    );
    assert_eq!(plan_ahead.make.len(), 3);
    assert_eq!(plan_ahead.missed, 0);
    assert_eq!(plan_ahead.next, Some(now + chrono::Duration::seconds(3)));
    // Back after ten minutes down: the latest missed fire within the window runs once, the
    // rest are counted; then the fires ahead.
    let back = plan(
        &fires,
        now - chrono::Duration::seconds(600),
        now + chrono::Duration::seconds(2),
        now,
        Duration::from_secs(1),
        Duration::from_secs(60),
        10_000,
    );
    assert_eq!(back.missed, 598);
    assert_eq!(
        back.make,
        [
            now - chrono::Duration::seconds(2),
            now - chrono::Duration::seconds(1),
            now,
            now + chrono::Duration::seconds(1)
        ]
    );
}
