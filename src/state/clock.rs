//! The hybrid logical clock (Kulkarni et al., "Logical Physical Clocks", 2014).
//!
//! Every write is stamped with an [`Hlc`]: the highest wall-clock time the writer has seen
//! (its own clock or any timestamp it accepted from a peer) plus a logical counter that
//! orders writes within the same millisecond. Stamps of one writer only ever grow, and a node
//! whose own clock lags behind the office is pulled forward by what it hears.
//!
//! Two guards keep a wrong clock from deciding anything:
//! - A physical time before [`MIN_PLAUSIBLE_WALL_MS`] (a Raspberry Pi without a real-time clock
//!   boots in 1970) is ignored: such a node takes its time from the timestamps of its peers.
//! - A peer's timestamp more than [`MAX_CLOCK_AHEAD_MS`] ahead of this node's own plausible
//!   clock (or, without one, of the newest stamp it accepted) is refused ([`ClockAhead`]): a
//!   node whose clock says 2099 cannot win every target or drag the office into the future. The refused entry stays with its writer and is
//!   offered again by sync, so it is accepted once the clocks agree.

use std::{cmp::Ordering, fmt};

use thiserror::Error;

/// How far a peer's clock may run ahead of ours before its writes are refused: 15 minutes.
///
/// Office nodes without NTP drift by minutes, so this is generous; the simulator skews clocks
/// by up to ±300 s, which makes two nodes differ by up to 600 s, below this bound.
pub const MAX_CLOCK_AHEAD_MS: u64 = 15 * 60 * 1000;

/// 2026-01-01T00:00:00Z. A physical clock that reads earlier than this is known to be wrong.
pub const MIN_PLAUSIBLE_WALL_MS: u64 = 1_767_225_600_000;

/// A hybrid logical clock timestamp: milliseconds since the Unix epoch plus a counter.
/// Ordered by wall time, then counter.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Debug)]
pub struct Hlc {
    pub wall_ms: u64,
    pub logical: u32,
}

impl Hlc {
    pub const ZERO: Hlc = Hlc {
        wall_ms: 0,
        logical: 0,
    };

    pub fn new(wall_ms: u64, logical: u32) -> Self {
        Hlc { wall_ms, logical }
    }
}

impl fmt::Display for Hlc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.wall_ms, self.logical)
    }
}

#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[error(
    "timestamp {stamp} is {ahead_ms} ms ahead of this node's clock (limit {MAX_CLOCK_AHEAD_MS} ms)"
)]
pub struct ClockAhead {
    pub stamp: Hlc,
    pub ahead_ms: u64,
}

/// The clock of one replica. Its state (the last stamp issued or observed) is saved with the
/// replica, so a restarted node never issues a stamp below one it issued before the save.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct Clock {
    last: Hlc,
}

impl Clock {
    pub fn restore(last: Hlc) -> Self {
        Clock { last }
    }

    pub fn last(&self) -> Hlc {
        self.last
    }

    /// Issues a stamp for a local write at physical time `physical_ms`. Strictly greater than
    /// every stamp issued or observed before.
    pub fn tick(&mut self, physical_ms: u64) -> Hlc {
        let physical_ms = plausible(physical_ms);
        self.last = if physical_ms > self.last.wall_ms {
            Hlc::new(physical_ms, 0)
        } else {
            self.next_after_last()
        };
        self.last
    }

    /// Checks a peer's stamp against the tolerance, without changing the clock.
    ///
    /// The reference is this node's physical clock while it is plausible. A node whose clock
    /// is not (booted in 1970) judges by the newest stamp it already accepted, so one peer
    /// claiming 2099 cannot drag it, and through it the office's expiry, into the future.
    /// Only a node that has neither accepts any stamp: its first peer sets its time.
    pub fn admit(&self, stamp: Hlc, physical_ms: u64) -> Result<(), ClockAhead> {
        let reference = if physical_ms >= MIN_PLAUSIBLE_WALL_MS {
            physical_ms
        } else if self.last.wall_ms >= MIN_PLAUSIBLE_WALL_MS {
            self.last.wall_ms
        } else {
            return Ok(());
        };
        let limit = reference.saturating_add(MAX_CLOCK_AHEAD_MS);
        if stamp.wall_ms > limit {
            return Err(ClockAhead {
                stamp,
                ahead_ms: stamp.wall_ms - reference,
            });
        }
        Ok(())
    }

