//! The office's history at minute and hour resolution, for every sensor the node hears of.
//!
//! Each reading the node holds, its own or a peer's, lands in a one-minute bucket of its
//! series (count, minimum, maximum, mean, last). The buckets of the hour under way live in
//! memory; an hour is written once it has ended (and [`CLOSE_GRACE_MS`] more for readings
//! that arrive late), as one row per series: its sixty buckets packed in a blob (`minutes`)
//! and its summary (`hours`). Both tables are clustered by hour, so closing an hour appends
//! a few pages at the end of each, instead of touching one page per series. Reading one
//! series back costs one primary-key lookup per hour of the span.
//!
//! What a kill costs: the open hour's buckets. The node's own sensors' raw points (written
//! with each periodic save) rebuild its own series at the next start; peers give theirs back
//! through backfill (`docs/protocol.md`). A clean shutdown writes the open hours as they are,
//! and the next start reads them back before adding to them.
//!
//! Values are packed as 32-bit floats: seven significant digits, far finer than any sensor
//! officemesh reads, at half the bytes.

use std::{
    collections::{BTreeSet, HashMap},
    ops::Range,
};

use rusqlite::{Connection, OptionalExtension, params};
use tracing::warn;

use super::{
    At, Store, StoreError,
    history::{HOUR_MS, HistoryRow, MINUTE_MS, Series, series_state, sql_ms},
};

const MINUTES_PER_HOUR: usize = 60;

/// How long after its end an hour stays in memory, so readings gossiped or synced late still
/// land in it before it is written.
pub const CLOSE_GRACE_MS: u64 = 5 * MINUTE_MS;

/// Most series-hours held in memory. An office of 25 nodes with 10 sensors each keeps about
/// 500 (this hour and the last); past the cap, older hours are written early.
pub const MAX_OPEN_HOURS: usize = 20_000;

/// Bytes of one packed bucket: minute (1), count (2), the newest reading's millisecond in the
/// minute (2), minimum, maximum, mean, last (4 each).
const PACKED_BUCKET_LEN: usize = 21;

/// The readings of one series in one span of time (a minute, an hour, a chart's step).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bucket {
    pub count: u64,
    pub min: f64,
    pub max: f64,
    pub mean: f64,
    /// The value of the newest reading.
    pub last: f64,
}

impl Bucket {
    pub fn of(value: f64) -> Self {
        Bucket {
            count: 1,
            min: value,
            max: value,
            mean: value,
            last: value,
        }
    }

    /// Adds the readings of `later`, a span after this one (its `last` wins).
    pub fn extend(&mut self, later: &Bucket) {
        let total = self.count + later.count;
        if total > 0 {
            self.mean =
                (self.mean * self.count as f64 + later.mean * later.count as f64) / total as f64;
        }
        self.count = total;
        self.min = self.min.min(later.min);
        self.max = self.max.max(later.max);
        self.last = later.last;
    }
}

/// A minute's bucket in memory, with the time of its newest reading, so readings that
/// arrive out of order still leave the right `last`.
#[derive(Clone, Copy, Debug)]
struct Slot {
    bucket: Bucket,
    last_at_ms: u64,
    /// Read from disk or taken from a peer: it already counts every reading up to
    /// `last_at_ms`, so a reading at or before that time arriving now (the state's sync
    /// bringing back the newest reading after a restart or an outage) is not counted twice.
    sealed: bool,
}

/// The sixty minutes of one series in one hour.
#[derive(Clone, Debug)]
pub struct HourBuckets {
    slots: Box<[Option<Slot>; MINUTES_PER_HOUR]>,
}

impl Default for HourBuckets {
    fn default() -> Self {
        HourBuckets {
            slots: Box::new([None; MINUTES_PER_HOUR]),
        }
    }
}

impl HourBuckets {
    fn add(&mut self, at_ms: u64, value: f64) {
        let minute = ((at_ms % HOUR_MS) / MINUTE_MS) as usize;
        match &mut self.slots[minute] {
            Some(slot) if slot.sealed && at_ms <= slot.last_at_ms => {}
            Some(slot) => {
                let bucket = &mut slot.bucket;
                bucket.mean =
                    (bucket.mean * bucket.count as f64 + value) / (bucket.count + 1) as f64;
                bucket.count += 1;
                bucket.min = bucket.min.min(value);
                bucket.max = bucket.max.max(value);
                if at_ms >= slot.last_at_ms {
                    bucket.last = value;
                    slot.last_at_ms = at_ms;
                }
            }
            empty => {
                *empty = Some(Slot {
                    bucket: Bucket::of(value),
                    last_at_ms: at_ms,
                    sealed: false,
                });
            }
        }
    }

