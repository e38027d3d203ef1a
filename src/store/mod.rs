//! The node's persistence: one SQLite file in the data directory holding the saved replica
//! (its state, clock and sequence ceiling), the node key, the swarm key, the API token, and
//! the history of readings with its hourly rollups.
//!
//! Only this module knows SQL: its surface is domain types ([`Snapshot`], [`HistoryRow`])
//! and opaque key bytes. [`Store`] is synchronous; a running node moves it onto a thread of
//! its own behind a [`StoreHandle`] (`worker.rs`), so a slow SD card never stalls the office
//! actor or the network.
//!
//! What survives what:
//! - SQLite runs in WAL mode with `synchronous=NORMAL`: a commit appends to the write-ahead
//!   log and the log is synced at checkpoints, not at every commit. A killed process loses
//!   nothing committed (the log is in the operating system's cache); a power cut may lose the
//!   last commits since the last checkpoint, but never corrupts the file. That is the right
//!   price for history, written in batches every few seconds on cards that wear out.
//! - The replica is saved as a *base* snapshot and a *journal* of deltas since it
//!   ([`Store::load`] joins them). A base is rare: it is written with `synchronous=FULL` for
//!   each lease of sequence numbers (once [`Store::save_snapshot`] returns, the numbers it
//!   reserved stay reserved even through a power cut), when the journal has grown larger
//!   than the base, and at shutdown; writing it deletes the journal. Journal appends are
//!   small: synced for what someone was told is done and for what people said, `NORMAL` for
//!   the periodic save of the rest ([`Store::append_journal`]).
//! - The secrets are committed with `synchronous=FULL`.
//! - A file that is not an officemesh database, fails SQLite's `quick_check`, or was written
//!   by a newer schema is refused at [`Store::open`] before anything writes to it.

pub mod config;
mod history;
mod minutes;
mod schema;
#[cfg(test)]
mod tests;
mod worker;

use std::{
    collections::HashMap,
    error::Error as StdError,
    fs::{DirBuilder, File, OpenOptions, TryLockError},
    io,
    os::unix::fs::{DirBuilderExt, OpenOptionsExt},
    path::{Path, PathBuf},
    time::Duration,
};

use rusqlite::{Connection, ErrorCode, OpenFlags, OptionalExtension, Transaction, params};
use thiserror::Error;
use tracing::{info, warn};

pub use self::{
    history::{
        DEFAULT_RAW_RETENTION_MS, HOUR_MS, HistoryRow, MAX_HISTORY_QUERY_ROWS, MINUTE_MS,
        PruneBefore, Pruned, Series,
    },
    minutes::{Bucket, CLOSE_GRACE_MS, HourBuckets, SeriesFilter},
    schema::SCHEMA_VERSION,
    worker::{REQUEST_CAPACITY, ReplicaSave, SaveOutcome, StoreHandle},
};
use crate::{
    state::{Delta, Replica, Snapshot},
    wire::{self, MAX_SNAPSHOT_BYTES},
};

/// The database's file name inside the data directory.
pub const DB_FILE_NAME: &str = "officemesh.db";

/// A file held locked (`flock`) while a [`Store`] is open, so two nodes started on one data
/// directory cannot both hand out sequence numbers under the same identity. The lock dies
/// with the process, so a killed node never leaves a stale one.
pub const LOCK_FILE_NAME: &str = "officemesh.lock";

/// Length of the office's pre-shared swarm key (the IPFS `swarm.key` format).
pub const SWARM_KEY_LEN: usize = 32;

/// How long a statement waits for a lock held by another connection before failing. Only
/// this process opens the file (see [`LOCK_FILE_NAME`]), so a wait means an operator's
/// `sqlite3` shell is reading it; a few seconds is enough to let that finish.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// After a checkpoint, the write-ahead log is cut back to this size rather than kept at its
/// largest, so one big snapshot does not leave a big log behind on a small card.
const JOURNAL_SIZE_LIMIT_BYTES: i64 = 16 << 20;

