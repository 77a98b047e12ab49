//! The instants of Kafka records, as RFC 3339 text in UTC: `2026-11-27T14:00:32.123456Z`.
//!
//! The text is the one chrono's serde support writes (fraction of 0, 3, 6 or 9 digits, `Z`),
//! so records read the same either way; what differs is the cost. chrono writes through
//! `fmt::Display`, which serde_json then escapes a piece at a time, and reads with its lenient
//! general parser; both showed as a tenth of Kairos's CPU samples during a burst. Here the
//! usual form is written into a buffer at once and read by a strict fast path; anything else
//! falls back to chrono, so every instant chrono accepts is still accepted.
//!
//! Use with `#[serde(with = "crate::domain::timestamp")]`, or
//! `#[serde(default, with = "crate::domain::timestamp::option")]` for an `Option`.

use chrono::{DateTime, Datelike, FixedOffset, NaiveDate, NaiveDateTime, Timelike, Utc};
use serde::{Deserialize, Deserializer, Serializer};

/// The longest text [`format`] writes: `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ`.
const LONGEST: usize = 30;

/// Writes `at` as chrono's serde support does.
pub fn serialize<S: Serializer>(at: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
    let mut buffer = [0u8; LONGEST];
    match format(at, &mut buffer) {
        Some(text) => serializer.serialize_str(text),
        None => serializer.serialize_str(&at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)),
    }
}

/// Reads an instant in any form chrono's serde support reads.
pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<DateTime<Utc>, D::Error> {
    let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
    parse(&text).map_err(serde::de::Error::custom)
}

/// The same for an optional instant (`null` when absent).
pub mod option {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    /// Writes `Some` as [`super::serialize`] does, `None` as `null`.
    pub fn serialize<S: Serializer>(
        at: &Option<DateTime<Utc>>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match at {
            Some(at) => super::serialize(at, serializer),
            None => serializer.serialize_none(),
        }
    }

    /// Reads `null` as `None`, an instant as [`super::deserialize`] does.
    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<DateTime<Utc>>, D::Error> {
        let text = <Option<std::borrow::Cow<'de, str>>>::deserialize(deserializer)?;
        text.map(|text| super::parse(&text).map_err(serde::de::Error::custom))
            .transpose()
    }
}

/// `at` as `YYYY-MM-DDTHH:MM:SS[.fff|.ffffff|.fffffffff]Z` in `buffer`; `None` for the
/// instants this form cannot hold (years outside 0–9999, a leap second), which chrono writes.
fn format<'a>(at: &DateTime<Utc>, buffer: &'a mut [u8; LONGEST]) -> Option<&'a str> {
    let year = u32::try_from(at.year()).ok().filter(|year| *year <= 9999)?;
    let nanos = at.nanosecond();
    if nanos >= 1_000_000_000 {
        return None;
    }
    // chrono's `SecondsFormat::AutoSi`: the fewest of 0, 3, 6 or 9 digits that hold the
    // fraction exactly.
    let (fraction, digits) = match nanos {
        0 => (0, 0),
        _ if nanos.is_multiple_of(1_000_000) => (nanos / 1_000_000, 3),
        _ if nanos.is_multiple_of(1_000) => (nanos / 1_000, 6),
        _ => (nanos, 9),
    };
    put_digits(&mut buffer[0..4], year);
    put_digits(&mut buffer[5..7], at.month());
    put_digits(&mut buffer[8..10], at.day());
    put_digits(&mut buffer[11..13], at.hour());
    put_digits(&mut buffer[14..16], at.minute());
    put_digits(&mut buffer[17..19], at.second());
    for (at, byte) in [(4, b'-'), (7, b'-'), (10, b'T'), (13, b':'), (16, b':')] {
        buffer[at] = byte;
    }
    let mut end = 19;
    if digits > 0 {
        buffer[19] = b'.';
        end = 20 + digits;
        put_digits(&mut buffer[20..end], fraction);
    }
    buffer[end] = b'Z';
    std::str::from_utf8(&buffer[..=end]).ok()
}