    /// Takes in buckets another node recorded for the same series and hour: per minute, the
    /// one made of more readings wins. Both count the same stream of readings, and no node
    /// hears more of a sensor than its owner, so this converges on the owner's record and
    /// merging the same buckets twice changes nothing. Returns whether anything changed.
    pub fn merge_max(&mut self, other: &HourBuckets) -> bool {
        let mut changed = false;
        for (mine, theirs) in self.slots.iter_mut().zip(other.slots.iter()) {
            if let Some(theirs) = theirs
                && mine.is_none_or(|mine| theirs.bucket.count > mine.bucket.count)
            {
                *mine = Some(Slot {
                    sealed: true,
                    ..*theirs
                });
                changed = true;
            }
        }
        changed
    }

    /// The minutes that hold readings, as (minute of the hour, bucket).
    pub fn minutes(&self) -> impl Iterator<Item = (usize, &Bucket)> {
        self.slots().map(|(minute, slot)| (minute, &slot.bucket))
    }

    fn slots(&self) -> impl Iterator<Item = (usize, &Slot)> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(minute, slot)| slot.as_ref().map(|slot| (minute, slot)))
    }

    /// How many readings the hour holds.
    pub fn count(&self) -> u64 {
        self.minutes().map(|(_, bucket)| bucket.count).sum()
    }

    /// The whole hour in one bucket; `None` if it holds no reading.
    pub fn summary(&self) -> Option<Bucket> {
        let mut minutes = self.minutes().map(|(_, bucket)| *bucket);
        let mut summary = minutes.next()?;
        for bucket in minutes {
            summary.extend(&bucket);
        }
        Some(summary)
    }

    /// The packed form kept in the `minutes` table and sent to peers.
    pub fn pack(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(PACKED_BUCKET_LEN * MINUTES_PER_HOUR);
        for (minute, slot) in self.slots() {
            let bucket = &slot.bucket;
            out.push(minute as u8);
            out.extend_from_slice(&(bucket.count.min(u16::MAX.into()) as u16).to_le_bytes());
            let last_in_minute = (slot.last_at_ms % MINUTE_MS) as u16;
            out.extend_from_slice(&last_in_minute.to_le_bytes());
            for value in [bucket.min, bucket.max, bucket.mean, bucket.last] {
                out.extend_from_slice(&(value as f32).to_le_bytes());
            }
        }
        out
    }

    /// Reads [`HourBuckets::pack`]'s form back; `None` if it is not that form (a damaged
    /// row, or a peer's bytes): a bad length, a minute past 59 or twice, a zero count, a
    /// value that is not a finite number, or an hour so late its minutes overflow the clock.
    pub fn unpack(bytes: &[u8], hour_ms: u64) -> Option<HourBuckets> {
        if !bytes.len().is_multiple_of(PACKED_BUCKET_LEN) {
            return None;
        }
        let mut out = HourBuckets::default();
        for packed in bytes.chunks_exact(PACKED_BUCKET_LEN) {
            let minute = usize::from(packed[0]);
            let count = u64::from(u16::from_le_bytes([packed[1], packed[2]]));
            let value = |at: usize| {
                let value = f32::from_le_bytes(packed[at..at + 4].try_into().ok()?);
                value.is_finite().then_some(f64::from(value))
            };
            let last_in_minute = u64::from(u16::from_le_bytes([packed[3], packed[4]]));
            let (min, max, mean, last) = (value(5)?, value(9)?, value(13)?, value(17)?);
            if minute >= MINUTES_PER_HOUR
                || count == 0
                || last_in_minute >= MINUTE_MS
                || out.slots[minute].is_some()
            {
                return None;
            }
            out.slots[minute] = Some(Slot {
                bucket: Bucket {
                    count,
                    min,
                    max,
                    mean,
                    last,
                },
                // A peer names the hour: it may be any number, and is checked only after.
                last_at_ms: hour_ms.checked_add(minute as u64 * MINUTE_MS + last_in_minute)?,
                sealed: true,
            });
        }
        Some(out)
    }
}

