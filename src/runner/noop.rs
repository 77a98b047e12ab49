//! The `noop` kind: nothing runs, and the attempt succeeds at once. It takes no run slot.

use super::{AttemptContext, RunResult, Runner};

/// Runs `noop` jobs.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoopRunner;

#[async_trait::async_trait]
impl Runner for NoopRunner {
    type Spec = ();

    fn takes_run_slot(&self) -> bool {
        false
    }

    async fn run(&self, (): &(), _: &AttemptContext) -> RunResult {
        RunResult::succeeded()
    }
}
