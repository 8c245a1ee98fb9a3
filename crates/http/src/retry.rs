//! When and how long to wait before trying an idempotent request again.

use std::time::Duration;

/// Jittered exponential backoff with a cap, for requests that are safe to
/// repeat (status, cancel, download). Creates are never retried.
///
/// ```
/// use std::time::Duration;
/// use kling_http::RetryPolicy;
///
/// let policy = RetryPolicy::default();
/// // The n-th retry waits between half and all of base * 2^(n-1), capped.
/// let wait = policy.backoff(3, &mut fastrand::Rng::with_seed(1));
/// assert!(wait >= Duration::from_secs(1) && wait <= Duration::from_secs(2));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Tries in all, the first included.
    pub max_attempts: u32,
    /// The wait before the first retry, before jitter.
    pub base_delay: Duration,
    /// The longest wait between tries.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    /// 6 tries, from 0.5 s doubling to at most 8 s: about 15 s of retrying.
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 6,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(8),
        }
    }
}

impl RetryPolicy {
    /// No retries: one try only.
    pub const NONE: RetryPolicy = RetryPolicy {
        max_attempts: 1,
        base_delay: Duration::ZERO,
        max_delay: Duration::ZERO,
    };

    /// The wait before retry number `retry` (1 for the first retry): a
    /// random point between half and all of `base * 2^(retry-1)`, capped at
    /// `max_delay`. The jitter keeps many clients from retrying in step.
    pub fn backoff(&self, retry: u32, rng: &mut fastrand::Rng) -> Duration {
        let exponent = retry.saturating_sub(1).min(20);
        let full = self
            .base_delay
            .saturating_mul(1 << exponent)
            .min(self.max_delay);
        let half = full / 2;
        let spread = u64::try_from(full.saturating_sub(half).as_millis()).unwrap_or(u64::MAX);
        half + Duration::from_millis(rng.u64(0..=spread))
    }

    /// The wait before a retry the server asked to delay: its `Retry-After`
    /// when given (capped at a minute), else the backoff.
    pub fn delay(
        &self,
        retry: u32,
        retry_after: Option<Duration>,
        rng: &mut fastrand::Rng,
    ) -> Duration {
        match retry_after {
            Some(asked) => asked.min(Duration::from_secs(60)),
            None => self.backoff(retry, rng),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_stays_within_its_bounds() {
        let policy = RetryPolicy::default();
        let mut rng = fastrand::Rng::with_seed(7);
        for retry in 1..=10 {
            let full = Duration::from_millis(500)
                .saturating_mul(1 << (retry - 1))
                .min(Duration::from_secs(8));
            for _ in 0..50 {
                let wait = policy.backoff(retry, &mut rng);
                assert!(wait >= full / 2 && wait <= full, "retry {retry}: {wait:?}");
            }
        }
        assert_eq!(
            policy.delay(1, Some(Duration::from_secs(3)), &mut rng),
            Duration::from_secs(3)
        );
        assert_eq!(
            policy.delay(1, Some(Duration::from_secs(3600)), &mut rng),
            Duration::from_secs(60)
        );
    }
}