/// The series-hours held in memory: the hour under way, and older ones readings arrived for
/// lately. Each was read from disk when first touched, so writing it replaces the row.
#[derive(Default)]
pub(super) struct OpenHours {
    hours: HashMap<(Series, i64), HourBuckets>,
}

/// The start of the hour holding `ms`.
fn hour_of(ms: i64) -> i64 {
    ms - ms.rem_euclid(HOUR_MS as i64)
}

impl Store {
    /// Adds readings to the minute history: into memory, where the hour under way stays;
    /// hours that ended more than [`CLOSE_GRACE_MS`] before `now_ms` are written. A reading
    /// with a value that is not a finite number or an impossible time is skipped. Returns how
    /// many series-hours were written.
    ///
    /// Every reading counts: the caller hands each reading once (the office passes only
    /// writes it had not seen).
    pub fn observe(&mut self, rows: &[HistoryRow], now_ms: u64) -> Result<usize, StoreError> {
        for row in rows {
            let Some(at_ms) = sql_ms(row.measured_at_ms).filter(|_| row.value.is_finite()) else {
                continue;
            };
            let Some(hour) = self.open_hour(row.series(), hour_of(at_ms))? else {
                continue;
            };
            hour.add(row.measured_at_ms, row.value);
        }
        self.close_hours(|hour_ms| {
            hour_ms + (HOUR_MS + CLOSE_GRACE_MS) as i64 <= sql_ms(now_ms).unwrap_or(i64::MAX)
        })
    }

    /// Takes in a peer's buckets of one series and hour ([`HourBuckets::merge_max`]).
    /// Returns whether this node's record changed.
    pub fn merge_hour(
        &mut self,
        series: Series,
        hour_ms: u64,
        buckets: &HourBuckets,
    ) -> Result<bool, StoreError> {
        let Some(hour) = sql_ms(hour_ms).filter(|hour| hour.rem_euclid(HOUR_MS as i64) == 0) else {
            return Ok(false);
        };
        Ok(match self.open_hour(series, hour)? {
            Some(open) => open.merge_max(buckets),
            None => false,
        })
    }

    /// Rebuilds the minute buckets of the last two hours (before `now_ms`) of the node's own
    /// sensors from their raw points, which the periodic save keeps: after a kill, the open
    /// hour's buckets were lost with the process, the raw points up to the last save were not.
    /// Merged by count like a peer's buckets, so buckets a clean shutdown wrote are not
    /// counted twice. Returns the series-hours that changed.
    pub fn rebuild_recent(&mut self, now_ms: u64) -> Result<usize, StoreError> {
        let since = hour_of(sql_ms(now_ms).unwrap_or(i64::MAX)) - HOUR_MS as i64;
        let mut built: HashMap<(Series, i64), HourBuckets> = HashMap::new();
        {
            let mut statement = self
                .conn
                .prepare(
                    "SELECT s.node_id, s.sensor, s.room, s.quantity, h.measured_at_ms, h.value
                     FROM history h JOIN series s ON s.id = h.series_id
                     WHERE h.measured_at_ms >= ?1",
                )
                .at(&self.path)?;
            let rows = statement
                .query_map([since], |row| {
                    Ok((
                        [row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?],
                        row.get::<_, i64>(4)?,
                        row.get::<_, f64>(5)?,
                    ))
                })
                .at(&self.path)?;
            for row in rows {
                let (names, at_ms, value) = row.at(&self.path)?;
                let series = self.series_key(names)?;
                built
                    .entry((series, hour_of(at_ms)))
                    .or_default()
                    .add(at_ms.unsigned_abs(), value);
            }
        }
        let mut changed = 0;
        for ((series, hour), buckets) in built {
            if self.merge_hour(series, hour.unsigned_abs(), &buckets)? {
                changed += 1;
            }
        }
        Ok(changed)
    }

    /// Writes every open hour, the one under way included, as it is: at shutdown.
    pub fn flush_minutes(&mut self) -> Result<usize, StoreError> {
        self.close_hours(|_| true)
    }