/// The journal is folded into a new base once its bytes exceed the base's, but never for
/// fewer bytes than this: a small office's base is a few kilobytes, and rewriting it after a
/// handful of appends would save nothing.
pub const JOURNAL_FLOOR_BYTES: u64 = 64 << 10;

/// Most lines of a failed `quick_check` quoted in the error.
const MAX_CHECK_PROBLEMS: usize = 5;

/// Why the store failed. Every message names the database file.
#[derive(Debug, Error)]
pub enum StoreError {
    /// The data directory or a file in it could not be created, opened or locked.
    #[error("cannot use {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    /// Another process has the data directory open: two nodes may not share one identity.
    #[error(
        "{path} is in use by another officemesh process (each node needs its own data directory)"
    )]
    Locked { path: PathBuf },
    /// The file was written by a newer officemesh. It was left untouched; run a newer build.
    #[error(
        "{path} has schema version {found}, newer than the version {supported} this officemesh supports; it was left untouched: run a newer officemesh"
    )]
    NewerSchema {
        found: u32,
        supported: u32,
        path: PathBuf,
    },
    /// The file is not an officemesh database, or its content is damaged. It was left
    /// untouched; moving it aside starts the node afresh, with a new identity.
    #[error(
        "{path} is corrupt or not an officemesh database: {detail}; it was left untouched (move it aside to start this node afresh, with a new identity)"
    )]
    Corrupt { path: PathBuf, detail: String },
    /// The snapshot is too large to be loaded again, so it was not saved and its lease of
    /// sequence numbers is not reserved.
    #[error(
        "snapshot of {len} bytes is larger than the {max} bytes a load accepts; not saved to {path}"
    )]
    SnapshotTooLarge {
        path: PathBuf,
        len: usize,
        max: usize,
    },
    /// A delta is too large to be loaded again, so it was not appended to the journal.
    #[error(
        "delta of {len} bytes is larger than the {max} bytes a load accepts; not saved to {path}"
    )]
    DeltaTooLarge {
        path: PathBuf,
        len: usize,
        max: usize,
    },
    /// The snapshot reserves fewer sequence numbers than the one already saved for the same
    /// node: saving it would let a restart reuse numbers. A bug in the caller; not saved.
    #[error(
        "snapshot of {node} with sequence ceiling {offered} is older than the saved one (ceiling {saved}); not saved to {path}"
    )]
    StaleSnapshot {
        path: PathBuf,
        node: String,
        saved: u64,
        offered: u64,
    },
    /// The store's thread has stopped (after [`StoreHandle::close`]): nothing was done.
    #[error("the store of {path} is closed")]
    Stopped { path: PathBuf },
    /// Any other failure of the database (disk full, I/O error, ...).
    #[error("database {path} failed: {source}")]
    Database {
        path: PathBuf,
        source: Box<dyn StdError + Send + Sync>,
    },
}

/// Attaches the database path to a SQLite error, telling corruption from other failures.
trait At<T> {
    fn at(self, path: &Path) -> Result<T, StoreError>;
}

impl<T> At<T> for rusqlite::Result<T> {
    fn at(self, path: &Path) -> Result<T, StoreError> {
        self.map_err(|error| sqlite_error(path, error))
    }
}

fn sqlite_error(path: &Path, error: rusqlite::Error) -> StoreError {
    match error.sqlite_error_code() {
        Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => StoreError::Corrupt {
            path: path.to_owned(),
            detail: error.to_string(),
        },
        _ => StoreError::Database {
            path: path.to_owned(),
            source: Box::new(error),
        },
    }
}

fn corrupt(path: &Path, detail: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        path: path.to_owned(),
        detail: detail.into(),
    }
}

