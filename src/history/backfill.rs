//! Backfill: a node that was off or cut off fills the holes in its history from its peers
//! (`/officemesh/history/1`, `docs/protocol.md`).
//!
//! The asker sends, for the hours of its backfill window, how many readings it holds of
//! each series-hour; the answerer sends the series-hours it holds more readings of, with
//! their minute buckets, at most [`PAGE_HOURS`] per page. The asker merges them (per minute,
//! the bucket made of more readings wins: `HourBuckets::merge_max`) and asks again with its
//! new counts until the answer says there is no more. The answerer keeps no state between
//! pages. A node asks every peer it connects to, so the owner of a sensor, which heard every
//! reading of it, is asked as soon as it is reachable; every [`BACKFILL_INTERVAL`] it asks
//! its peers again, which costs one ask and an empty page when nothing is missing.

use std::{
    collections::{HashMap, HashSet},
    ops::Range,
    sync::{Arc, Mutex},
    time::Duration,
};

use thiserror::Error;
use tracing::{debug, info, warn};

use super::config::MAX_BACKFILL_HOURS;
use crate::{
    net::{NetError, NetHandle, node_id},
    state::NodeId,
    store::{HOUR_MS, HourBuckets, Store, StoreError, StoreHandle},
    wire::{
        WireError,
        history::{
            HistoryAsk, HistoryPage, decode_history_ask, decode_history_page, encode_history_ask,
            encode_history_page,
        },
    },
};

/// Most series-hours in one page: about 300 KB of buckets, well under the page limit.
pub const PAGE_HOURS: usize = 256;

/// Most pages one session asks for; the next session continues.
pub const MAX_PAGES: usize = 64;

/// Most series-hours an ask lists: keeps the ask under its size limit. A window with more
/// (a very large office, a long window) asks for its most recent hours first.
pub const MAX_ASK_HOURS: usize = 50_000;

/// How often a node asks one peer, picked at random, for what it may have missed of the
/// last [`RECENT_WINDOW`]: gossip carries only a sensor's latest reading per publish, so a
/// sensor read faster than that reaches other nodes in full only this way, and a peer may
/// not yet have counted the readings it had just taken when asked on connecting.
pub const BACKFILL_INTERVAL: Duration = Duration::from_secs(30);

/// What the periodic ask covers: the last two hours (a few kilobytes of counts for an office
/// of 250 sensors). Connecting asks for the whole `[history] backfill_hours`.
pub const RECENT_WINDOW: Duration = Duration::from_secs(2 * 3600);