    /// The open buckets of `series` in `hour`, read from disk when first touched. `None`
    /// when memory is full even after writing the hours that are done.
    fn open_hour(
        &mut self,
        series: Series,
        hour: i64,
    ) -> Result<Option<&mut HourBuckets>, StoreError> {
        let key = (series, hour);
        if !self.open.hours.contains_key(&key) {
            if self.open.hours.len() >= MAX_OPEN_HOURS {
                let current = self
                    .open
                    .hours
                    .keys()
                    .map(|(_, hour)| *hour)
                    .max()
                    .unwrap_or(hour);
                self.close_hours(|hour| hour < current)?;
                if self.open.hours.len() >= MAX_OPEN_HOURS {
                    warn!(path = %self.path.display(), "too many series in memory; a reading was left out of the history");
                    return Ok(None);
                }
            }
            let saved = saved_hour(&self.conn, &key.0, hour).at(&self.path)?;
            let buckets = match saved {
                Some(bytes) => HourBuckets::unpack(&bytes, hour.unsigned_abs()).unwrap_or_else(|| {
                    warn!(path = %self.path.display(), series = %key.0, hour, "a saved hour of history does not decode; starting it afresh");
                    HourBuckets::default()
                }),
                None => HourBuckets::default(),
            };
            self.open.hours.insert(key.clone(), buckets);
        }
        Ok(self.open.hours.get_mut(&key))
    }

    /// Writes the open hours `due` says, in one transaction, and forgets them. On an error
    /// they stay in memory for the next try.
    fn close_hours(&mut self, due: impl Fn(i64) -> bool) -> Result<usize, StoreError> {
        let closing: Vec<(Series, i64)> = self
            .open
            .hours
            .keys()
            .filter(|(_, hour)| due(*hour))
            .cloned()
            .collect();
        if closing.is_empty() {
            return Ok(0);
        }
        let path = &self.path;
        let tx = self.conn.transaction().at(path)?;
        let mut touched = HashMap::new();
        {
            let mut minutes = tx
                .prepare_cached(
                    "INSERT OR REPLACE INTO minutes (hour_ms, series_id, buckets) VALUES (?1, ?2, ?3)",
                )
                .at(path)?;
            let mut hours = tx
                .prepare_cached(
                    "INSERT OR REPLACE INTO hours
                        (hour_ms, series_id, count, min_value, max_value, sum_value)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )
                .at(path)?;
            let mut advance = tx
                .prepare_cached(
                    "UPDATE series SET last_hour_ms = max(last_hour_ms, ?2) WHERE id = ?1",
                )
                .at(path)?;
            for key in &closing {
                let buckets = &self.open.hours[key];
                let Some(summary) = buckets.summary() else {
                    continue;
                };
                let (series, hour) = key;
                let state = match self.series.get(series) {
                    Some(state) => *state,
                    None => {
                        let state = series_state(&tx, series, *hour).at(path)?;
                        touched.insert(series.clone(), state);
                        state
                    }
                };
                advance.execute(params![state.id, hour]).at(path)?;
                minutes
                    .execute(params![hour, state.id, buckets.pack()])
                    .at(path)?;
                hours
                    .execute(params![
                        hour,
                        state.id,
                        summary.count as i64,
                        summary.min,
                        summary.max,
                        summary.mean * summary.count as f64
                    ])
                    .at(path)?;
            }
        }
        tx.commit().at(path)?;
        for key in &closing {
            self.open.hours.remove(key);
        }
        // Only the cache's id matters here; a stale `last_hour_ms` in it only makes the raw
        // append update the column once more.
        self.series.extend(touched);
        Ok(closing.len())
    }

    /// The series whose history this node holds, matching `filter`, sorted.
    pub fn series(&self, filter: &SeriesFilter) -> Result<Vec<Series>, StoreError> {
        let mut found = BTreeSet::new();
        let mut statement = self
            .conn
            .prepare_cached("SELECT node_id, sensor, room, quantity FROM series")
            .at(&self.path)?;
        let rows = statement
            .query_map([], |row| {
                Ok([row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?])
            })
            .at(&self.path)?;
        for row in rows {
            let series = self.series_key(row.at(&self.path)?)?;
            if filter.matches(&series) {
                found.insert(series);
            }
        }
        found.extend(
            self.open
                .hours
                .keys()
                .map(|(series, _)| series)
                .filter(|series| filter.matches(series))
                .cloned(),
        );
        Ok(found.into_iter().collect())
    }

