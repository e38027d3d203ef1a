//! The store on a thread of its own. SQLite calls block, and on an SD card a synced commit can
//! take a good part of a second: run inline in the office actor, every write and merge of the
//! node would wait for the card. So a running node moves its [`Store`] onto a dedicated
//! thread and reaches it through a cloneable [`StoreHandle`] over a bounded queue; each
//! request carries a oneshot for its answer, and [`StoreHandle::close`] ends the thread with
//! [`Store::close`], which leaves the file fully synced.

use std::{ops::Range, path::PathBuf, thread};

use tokio::sync::{mpsc, oneshot};
use tracing::warn;

use super::{HistoryRow, PruneBefore, Pruned, Store, StoreError, SyncMode};
use crate::state::{Delta, NodeId, SensorId, Snapshot};

/// Requests waiting for the store thread. The office actor keeps at most one save in flight
/// and prunes hourly, so a handful is plenty; a full queue makes senders wait.
pub const REQUEST_CAPACITY: usize = 8;

/// What a save writes of the replica.
#[derive(Debug)]
pub enum ReplicaSave {
    /// Nothing: the save only appends history.
    Nothing,
    /// A new base ([`Store::save_snapshot`]): the whole replica, which replaces the journal.
    Base(Box<Snapshot>),
    /// A delta appended to the journal ([`Store::append_journal`]).
    Journal { delta: Box<Delta>, sync: SyncMode },
}

/// What a save wrote, and what it could not.
#[derive(Debug)]
pub struct SaveOutcome {
    /// Whether the replica's part (when there was one) was saved.
    pub replica: Result<(), StoreError>,
    /// Whether the journal has outgrown its base ([`Store::journal_outgrew_base`]): the
    /// next save should be a new base.
    pub compact: bool,
    /// Whether the history batch was appended; on an error, the rows come back for a retry.
    pub history: Result<(), (StoreError, Vec<HistoryRow>)>,
}

enum Request {
    Save {
        replica: ReplicaSave,
        history: Vec<HistoryRow>,
        reply: oneshot::Sender<SaveOutcome>,
    },
    Prune {
        before: PruneBefore,
        reply: oneshot::Sender<Result<Pruned, StoreError>>,
    },
    Observe {
        rows: Vec<HistoryRow>,
        now_ms: u64,
        reply: oneshot::Sender<Result<usize, StoreError>>,
    },
    /// Anything else, run on the store's thread: queries and backfill (`history`).
    Run(Box<dyn FnOnce(&mut Store) + Send>),
    History {
        node: NodeId,
        sensor: SensorId,
        range: Range<u64>,
        reply: oneshot::Sender<Result<Vec<HistoryRow>, StoreError>>,
    },
    Close {
        reply: oneshot::Sender<Result<(), StoreError>>,
    },
}

/// A cloneable handle on the store thread.
#[derive(Clone)]
pub struct StoreHandle {
    requests: mpsc::Sender<Request>,
    path: PathBuf,
}

impl StoreHandle {
    /// Moves `store` onto a new thread. The thread ends at [`StoreHandle::close`], or when
    /// every handle is dropped (then the store is closed too, its errors logged).
    pub fn spawn(store: Store) -> Result<StoreHandle, StoreError> {
        let path = store.path().to_owned();
        let (requests, queue) = mpsc::channel(REQUEST_CAPACITY);
        thread::Builder::new()
            .name("store".into())
            .spawn(move || serve(store, queue))
            .map_err(|source| StoreError::Io {
                path: path.clone(),
                source,
            })?;
        Ok(StoreHandle { requests, path })
    }

    /// Saves `replica` (a base or a journal append) and appends `history`, in that order, and
    /// says how each went.
    pub async fn save(&self, replica: ReplicaSave, history: Vec<HistoryRow>) -> SaveOutcome {
        let (reply, answer) = oneshot::channel();
        // Kept until the thread answers: if it stops first, the rows go back for a retry.
        let rows = history.clone();
        let request = Request::Save {
            replica,
            history,
            reply,
        };
        if let Err(mpsc::error::SendError(request)) = self.requests.send(request).await {
            let Request::Save { history, .. } = request else {
                unreachable!("the request sent was a save")
            };
            return self.stopped_save(history);
        }
        answer.await.unwrap_or_else(|_| self.stopped_save(rows))
    }

