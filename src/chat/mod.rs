//! Chat adapters: where people talk to the office bot from the chat they already use.
//!
//! Each adapter is optional and fails on its own: a wrong token, an unreachable server or a
//! rate limit is logged in one clear line and retried with backoff, and never reaches the
//! rest of the node. An adapter knows nothing about the bot or the alerts: it gets an
//! [`Asker`] that turns a question into a reply, and a bounded receiver of alert texts to post,
//! and runs until its cancellation token fires. The outgoing webhook (`webhook.rs`) only posts
//! alerts.

pub mod config;
pub mod matrix;
pub mod slack;
pub mod webhook;

use std::{
    collections::{HashSet, VecDeque},
    hash::Hash,
    sync::Arc,
    time::Duration,
};

use futures::future::BoxFuture;
use tokio_util::sync::CancellationToken;

use crate::backoff::Backoff;

/// How many alert texts may wait for an adapter that is reconnecting; a sender that finds the
/// queue full drops the alert (it is still in the replicated state and on the dashboard).
pub const ALERT_QUEUE_CAPACITY: usize = 64;

/// Who asked: the chat service and the person's handle there, so the bot can bind a device
/// ("i am ...") to the same person each time they ask from that service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Speaker {
    /// `"slack"` or `"matrix"`.
    pub service: &'static str,
    /// The service's id for the person: a Slack user id (`U0123ABCD`) or a Matrix user id
    /// (`@mendes:example.org`).
    pub user: String,
    /// A short name for replies and bindings: the Slack user id, or a Matrix id's localpart.
    pub name: String,
}

/// How an adapter asks the bot. The lead wires this to the bot's `reply` over the node's
/// current state; tests pass a closure.
pub trait Asker: Send + Sync {
    /// The bot's answer to `text` from `speaker`.
    fn ask(&self, speaker: Speaker, text: String) -> BoxFuture<'static, String>;
}

impl<F> Asker for F
where
    F: Fn(Speaker, String) -> BoxFuture<'static, String> + Send + Sync,
{
    fn ask(&self, speaker: Speaker, text: String) -> BoxFuture<'static, String> {
        self(speaker, text)
    }
}

/// A shared asker, as adapters take it.
pub type SharedAsker = Arc<dyn Asker>;

/// The first wait after a failure; it doubles up to [`BACKOFF_MAX`] and resets after a success.
pub const BACKOFF_MIN: Duration = Duration::from_secs(1);

/// The longest wait between two attempts: a chat service that is down for an hour is retried
/// once a minute, which no rate limit minds.
pub const BACKOFF_MAX: Duration = Duration::from_secs(60);

/// The backoff between reconnection attempts of a chat adapter.
pub(crate) fn reconnect_backoff() -> Backoff {
    Backoff::new(BACKOFF_MIN, BACKOFF_MAX)
}

/// Sleeps for `delay` unless `shutdown` fires first; returns false on shutdown.
pub(crate) async fn pause(delay: Duration, shutdown: &CancellationToken) -> bool {
    tokio::select! {
        () = shutdown.cancelled() => false,
        () = tokio::time::sleep(delay) => true,
    }
}

/// The keys seen most recently, at most `capacity` of them: remembers which events were
/// already answered without growing for ever.
#[derive(Debug)]
pub(crate) struct RecentSet<K> {
    order: VecDeque<K>,
    members: HashSet<K>,
    capacity: usize,
}

impl<K: Clone + Eq + Hash> RecentSet<K> {
    pub(crate) fn new(capacity: usize) -> RecentSet<K> {
        RecentSet {
            order: VecDeque::with_capacity(capacity),
            members: HashSet::with_capacity(capacity),
            capacity,
        }
    }

    /// Adds `key`; false if it was already there.
    pub(crate) fn insert(&mut self, key: K) -> bool {
        if self.members.contains(&key) {
            return false;
        }
        if self.order.len() == self.capacity
            && let Some(oldest) = self.order.pop_front()
        {
            self.members.remove(&oldest);
        }
        self.order.push_back(key.clone());
        self.members.insert(key);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recent_set_forgets_the_oldest_beyond_its_capacity() {
        let mut recent = RecentSet::new(2);
        assert!(recent.insert("a"));
        assert!(!recent.insert("a"));
        assert!(recent.insert("b"));
        assert!(recent.insert("c"));
        // "a" was pushed out by "c"; "b" and "c" are still remembered.
        assert!(!recent.insert("b"));
        assert!(!recent.insert("c"));
        assert!(recent.insert("a"));
    }
}
