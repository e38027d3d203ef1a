//! The raw history of the node's own sensors: every reading at full resolution, appended in
//! batches and deleted after its retention. The office's history at minute and hour
//! resolution, for every sensor, is `minutes.rs`.
//!
//! Readings go in a batch per transaction: every commit writes at least one page to the
//! card, so the node collects a save interval's readings and appends them together (100 per
//! transaction write 23 times fewer bytes per reading than one, `docs/benchmarks.md`). A
//! killed node loses the batch it was collecting, no more. Readings are keyed by (time,
//! series), so appending the same reading twice keeps one row, and a batch retried after a
//! failure does no harm.

use std::{collections::HashMap, ops::Range};

use rusqlite::{OptionalExtension, Row, Transaction, params};
use tracing::warn;

use super::{At, Store, StoreError, corrupt};
pub use crate::state::Series;
use crate::state::{NodeId, Quantity, Reading, ReadingKey, Room, SensorId};

/// One minute.
pub const MINUTE_MS: u64 = 60_000;

/// One hour: the unit the history is written and pruned in.
pub const HOUR_MS: u64 = 60 * MINUTE_MS;

/// A sensible retention for raw history: 7 days, about 600 000 rows per sensor reporting
/// every second.
pub const DEFAULT_RAW_RETENTION_MS: u64 = 7 * 24 * 60 * 60 * 1000;

/// Most rows one raw history query returns (the oldest first). A chart of a longer span
/// reads minute or hour buckets instead.
pub const MAX_HISTORY_QUERY_ROWS: usize = 100_000;

/// One reading of one sensor at one time, as history keeps it.
#[derive(Clone, Debug, PartialEq)]
pub struct HistoryRow {
    pub node: NodeId,
    pub sensor: SensorId,
    pub room: Room,
    pub quantity: Quantity,
    /// In the quantity's canonical unit.
    pub value: f64,
    /// When it was measured: the reading's hybrid-logical-clock wall time.
    pub measured_at_ms: u64,
}

impl HistoryRow {
    /// The series the row belongs to.
    pub fn series(&self) -> Series {
        Series {
            node: self.node.clone(),
            sensor: self.sensor.clone(),
            room: self.room.clone(),
            quantity: self.quantity,
        }
    }

    /// The history row of a reading in the replica.
    pub fn from_reading(key: &ReadingKey, reading: &Reading) -> Self {
        HistoryRow {
            node: key.node.clone(),
            sensor: key.sensor.clone(),
            room: reading.room.clone(),
            quantity: reading.quantity,
            value: reading.value,
            measured_at_ms: reading.at.wall_ms,
        }
    }
}

/// What [`Store::prune_history`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Raw rows older than their retention, deleted.
    pub raw_deleted: usize,
    /// Series-hours of minute buckets older than their retention, deleted.
    pub minute_hours_deleted: usize,
    /// Hourly summaries older than their retention, deleted.
    pub hours_deleted: usize,
    /// Series left with no data at all, deleted.
    pub series_deleted: usize,
}

/// How long each resolution of the history is kept, as cut-off times: what was measured
/// before a cut goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PruneBefore {
    pub raw_ms: u64,
    pub minutes_ms: u64,
    pub hours_ms: u64,
}

/// A series as the store remembers it between appends.
#[derive(Clone, Copy, Debug)]
pub(super) struct SeriesState {
    pub(super) id: i64,
    /// The start of the hour of its newest reading, as saved in `series.last_hour_ms`.
    last_hour_ms: i64,
}

/// Milliseconds as SQLite stores them; `None` past `i64::MAX` (292 million years).
pub(super) fn sql_ms(ms: u64) -> Option<i64> {
    i64::try_from(ms).ok()
}

/// The start of the hour holding `ms`.
fn hour_of(ms: i64) -> i64 {
    ms - ms.rem_euclid(BUCKET_MS)
}

/// An hour as SQLite stores it.
const BUCKET_MS: i64 = HOUR_MS as i64;