/// The secrets kept in the `secrets` table, by name.
#[derive(Clone, Copy, Debug)]
enum Secret {
    /// The node's libp2p keypair, protobuf-encoded by the net module.
    NodeKey,
    /// The office's pre-shared key, [`SWARM_KEY_LEN`] bytes.
    SwarmKey,
    /// The bearer token that HTTP writes need, as UTF-8.
    ApiToken,
}

impl Secret {
    fn name(self) -> &'static str {
        match self {
            Secret::NodeKey => "node_key",
            Secret::SwarmKey => "swarm_key",
            Secret::ApiToken => "api_token",
        }
    }
}

/// How a journal append reaches the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncMode {
    /// Synced at commit (`synchronous=FULL`): survives a power cut. For writes someone was
    /// told are done, and what people said.
    Full,
    /// Synced at the next checkpoint (`synchronous=NORMAL`): survives a kill, a power cut
    /// may lose it. For what the node observes again or peers give back.
    Normal,
}

/// The replica as saved: a base snapshot and the journal of deltas appended since.
#[derive(Debug, Clone, PartialEq)]
pub struct Saved {
    pub base: Snapshot,
    pub journal: Vec<Delta>,
}

impl Saved {
    /// The replica as it was saved: the base, then every delta of the journal joined in (in
    /// any order: joins commute). Every delta was below the replica's state when it was
    /// saved, and that state only grows, so the result is below the state the node had
    /// when it stopped: it holds nothing the node had dropped. Take a snapshot and save it
    /// before the first write, as after [`Replica::restore`].
    pub fn restore(self, retention_ms: u64) -> Replica {
        let mut replica = Replica::restore(self.base, retention_ms);
        for delta in &self.journal {
            replica.replay(delta);
        }
        replica
    }
}

/// The open database of one node. Holds the data directory's lock until dropped.
///
/// Dropping it closes the database; [`Store::close`] does the same and reports failures, and
/// leaves the file fully synced, so it is what a clean shutdown calls.
pub struct Store {
    /// Declared before `_lock` so the database is closed before the lock is released.
    conn: Connection,
    path: PathBuf,
    /// The history series seen so far, so appending a reading costs no lookup. Only
    /// committed series enter it, and pruning (which deletes series) empties it.
    series: HashMap<history::Series, history::SeriesState>,
    /// The minute history of the hours still open, in memory (`minutes.rs`).
    open: minutes::OpenHours,
    /// The encoded size of the base snapshot, and of the journal rows since it.
    base_bytes: u64,
    journal_bytes: u64,
    _lock: File,
}

