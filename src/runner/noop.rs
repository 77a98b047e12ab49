//! The `noop` kind: nothing runs, and the attempt succeeds at once. It takes no slot.

use super::{AttemptContext, RunResult, Runner, Slot};

/// Runs `noop` jobs.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoopRunner;

#[async_trait::async_trait]
impl Runner for NoopRunner {
    type Spec = ();

    fn slot(&self) -> Slot {
        Slot::None
    }

    async fn run(&self, (): &(), _: &AttemptContext) -> RunResult {
        RunResult::succeeded()
    }
}
