//! Whether a source is answering, as a small state machine: the runner feeds it the outcome
//! of every read and logs only what it returns, so a broken sensor costs one warning line and
//! one line when it recovers, not one per tick. It also says how long to wait before the next
//! read: the interval while the source answers, doubling while it fails.

use std::time::Duration;

use crate::backoff::Backoff;

/// Longest wait between two reads of a failing source.
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// A change worth one log line.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// The source stopped answering (or gave a value that was dropped); its last reading
    /// stays in the office state with its measured-at time, so it shows as stale.
    Failing { error: String },
    /// The source answers again after `failures` failed reads.
    Recovered { failures: u32 },
    /// No reading for `silent`: a source that only speaks when it has news (MQTT) has gone
    /// quiet for longer than expected.
    Silent { silent: Duration },
}

/// The health of one source.
#[derive(Debug, Clone, Default)]
pub struct Health {
    failures: u32,
    silent: bool,
}

impl Health {
    /// A read gave a reading.
    pub fn success(&mut self) -> Option<Change> {
        let failures = std::mem::take(&mut self.failures);
        let was_silent = std::mem::take(&mut self.silent);
        (failures > 0 || was_silent).then_some(Change::Recovered { failures })
    }

    /// A read failed, or its value was dropped.
    pub fn failure(&mut self, error: &str) -> Option<Change> {
        self.failures = self.failures.saturating_add(1);
        (self.failures == 1).then(|| Change::Failing {
            error: error.to_owned(),
        })
    }

    /// Nothing arrived for `silent`, which is more than the source's `allowed` silence.
    pub fn silence(&mut self, silent: Duration, allowed: Duration) -> Option<Change> {
        if silent <= allowed || self.silent || self.failures > 0 {
            return None;
        }
        self.silent = true;
        Some(Change::Silent { silent })
    }

    pub fn is_failing(&self) -> bool {
        self.failures > 0
    }

    /// How long to wait before the next read of a source read every `interval`: the
    /// interval while it answers and after its first failure, then doubling up to
    /// [`MAX_BACKOFF`] (an interval longer than that is kept).
    pub fn next_delay(&self, interval: Duration) -> Duration {
        Backoff::new(interval, MAX_BACKOFF).delay(self.failures.saturating_sub(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failing_source_is_reported_once_and_backs_off() {
        let interval = Duration::from_secs(10);
        let mut health = Health::default();
        assert_eq!(health.success(), None);
        assert_eq!(health.next_delay(interval), interval);
        assert_eq!(
            health.failure("gone"),
            Some(Change::Failing {
                error: "gone".into()
            })
        );
        assert_eq!(health.next_delay(interval), interval);
        for _ in 0..5 {
            assert_eq!(health.failure("still gone"), None);
        }
        assert_eq!(health.next_delay(interval), Duration::from_secs(300));
        for _ in 0..100 {
            health.failure("gone for good");
        }
        assert_eq!(health.next_delay(interval), MAX_BACKOFF);
        assert_eq!(health.success(), Some(Change::Recovered { failures: 106 }));
        assert_eq!(health.next_delay(interval), interval);
        assert_eq!(health.success(), None);
    }

    #[test]
    fn silence_is_reported_once_until_a_reading_arrives() {
        let allowed = Duration::from_secs(60);
        let mut health = Health::default();
        assert_eq!(health.silence(Duration::from_secs(59), allowed), None);
        assert_eq!(
            health.silence(Duration::from_secs(61), allowed),
            Some(Change::Silent {
                silent: Duration::from_secs(61)
            })
        );
        assert_eq!(health.silence(Duration::from_secs(120), allowed), None);
        assert_eq!(health.success(), Some(Change::Recovered { failures: 0 }));
        assert_eq!(health.success(), None);
    }
}
