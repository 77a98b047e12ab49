//! When to try again after a failed attempt.

use std::time::Duration;

use rand::Rng;
use serde::{Deserialize, Serialize};

/// Exponential backoff with jitter: the wait before retry `n` (1-based) is
/// `base × 2^(n-1)`, capped at `max`, then scaled by a random factor in
/// `[1 - jitter, 1 + jitter]` so that jobs failing together do not retry in lockstep. A job
/// may carry its own (`retry_backoff`, durations written as the configuration writes them:
/// `{"base": "100ms", "max": "1m", "jitter": 0.25}`); otherwise the configured one applies.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RetryPolicy {
    #[serde(with = "humantime_serde")]
    #[schema(value_type = String, example = "100ms")]
    pub base: Duration,
    #[serde(with = "humantime_serde")]
    #[schema(value_type = String, example = "1m")]
    pub max: Duration,
    #[serde(default = "RetryPolicy::default_jitter")]
    pub jitter: f64,
}

impl RetryPolicy {
    /// The spread of the random factor around 1 when none is given.
    pub const JITTER: f64 = 0.25;

    fn default_jitter() -> f64 {
        Self::JITTER
    }

    /// The wait before retry number `retry` (1 for the first retry).
    pub fn backoff(&self, retry: u32) -> Duration {
        let exponential = self
            .base
            .saturating_mul(2_u32.saturating_pow(retry.saturating_sub(1)));
        let capped = exponential.min(self.max);
        let jitter = self.jitter.clamp(0.0, 1.0);
        let factor = rand::rng().random_range((1.0 - jitter)..=(1.0 + jitter));
        capped.mul_f64(factor)
    }

    /// The longest wait this policy gives (the cap, with its jitter).
    pub fn longest(&self) -> Duration {
        self.max.mul_f64(1.0 + self.jitter.clamp(0.0, 1.0))
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
            jitter: RetryPolicy::JITTER,
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