    /// The minute buckets of `series` whose minute starts in `range`, oldest first, as
    /// (minute start, bucket).
    pub fn minute_buckets(
        &self,
        series: &Series,
        range: Range<u64>,
    ) -> Result<Vec<(u64, Bucket)>, StoreError> {
        let mut out = Vec::new();
        for (hour, buckets) in self.hours_of(series, &range)? {
            for (minute, bucket) in buckets.minutes() {
                let start = hour + minute as u64 * MINUTE_MS;
                if range.contains(&start) {
                    out.push((start, *bucket));
                }
            }
        }
        Ok(out)
    }

    /// The hourly summaries of `series` whose hour starts in `range`, oldest first, as (hour
    /// start, bucket). Hours whose minutes were pruned keep their summary, without `last`
    /// (it reads as the mean).
    pub fn hour_buckets(
        &self,
        series: &Series,
        range: Range<u64>,
    ) -> Result<Vec<(u64, Bucket)>, StoreError> {
        let mut out: Vec<(u64, Bucket)> = Vec::new();
        if let Some(id) = self.series_id(series)?
            && let Some((from, to)) = self.clip(hour_span(&range), "hours")?
        {
            // One primary-key lookup per hour: the table is clustered by hour, so a range
            // scan would read every series of the span (a query planner given a generated
            // span of hours may choose that scan).
            let mut statement = self
                .conn
                .prepare_cached(
                    "SELECT count, min_value, max_value, sum_value FROM hours
                     WHERE hour_ms = ?1 AND series_id = ?2",
                )
                .at(&self.path)?;
            let mut hour = from;
            while hour < to {
                let found = statement
                    .query_row(params![hour, id], |row| {
                        Ok((
                            row.get::<_, i64>(0)?,
                            row.get::<_, f64>(1)?,
                            row.get::<_, f64>(2)?,
                            row.get::<_, f64>(3)?,
                        ))
                    })
                    .optional()
                    .at(&self.path)?;
                if let Some((count, min, max, sum)) = found {
                    let count = count.unsigned_abs().max(1);
                    let mean = sum / count as f64;
                    out.push((
                        hour.unsigned_abs(),
                        Bucket {
                            count,
                            min,
                            max,
                            mean,
                            last: mean,
                        },
                    ));
                }
                hour += HOUR_MS as i64;
            }
        }
        // What memory holds is newer than the row it was read from.
        for ((open_series, hour), buckets) in &self.open.hours {
            let hour = hour.unsigned_abs();
            if open_series == series
                && range.contains(&hour)
                && let Some(summary) = buckets.summary()
            {
                out.retain(|(start, _)| *start != hour);
                out.push((hour, summary));
            }
        }
        out.sort_by_key(|(start, _)| *start);
        Ok(out)
    }

    /// The hours of `series` that overlap `range`, from memory or disk, oldest first.
    pub fn hours_of(
        &self,
        series: &Series,
        range: &Range<u64>,
    ) -> Result<Vec<(u64, HourBuckets)>, StoreError> {
        let mut out: Vec<(u64, HourBuckets)> = Vec::new();
        let (from, to) = hour_span(range);
        if let Some(id) = self.series_id(series)?
            && let Some((from, to)) = self.clip((from, to), "minutes")?
        {
            // One key lookup per hour, as in `hour_buckets`.
            let mut statement = self
                .conn
                .prepare_cached("SELECT buckets FROM minutes WHERE hour_ms = ?1 AND series_id = ?2")
                .at(&self.path)?;
            let mut hour = from;
            while hour < to {
                let found: Option<Vec<u8>> = statement
                    .query_row(params![hour, id], |row| row.get(0))
                    .optional()
                    .at(&self.path)?;
                if let Some(bytes) = found {
                    let start = hour.unsigned_abs();
                    match HourBuckets::unpack(&bytes, start) {
                        Some(buckets) => out.push((start, buckets)),
                        None => {
                            warn!(path = %self.path.display(), %series, hour, "a saved hour of history does not decode; left out")
                        }
                    }
                }
                hour += HOUR_MS as i64;
            }
        }
        for ((open_series, hour), buckets) in &self.open.hours {
            if open_series == series && (from..to).contains(hour) {
                let hour = hour.unsigned_abs();
                out.retain(|(start, _)| *start != hour);
                out.push((hour, buckets.clone()));
            }
        }
        out.sort_by_key(|(start, _)| *start);
        Ok(out)
    }