    /// Takes an admitted peer stamp into account, so later local stamps are above it.
    pub fn observe(&mut self, stamp: Hlc) {
        if stamp > self.last {
            self.last = stamp;
        }
    }

    /// The current time as this replica knows it: its own physical clock while that is
    /// plausible, else the newest stamp it has seen. Expiry is judged against this. It does not
    /// follow peers' stamps when the own clock is sane, so hearing from a node whose clock
    /// runs fast does not make this node expire entries early: expiry stays a local decision
    /// from local time, and the earliest one reaches everyone through sync anyway.
    pub fn now_ms(&self, physical_ms: u64) -> u64 {
        if physical_ms < MIN_PLAUSIBLE_WALL_MS {
            self.last.wall_ms
        } else {
            physical_ms
        }
    }

    fn next_after_last(&self) -> Hlc {
        match self.last.logical.checked_add(1) {
            Some(logical) => Hlc::new(self.last.wall_ms, logical),
            // 4 billion writes in one millisecond: move to the next millisecond instead.
            None => Hlc::new(self.last.wall_ms + 1, 0),
        }
    }
}

fn plausible(physical_ms: u64) -> u64 {
    if physical_ms < MIN_PLAUSIBLE_WALL_MS {
        0
    } else {
        physical_ms
    }
}

/// Orders two stamped writes across writers: higher stamp wins, then higher node id, then
/// higher sequence number, so every replica picks the same winner.
pub fn stamp_order(a: (Hlc, &super::Dot), b: (Hlc, &super::Dot)) -> Ordering {
    a.0.cmp(&b.0)
        .then_with(|| a.1.writer.cmp(&b.1.writer))
        .then_with(|| a.1.seq.cmp(&b.1.seq))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = MIN_PLAUSIBLE_WALL_MS + 1_000_000;

    #[test]
    fn stamps_grow_even_when_the_clock_goes_back() {
        let mut clock = Clock::default();
        let a = clock.tick(NOW);
        let b = clock.tick(NOW - 5_000);
        let c = clock.tick(NOW);
        assert!(a < b && b < c, "{a} {b} {c}");
        assert_eq!(b, Hlc::new(NOW, 1));
    }

    #[test]
    fn a_clock_in_1970_takes_time_from_peers() {
        let mut clock = Clock::default();
        assert_eq!(clock.admit(Hlc::new(NOW, 3), 1_000), Ok(()));
        clock.observe(Hlc::new(NOW, 3));
        assert_eq!(clock.tick(1_000), Hlc::new(NOW, 4));
        assert_eq!(clock.now_ms(1_000), NOW);
    }

    #[test]
    fn a_clock_in_1970_is_not_dragged_into_2099() {
        let mut clock = Clock::default();
        clock.observe(Hlc::new(NOW, 0));
        let far = Hlc::new(NOW + 70 * 365 * 24 * 3600 * 1000, 0);
        assert!(clock.admit(far, 1_000).is_err());
        assert_eq!(clock.admit(Hlc::new(NOW + 60_000, 0), 1_000), Ok(()));
    }

    #[test]
    fn a_peer_far_ahead_is_refused() {
        let clock = Clock::default();
        let ok = Hlc::new(NOW + MAX_CLOCK_AHEAD_MS, 0);
        let ahead = Hlc::new(NOW + MAX_CLOCK_AHEAD_MS + 1, 0);
        assert_eq!(clock.admit(ok, NOW), Ok(()));
        assert_eq!(
            clock.admit(ahead, NOW),
            Err(ClockAhead {
                stamp: ahead,
                ahead_ms: MAX_CLOCK_AHEAD_MS + 1
            })
        );
    }
}
