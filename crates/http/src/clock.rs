//! The time source waits and retries go through.

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

/// Time as a wait sees it: how long since the clock started, and a way to
/// let time pass. [`TokioClock`] is real time; tests supply a virtual clock
/// whose `sleep` returns at once and moves `now` on.
///
/// ```
/// use std::time::Duration;
/// use kling_http::{Clock, TokioClock};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let clock = TokioClock::new();
/// clock.sleep(Duration::from_millis(1)).await;
/// assert!(clock.now() >= Duration::from_millis(1));
/// # }
/// ```
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Time since the clock started.
    fn now(&self) -> Duration;

    /// Lets `duration` pass.
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send + '_>>;
}

/// Real time, through tokio's timer.
#[derive(Debug, Clone, Copy)]
pub struct TokioClock {
    start: Instant,
}

impl TokioClock {
    /// A clock starting now.
    pub fn new() -> Self {
        TokioClock {
            start: Instant::now(),
        }
    }
}

impl Default for TokioClock {
    fn default() -> Self {
        TokioClock::new()
    }
}

impl Clock for TokioClock {
    fn now(&self) -> Duration {
        self.start.elapsed()
    }

    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(tokio::time::sleep(duration))
    }
}
