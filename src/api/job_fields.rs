//! The shape of job-creating bodies, read straight from their bytes: each job's fields are
//! kept as JSON for `job_input` to check, but no map of field names is built per job. Building
//! and dropping those maps cost about a third of Kairos's time per 10,000-job batch
//! (`docs/performance.md`, item 26).
//!
//! Every visitor here accepts any JSON value where it stands and records what it found, so
//! that the checks, not the reading, decide which problem to answer.

use std::borrow::Cow;
use std::fmt;

use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use crate::domain::SpecFields;

/// The visitor methods of JSON's scalars, each answering `$value`.
macro_rules! scalars_answer {
    ($value:expr) => {
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok($value)
        }

        fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
            Ok($value)
        }

        fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
            Ok($value)
        }

        fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
            Ok($value)
        }

        fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
            Ok($value)
        }

        fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
            Ok($value)
        }
    };
}

/// The fields a job may carry: the names [`JobFields`] reads (its kind's fields are those of
/// [`SpecFields::NAMES`]).
pub const FIELDS: [&str; 17] = [
    "name",
    "kind",
    "execute_at",
    "max_retries",
    "timeout_secs",
    "metadata",
    "retry_backoff",
    "idempotency_key",
    "command",
    "url",
    "method",
    "headers",
    "body",
    "success_status",
    "topic",
    "key",
    "value",
];

/// One job's fields as given; a JSON `null` reads as absent.
#[derive(Debug, Default)]
pub struct JobFields {
    pub name: Option<Value>,
    pub kind: Option<Value>,
    /// The fields of the job's kind (and of any other kind, which its check refuses).
    pub spec: SpecFields,
    pub execute_at: Option<Value>,
    pub max_retries: Option<Value>,
    pub timeout_secs: Option<Value>,
    pub metadata: Option<Value>,
    pub retry_backoff: Option<Value>,
    /// A batch job's idempotency key (a single create takes it as a header).
    pub idempotency_key: Option<Value>,
    /// The first field, in the order given, that is not a job field.
    pub unknown: Option<String>,
}

/// A batch body `{"jobs": [...]}` as given.
#[derive(Debug, Default)]
pub struct BatchFields {
    /// `None` when `jobs` is absent or not an array; each element `None` when it is not an
    /// object.
    pub jobs: Option<Vec<Option<JobFields>>>,
    /// The first field, in the order given, that is not `jobs`.
    pub unknown: Option<String>,
}

/// A field name, borrowed from the body unless it holds escapes.
struct Key<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;

        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;

            fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
                formatter.write_str("a field name")
            }

            fn visit_borrowed_str<E>(self, key: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(key)))
            }

            fn visit_str<E>(self, key: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(key.to_owned())))
            }
        }

        deserializer.deserialize_str(KeyVisitor)
    }
}

/// Reads an object's fields into a [`JobFields`].
struct JobFieldsVisitor;

impl<'de> Visitor<'de> for JobFieldsVisitor {
    type Value = JobFields;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<JobFields, A::Error> {
        let mut fields = JobFields::default();
        while let Some(Key(key)) = map.next_key()? {
            let slot = match key.as_ref() {
                "name" => &mut fields.name,
                "kind" => &mut fields.kind,
                "execute_at" => &mut fields.execute_at,
                "max_retries" => &mut fields.max_retries,
                "timeout_secs" => &mut fields.timeout_secs,
                "metadata" => &mut fields.metadata,
                "retry_backoff" => &mut fields.retry_backoff,
                "idempotency_key" => &mut fields.idempotency_key,
                other => match fields.spec.field_mut(other) {
                    Some(slot) => slot,
                    None => {
                        fields.unknown.get_or_insert_with(|| key.into_owned());
                        map.next_value::<IgnoredAny>()?;
                        continue;
                    }
                },
            };
            // A repeated field keeps its last value, as a JSON object read into a map does.
            *slot = map.next_value()?;
        }
        Ok(fields)
    }
}

impl<'de> Deserialize<'de> for JobFields {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(JobFieldsVisitor)
    }
}

impl<'de> Deserialize<'de> for BatchFields {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct BatchVisitor;

        impl<'de> Visitor<'de> for BatchVisitor {
            type Value = BatchFields;

            fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
                formatter.write_str("a JSON object")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<BatchFields, A::Error> {
                let mut batch = BatchFields::default();
                while let Some(Key(key)) = map.next_key()? {
                    if key == "jobs" {
                        batch.jobs = map.next_value::<Items>()?.0;
                    } else {
                        batch.unknown.get_or_insert_with(|| key.into_owned());
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(batch)
            }
        }

        deserializer.deserialize_map(BatchVisitor)
    }
}

/// A batch's `jobs`: its elements if it is an array.
struct Items(Option<Vec<Option<JobFields>>>);

impl<'de> Deserialize<'de> for Items {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ItemsVisitor;

        impl<'de> Visitor<'de> for ItemsVisitor {
            type Value = Items;

            fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
                formatter.write_str("any JSON value")
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Items, A::Error> {
                let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
                while let Some(Item(item)) = seq.next_element()? {
                    items.push(item);
                }
                Ok(Items(Some(items)))
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Items, A::Error> {
                IgnoredAny.visit_map(map).map(|_| Items(None))
            }

            scalars_answer!(Items(None));
        }

        deserializer.deserialize_any(ItemsVisitor)
    }
}

/// An element of a batch's `jobs`: a job's fields if it is an object.
struct Item(Option<JobFields>);

impl<'de> Deserialize<'de> for Item {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ItemVisitor;

        impl<'de> Visitor<'de> for ItemVisitor {
            type Value = Item;

            fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
                formatter.write_str("any JSON value")
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Item, A::Error> {
                JobFieldsVisitor
                    .visit_map(map)
                    .map(|fields| Item(Some(fields)))
            }

            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Item, A::Error> {
                IgnoredAny.visit_seq(seq).map(|_| Item(None))
            }

            scalars_answer!(Item(None));
        }

        deserializer.deserialize_any(ItemVisitor)
    }
}