    /// Saves a snapshot alone, as the new base: what reserving sequence numbers needs.
    pub async fn save_snapshot(&self, snapshot: Snapshot) -> Result<(), StoreError> {
        self.save(ReplicaSave::Base(Box::new(snapshot)), Vec::new())
            .await
            .replica
    }

    /// Deletes the history older than its retention ([`Store::prune_history`]).
    pub async fn prune_history(&self, before: PruneBefore) -> Result<Pruned, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.send(Request::Prune { before, reply }).await?;
        answer.await.map_err(|_| self.stopped())?
    }

    /// Adds readings to the minute history ([`Store::observe`]).
    pub async fn observe(&self, rows: Vec<HistoryRow>, now_ms: u64) -> Result<usize, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.send(Request::Observe {
            rows,
            now_ms,
            reply,
        })
        .await?;
        answer.await.map_err(|_| self.stopped())?
    }

    /// Runs `work` on the store's thread and returns what it returns: for reads that need
    /// several calls on the store, without a request type for each.
    pub async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Store) -> T + Send + 'static,
    ) -> Result<T, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.send(Request::Run(Box::new(move |store| {
            let _ = reply.send(work(store));
        })))
        .await?;
        answer.await.map_err(|_| self.stopped())
    }

    /// The raw readings of one sensor measured in `range` ([`Store::history`]).
    pub async fn history(
        &self,
        node: NodeId,
        sensor: SensorId,
        range: Range<u64>,
    ) -> Result<Vec<HistoryRow>, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.send(Request::History {
            node,
            sensor,
            range,
            reply,
        })
        .await?;
        answer.await.map_err(|_| self.stopped())?
    }

    /// Closes the store ([`Store::close`]: checkpointed and synced) and ends its thread.
    /// Requests sent after it fail with [`StoreError::Stopped`].
    pub async fn close(&self) -> Result<(), StoreError> {
        let (reply, answer) = oneshot::channel();
        self.send(Request::Close { reply }).await?;
        answer.await.map_err(|_| self.stopped())?
    }

    async fn send(&self, request: Request) -> Result<(), StoreError> {
        self.requests
            .send(request)
            .await
            .map_err(|_| self.stopped())
    }

    fn stopped(&self) -> StoreError {
        StoreError::Stopped {
            path: self.path.clone(),
        }
    }

    fn stopped_save(&self, history: Vec<HistoryRow>) -> SaveOutcome {
        SaveOutcome {
            replica: Err(self.stopped()),
            compact: false,
            history: if history.is_empty() {
                Ok(())
            } else {
                Err((self.stopped(), history))
            },
        }
    }
}

/// The thread's loop: one request at a time, in the order sent.
fn serve(mut store: Store, mut queue: mpsc::Receiver<Request>) {
    while let Some(request) = queue.blocking_recv() {
        match request {
            Request::Save {
                replica,
                history,
                reply,
            } => {
                let replica = match replica {
                    ReplicaSave::Nothing => Ok(()),
                    ReplicaSave::Base(snapshot) => store.save_snapshot(&snapshot),
                    ReplicaSave::Journal { delta, sync } => store.append_journal(&delta, sync),
                };
                let history = match store.append_history(&history) {
                    Ok(_) => Ok(()),
                    Err(error) => Err((error, history)),
                };
                let _ = reply.send(SaveOutcome {
                    replica,
                    compact: store.journal_outgrew_base(),
                    history,
                });
            }
            Request::Prune { before, reply } => {
                let _ = reply.send(store.prune_history(before));
            }
            Request::Observe {
                rows,
                now_ms,
                reply,
            } => {
                let _ = reply.send(store.observe(&rows, now_ms));
            }
            Request::Run(work) => work(&mut store),
            Request::History {
                node,
                sensor,
                range,
                reply,
            } => {
                let _ = reply.send(store.history(&node, &sensor, range));
            }
            Request::Close { reply } => {
                let _ = reply.send(store.close());
                return;
            }
        }
    }
    // Every handle is gone without a close: close anyway, so the log is checkpointed.
    if let Err(error) = store.close() {
        warn!(%error, "closing the store failed");
    }
}