impl Store {
    /// Appends a batch of readings in one transaction: all of them or, on an error, none.
    /// Returns how many rows were added; a reading already kept (same sensor, room,
    /// quantity and time) is not added again, and a row with a value that is not a finite
    /// number is skipped with a warning rather than failing the batch.
    pub fn append_history(&mut self, rows: &[HistoryRow]) -> Result<usize, StoreError> {
        if rows.is_empty() {
            return Ok(0);
        }
        let path = &self.path;
        let known = &mut self.series;
        let tx = self.conn.transaction().at(path)?;
        // Series created or moved to a new hour by this batch; remembered only once it
        // commits, since a rolled-back series id could be reused by another series.
        let mut touched: HashMap<Series, SeriesState> = HashMap::new();
        let mut added = 0;
        let mut skipped = 0;
        {
            let mut insert = tx
                .prepare_cached(
                    "INSERT INTO history (measured_at_ms, series_id, value) VALUES (?1, ?2, ?3)
                     ON CONFLICT DO NOTHING",
                )
                .at(path)?;
            let mut advance = tx
                .prepare_cached("UPDATE series SET last_hour_ms = ?2 WHERE id = ?1")
                .at(path)?;
            for row in rows {
                let Some(measured_at_ms) =
                    sql_ms(row.measured_at_ms).filter(|_| row.value.is_finite())
                else {
                    skipped += 1;
                    continue;
                };
                let hour = hour_of(measured_at_ms);
                let key = row.series();
                let series = match touched.get(&key).or_else(|| known.get(&key)) {
                    Some(&series) => series,
                    None => {
                        let series = series_state(&tx, &key, hour).at(path)?;
                        touched.insert(key.clone(), series);
                        series
                    }
                };
                if hour > series.last_hour_ms {
                    advance.execute(params![series.id, hour]).at(path)?;
                    touched.insert(
                        key,
                        SeriesState {
                            last_hour_ms: hour,
                            ..series
                        },
                    );
                }
                added += insert
                    .execute(params![measured_at_ms, series.id, row.value])
                    .at(path)?;
            }
        }
        tx.commit().at(path)?;
        known.extend(touched);
        if skipped > 0 {
            warn!(path = %path.display(), skipped, "history rows with a value that is not a finite number, or an impossible time, were skipped");
        }
        Ok(added)
    }

    /// Deletes what is older than its retention, each resolution at its own cut, and the
    /// series left with nothing. One transaction; every table is clustered by time, so each
    /// delete frees a prefix of its table.
    pub fn prune_history(&mut self, before: PruneBefore) -> Result<Pruned, StoreError> {
        let cut = |ms: u64| sql_ms(ms).unwrap_or(i64::MAX);
        let (raw, minutes, hours) = (
            cut(before.raw_ms),
            cut(before.minutes_ms),
            cut(before.hours_ms),
        );
        let path = &self.path;
        // Ids of series deleted below may be reused; forget them whatever the outcome.
        self.series.clear();
        let tx = self.conn.transaction().at(path)?;
        let mut pruned = Pruned {
            raw_deleted: tx
                .execute("DELETE FROM history WHERE measured_at_ms < ?1", [raw])
                .at(path)?,
            // An hour goes once all of it is older than the cut.
            minute_hours_deleted: tx
                .execute(
                    "DELETE FROM minutes WHERE hour_ms <= ?1 - ?2",
                    params![minutes, BUCKET_MS],
                )
                .at(path)?,
            hours_deleted: tx
                .execute(
                    "DELETE FROM hours WHERE hour_ms <= ?1 - ?2",
                    params![hours, BUCKET_MS],
                )
                .at(path)?,
            series_deleted: 0,
        };
        // A series whose newest hour ended before every cut has nothing left.
        pruned.series_deleted = tx
            .execute(
                "DELETE FROM series WHERE last_hour_ms <= ?1 - ?2",
                params![raw.min(minutes).min(hours), BUCKET_MS],
            )
            .at(path)?;
        tx.commit().at(path)?;
        Ok(pruned)
    }

