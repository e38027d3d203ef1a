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
    history::query::summary,
    office::{OfficeError, OfficeHandle, physical_ms},
    state::{Person, query::Query},
    store::{SeriesFilter, StoreHandle},
};

/// Longest message the bot reads, in bytes: the longest phrase it knows is a few dozen.
pub const MAX_TEXT_LEN: usize = 1024;

/// The answer to a message that would change the office, from someone who may only read
/// (the dashboard signed in with the viewer token).
pub const READ_ONLY_REPLY: &str =
    "That would change the office, and you may only look: sign in with the write token to do it.";

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
    /// The store, for questions about the past ("meeting room temp today").
    history: Option<StoreHandle>,
}

impl Bot {
    pub fn new(office: OfficeHandle, name: Option<String>, consider_home_ms: u64) -> Bot {
        Bot {
            office,
            name,
            consider_home_ms,
            limit: Mutex::new(RateLimit::new(Instant::now())),
            history: None,
        }
    }

    /// Lets the bot answer questions about the past from the store's history.
    pub fn with_history(mut self, store: StoreHandle) -> Bot {
        self.history = Some(store);
        self
    }

    /// Answers `text` from `speaker`, after making the writes the answer announces.
    /// `peers` is how many peers this node is connected to, for "status".
    pub async fn ask(
        &self,
        speaker: &Person,
        text: &str,
        peers: usize,
    ) -> Result<String, AskError> {
        self.ask_as(speaker, text, peers, true).await
    }

    /// [`Bot::ask`] for a caller that may or may not change the office: without
    /// `may_write`, a message whose answer would write (a binding) changes nothing and is
    /// answered with [`READ_ONLY_REPLY`].
    pub async fn ask_as(
        &self,
        speaker: &Person,
        text: &str,
        peers: usize,
        may_write: bool,
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
        if !may_write && !answer.writes.is_empty() {
            return Ok(READ_ONLY_REPLY.to_owned());
        }
        for write in answer.writes {
            self.office.write_durable(write).await?;
        }
        if let (Some(question), Some(store)) = (answer.past, &self.history)
            && let Some(text) = past(store, question).await
        {
            return Ok(text);
        }
        Ok(answer.text)
    }
}

/// Answers a question about a day from the history; `None` if the store cannot be read.
async fn past(store: &StoreHandle, question: reply::PastQuestion) -> Option<String> {
    let now_ms = physical_ms();
    let midnight_ms = local_midnight_ms(now_ms);
    let range = match question.day {
        reply::Day::Today => midnight_ms..now_ms + 1,
        reply::Day::Yesterday => midnight_ms.saturating_sub(DAY_MS)..midnight_ms,
    };
    let filter = SeriesFilter {
        room: Some(question.room.clone()),
        quantity: Some(question.quantity),
        ..SeriesFilter::default()
    };
    let found = store
        .run(move |store| summary(store, &filter, range))
        .await
        .ok()?
        .ok()?;
    let day = found.map(|bucket| reply::DaySummary {
        count: bucket.count,
        min: bucket.min,
        max: bucket.max,
        mean: bucket.mean,
    });
    Some(reply::past_answer(&question, day))
}

const DAY_MS: u64 = 24 * 60 * 60 * 1000;

/// The last midnight before `now_ms` in this machine's time zone (the C library's
/// `localtime_r`, which reads `TZ` and `/etc/localtime`); UTC if it cannot say. A day with a
/// daylight-saving change is taken as 24 hours.
fn local_midnight_ms(now_ms: u64) -> u64 {
    let seconds = (now_ms / 1000) as libc::time_t;
    // SAFETY: `localtime_r` only writes the `tm` it is given, which lives on this stack
    // frame, and reads `seconds`; a zeroed `tm` is a valid value of the plain C struct.
    let offset_s = unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&seconds, &mut tm).is_null() {
            0
        } else {
            tm.tm_gmtoff
        }
    };
    let local_ms = now_ms as i64 + offset_s * 1000;
    let midnight_local_ms = local_ms - local_ms.rem_euclid(DAY_MS as i64);
    (midnight_local_ms - offset_s * 1000).max(0) as u64
}
