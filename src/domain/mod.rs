//! The scheduler's vocabulary: jobs, their statuses, dispatches, attempt reports, the retry
//! policy and schedules. Plain data, shared by the API, the store, the bus and the actors.

mod job;
mod record;
mod retry;
pub mod schedule;
mod spec;
pub mod timestamp;

pub use job::{Job, JobKind, JobStatus, NewJob};
pub use record::{AttemptOutcome, AttemptReport, Dispatch};
pub use retry::RetryPolicy;
pub use schedule::{Fire, JobTemplate, NewSchedule, Overlap, Recurrence, Schedule};
pub use spec::{HttpSpec, JobSpec, KafkaSpec, Payload, ShellSpec, SpecError, SpecFields};
