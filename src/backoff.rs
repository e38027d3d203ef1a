//! Exponential backoff: how long to wait before retrying something that keeps failing.
//!
//! Every retrying part of a node (chat adapters, sensor sources, presence scans, bootstrap
//! redials, the webhook) waits `first`, then `2·first`, `4·first`, ... up to `cap`, and starts
//! again from `first` after a success. Each keeps its own `first` and `cap` as named constants
//! in its own module. This module imports nothing from the crate, so every layer may use it.

use std::time::Duration;

/// The waits between attempts: `first`, doubling on each failure, never above `cap`.
///
/// A `first` longer than `cap` is kept as it is: a source read every 10 minutes is not
/// retried sooner than its interval because the cap for faster sources is 5 minutes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    first: Duration,
    cap: Duration,
    failures: u32,
}

impl Backoff {
    /// A backoff that waits `first` after the first failure and at most `cap` (or `first`,
    /// if longer) after any later one.
    pub const fn new(first: Duration, cap: Duration) -> Backoff {
        Backoff {
            first,
            cap,
            failures: 0,
        }
    }

    /// The wait at `step` (0 for the first): `first · 2^step`, at most the cap, never less
    /// than `first`. Saturates rather than overflows however large `step` is.
    pub fn delay(&self, step: u32) -> Duration {
        let factor = 2u32.saturating_pow(step);
        self.first
            .saturating_mul(factor)
            .min(self.cap)
            .max(self.first)
    }

    /// Counts one more failure and returns the wait before the next attempt: `first` after
    /// the first failure, twice as long after the next, and so on up to the cap.
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.delay(self.failures);
        self.failures = self.failures.saturating_add(1);
        delay
    }

    /// The attempt succeeded: the next failure waits `first` again.
    pub fn reset(&mut self) {
        self.failures = 0;
    }

    /// Failures counted since the last [`reset`](Backoff::reset).
    pub fn failures(&self) -> u32 {
        self.failures
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn waits_double_from_first_up_to_the_cap() {
        let mut backoff = Backoff::new(SECOND, 10 * SECOND);
        let waits: Vec<u64> = (0..6).map(|_| backoff.next_delay().as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 10, 10]);
        assert_eq!(backoff.failures(), 6);
    }

    #[test]
    fn reset_starts_again_from_first() {
        let mut backoff = Backoff::new(3 * SECOND, 60 * SECOND);
        for _ in 0..4 {
            backoff.next_delay();
        }
        backoff.reset();
        assert_eq!(backoff.failures(), 0);
        assert_eq!(backoff.next_delay(), 3 * SECOND);
        assert_eq!(backoff.next_delay(), 6 * SECOND);
    }

    #[test]
    fn many_failures_stay_at_the_cap_without_overflow() {
        let mut backoff = Backoff::new(SECOND, 300 * SECOND);
        for _ in 0..10_000 {
            assert!(backoff.next_delay() <= 300 * SECOND);
        }
        assert_eq!(backoff.next_delay(), 300 * SECOND);
        assert_eq!(backoff.delay(u32::MAX), 300 * SECOND);
        // Even a first wait near the largest Duration does not overflow when doubled.
        let huge = Backoff::new(Duration::MAX / 2, Duration::MAX);
        assert_eq!(huge.delay(40), Duration::MAX);
        // The failure count saturates too.
        let mut counted = Backoff {
            failures: u32::MAX,
            ..Backoff::new(SECOND, 8 * SECOND)
        };
        assert_eq!(counted.next_delay(), 8 * SECOND);
        assert_eq!(counted.failures(), u32::MAX);
    }

    #[test]
    fn a_first_wait_longer_than_the_cap_is_kept() {
        let mut backoff = Backoff::new(600 * SECOND, 300 * SECOND);
        assert_eq!(backoff.next_delay(), 600 * SECOND);
        assert_eq!(backoff.next_delay(), 600 * SECOND);
        assert_eq!(backoff.delay(30), 600 * SECOND);
    }

    #[test]
    fn delay_is_the_wait_at_a_given_step() {
        let backoff = Backoff::new(15 * SECOND, 300 * SECOND);
        let waits: Vec<u64> = (0..7).map(|step| backoff.delay(step).as_secs()).collect();
        assert_eq!(waits, [15, 30, 60, 120, 240, 300, 300]);
        assert_eq!(backoff.failures(), 0, "delay does not count a failure");
    }
}
