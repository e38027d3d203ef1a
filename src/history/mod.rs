//! The office's reading history on this node: its `[history]` section, the hourly pruning
//! that keeps it within its retention, the queries of `GET /api/history` and the bot, and
//! backfill from peers. The store keeps the rows (`store/history.rs` for raw points,
//! `store/minutes.rs` for minute and hour buckets); the office actor hands it every reading
//! new to this node.

pub mod backfill;
pub mod config;
pub mod query;

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

pub use self::config::HistoryConfig;
use crate::store::StoreHandle;

/// How often the history older than its retention is deleted.
pub const PRUNE_INTERVAL: Duration = Duration::from_secs(3600);

/// Deletes what is older than its retention, once at start and then every
/// [`PRUNE_INTERVAL`], until `shutdown`.
pub async fn prune(
    store: StoreHandle,
    config: HistoryConfig,
    now_ms: impl Fn() -> u64,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(PRUNE_INTERVAL);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        match store.prune_history(config.prune_before(now_ms())).await {
            Ok(pruned) => debug!(?pruned, "reading history pruned"),
            Err(error) => warn!(%error, "cannot prune the reading history; retrying in an hour"),
        }
    }
}
