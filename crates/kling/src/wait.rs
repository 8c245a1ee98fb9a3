//! How often to ask about a job that takes minutes.

use std::time::Duration;

/// When to check a job: soon after submit, then less and less often, up to
/// a cap, with jitter so many clients do not poll in step.
///
/// The defaults see a job end within 10 seconds of its end while asking
/// about 27 times over a 4-minute job.
///
/// ```
/// use std::time::Duration;
/// use kling::WaitPolicy;
///
/// let policy = WaitPolicy::default();
/// let mut rng = fastrand::Rng::with_seed(1);
/// assert_eq!(policy.delay(0, &mut rng), Duration::from_secs(5));
/// assert!(policy.delay(9, &mut rng) <= Duration::from_secs(10));
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct WaitPolicy {
    /// The wait before the first check.
    pub first_check: Duration,
    /// Each wait is the previous one times this.
    pub growth: f64,
    /// The longest wait between checks.
    pub max_interval: Duration,
    /// How much of a wait may be cut at random (0 to 1); waits only get
    /// shorter, so `max_interval` stays a bound.
    pub jitter: f64,
    /// The wait between checks while the provider pushes job ends (Oxen's
    /// events, ShortAPI's callbacks): a safety net for a push that never
    /// comes.
    pub while_pushing: Duration,
}

impl Default for WaitPolicy {
    fn default() -> Self {
        WaitPolicy {
            first_check: Duration::from_secs(5),
            growth: 1.5,
            max_interval: Duration::from_secs(10),
            jitter: 0.2,
            while_pushing: Duration::from_secs(30),
        }
    }
}

impl WaitPolicy {
    /// The wait before check number `check` (0 for the first). The first
    /// has no jitter.
    pub fn delay(&self, check: u32, rng: &mut fastrand::Rng) -> Duration {
        if check == 0 {
            return self.first_check.min(self.max_interval);
        }
        let growth = self
            .growth
            .max(1.0)
            .powi(i32::try_from(check).unwrap_or(i32::MAX));
        let grown = self
            .first_check
            .mul_f64(growth.min(1e6))
            .min(self.max_interval);
        grown.mul_f64(1.0 - self.jitter.clamp(0.0, 1.0) * rng.f64())
    }
}

/// What [`Client::wait`](crate::Client::wait) does.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub struct WaitOptions {
    /// When to check.
    pub policy: WaitPolicy,
    /// The overall deadline, from the start of the wait; it also bounds
    /// each status request.
    pub deadline: Duration,
}

impl Default for WaitOptions {
    /// The default policy and a 30-minute deadline.
    fn default() -> Self {
        WaitOptions {
            policy: WaitPolicy::default(),
            deadline: Duration::from_secs(30 * 60),
        }
    }
}

impl WaitOptions {
    /// Sets the overall deadline.
    #[must_use]
    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.deadline = deadline;
        self
    }

    /// Sets the polling policy.
    #[must_use]
    pub fn policy(mut self, policy: WaitPolicy) -> Self {
        self.policy = policy;
        self
    }
}