    /// How many readings each series holds in the hours starting in `range`: what a node
    /// tells a peer so it is sent only what it lacks.
    pub fn counts(&self, range: &Range<u64>) -> Result<HashMap<(Series, u64), u64>, StoreError> {
        let (from, to) = hour_span(range);
        let mut out = HashMap::new();
        let mut statement = self
            .conn
            .prepare_cached(
                "SELECT s.node_id, s.sensor, s.room, s.quantity, h.hour_ms, h.count
                 FROM hours h JOIN series s ON s.id = h.series_id
                 WHERE h.hour_ms >= ?1 AND h.hour_ms < ?2",
            )
            .at(&self.path)?;
        let rows = statement
            .query_map(params![from, to], |row| {
                Ok((
                    [row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?],
                    row.get::<_, i64>(4)?,
                    row.get::<_, i64>(5)?,
                ))
            })
            .at(&self.path)?;
        for row in rows {
            let (names, hour, count) = row.at(&self.path)?;
            out.insert(
                (self.series_key(names)?, hour.unsigned_abs()),
                count.unsigned_abs(),
            );
        }
        for ((series, hour), buckets) in &self.open.hours {
            if (from..to).contains(hour) {
                out.insert((series.clone(), hour.unsigned_abs()), buckets.count());
            }
        }
        Ok(out)
    }

    /// `span` narrowed to the hours `table` holds, so a query over all time walks only those;
    /// `None` if it holds none of them.
    fn clip(&self, (from, to): (i64, i64), table: &str) -> Result<Option<(i64, i64)>, StoreError> {
        // Two statements: SQLite reads a lone min() or max() of the key's first column from
        // one end of the index, but both in one statement scan the whole table.
        let bound = |aggregate: &str| -> Result<Option<i64>, StoreError> {
            self.conn
                .prepare_cached(&format!("SELECT {aggregate}(hour_ms) FROM {table}"))
                .at(&self.path)?
                .query_row([], |row| row.get(0))
                .at(&self.path)
        };
        let bounds = (bound("min")?, bound("max")?);
        let (Some(first), Some(last)) = bounds else {
            return Ok(None);
        };
        let (from, to) = (from.max(first), to.min(last.saturating_add(1)));
        Ok((from < to).then_some((from, to)))
    }

    fn series_id(&self, series: &Series) -> Result<Option<i64>, StoreError> {
        if let Some(state) = self.series.get(series) {
            return Ok(Some(state.id));
        }
        series_id(&self.conn, series).at(&self.path)
    }
}

/// The hours (as SQL milliseconds) that overlap `range`: from the start of the hour holding
/// its start, to its end.
fn hour_span(range: &Range<u64>) -> (i64, i64) {
    let start = sql_ms(range.start).unwrap_or(i64::MAX);
    (hour_of(start), sql_ms(range.end).unwrap_or(i64::MAX))
}

fn series_id(conn: &Connection, series: &Series) -> rusqlite::Result<Option<i64>> {
    conn.prepare_cached(
        "SELECT id FROM series WHERE node_id = ?1 AND sensor = ?2 AND room = ?3 AND quantity = ?4",
    )?
    .query_row(
        params![
            series.node.as_str(),
            series.sensor.as_str(),
            series.room.as_str(),
            series.quantity.name()
        ],
        |row| row.get(0),
    )
    .optional()
}

fn saved_hour(conn: &Connection, series: &Series, hour: i64) -> rusqlite::Result<Option<Vec<u8>>> {
    let Some(id) = series_id(conn, series)? else {
        return Ok(None);
    };
    conn.prepare_cached("SELECT buckets FROM minutes WHERE hour_ms = ?1 AND series_id = ?2")?
        .query_row(params![hour, id], |row| row.get(0))
        .optional()
}

/// Which series a history query wants; `None` matches any.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SeriesFilter {
    pub node: Option<crate::state::NodeId>,
    pub sensor: Option<crate::state::SensorId>,
    pub room: Option<crate::state::Room>,
    pub quantity: Option<crate::state::Quantity>,
}

impl SeriesFilter {
    pub fn matches(&self, series: &Series) -> bool {
        self.node.as_ref().is_none_or(|node| *node == series.node)
            && self
                .sensor
                .as_ref()
                .is_none_or(|sensor| *sensor == series.sensor)
            && self.room.as_ref().is_none_or(|room| *room == series.room)
            && self
                .quantity
                .is_none_or(|quantity| quantity == series.quantity)
    }
}
