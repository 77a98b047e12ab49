//! When to try again after a failed attempt.

use std::time::Duration;

use rand::Rng;

/// Exponential backoff with jitter: the wait before retry `n` (1-based) is
/// `base × 2^(n-1)`, capped at `max`, then scaled by a random factor in `[0.75, 1.25]` so
/// that jobs failing together do not retry in lockstep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub base: Duration,
    pub max: Duration,
}

impl RetryPolicy {
    /// The spread of the random factor around 1.
    const JITTER: f64 = 0.25;

    /// The wait before retry number `retry` (1 for the first retry).
    pub fn backoff(&self, retry: u32) -> Duration {
        let exponential = self
            .base
            .saturating_mul(2_u32.saturating_pow(retry.saturating_sub(1)));
        let capped = exponential.min(self.max);
        let factor = rand::rng().random_range((1.0 - Self::JITTER)..=(1.0 + Self::JITTER));
        capped.mul_f64(factor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_exponentially_within_jitter_and_is_capped() {
        let policy = RetryPolicy {
            base: Duration::from_millis(100),
            max: Duration::from_secs(1),
        };
        for (retry, nominal) in [
            (1, 100),
            (2, 200),
            (3, 400),
            (4, 800),
            (5, 1000),
            (10, 1000),
        ] {
            let wait = policy.backoff(retry).as_secs_f64() * 1000.0;
            let nominal = f64::from(nominal);
            assert!(
                wait >= nominal * 0.75 - 1e-6 && wait <= nominal * 1.25 + 1e-6,
                "retry {retry}: {wait} ms"
            );
        }
    }
}
