//! The history of readings: raw rows appended in batches, pruned after a retention period
//! into hourly rollups that are kept longer.
//!
//! Readings go in a batch per transaction: every commit writes at least one page to the
//! card, so the node collects a few seconds of readings and appends them together (100 per
//! transaction write 23 times fewer bytes per reading than one, `docs/benchmarks.md`). A
//! killed node loses the batch it was collecting, no more. Readings are keyed by (time,
//! series), so appending the same reading twice keeps one row, and a batch retried after a
//! failure does no harm.

use std::{collections::HashMap, ops::Range};

use rusqlite::{OptionalExtension, Row, Transaction, params};
use tracing::warn;

use super::{At, Store, StoreError, corrupt};
use crate::state::{NodeId, Quantity, Reading, ReadingKey, Room, SensorId};

/// Width of a rollup bucket: one hour.
pub const ROLLUP_BUCKET_MS: u64 = 60 * 60 * 1000;

/// A sensible retention for raw history: 7 days, about 600 000 rows per sensor reporting
/// every second.
pub const DEFAULT_HISTORY_RETENTION_MS: u64 = 7 * 24 * 60 * 60 * 1000;

/// A sensible retention for hourly rollups: 400 days, so this month compares with the same
/// month last year; 9 600 rows per sensor.
pub const DEFAULT_ROLLUP_RETENTION_MS: u64 = 400 * 24 * 60 * 60 * 1000;

/// Most rows one history or rollup query returns (the oldest first). A chart of a longer
/// span of raw readings than this should read the rollups instead.
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

/// The readings of one sensor during one hour, summarised when they were pruned.
#[derive(Clone, Debug, PartialEq)]
pub struct Rollup {
    pub node: NodeId,
    pub sensor: SensorId,
    pub room: Room,
    pub quantity: Quantity,
    /// The start of the hour, a multiple of [`ROLLUP_BUCKET_MS`].
    pub hour_start_ms: u64,
    pub count: u64,
    pub min: f64,
    pub max: f64,
    pub mean: f64,
}

/// What [`Store::prune_history`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Raw rows summarised into rollups and deleted.
    pub rows_rolled_up: usize,
    /// Rollups older than their retention, deleted.
    pub rollups_deleted: usize,
    /// Series left with neither rows nor rollups, deleted.
    pub series_deleted: usize,
}

/// What names a series: one sensor of one node, in one room, measuring one quantity. A
/// sensor moved to another room starts a new series, so its old readings keep their room.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) struct SeriesKey {
    node: NodeId,
    sensor: SensorId,
    room: Room,
    quantity: Quantity,
}

impl SeriesKey {
    fn of(row: &HistoryRow) -> Self {
        SeriesKey {
            node: row.node.clone(),
            sensor: row.sensor.clone(),
            room: row.room.clone(),
            quantity: row.quantity,
        }
    }
}

/// A series as the store remembers it between appends.
#[derive(Clone, Copy, Debug)]
pub(super) struct SeriesState {
    id: i64,
    /// The start of the hour of its newest reading, as saved in `series.last_hour_ms`.
    last_hour_ms: i64,
}

/// Milliseconds as SQLite stores them; `None` past `i64::MAX` (292 million years).
fn sql_ms(ms: u64) -> Option<i64> {
    i64::try_from(ms).ok()
}

/// The start of the rollup bucket holding `ms`.
fn hour_of(ms: i64) -> i64 {
    ms - ms.rem_euclid(BUCKET_MS)
}