impl Store {
    /// Opens the node's database in `data_dir`, creating the directory (mode 0700) and the
    /// file (mode 0600: it holds the node's secrets) if they are missing, and migrating an
    /// older schema.
    ///
    /// An existing file is first checked through a read-only connection: a file that is not
    /// SQLite, is another program's database, fails `quick_check`
    /// ([`StoreError::Corrupt`]) or has a newer schema ([`StoreError::NewerSchema`]) is
    /// refused before anything can write to it. The check reads the whole file, so a start
    /// with a large history takes a moment on an SD card.
    ///
    /// Fails at once with [`StoreError::Locked`] while another store (in this or another
    /// process) has the directory open.
    pub fn open(data_dir: &Path) -> Result<Store, StoreError> {
        create_private_dir(data_dir)?;
        let lock = lock_dir(data_dir)?;
        let path = data_dir.join(DB_FILE_NAME);
        let created = create_private_file(&path)?;
        let found = if created { 0 } else { check_existing(&path)? };

        let mut conn = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .at(&path)?;
        configure(&conn, &path)?;
        let migrated = schema::migrate(&mut conn, found).at(&path)?;
        if migrated.from != migrated.to {
            info!(path = %path.display(), from = migrated.from, to = migrated.to, "database schema migrated");
        }
        let (base_bytes, journal_bytes) = conn
            .query_row(
                "SELECT (SELECT coalesce(length(encoded), 0) FROM snapshot WHERE id = 1),
                        (SELECT coalesce(sum(length(encoded)), 0) FROM journal)",
                [],
                |row| Ok((row.get::<_, Option<i64>>(0)?, row.get::<_, i64>(1)?)),
            )
            .at(&path)?;
        Ok(Store {
            conn,
            path,
            series: HashMap::new(),
            open: minutes::OpenHours::default(),
            base_bytes: base_bytes.unwrap_or(0).unsigned_abs(),
            journal_bytes: journal_bytes.unsigned_abs(),
            _lock: lock,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Checkpoints the write-ahead log into the database file, syncs it, and closes. After
    /// it returns, everything committed is on disk, whatever happens to the power.
    pub fn close(mut self) -> Result<(), StoreError> {
        if let Err(error) = self.flush_minutes() {
            warn!(path = %self.path.display(), %error, "the open hours of the minute history could not be written at close");
        }
        let Store { conn, path, .. } = self;
        // Returns (busy, log frames, frames checkpointed); busy means a reader (an operator's
        // shell) kept part of the log from being copied: nothing is lost, it is copied later.
        let busy: bool = conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |row| row.get(0))
            .at(&path)?;
        if busy {
            warn!(path = %path.display(), "the write-ahead log could not be fully checkpointed at close");
        }
        conn.close()
            .map_err(|(_, error)| sqlite_error(&path, error))
    }

    /// Bytes the database takes on disk: its file and its write-ahead log.
    pub fn disk_bytes(&self) -> u64 {
        let mut wal = self.path.clone().into_os_string();
        wal.push("-wal");
        [self.path.as_os_str(), wal.as_os_str()]
            .into_iter()
            .filter_map(|path| std::fs::metadata(path).ok())
            .map(|metadata| metadata.len())
            .sum()
    }

    // ---- the replica ----

    /// The replica saved last, if any: the base and its journal. Restore it with
    /// [`Saved::restore`], then take and save a new snapshot before the first write.
    pub fn load(&self) -> Result<Option<Saved>, StoreError> {
        load_saved(&self.conn, &self.path)
    }

    /// The base snapshot alone, without the journal since it.
    #[cfg(test)]
    fn load_snapshot(&self) -> Result<Option<Snapshot>, StoreError> {
        load_base(&self.conn, &self.path)
    }

    /// Saves a replica snapshot as the new base, replacing the previous one and deleting the
    /// journal (which it holds all of: it is the whole replica), in one synced transaction.
    ///
    /// `Replica::snapshot` reserves a lease of sequence numbers, and this save is what makes
    /// the reservation durable: the node must not write with numbers of a lease until the
    /// save of that lease has returned `Ok`. On an error nothing was saved, and the previous
    /// save (its base, lease and journal) still stands.
    pub fn save_snapshot(&mut self, snapshot: &Snapshot) -> Result<(), StoreError> {
        let encoded = wire::encode_snapshot(snapshot);
        if encoded.len() > MAX_SNAPSHOT_BYTES {
            return Err(StoreError::SnapshotTooLarge {
                path: self.path.clone(),
                len: encoded.len(),
                max: MAX_SNAPSHOT_BYTES,
            });
        }
        let seq_ceiling = ceiling_column(snapshot.seq_ceiling);
        let node = snapshot.id.as_str();
        let path = self.path.clone();
        self.synced(|tx| {
            let saved: Option<i64> = tx
                .query_row(
                    "SELECT seq_ceiling FROM snapshot WHERE id = 1 AND node_id = ?1",
                    [node],
                    |row| row.get(0),
                )
                .optional()
                .at(&path)?;
            if let Some(saved) = saved.filter(|&saved| saved > seq_ceiling) {
                return Err(StoreError::StaleSnapshot {
                    path: path.clone(),
                    node: node.to_owned(),
                    saved: saved.unsigned_abs(),
                    offered: snapshot.seq_ceiling,
                });
            }
            tx.execute(
                "INSERT INTO snapshot (id, node_id, seq_ceiling, encoded) VALUES (1, ?1, ?2, ?3)
                 ON CONFLICT (id) DO UPDATE SET
                    node_id = excluded.node_id,
                    seq_ceiling = excluded.seq_ceiling,
                    encoded = excluded.encoded",
                params![node, seq_ceiling, encoded],
            )
            .at(&path)?;
            tx.execute("DELETE FROM journal", []).at(&path)?;
            Ok(())
        })?;
        self.base_bytes = encoded.len() as u64;
        self.journal_bytes = 0;
        Ok(())
    }

    /// Appends a delta of the replica to the journal under the base, in one transaction
    /// synced as `sync` says. The delta must be below the replica's state (a write's own
    /// delta, what a merge admitted, a join or restriction of those): a restore joins it
    /// into the base.
    ///
    /// Fails without a base to append to (save a snapshot first), or for a delta larger than
    /// a load accepts; on an error nothing was appended.
    pub fn append_journal(&mut self, delta: &Delta, sync: SyncMode) -> Result<(), StoreError> {
        let encoded = wire::encode_delta(delta);
        if encoded.len() > MAX_SNAPSHOT_BYTES {
            return Err(StoreError::DeltaTooLarge {
                path: self.path.clone(),
                len: encoded.len(),
                max: MAX_SNAPSHOT_BYTES,
            });
        }
        let path = self.path.clone();
        let append = |tx: &Transaction<'_>| {
            let based: bool = tx
                .query_row("SELECT count(*) FROM snapshot", [], |row| row.get(0))
                .at(&path)?;
            if !based {
                return Err(StoreError::Database {
                    path: path.clone(),
                    source: "no saved replica to append a delta to: save a snapshot first".into(),
                });
            }
            tx.execute("INSERT INTO journal (encoded) VALUES (?1)", [&encoded])
                .at(&path)?;
            Ok(())
        };
        match sync {
            SyncMode::Full => self.synced(append)?,
            SyncMode::Normal => {
                let tx = self.conn.transaction().at(&self.path)?;
                append(&tx)?;
                tx.commit().at(&self.path)?;
            }
        }
        self.journal_bytes += encoded.len() as u64;
        Ok(())
    }

    /// Whether the journal has grown larger than its base (and than [`JOURNAL_FLOOR_BYTES`]):
    /// then a new base is cheaper to load and takes less room. Save a snapshot to fold it.
    pub fn journal_outgrew_base(&self) -> bool {
        self.journal_bytes > self.base_bytes.max(JOURNAL_FLOOR_BYTES)
    }

    // ---- identity and secrets ----

    /// The node's key (the protobuf-encoded libp2p keypair, opaque here): the saved one, or
    /// the one `generate` makes, saved before it is returned. `generate` runs only on the
    /// first start, so the node keeps its peer id across restarts.
    pub fn load_or_create_node_key(
        &mut self,
        generate: impl FnOnce() -> Vec<u8>,
    ) -> Result<Vec<u8>, StoreError> {
        self.load_or_create(Secret::NodeKey, generate)
    }

    /// The office's pre-shared swarm key, if this node has one yet.
    pub fn swarm_key(&self) -> Result<Option<[u8; SWARM_KEY_LEN]>, StoreError> {
        self.secret(Secret::SwarmKey)?
            .map(|bytes| self.swarm_key_from(bytes))
            .transpose()
    }

    /// Saves the office's swarm key (joining an office replaces the one a node had).
    pub fn set_swarm_key(&mut self, key: &[u8; SWARM_KEY_LEN]) -> Result<(), StoreError> {
        self.set_secret(Secret::SwarmKey, key)
    }

    /// The saved swarm key, or the one `generate` makes (a new office), saved first.
    pub fn load_or_create_swarm_key(
        &mut self,
        generate: impl FnOnce() -> [u8; SWARM_KEY_LEN],
    ) -> Result<[u8; SWARM_KEY_LEN], StoreError> {
        let bytes = self.load_or_create(Secret::SwarmKey, || generate().to_vec())?;
        self.swarm_key_from(bytes)
    }

    /// The bearer token HTTP writes need, if one was set.
    pub fn api_token(&self) -> Result<Option<String>, StoreError> {
        self.secret(Secret::ApiToken)?
            .map(|bytes| self.api_token_from(bytes))
            .transpose()
    }

    pub fn set_api_token(&mut self, token: &str) -> Result<(), StoreError> {
        self.set_secret(Secret::ApiToken, token.as_bytes())
    }

    /// The saved API token, or the one `generate` makes, saved first.
    pub fn load_or_create_api_token(
        &mut self,
        generate: impl FnOnce() -> String,
    ) -> Result<String, StoreError> {
        let bytes = self.load_or_create(Secret::ApiToken, || generate().into_bytes())?;
        self.api_token_from(bytes)
    }

    fn swarm_key_from(&self, bytes: Vec<u8>) -> Result<[u8; SWARM_KEY_LEN], StoreError> {
        let len = bytes.len();
        bytes.try_into().map_err(|_| {
            corrupt(
                &self.path,
                format!("the swarm key is {len} bytes long, not {SWARM_KEY_LEN}"),
            )
        })
    }

    fn api_token_from(&self, bytes: Vec<u8>) -> Result<String, StoreError> {
        String::from_utf8(bytes)
            .map_err(|error| corrupt(&self.path, format!("the API token is not UTF-8: {error}")))
    }

    fn secret(&self, secret: Secret) -> Result<Option<Vec<u8>>, StoreError> {
        self.conn
            .query_row(
                "SELECT value FROM secrets WHERE name = ?1",
                [secret.name()],
                |row| row.get(0),
            )
            .optional()
            .at(&self.path)
    }

    fn set_secret(&mut self, secret: Secret, value: &[u8]) -> Result<(), StoreError> {
        let path = self.path.clone();
        self.synced(|tx| {
            tx.execute(
                "INSERT INTO secrets (name, value) VALUES (?1, ?2)
                 ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                params![secret.name(), value],
            )
            .at(&path)?;
            Ok(())
        })
    }

    /// Reads a secret, or generates and saves it, in one transaction.
    fn load_or_create(
        &mut self,
        secret: Secret,
        generate: impl FnOnce() -> Vec<u8>,
    ) -> Result<Vec<u8>, StoreError> {
        let path = self.path.clone();
        self.synced(|tx| {
            let saved: Option<Vec<u8>> = tx
                .query_row(
                    "SELECT value FROM secrets WHERE name = ?1",
                    [secret.name()],
                    |row| row.get(0),
                )
                .optional()
                .at(&path)?;
            if let Some(saved) = saved {
                return Ok(saved);
            }
            let value = generate();
            tx.execute(
                "INSERT INTO secrets (name, value) VALUES (?1, ?2)",
                params![secret.name(), value],
            )
            .at(&path)?;
            info!(path = %path.display(), secret = secret.name(), "new secret generated and saved");
            Ok(value)
        })
    }

    /// Runs `body` in a transaction committed with `synchronous=FULL`, so it is on disk (not
    /// only in the write-ahead log in memory) when this returns `Ok`. For the rare writes a
    /// power cut must not undo: leases of sequence numbers and keys.
    fn synced<T>(
        &mut self,
        body: impl FnOnce(&Transaction<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let path = &self.path;
        self.conn
            .pragma_update(None, "synchronous", "FULL")
            .at(path)?;
        let result = (|| {
            let tx = self.conn.transaction().at(path)?;
            let value = body(&tx)?;
            tx.commit().at(path)?;
            Ok(value)
        })();
        let restored = self
            .conn
            .pragma_update(None, "synchronous", "NORMAL")
            .at(path);
        let value = result?;
        restored?;
        Ok(value)
    }
}

/// The saved replica in the database `conn` (at `path`, for errors): the base snapshot and
/// the journal of deltas since it.
fn load_saved(conn: &Connection, path: &Path) -> Result<Option<Saved>, StoreError> {
    let base = load_base(conn, path)?;
    let mut rows = conn
        .prepare("SELECT id, encoded FROM journal ORDER BY id")
        .at(path)?;
    let mut journal = Vec::new();
    let mut found = rows.query([]).at(path)?;
    while let Some(row) = found.next().at(path)? {
        let id: i64 = row.get(0).at(path)?;
        let encoded: Vec<u8> = row.get(1).at(path)?;
        let delta = wire::decode_saved_delta(&encoded)
            .map_err(|error| corrupt(path, format!("journal row {id} does not decode: {error}")))?;
        journal.push(delta);
    }
    match base {
        Some(base) => Ok(Some(Saved { base, journal })),
        None if journal.is_empty() => Ok(None),
        None => Err(corrupt(
            path,
            format!(
                "the journal has {} rows but there is no saved replica under them",
                journal.len()
            ),
        )),
    }
}

/// The base snapshot in the database `conn`, without the journal since it.
fn load_base(conn: &Connection, path: &Path) -> Result<Option<Snapshot>, StoreError> {
    let row: Option<(String, i64, Vec<u8>)> = conn
        .query_row(
            "SELECT node_id, seq_ceiling, encoded FROM snapshot WHERE id = 1",
            [],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
        )
        .optional()
        .at(path)?;
    let Some((node_id, seq_ceiling, encoded)) = row else {
        return Ok(None);
    };
    let snapshot = wire::decode_snapshot(&encoded).map_err(|error| {
        corrupt(
            path,
            format!("the saved replica of {node_id} does not decode: {error}"),
        )
    })?;
    if snapshot.id.as_str() != node_id || ceiling_column(snapshot.seq_ceiling) != seq_ceiling {
        return Err(corrupt(
            path,
            format!(
                "the saved replica is of {} with sequence ceiling {}, but its row says {node_id} with ceiling {seq_ceiling}",
                snapshot.id, snapshot.seq_ceiling
            ),
        ));
    }
    Ok(Some(snapshot))
}

/// What the store of `data_dir` holds right now, read through a read-only connection of its
/// own (no lock), in one read transaction: for tests of the modules above that watch a
/// running store.
#[cfg(test)]
pub(crate) fn peek(data_dir: &Path) -> Result<Option<Saved>, StoreError> {
    let path = data_dir.join(DB_FILE_NAME);
    let conn = Connection::open_with_flags(
        &path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .at(&path)?;
    conn.busy_timeout(BUSY_TIMEOUT).at(&path)?;
    let tx = conn.unchecked_transaction().at(&path)?;
    let saved = load_saved(&tx, &path);
    tx.finish().at(&path)?;
    saved
}

/// The sequence ceiling as its column holds it. A replica's ceiling never exceeds
/// `MAX_SEQ` (2^53 - 1); a larger one, from a hand-made snapshot, is saturated here and
/// compared the same way on load.
fn ceiling_column(seq_ceiling: u64) -> i64 {
    i64::try_from(seq_ceiling).unwrap_or(i64::MAX)
}

/// Creates the data directory, and any missing parent, readable by its owner only: the
/// database holds the node key and the office's swarm key.
fn create_private_dir(data_dir: &Path) -> Result<(), StoreError> {
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(data_dir)
        .map_err(|source| StoreError::Io {
            path: data_dir.to_owned(),
            source,
        })
}

/// Takes the data directory's lock, or fails at once if another process holds it.
fn lock_dir(data_dir: &Path) -> Result<File, StoreError> {
    let path = data_dir.join(LOCK_FILE_NAME);
    let io_error = |source| StoreError::Io {
        path: path.clone(),
        source,
    };
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&path)
        .map_err(io_error)?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(TryLockError::WouldBlock) => Err(StoreError::Locked {
            path: data_dir.join(DB_FILE_NAME),
        }),
        Err(TryLockError::Error(source)) => Err(io_error(source)),
    }
}

/// Creates an empty database file with mode 0600, before SQLite would create it with its
/// default 0644 (its log and shared-memory files copy the database's mode). Returns whether
/// it was created; an empty file is a valid, empty SQLite database.
fn create_private_file(path: &Path) -> Result<bool, StoreError> {
    match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => Ok(true),
        Err(error) if error.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        Err(source) => Err(StoreError::Io {
            path: path.to_owned(),
            source,
        }),
    }
}