/// Why a backfill session ended early.
#[derive(Debug, Error)]
pub enum BackfillError {
    #[error(transparent)]
    Net(#[from] NetError),
    #[error("peer {peer} sent a history page that does not decode: {error}")]
    Page { peer: NodeId, error: WireError },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a session brought.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Backfilled {
    pub pages: usize,
    /// Series-hours that changed here.
    pub hours_merged: usize,
    /// Series-hours whose buckets did not decode, left out.
    pub hours_refused: usize,
}

/// The series-hours of `range` this node holds, as an ask lists them, most recent first,
/// trimmed to [`MAX_ASK_HOURS`]; returns the range actually covered.
fn have(store: &Store, range: Range<u64>) -> Result<HistoryAsk, StoreError> {
    let mut counts: Vec<_> = store.counts(&range)?.into_iter().collect();
    counts.sort_by(|((a, hour_a), _), ((b, hour_b), _)| hour_b.cmp(hour_a).then(a.cmp(b)));
    let mut from_ms = range.start;
    if counts.len() > MAX_ASK_HOURS {
        // Keep whole hours: cut at the hour of the first entry left out, exclusive.
        let cut_hour = counts[MAX_ASK_HOURS].0.1;
        counts.retain(|((_, hour), _)| *hour > cut_hour);
        from_ms = cut_hour + HOUR_MS;
    }
    Ok(HistoryAsk {
        from_ms,
        to_ms: range.end,
        have: counts
            .into_iter()
            .map(|((series, hour), count)| (series, hour, count))
            .collect(),
    })
}

/// Answers a peer's ask (its bytes) with one page (bytes); runs on the store's thread.
/// An ask that does not decode gets an empty page, and a log line naming the peer.
pub fn answer(store: &Store, from: &NodeId, ask: &[u8]) -> Vec<u8> {
    let ask = match decode_history_ask(ask) {
        Ok(ask) => ask,
        Err(error) => {
            warn!(peer = %from, %error, "a history ask does not decode; answered with nothing");
            return encode_history_page(&HistoryPage::default());
        }
    };
    let page = match page_for(store, &ask) {
        Ok(page) => page,
        Err(error) => {
            warn!(peer = %from, %error, "cannot read the history to answer an ask");
            HistoryPage::default()
        }
    };
    encode_history_page(&page)
}

fn page_for(store: &Store, ask: &HistoryAsk) -> Result<HistoryPage, StoreError> {
    // However far back a peer asks, answer at most the longest window a node asks for.
    let longest_ms = MAX_BACKFILL_HOURS * HOUR_MS;
    let from_ms = ask.from_ms.max(ask.to_ms.saturating_sub(longest_ms));
    let theirs: HashMap<_, u64> = ask
        .have
        .iter()
        .map(|(series, hour, count)| ((series.clone(), *hour), *count))
        .collect();
    let mut wanted: Vec<_> = store
        .counts(&(from_ms..ask.to_ms))?
        .into_iter()
        .filter(|(key, count)| *count > theirs.get(key).copied().unwrap_or(0))
        .map(|(key, _)| key)
        .collect();
    // Oldest first, so a session cut short has filled a contiguous stretch.
    wanted.sort_by(|(a, hour_a), (b, hour_b)| hour_a.cmp(hour_b).then(a.cmp(b)));
    let more = wanted.len() > PAGE_HOURS;
    wanted.truncate(PAGE_HOURS);
    let mut hours = Vec::with_capacity(wanted.len());
    for (series, hour) in wanted {
        if let Some((_, buckets)) = store
            .hours_of(&series, &(hour..hour + 1))?
            .into_iter()
            .find(|(start, _)| *start == hour)
        {
            hours.push((series, hour, buckets.pack()));
        }
    }
    Ok(HistoryPage { hours, more })
}

/// Asks `peer` for what this node lacks of the hours in `window` before `now_ms` (the hour
/// under way included), page by page, and merges it.
pub async fn backfill(
    peer: NodeId,
    net: &NetHandle,
    store: &StoreHandle,
    window: Duration,
    now_ms: u64,
) -> Result<Backfilled, BackfillError> {
    let range = now_ms.saturating_sub(window.as_millis() as u64)..now_ms + HOUR_MS;
    let mut done = Backfilled::default();
    while done.pages < MAX_PAGES {
        let asking = range.clone();
        let ask = store.run(move |store| have(store, asking)).await??;
        let bytes = net.ask_history(&peer, encode_history_ask(&ask)).await?;
        let page = decode_history_page(&bytes).map_err(|error| BackfillError::Page {
            peer: peer.clone(),
            error,
        })?;
        done.pages += 1;
        let more = page.more;
        let asked = range.clone();
        let (merged, refused) = store
            .run(move |store| merge(store, page, &asked, now_ms))
            .await??;
        done.hours_merged += merged;
        done.hours_refused += refused;
        // No progress means the peer keeps sending what does not merge: stop.
        if !more || merged == 0 {
            break;
        }
    }
    Ok(done)
}

/// Merges a page; returns (series-hours changed, series-hours refused). An hour outside
/// `asked` was not asked for (a peer's clock far off, or a bad peer) and is refused: kept, a
/// future hour would sit in memory until its end.
fn merge(
    store: &mut Store,
    page: HistoryPage,
    asked: &Range<u64>,
    now_ms: u64,
) -> Result<(usize, usize), StoreError> {
    let (mut merged, mut refused) = (0, 0);
    for (series, hour, packed) in page.hours {
        let in_range = hour
            .checked_add(HOUR_MS)
            .is_some_and(|end| end > asked.start)
            && hour < asked.end;
        let Some(buckets) = HourBuckets::unpack(&packed, hour).filter(|_| in_range) else {
            refused += 1;
            continue;
        };
        if store.merge_hour(series, hour, &buckets)? {
            merged += 1;
        }
    }
    // Hours that are over are written now rather than at the next reading.
    store.observe(&[], now_ms)?;
    Ok((merged, refused))
}

/// Runs backfill sessions, at most one per peer at a time.
#[derive(Clone)]
pub struct Backfiller {
    net: NetHandle,
    store: StoreHandle,
    window: Duration,
    running: Arc<Mutex<HashSet<NodeId>>>,
}

impl Backfiller {
    pub fn new(net: NetHandle, store: StoreHandle, window: Duration) -> Self {
        Backfiller {
            net,
            store,
            window,
            running: Arc::default(),
        }
    }

    /// Starts a session with `peer` in the background, for the whole backfill window,
    /// unless one is running or the window is zero.
    pub fn start(&self, peer: NodeId, now_ms: u64) {
        self.start_for(peer, self.window, now_ms);
    }

    fn start_for(&self, peer: NodeId, window: Duration, now_ms: u64) {
        if window.is_zero()
            || !self
                .running
                .lock()
                .expect("not poisoned")
                .insert(peer.clone())
        {
            return;
        }
        let this = self.clone();
        tokio::spawn(async move {
            match backfill(peer.clone(), &this.net, &this.store, window, now_ms).await {
                Ok(done) if done.hours_merged > 0 || done.hours_refused > 0 => {
                    info!(%peer, hours = done.hours_merged, refused = done.hours_refused, pages = done.pages, "history filled in from a peer");
                }
                Ok(_) => debug!(%peer, "history: nothing to fill in"),
                Err(error) => debug!(%peer, %error, "history backfill ended early"),
            }
            this.running.lock().expect("not poisoned").remove(&peer);
        });
    }

    /// Every [`BACKFILL_INTERVAL`], asks one connected peer for the last [`RECENT_WINDOW`],
    /// until `shutdown`.
    pub async fn run(
        self,
        now_ms: impl Fn() -> u64,
        shutdown: tokio_util::sync::CancellationToken,
    ) {
        let mut tick = tokio::time::interval(BACKFILL_INTERVAL);
        tick.tick().await;
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            let Ok(peers) = self.net.peers().await else {
                return;
            };
            if peers.is_empty() {
                continue;
            }
            let now_ms = now_ms();
            let peer = &peers[(now_ms / 7) as usize % peers.len()];
            self.start_for(node_id(&peer.peer), RECENT_WINDOW.min(self.window), now_ms);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        state::{NodeId, Quantity, Room, SensorId},
        store::{HistoryRow, MINUTE_MS},
    };

    /// 2026-12-07T10:00:00Z.
    const HOUR0: u64 = 1_796_637_600_000;

    fn row(sensor: &str, value: f64, at_ms: u64) -> HistoryRow {
        HistoryRow {
            node: NodeId::new("12D3KooWOwner").unwrap(),
            sensor: SensorId::new(sensor).unwrap(),
            room: Room::new("lab").unwrap(),
            quantity: Quantity::Temperature,
            value,
            measured_at_ms: at_ms,
        }
    }

    fn peer() -> NodeId {
        NodeId::new("12D3KooWAsker").unwrap()
    }

    /// One round of the protocol between two stores, without the network: B asks, A
    /// answers, B merges. Returns what B merged and whether A said there was more.
    fn round(a: &Store, b: &mut Store, range: Range<u64>, now_ms: u64) -> (usize, usize, bool) {
        let ask = encode_history_ask(&have(b, range.clone()).unwrap());
        let page = decode_history_page(&answer(a, &peer(), &ask)).unwrap();
        let more = page.more;
        let (merged, refused) = merge(b, page, &range, now_ms).unwrap();
        (merged, refused, more)
    }

    #[test]
    fn an_ask_brings_what_the_asker_lacks_and_then_nothing() {
        let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let mut a = Store::open(dir_a.path()).unwrap();
        let mut b = Store::open(dir_b.path()).unwrap();
        let now = HOUR0 + 3 * HOUR_MS;
        // A heard three hours of two sensors; B heard only the last reading of each.
        let rows: Vec<_> = (0..3 * 60)
            .flat_map(|minute| {
                let at = HOUR0 + minute * MINUTE_MS + 1000;
                [row("desk", 20.0, at), row("door", 18.0, at)]
            })
            .collect();
        a.observe(&rows, now).unwrap();
        b.observe(&rows[rows.len() - 2..], now).unwrap();
        let range = HOUR0..now + HOUR_MS;
        let (merged, refused, more) = round(&a, &mut b, range.clone(), now);
        assert_eq!(
            (merged, refused, more),
            (6, 0, false),
            "3 hours x 2 sensors"
        );
        assert_eq!(b.counts(&range).unwrap(), a.counts(&range).unwrap());
        let (merged, _, _) = round(&a, &mut b, range.clone(), now);
        assert_eq!(merged, 0, "nothing left to bring");
    }

    #[test]
    fn hours_outside_the_ask_and_garbled_asks_are_refused() {
        let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let mut a = Store::open(dir_a.path()).unwrap();
        let mut b = Store::open(dir_b.path()).unwrap();
        let now = HOUR0 + HOUR_MS;
        a.observe(&[row("desk", 20.0, HOUR0 + 1000)], now).unwrap();
        // B asks for a later stretch; a page holding hour 0 anyway is refused.
        let page = page_for(
            &a,
            &HistoryAsk {
                from_ms: 0,
                to_ms: now,
                have: Vec::new(),
            },
        )
        .unwrap();
        assert_eq!(page.hours.len(), 1);
        let later = HOUR0 + HOUR_MS..now + HOUR_MS;
        assert_eq!(merge(&mut b, page, &later, now).unwrap(), (0, 1));
        // An ask that does not decode gets an empty page.
        let empty = decode_history_page(&answer(&a, &peer(), b"not an ask")).unwrap();
        assert!(empty.hours.is_empty() && !empty.more);
    }
}