/// [`ROLLUP_BUCKET_MS`] as SQLite stores it.
const BUCKET_MS: i64 = ROLLUP_BUCKET_MS as i64;

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
        let mut touched: HashMap<SeriesKey, SeriesState> = HashMap::new();
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
                let key = SeriesKey::of(row);
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

    /// Moves raw readings measured before `raw_before_ms` into hourly rollups, deletes the
    /// rollups of hours that ended at or before `rollups_before_ms`, and deletes series left
    /// with neither. One transaction.
    ///
    /// An hour cut in two by `raw_before_ms` is rolled up in two goes, merged: its count,
    /// minimum, maximum and mean end up as if rolled up at once.
    pub fn prune_history(
        &mut self,
        raw_before_ms: u64,
        rollups_before_ms: u64,
    ) -> Result<Pruned, StoreError> {
        let raw_before = sql_ms(raw_before_ms).unwrap_or(i64::MAX);
        let rollups_before = sql_ms(rollups_before_ms).unwrap_or(i64::MAX);
        let path = &self.path;
        // Ids of series deleted below may be reused; forget them whatever the outcome.
        self.series.clear();
        let tx = self.conn.transaction().at(path)?;
        let mut pruned = Pruned::default();
        // The rows to prune are a prefix of `history`, read once.
        tx.execute(
            "INSERT INTO rollup_hourly
                (series_id, hour_start_ms, count, min_value, max_value, sum_value)
             SELECT series_id, (measured_at_ms / ?2) * ?2 AS hour, count(*), min(value),
                    max(value), sum(value)
             FROM history WHERE measured_at_ms < ?1
             GROUP BY series_id, hour
             ON CONFLICT (series_id, hour_start_ms) DO UPDATE SET
                count = count + excluded.count,
                min_value = min(min_value, excluded.min_value),
                max_value = max(max_value, excluded.max_value),
                sum_value = sum_value + excluded.sum_value",
            params![raw_before, BUCKET_MS],
        )
        .at(path)?;
        pruned.rows_rolled_up = tx
            .execute(
                "DELETE FROM history WHERE measured_at_ms < ?1",
                [raw_before],
            )
            .at(path)?;
        // Rollups are clustered by series: delete series by series, so each statement walks
        // one range of the primary key instead of the whole table.
        let series: Vec<i64> = {
            let mut statement = tx.prepare("SELECT id FROM series").at(path)?;
            statement
                .query_map([], |row| row.get(0))
                .at(path)?
                .collect::<Result<_, _>>()
                .at(path)?
        };
        for id in series {
            pruned.rollups_deleted += tx
                .execute(
                    "DELETE FROM rollup_hourly WHERE series_id = ?1 AND hour_start_ms <= ?2 - ?3",
                    params![id, rollups_before, BUCKET_MS],
                )
                .at(path)?;
        }
        // A series whose newest hour ended before the cut has no raw rows left.
        pruned.series_deleted = tx
            .execute(
                "DELETE FROM series WHERE last_hour_ms <= ?1 - ?2
                    AND NOT EXISTS (SELECT 1 FROM rollup_hourly WHERE series_id = series.id)",
                params![raw_before, BUCKET_MS],
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

    /// The hourly rollups of one sensor whose hour starts in `range` (milliseconds), oldest
    /// first, at most [`MAX_HISTORY_QUERY_ROWS`].
    pub fn rollups(
        &self,
        node: &NodeId,
        sensor: &SensorId,
        range: Range<u64>,
    ) -> Result<Vec<Rollup>, StoreError> {
        let mut statement = self
            .conn
            .prepare_cached(
                "SELECT s.node_id, s.sensor, s.room, s.quantity,
                        r.hour_start_ms, r.count, r.min_value, r.max_value, r.sum_value
                 FROM series s JOIN rollup_hourly r ON r.series_id = s.id
                 WHERE s.node_id = ?1 AND s.sensor = ?2
                    AND r.hour_start_ms >= ?3 AND r.hour_start_ms < ?4
                 ORDER BY r.hour_start_ms LIMIT ?5",
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
                        row.get::<_, i64>(4)?,
                        row.get::<_, i64>(5)?,
                        row.get::<_, f64>(6)?,
                        row.get::<_, f64>(7)?,
                        row.get::<_, f64>(8)?,
                    ))
                },
            )
            .at(&self.path)?;
        let mut out = Vec::new();
        for row in rows {
            let (columns, hour_start_ms, count, min, max, sum) = row.at(&self.path)?;
            let key = self.series_key(columns)?;
            let count = count.unsigned_abs();
            out.push(Rollup {
                node: key.node,
                sensor: key.sensor,
                room: key.room,
                quantity: key.quantity,
                hour_start_ms: hour_start_ms.unsigned_abs(),
                count,
                min,
                max,
                mean: sum / count.max(1) as f64,
            });
        }
        Ok(out)
    }

    /// A series key read back from the database, validated like any other input.
    fn series_key(
        &self,
        [node, sensor, room, quantity]: [String; 4],
    ) -> Result<SeriesKey, StoreError> {
        let bad = |what: &str, error: &dyn std::fmt::Display| {
            corrupt(
                &self.path,
                format!("history series has an invalid {what}: {error}"),
            )
        };
        Ok(SeriesKey {
            node: NodeId::new(node).map_err(|error| bad("node id", &error))?,
            sensor: SensorId::new(&sensor).map_err(|error| bad("sensor", &error))?,
            room: Room::new(&room).map_err(|error| bad("room", &error))?,
            quantity: quantity.parse().map_err(|error| bad("quantity", &error))?,
        })
    }
}

/// The first four columns of a history or rollup query: the series' names.
fn series_columns(row: &Row<'_>) -> rusqlite::Result<[String; 4]> {
    Ok([row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?])
}

/// A series as saved, created (its newest hour `hour`) if new.
fn series_state(tx: &Transaction<'_>, key: &SeriesKey, hour: i64) -> rusqlite::Result<SeriesState> {
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