/// Checks an existing file through a read-only connection, so a file that is refused is
/// never written: it is SQLite, it is ours (or empty), its schema is not newer than ours, and
/// `quick_check` finds nothing wrong. Returns its schema version.
fn check_existing(path: &Path) -> Result<u32, StoreError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .at(path)?;
    conn.busy_timeout(BUSY_TIMEOUT).at(path)?;
    let version = schema::version(&conn).at(path)?;
    let application_id: i32 = conn
        .pragma_query_value(None, "application_id", |row| row.get(0))
        .at(path)?;
    let tables: u32 = conn
        .query_row("SELECT count(*) FROM sqlite_schema", [], |row| row.get(0))
        .at(path)?;
    if application_id != schema::APPLICATION_ID && (application_id != 0 || tables > 0) {
        return Err(corrupt(
            path,
            format!(
                "it is an SQLite database of another program (application id {application_id:#x}, officemesh's is {:#x})",
                schema::APPLICATION_ID
            ),
        ));
    }
    if version > SCHEMA_VERSION {
        return Err(StoreError::NewerSchema {
            found: version,
            supported: SCHEMA_VERSION,
            path: path.to_owned(),
        });
    }
    let mut problems = Vec::new();
    conn.pragma_query(None, "quick_check", |row| {
        problems.push(row.get::<_, String>(0)?);
        Ok(())
    })
    .map_err(|error| match sqlite_error(path, error) {
        StoreError::Corrupt { path, detail } => StoreError::Corrupt {
            path,
            detail: format!("quick_check failed: {detail}"),
        },
        other => other,
    })?;
    if problems != ["ok"] {
        // A row may hold several lines under a "*** in database main ***" heading; the
        // error is one line, so quote the problems themselves, separated.
        let lines: Vec<&str> = problems
            .iter()
            .flat_map(|problem| problem.lines())
            .filter(|line| !line.starts_with("***") && !line.trim().is_empty())
            .collect();
        let shown = lines.len().min(MAX_CHECK_PROBLEMS);
        let mut detail = format!("quick_check found: {}", lines[..shown].join("; "));
        if lines.len() > shown {
            detail.push_str(&format!(" (and {} more)", lines.len() - shown));
        }
        return Err(corrupt(path, detail));
    }
    Ok(version)
}

/// Sets the connection up: WAL, its sync level, foreign keys, lock waits.
fn configure(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    conn.busy_timeout(BUSY_TIMEOUT).at(path)?;
    // WAL: a write appends to the log instead of rewriting pages and a journal, so fewer
    // bytes hit the card, and readers never block the writer.
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
        .at(path)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Database {
            path: path.to_owned(),
            source: format!("the file system refused WAL mode (journal mode is {mode})").into(),
        });
    }
    // NORMAL: in WAL mode, commits are synced at checkpoints only. A killed process loses
    // nothing committed; a power cut loses at most the commits since the last checkpoint and
    // never corrupts the file. Saves that must survive a power cut opt into FULL
    // (`Store::synced`).
    conn.pragma_update(None, "synchronous", "NORMAL").at(path)?;
    conn.pragma_update(None, "foreign_keys", true).at(path)?;
    conn.pragma_update(None, "journal_size_limit", JOURNAL_SIZE_LIMIT_BYTES)
        .at(path)?;
    Ok(())
}
