//! Sync sessions: digests out, pages of what is missing back, one session per peer.

use libp2p::{
    PeerId,
    request_response::{self, OutboundRequestId, ResponseChannel},
};
use tokio::{sync::oneshot, time::Instant};
use tracing::debug;

use super::{Net, Reply, Session, answer};
use crate::net::{
    GAP_PULL_INTERVAL, NetEvent, Origin, SyncError, SyncSummary,
    rate::{RequestRate, SYNC_REQUEST_BURST, SYNC_REQUESTS_PER_SECOND},
    sync::{SyncRequest, SyncResponse},
};

impl Net {
    // ---- sync ----

    pub(super) fn handle_sync(
        &mut self,
        event: request_response::Event<SyncRequest, SyncResponse>,
    ) {
        match event {
            request_response::Event::Message { peer, message, .. } => match message {
                request_response::Message::Request {
                    request, channel, ..
                } => self.handle_sync_request(peer, request, channel),
                request_response::Message::Response {
                    request_id,
                    response,
                } => self.handle_sync_response(request_id, response),
            },
            request_response::Event::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            } => {
                self.outbound.remove(&request_id);
                self.end_session(
                    peer,
                    Err(SyncError::Request {
                        peer,
                        reason: error.to_string(),
                    }),
                );
            }
            request_response::Event::InboundFailure { peer, error, .. } => {
                debug!(%peer, %error, "answering a sync request failed");
            }
            request_response::Event::ResponseSent { .. } => {}
        }
    }

    /// A peer sent its digest: ask the node what it lacks, and pull from the peer too unless
    /// this node did recently, so one exchange repairs both sides.
    fn handle_sync_request(
        &mut self,
        peer: PeerId,
        request: SyncRequest,
        channel: ResponseChannel<SyncResponse>,
    ) {
        let now = std::time::Instant::now();
        let allowed = self
            .sync_rates
            .entry(peer)
            .or_insert_with(|| RequestRate::sync(now))
            .allow(now);
        if !allowed {
            // Dropping the channel fails the peer's request, without asking the node.
            self.misbehaved(
                peer,
                format!(
                    "sends sync requests faster than an office node does (more than {SYNC_REQUEST_BURST} at once, then {SYNC_REQUESTS_PER_SECOND} a second): refusing the rest"
                ),
            );
            return;
        }
        let SyncRequest { digest, after } = request;
        // Only the first page of a session: later pages come from the same exchange.
        if after.is_none() && !self.pulled_recently(&peer) {
            self.start_session(peer, None);
        }
        let Some(reply) = self.ask_node(|reply| NetEvent::SyncRequested {
            from: peer,
            digest,
            reply,
        }) else {
            // Dropping the channel fails the peer's request; it will ask again later.
            return;
        };
        self.wait_for(async move {
            Reply::Answer {
                peer,
                after,
                channel,
                missing: answer(reply).await,
            }
        });
    }

    /// A gossiped delta from `peer` showed writes this node missed: pull from `peer` now,
    /// unless a pull from it started within [`GAP_PULL_INTERVAL`].
    /// A pull that comes too soon waits for the next publish tick ([`Net::pull_deferred`]):
    /// the writes missed may be newer than what the last pull brought.
    pub(super) fn pull_missed(&mut self, peer: PeerId) {
        let recent = self
            .last_pull
            .get(&peer)
            .is_some_and(|at| at.elapsed() < GAP_PULL_INTERVAL);
        if recent {
            self.deferred_pulls.insert(peer);
        } else {
            debug!(%peer, "a gossiped delta shows missed writes; pulling from its sender");
            self.start_session(peer, None);
        }
    }

    /// Starts the pulls on a gap that had to wait, once they may.
    pub(super) fn pull_deferred(&mut self) {
        if self.deferred_pulls.is_empty() {
            return;
        }
        let due: Vec<PeerId> = self
            .deferred_pulls
            .iter()
            .filter(|peer| {
                self.last_pull
                    .get(peer)
                    .is_none_or(|at| at.elapsed() >= GAP_PULL_INTERVAL)
            })
            .copied()
            .collect();
        for peer in due {
            self.deferred_pulls.remove(&peer);
            self.pull_missed(peer);
        }
    }

    fn pulled_recently(&self, peer: &PeerId) -> bool {
        self.last_pull
            .get(peer)
            .is_some_and(|at| at.elapsed() < self.sync_interval / 2)
    }

    fn handle_sync_response(&mut self, request_id: OutboundRequestId, response: SyncResponse) {
        let Some(peer) = self.outbound.remove(&request_id) else {
            return;
        };
        if let Some(first) = response.invalid.first() {
            let reason = format!(
                "sent {} invalid entries in a sync page, e.g. {first}; they were dropped",
                response.invalid.len()
            );
            self.misbehaved(peer, reason);
        }
        let Some(session) = self.sessions.get_mut(&peer) else {
            return;
        };
        session.summary.pages += 1;
        session.summary.entries += response.page.store.len();
        session.after = response.next;
        if response.page.is_empty() && session.after.is_none() {
            self.end_session(peer, Ok(()));
            return;
        }
        let Some(reply) = self.ask_node(|reply| NetEvent::DeltaReceived {
            from: peer,
            origin: Origin::Sync,
            delta: response.page,
            reply,
        }) else {
            self.end_session(peer, Err(SyncError::NodeUnavailable));
            return;
        };
        self.wait_for(async move {
            Reply::PageMerged {
                peer,
                merged: answer(reply).await,
            }
        });
    }

    pub(super) fn sync_with_random_peer(&mut self) {
        let connected: Vec<PeerId> = self.peers.keys().copied().collect();
        if connected.is_empty() {
            return;
        }
        // Which peer matters little, only that it changes: any randomness will do, and if
        // the system has none the first peer is as good as any.
        let index = getrandom::u64().unwrap_or(0) % connected.len() as u64;
        self.start_session(connected[index as usize], None);
    }

    /// Starts pulling from `peer`, or joins the session already running.
    pub(super) fn start_session(
        &mut self,
        peer: PeerId,
        waiter: Option<oneshot::Sender<Result<SyncSummary, SyncError>>>,
    ) {
        if !self.swarm.is_connected(&peer) {
            if let Some(waiter) = waiter {
                let _ = waiter.send(Err(SyncError::NotConnected(peer)));
            }
            return;
        }
        if let Some(session) = self.sessions.get_mut(&peer) {
            session.waiters.extend(waiter);
            return;
        }
        self.sessions.insert(
            peer,
            Session {
                waiters: waiter.into_iter().collect(),
                ..Session::default()
            },
        );
        self.last_pull.insert(peer, Instant::now());
        self.request_digest(peer);
    }

    pub(super) fn request_digest(&mut self, peer: PeerId) {
        let Some(reply) = self.ask_node(|reply| NetEvent::DigestWanted { reply }) else {
            self.end_session(peer, Err(SyncError::NodeUnavailable));
            return;
        };
        self.wait_for(async move {
            Reply::Digest {
                peer,
                digest: answer(reply).await,
            }
        });
    }

    pub(super) fn end_session(&mut self, peer: PeerId, result: Result<(), SyncError>) {
        let Some(session) = self.sessions.remove(&peer) else {
            return;
        };
        match &result {
            Ok(()) => {
                debug!(%peer, pages = session.summary.pages, entries = session.summary.entries, "synced")
            }
            Err(error) => debug!(%peer, %error, "sync ended early"),
        }
        for waiter in session.waiters {
            let _ = waiter.send(result.clone().map(|()| session.summary));
        }
    }
}