/// Writes the last `digits.len()` decimal digits of `value` into `digits`.
fn put_digits(digits: &mut [u8], mut value: u32) {
    for digit in digits.iter_mut().rev() {
        *digit = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

/// Reads `text`: the form [`format`] writes by a fast path, any other RFC 3339 form (an
/// offset, a leap second, a lowercase `t`) as chrono does.
///
/// # Errors
/// chrono's error when `text` is not an instant.
pub fn parse(text: &str) -> Result<DateTime<Utc>, chrono::ParseError> {
    match parse_utc(text.as_bytes()) {
        Some(at) => Ok(at),
        None => text
            .parse::<DateTime<FixedOffset>>()
            .map(|at| at.with_timezone(&Utc)),
    }
}

/// `YYYY-MM-DDTHH:MM:SS[.f…]Z` with 1 to 9 fraction digits and a valid date and time, or
/// `None`.
fn parse_utc(text: &[u8]) -> Option<DateTime<Utc>> {
    let number = |range: std::ops::Range<usize>| -> Option<u32> {
        text.get(range)?.iter().try_fold(0u32, |value, byte| {
            byte.is_ascii_digit()
                .then(|| value * 10 + u32::from(byte - b'0'))
        })
    };
    let separators = [(4, b'-'), (7, b'-'), (10, b'T'), (13, b':'), (16, b':')];
    if text.len() < 20
        || text.last() != Some(&b'Z')
        || separators
            .iter()
            .any(|(at, byte)| text.get(*at) != Some(byte))
    {
        return None;
    }
    let nanos = match text.len() {
        20 => 0,
        22..=30 if text[19] == b'.' => {
            let digits = text.len() - 21;
            number(20..20 + digits)? * 10u32.pow(u32::try_from(9 - digits).ok()?)
        }
        _ => return None,
    };
    let date = NaiveDate::from_ymd_opt(
        i32::try_from(number(0..4)?).ok()?,
        number(5..7)?,
        number(8..10)?,
    )?;
    let second = number(17..19)?;
    // A leap second (60) takes chrono's path, which knows how to hold it.
    let time = (second < 60)
        .then(|| {
            chrono::NaiveTime::from_hms_nano_opt(number(11..13)?, number(14..16)?, second, nanos)
        })
        .flatten()?;
    Some(NaiveDateTime::new(date, time).and_utc())
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    /// What chrono's own serde support writes for `at`.
    fn chrono_text(at: DateTime<Utc>) -> String {
        serde_json::to_value(at)
            .ok()
            .and_then(|value| value.as_str().map(str::to_owned))
            .unwrap_or_default()
    }

    fn written(at: DateTime<Utc>) -> String {
        let mut buffer = [0u8; LONGEST];
        format(&at, &mut buffer)
            .map(str::to_owned)
            .unwrap_or_default()
    }

    fn instants() -> Vec<DateTime<Utc>> {
        let base = Utc
            .with_ymd_and_hms(2026, 11, 27, 14, 0, 32)
            .single()
            .unwrap_or_default();
        let mut instants = vec![
            base,
            Utc.with_ymd_and_hms(1, 1, 1, 0, 0, 0)
                .single()
                .unwrap_or_default(),
            Utc.with_ymd_and_hms(9999, 12, 31, 23, 59, 59)
                .single()
                .unwrap_or_default(),
            Utc.with_ymd_and_hms(2024, 2, 29, 9, 5, 7)
                .single()
                .unwrap_or_default(),
        ];
        for nanos in [
            1,
            10,
            999,
            1_000,
            120_000,
            123_456,
            1_000_000,
            5_000_000,
            123_456_789,
            999_999_999,
        ] {
            instants.push(base + chrono::Duration::nanoseconds(nanos));
        }
        instants
    }

    #[test]
    fn writes_what_chrono_writes() {
        for at in instants() {
            assert_eq!(written(at), chrono_text(at), "{at:?}");
        }
    }

    #[test]
    fn reads_back_what_it_writes_and_what_chrono_writes() {
        for at in instants() {
            assert_eq!(parse(&written(at)).ok(), Some(at));
            assert_eq!(parse(&chrono_text(at)).ok(), Some(at));
            assert_eq!(
                parse_utc(written(at).as_bytes()),
                Some(at),
                "the fast path reads {at:?}"
            );
        }
    }

    #[test]
    fn reads_the_other_forms_chrono_reads() {
        let at = Utc.with_ymd_and_hms(2026, 11, 27, 12, 0, 32).single();
        for text in [
            "2026-11-27T14:00:32+02:00",
            "2026-11-27T12:00:32+00:00",
            "2026-11-27t12:00:32z",
            "2026-11-27T12:00:32.0Z",
        ] {
            assert_eq!(parse(text).ok(), at, "{text}");
        }
        let leap = parse("2016-12-31T23:59:60Z").expect("a leap second");
        assert_eq!(leap.nanosecond(), 1_000_000_000);
    }

    #[test]
    fn rejects_what_is_not_an_instant() {
        for text in [
            "",
            "yesterday",
            "2026-13-01T00:00:00Z",
            "2026-02-30T00:00:00Z",
            "2026-11-27T24:00:00Z",
            "2026-11-27T12:00:32.Z",
            "2026-11-27T12:00:32",
        ] {
            assert!(parse(text).is_err(), "{text} was read");
        }
    }

    /// Odd texts are read exactly as chrono reads them, whichever path takes them.
    #[test]
    fn reads_odd_texts_as_chrono_does() {
        for text in [
            "2026-1-27T12:00:32Z",
            "2026-11-27T12:00:32.1234567890Z",
            "2026-11-27 12:00:32Z",
            "2026-11-27T12:00:32.5+00:00",
            "2026-11-27T12:00:32.000000000Z",
            "0000-01-01T00:00:00Z",
            "2026-11-27T12:00Z",
            "2026-11-27T12:00:32.123Z ",
            "+2026-11-27T12:00:32Z",
        ] {
            let chrono = text
                .parse::<DateTime<FixedOffset>>()
                .map(|at| at.with_timezone(&Utc));
            assert_eq!(parse(text).ok(), chrono.ok(), "{text}");
        }
    }

    #[test]
    fn round_trips_through_serde_json_with_and_without_a_value() {
        #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
        struct Record {
            #[serde(with = "super")]
            at: DateTime<Utc>,
            #[serde(default, with = "super::option")]
            ended: Option<DateTime<Utc>>,
        }
        for at in instants() {
            for ended in [None, Some(at)] {
                let record = Record { at, ended };
                let json = serde_json::to_string(&record).unwrap_or_default();
                let expected = match ended {
                    None => format!(r#"{{"at":"{0}","ended":null}}"#, chrono_text(at)),
                    Some(_) => format!(r#"{{"at":"{0}","ended":"{0}"}}"#, chrono_text(at)),
                };
                assert_eq!(json, expected);
                assert_eq!(serde_json::from_str::<Record>(&json).ok(), Some(record));
            }
        }
        let without = serde_json::from_str::<Record>(r#"{"at":"2026-11-27T12:00:32Z"}"#);
        assert_eq!(without.ok().and_then(|record| record.ended), None);
        assert!(serde_json::from_str::<Record>(r#"{"at":"noon"}"#).is_err());
    }
}
