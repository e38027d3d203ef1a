//! The office bot: every node answers "who's at the office?", "meeting room temp", "i am
//! ff:ff:ff:ff:ff:ff" and the rest of `docs/bot.md` for the whole office, since every node
//! holds the whole state.
//!
//! [`reply`] is the pure part: state, speaker and text in, reply and writes out. [`Bot`] is
//! what chat front ends (the HTTP API, and through it the terminal) call: it bounds the text
//! and the rate, reads the latest state, and makes the reply's writes through the office
//! actor, where chat-driven writes are urgent (published at once, not batched).

pub mod config;
pub mod reply;
#[cfg(test)]
mod tests;

use std::{sync::Mutex, time::Duration};

use thiserror::Error;
use tokio::time::Instant;

pub use self::reply::{Reply, SORRY, Situation, needs_speaker, reply};
use crate::{
    office::{OfficeError, OfficeHandle, physical_ms},
    state::{Person, query::Query},
};

/// Longest message the bot reads, in bytes: the longest phrase it knows is a few dozen.
pub const MAX_TEXT_LEN: usize = 1024;

/// Messages the bot answers in a burst, across every speaker of one node.
pub const CHAT_BURST: u32 = 20;

/// Sustained chat rate, messages per second, once a burst is spent: far above what people
/// type, far below what would keep the office actor busy.
pub const CHAT_RATE_PER_S: u32 = 2;

/// Why a message got no answer.
#[derive(Debug, Error)]
pub enum AskError {
    #[error("is {len} bytes long; the bot reads at most {MAX_TEXT_LEN}")]
    TooLong { len: usize },
    #[error("too many messages; try again in {} ms", retry_after.as_millis())]
    TooFast { retry_after: Duration },
    #[error(transparent)]
    Office(#[from] OfficeError),
}

/// A token bucket: up to [`CHAT_BURST`] messages at once, then [`CHAT_RATE_PER_S`].
#[derive(Debug)]
pub struct RateLimit {
    tokens: f64,
    last: Instant,
}

impl RateLimit {
    pub fn new(now: Instant) -> RateLimit {
        RateLimit {
            tokens: f64::from(CHAT_BURST),
            last: now,
        }
    }

    /// Takes one message's token at `now`, or says how long until there is one.
    pub fn take(&mut self, now: Instant) -> Result<(), Duration> {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens =
            (self.tokens + elapsed * f64::from(CHAT_RATE_PER_S)).min(f64::from(CHAT_BURST));
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            let missing = 1.0 - self.tokens;
            Err(Duration::from_secs_f64(
                missing / f64::from(CHAT_RATE_PER_S),
            ))
        }
    }
}

/// The bot of one node, shared by its chat front ends.
pub struct Bot {
    office: OfficeHandle,
    /// The name it answers to besides the node's own (`[bot] name`).
    name: Option<String>,
    consider_home_ms: u64,
    limit: Mutex<RateLimit>,
}

impl Bot {
    pub fn new(office: OfficeHandle, name: Option<String>, consider_home_ms: u64) -> Bot {
        Bot {
            office,
            name,
            consider_home_ms,
            limit: Mutex::new(RateLimit::new(Instant::now())),
        }
    }

    /// Answers `text` from `speaker`, after making the writes the answer announces.
    /// `peers` is how many peers this node is connected to, for "status".
    pub async fn ask(
        &self,
        speaker: &Person,
        text: &str,
        peers: usize,
    ) -> Result<String, AskError> {
        if text.len() > MAX_TEXT_LEN {
            return Err(AskError::TooLong { len: text.len() });
        }
        self.limit
            .lock()
            .expect("the rate limit is never poisoned: nothing panics holding it")
            .take(Instant::now())
            .map_err(|retry_after| AskError::TooFast { retry_after })?;
        let state = self.office.view();
        let answer = reply(
            &Situation {
                query: Query::new(&state, physical_ms(), self.consider_home_ms),
                peers,
                bot_name: self.name.as_deref(),
            },
            speaker,
            text,
        );
        for write in answer.writes {
            self.office.write_durable(write).await?;
        }
        Ok(answer.text)
    }
}
