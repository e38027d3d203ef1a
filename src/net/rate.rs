//! How many requests one peer may make: a token bucket per peer and protocol.
//!
//! An office node asks a peer for one sync page at a time, at most 64 pages a session
//! ([`super::MAX_SYNC_PAGES`]), a session on connect, one with a random peer every sync
//! interval and a pull on a gap at most once a second. A peer asking much faster is broken or
//! hostile, and each request it makes costs the node a look through its whole replica. So a
//! peer gets a burst of [`SYNC_REQUEST_BURST`] requests, refilled at
//! [`SYNC_REQUESTS_PER_SECOND`]; past that its requests are refused unanswered (the peer sees
//! its request fail) and the node says once which peer it was.

use std::time::{Duration, Instant};

/// Sync requests a peer may make at once: a whole session of pages.
pub const SYNC_REQUEST_BURST: u32 = super::MAX_SYNC_PAGES as u32;

/// Sync requests a peer may make per second once its burst is spent.
pub const SYNC_REQUESTS_PER_SECOND: u32 = 4;

/// One peer's allowance.
#[derive(Clone, Debug)]
pub struct RequestRate {
    burst: f64,
    per_second: f64,
    tokens: f64,
    at: Instant,
}

impl RequestRate {
    /// A full bucket of `burst`, refilled at `per_second`.
    pub fn new(burst: u32, per_second: u32, now: Instant) -> RequestRate {
        RequestRate {
            burst: f64::from(burst),
            per_second: f64::from(per_second),
            tokens: f64::from(burst),
            at: now,
        }
    }

    /// The allowance of sync requests.
    pub fn sync(now: Instant) -> RequestRate {
        RequestRate::new(SYNC_REQUEST_BURST, SYNC_REQUESTS_PER_SECOND, now)
    }

    /// Whether one more request at `now` is within the allowance; counts it if so.
    pub fn allow(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.at);
        self.at = self.at.max(now);
        self.tokens = (self.tokens + elapsed.as_secs_f64() * self.per_second).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// How long until a request would be allowed again.
    pub fn wait(&self) -> Duration {
        if self.tokens >= 1.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64((1.0 - self.tokens) / self.per_second)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_is_allowed_then_the_rate() {
        let start = Instant::now();
        let mut rate = RequestRate::new(10, 2, start);
        assert!((0..10).all(|_| rate.allow(start)));
        assert!(!rate.allow(start), "the burst is spent");
        assert_eq!(rate.wait(), Duration::from_millis(500));
        assert!(!rate.allow(start + Duration::from_millis(400)));
        assert!(rate.allow(start + Duration::from_millis(500)));
        // A long quiet refills the burst, never more.
        let later = start + Duration::from_secs(3600);
        assert_eq!((0..20).filter(|_| rate.allow(later)).count(), 10);
    }

    #[test]
    fn an_honest_catch_up_fits() {
        // A peer that connects, pulls a 64-page catch-up, then a gap pull every second.
        let start = Instant::now();
        let mut rate = RequestRate::sync(start);
        assert!((0..64).all(|_| rate.allow(start)));
        assert!((1..=600).all(|second| rate.allow(start + Duration::from_secs(second))));
    }

    #[test]
    fn a_clock_that_steps_back_refills_nothing() {
        let start = Instant::now() + Duration::from_secs(10);
        let mut rate = RequestRate::new(1, 1, start);
        assert!(rate.allow(start));
        assert!(!rate.allow(start - Duration::from_secs(5)));
        assert!(!rate.allow(start));
    }
}