    /// The raw readings of one sensor measured in `range` (milliseconds), oldest first, at
    /// most [`MAX_HISTORY_QUERY_ROWS`].
    pub fn history(
        &self,
        node: &NodeId,
        sensor: &SensorId,
        range: Range<u64>,
    ) -> Result<Vec<HistoryRow>, StoreError> {
        let mut statement = self
            .conn
            .prepare_cached(
                "SELECT s.node_id, s.sensor, s.room, s.quantity, h.value, h.measured_at_ms
                 FROM series s JOIN history h ON h.series_id = s.id
                 WHERE s.node_id = ?1 AND s.sensor = ?2
                    AND h.measured_at_ms >= ?3 AND h.measured_at_ms < ?4
                 ORDER BY h.measured_at_ms LIMIT ?5",
            )
            .at(&self.path)?;
        let rows = statement
            .query_map(
                params![
                    node.as_str(),
                    sensor.as_str(),
                    sql_ms(range.start).unwrap_or(i64::MAX),
                    sql_ms(range.end).unwrap_or(i64::MAX),
                    MAX_HISTORY_QUERY_ROWS as i64,
                ],
                |row| {
                    Ok((
                        series_columns(row)?,
                        row.get::<_, f64>(4)?,
                        row.get::<_, i64>(5)?,
                    ))
                },
            )
            .at(&self.path)?;
        let mut out = Vec::new();
        for row in rows {
            let (columns, value, measured_at_ms) = row.at(&self.path)?;
            let key = self.series_key(columns)?;
            out.push(HistoryRow {
                node: key.node,
                sensor: key.sensor,
                room: key.room,
                quantity: key.quantity,
                value,
                measured_at_ms: measured_at_ms.unsigned_abs(),
            });
        }
        Ok(out)
    }

    /// A series key read back from the database, validated like any other input.
    pub(super) fn series_key(
        &self,
        [node, sensor, room, quantity]: [String; 4],
    ) -> Result<Series, StoreError> {
        let bad = |what: &str, error: &dyn std::fmt::Display| {
            corrupt(
                &self.path,
                format!("history series has an invalid {what}: {error}"),
            )
        };
        Ok(Series {
            node: NodeId::new(node).map_err(|error| bad("node id", &error))?,
            sensor: SensorId::new(&sensor).map_err(|error| bad("sensor", &error))?,
            room: Room::new(&room).map_err(|error| bad("room", &error))?,
            quantity: quantity.parse().map_err(|error| bad("quantity", &error))?,
        })
    }
}

/// The first four columns of a history query: the series' names.
fn series_columns(row: &Row<'_>) -> rusqlite::Result<[String; 4]> {
    Ok([row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?])
}

/// A series as saved, created (its newest hour `hour`) if new.
pub(super) fn series_state(
    tx: &Transaction<'_>,
    key: &Series,
    hour: i64,
) -> rusqlite::Result<SeriesState> {
    let names = params![
        key.node.as_str(),
        key.sensor.as_str(),
        key.room.as_str(),
        key.quantity.name()
    ];
    let found = tx
        .prepare_cached(
            "SELECT id, last_hour_ms FROM series
             WHERE node_id = ?1 AND sensor = ?2 AND room = ?3 AND quantity = ?4",
        )?
        .query_row(names, |row| {
            Ok(SeriesState {
                id: row.get(0)?,
                last_hour_ms: row.get(1)?,
            })
        })
        .optional()?;
    match found {
        Some(series) => Ok(series),
        None => {
            tx.prepare_cached(
                "INSERT INTO series (node_id, sensor, room, quantity, last_hour_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![
                key.node.as_str(),
                key.sensor.as_str(),
                key.room.as_str(),
                key.quantity.name(),
                hour
            ])?;
            Ok(SeriesState {
                id: tx.last_insert_rowid(),
                last_hour_ms: hour,
            })
        }
    }
}
