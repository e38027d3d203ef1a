//! Reading the history back: the parameters of `GET /api/history`, checked with errors that
//! name the parameter, and the columnar answer a chart library takes as it is (one array of
//! times, then per series one array per statistic), or CSV for a spreadsheet.

use std::{collections::BTreeMap, fmt::Write as _};

use serde::Serialize;
use thiserror::Error;

use crate::{
    state::{NodeId, Quantity, Room, SensorId},
    store::{Bucket, HOUR_MS, MINUTE_MS, Series, SeriesFilter, Store, StoreError},
};

/// Longest span one query covers: the default retention of hourly summaries.
pub const MAX_SPAN_MS: u64 = 400 * 24 * HOUR_MS;
/// Most time steps in one answer: a week at minute resolution.
pub const MAX_POINTS: u64 = 7 * 24 * 60;
/// Most series in one answer; narrow with `room`, `quantity`, `sensor` or `node`.
pub const MAX_SERIES: usize = 100;
/// Most cells (steps × series) in one answer, about 10 MB of JSON at most.
pub const MAX_CELLS: u64 = 200_000;
/// The steps a query without `step` picks from: the smallest that gives at most
/// [`AUTO_POINTS`] points.
const NICE_STEPS_MS: [u64; 12] = [
    MINUTE_MS,
    2 * MINUTE_MS,
    5 * MINUTE_MS,
    10 * MINUTE_MS,
    15 * MINUTE_MS,
    30 * MINUTE_MS,
    HOUR_MS,
    2 * HOUR_MS,
    3 * HOUR_MS,
    6 * HOUR_MS,
    12 * HOUR_MS,
    24 * HOUR_MS,
];
const AUTO_POINTS: u64 = 500;
/// The span of a query without `from`: the last 24 hours.
const DEFAULT_SPAN_MS: u64 = 24 * HOUR_MS;

/// A parameter the query refuses, by name.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{param}: {message}")]
pub struct BadParam {
    pub param: String,
    pub message: String,
}

fn bad(param: &str, message: impl Into<String>) -> BadParam {
    BadParam {
        param: param.to_owned(),
        message: message.into(),
    }
}

/// Which buckets a query reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Resolution {
    Minute,
    Hour,
}

/// A checked history query.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryQuery {
    pub filter: SeriesFilter,
    /// Start of the first step, a multiple of `step_ms`.
    pub from_ms: u64,
    /// End, exclusive.
    pub to_ms: u64,
    pub step_ms: u64,
    pub resolution: Resolution,
    pub csv: bool,
}

impl HistoryQuery {
    /// Checks the query string's parameters at local time `now_ms`; minute buckets older
    /// than `minute_retention_ms` are gone, so a span reaching past them reads hours.
    pub fn parse(
        params: &BTreeMap<String, String>,
        now_ms: u64,
        minute_retention_ms: u64,
    ) -> Result<HistoryQuery, BadParam> {
        let mut filter = SeriesFilter::default();
        let (mut from, mut to, mut step, mut csv) = (None, None, None, false);
        for (name, value) in params {
            let value = value.trim();
            match name.as_str() {
                "room" => {
                    filter.room =
                        Some(Room::new(value).map_err(|error| bad(name, error.to_string()))?)
                }
                "quantity" => {
                    filter.quantity = Some(
                        value
                            .parse::<Quantity>()
                            .map_err(|error| bad(name, error.to_string()))?,
                    )
                }
                "sensor" => {
                    filter.sensor =
                        Some(SensorId::new(value).map_err(|error| bad(name, error.to_string()))?)
                }
                "node" => {
                    filter.node =
                        Some(NodeId::new(value).map_err(|error| bad(name, error.to_string()))?)
                }
                "from" => from = Some(parse_time(name, value, now_ms)?),
                "to" => to = Some(parse_time(name, value, now_ms)?),
                "step" => step = Some(parse_duration(name, value)?),
                "format" => {
                    csv = match value {
                        "json" => false,
                        "csv" => true,
                        other => {
                            return Err(bad(
                                name,
                                format!("{other:?} is not a format: json or csv"),
                            ));
                        }
                    }
                }
                other => {
                    return Err(bad(
                        other,
                        "unknown parameter: room, quantity, sensor, node, from, to, step or format",
                    ));
                }
            }
        }
        let to_ms = to.unwrap_or(now_ms);
        let from_ms = from.unwrap_or(to_ms.saturating_sub(DEFAULT_SPAN_MS));
        if from_ms >= to_ms {
            return Err(bad("from", "must be before to"));
        }
        let span = to_ms - from_ms;
        if span > MAX_SPAN_MS {
            return Err(bad(
                "from",
                format!(
                    "the span is {} days; at most {} days",
                    span.div_ceil(24 * HOUR_MS),
                    MAX_SPAN_MS / (24 * HOUR_MS)
                ),
            ));
        }
        let minutes_gone = from_ms < now_ms.saturating_sub(minute_retention_ms);
        let step_ms = match step {
            Some(step) => {
                if step < MINUTE_MS || !step.is_multiple_of(MINUTE_MS) {
                    return Err(bad(
                        "step",
                        "must be a whole number of minutes, at least 1m",
                    ));
                }
                if span.div_ceil(step) > MAX_POINTS {
                    return Err(bad(
                        "step",
                        format!(
                            "gives {} points; at most {MAX_POINTS}: take a longer step or a shorter span",
                            span.div_ceil(step)
                        ),
                    ));
                }
                step
            }
            None => NICE_STEPS_MS
                .into_iter()
                .find(|step| span.div_ceil(*step) <= AUTO_POINTS)
                .unwrap_or(24 * HOUR_MS),
        };
        // Hours answer a step of whole hours, and any span the minutes no longer cover.
        let (resolution, step_ms) = if step_ms.is_multiple_of(HOUR_MS) || minutes_gone {
            (Resolution::Hour, step_ms.next_multiple_of(HOUR_MS))
        } else {
            (Resolution::Minute, step_ms)
        };
        Ok(HistoryQuery {
            filter,
            from_ms: from_ms - from_ms % step_ms,
            to_ms,
            step_ms,
            resolution,
            csv,
        })
    }

    /// How many steps the answer has.
    pub fn points(&self) -> usize {
        (self.to_ms - self.from_ms).div_ceil(self.step_ms) as usize
    }
}

/// Milliseconds since the epoch, `now`, or a time before now: `-24h`, `now-7d` (units s,
/// m, h, d).
fn parse_time(param: &str, value: &str, now_ms: u64) -> Result<u64, BadParam> {
    if value == "now" {
        return Ok(now_ms);
    }
    if let Some(ago) = value
        .strip_prefix("now-")
        .or_else(|| value.strip_prefix('-'))
    {
        return Ok(now_ms.saturating_sub(parse_duration(param, ago)?));
    }
    value.parse::<u64>().map_err(|_| {
        bad(
            param,
            format!("{value:?} is not a time: milliseconds since 1970, \"now\" or \"-24h\""),
        )
    })
}

/// A duration like `90s`, `5m`, `1h`, `7d`, or plain milliseconds.
fn parse_duration(param: &str, value: &str) -> Result<u64, BadParam> {
    let invalid = || {
        bad(
            param,
            format!("{value:?} is not a duration: a number with s, m, h or d, like 5m"),
        )
    };
    let (number, unit_ms) = match value.char_indices().last() {
        Some((at, 's')) => (&value[..at], 1000),
        Some((at, 'm')) => (&value[..at], MINUTE_MS),
        Some((at, 'h')) => (&value[..at], HOUR_MS),
        Some((at, 'd')) => (&value[..at], 24 * HOUR_MS),
        _ => (value, 1),
    };
    number
        .parse::<u64>()
        .ok()
        .and_then(|number| number.checked_mul(unit_ms))
        .filter(|ms| *ms > 0)
        .ok_or_else(invalid)
}

/// One series of an answer: what it is, then one value per step (`null` where it had no
/// reading).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SeriesColumns {
    pub node: String,
    pub sensor: String,
    pub room: String,
    pub quantity: &'static str,
    pub unit: &'static str,
    pub count: Vec<u64>,
    pub min: Vec<Option<f64>>,
    pub mean: Vec<Option<f64>>,
    pub max: Vec<Option<f64>>,
}

/// The answer of `GET /api/history`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HistoryAnswer {
    pub from: u64,
    pub to: u64,
    pub step_ms: u64,
    pub resolution: Resolution,
    /// The start of each step, milliseconds since the epoch.
    pub times: Vec<u64>,
    pub series: Vec<SeriesColumns>,
}

/// Why a query could not be answered.
#[derive(Debug, Error)]
pub enum QueryError {
    #[error(transparent)]
    Bad(#[from] BadParam),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Answers `query` from the store; runs on the store's thread.
pub fn answer(store: &Store, query: &HistoryQuery) -> Result<HistoryAnswer, QueryError> {
    let series = store.series(&query.filter)?;
    if series.len() > MAX_SERIES {
        return Err(bad(
            "room",
            format!(
                "{} series match; at most {MAX_SERIES}: narrow with room, quantity, sensor or node",
                series.len()
            ),
        )
        .into());
    }
    let points = query.points();
    if (points * series.len()) as u64 > MAX_CELLS {
        return Err(bad(
            "step",
            format!(
                "{points} steps of {} series is more than {MAX_CELLS} values: take a longer step",
                series.len()
            ),
        )
        .into());
    }
    let range = query.from_ms..query.to_ms;
    let mut columns = Vec::with_capacity(series.len());
    for series in series {
        let buckets = match query.resolution {
            Resolution::Minute => store.minute_buckets(&series, range.clone())?,
            Resolution::Hour => store.hour_buckets(&series, range.clone())?,
        };
        columns.push(steps(series, &buckets, query));
    }
    Ok(HistoryAnswer {
        from: query.from_ms,
        to: query.to_ms,
        step_ms: query.step_ms,
        resolution: query.resolution,
        times: (0..points as u64)
            .map(|step| query.from_ms + step * query.step_ms)
            .collect(),
        series: columns,
    })
}

/// Folds `buckets` (oldest first) into the query's steps.
fn steps(series: Series, buckets: &[(u64, Bucket)], query: &HistoryQuery) -> SeriesColumns {
    let mut folded: Vec<Option<Bucket>> = vec![None; query.points()];
    for (start, bucket) in buckets {
        let Some(step) = start
            .checked_sub(query.from_ms)
            .map(|offset| (offset / query.step_ms) as usize)
            .filter(|step| *step < folded.len())
        else {
            continue;
        };
        match &mut folded[step] {
            Some(sum) => sum.extend(bucket),
            empty => *empty = Some(*bucket),
        }
    }
    let column = |pick: fn(&Bucket) -> f64| {
        folded
            .iter()
            .map(|bucket| bucket.as_ref().map(pick))
            .collect()
    };
    SeriesColumns {
        unit: series.quantity.unit(),
        count: folded
            .iter()
            .map(|bucket| bucket.map_or(0, |bucket| bucket.count))
            .collect(),
        min: column(|bucket| bucket.min),
        mean: column(|bucket| bucket.mean),
        max: column(|bucket| bucket.max),
        node: series.node.as_str().to_owned(),
        sensor: series.sensor.as_str().to_owned(),
        room: series.room.as_str().to_owned(),
        quantity: series.quantity.name(),
    }
}

/// The readings of the series `filter` matches in `range`, all in one bucket; `None` if
/// there were none. For questions like "meeting room temp today".
pub fn summary(
    store: &Store,
    filter: &SeriesFilter,
    range: std::ops::Range<u64>,
) -> Result<Option<Bucket>, StoreError> {
    let mut total: Option<Bucket> = None;
    for series in store.series(filter)? {
        for (_, bucket) in store.minute_buckets(&series, range.clone())? {
            match &mut total {
                Some(total) => total.extend(&bucket),
                empty => *empty = Some(bucket),
            }
        }
    }
    Ok(total)
}

impl HistoryAnswer {
    /// One line per series and step with readings: time (milliseconds and UTC), the
    /// series, then count, min, mean and max.
    pub fn to_csv(&self) -> String {
        let mut out =
            String::from("time_ms,time_utc,node,sensor,room,quantity,unit,count,min,mean,max\n");
        for series in &self.series {
            for (step, time) in self.times.iter().enumerate() {
                let (Some(min), Some(mean), Some(max)) =
                    (series.min[step], series.mean[step], series.max[step])
                else {
                    continue;
                };
                let _ = writeln!(
                    out,
                    "{time},{},{},{},{},{},{},{},{min},{mean},{max}",
                    utc(*time),
                    csv_field(&series.node),
                    csv_field(&series.sensor),
                    csv_field(&series.room),
                    series.quantity,
                    csv_field(series.unit),
                    series.count[step],
                );
            }
        }
        out
    }
}

/// A CSV field, quoted when it holds a comma, a quote or a line break (RFC 4180).
fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_owned()
    }
}

/// Milliseconds since the epoch as `2026-12-07T14:05:00Z`.
pub fn utc(ms: u64) -> String {
    let seconds = ms / 1000;
    let (days, day_seconds) = (seconds / 86_400, seconds % 86_400);
    let (year, month, day) = civil_from_days(days as i64);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        day_seconds / 3600,
        day_seconds % 3600 / 60,
        day_seconds % 60
    )
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (the well-known algorithm
/// on 400-year eras of 146 097 days).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_index + 2) / 5 + 1) as u32;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_796_000_000_000;
    const WEEKS_5: u64 = 35 * 24 * HOUR_MS;

    fn parse(pairs: &[(&str, &str)]) -> Result<HistoryQuery, BadParam> {
        let params = pairs
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect();
        HistoryQuery::parse(&params, NOW, WEEKS_5)
    }

    #[test]
    fn defaults_to_the_last_day_in_minutes() {
        let query = parse(&[]).unwrap();
        assert_eq!(query.to_ms, NOW);
        assert_eq!(query.step_ms, 5 * MINUTE_MS, "a day in at most 500 steps");
        assert_eq!(query.resolution, Resolution::Minute);
        assert!(query.from_ms <= NOW - 24 * HOUR_MS && query.from_ms.is_multiple_of(query.step_ms));
    }

    #[test]
    fn long_spans_and_hour_steps_read_hours() {
        let query = parse(&[("from", "-30d")]).unwrap();
        assert_eq!(query.resolution, Resolution::Hour);
        assert_eq!(query.step_ms, 2 * HOUR_MS);
        let query = parse(&[("from", "-60d"), ("step", "1d")]).unwrap();
        assert_eq!(query.resolution, Resolution::Hour);
        // Minutes of 60 days ago are pruned: hours answer, in whole hours.
        let query = parse(&[("from", "-60d"), ("to", "-59d"), ("step", "5m")]).unwrap();
        assert_eq!(
            (query.resolution, query.step_ms),
            (Resolution::Hour, HOUR_MS)
        );
    }

    #[test]
    fn bad_parameters_are_named() {
        let param = |pairs: &[(&str, &str)]| parse(pairs).unwrap_err().param;
        assert_eq!(param(&[("quantity", "joy")]), "quantity");
        assert_eq!(param(&[("from", "yesterday")]), "from");
        assert_eq!(param(&[("from", "-1h"), ("to", "-2h")]), "from");
        assert_eq!(param(&[("from", "-500d")]), "from");
        assert_eq!(param(&[("step", "30s")]), "step");
        assert_eq!(param(&[("from", "-30d"), ("step", "1m")]), "step");
        assert_eq!(param(&[("format", "xml")]), "format");
        assert_eq!(param(&[("colour", "red")]), "colour");
        assert_eq!(param(&[("room", "")]), "room");
    }

    #[test]
    fn steps_fold_buckets_and_leave_gaps_empty() {
        let query = parse(&[("from", &(NOW - 3 * HOUR_MS).to_string()), ("step", "1h")]).unwrap();
        let series = Series {
            node: NodeId::new("12D3KooWNode").unwrap(),
            sensor: SensorId::new("desk").unwrap(),
            room: Room::new("lab").unwrap(),
            quantity: Quantity::Temperature,
        };
        let at = query.from_ms;
        let buckets = [
            (at, Bucket::of(20.0)),
            (at + MINUTE_MS, Bucket::of(22.0)),
            (at + 2 * HOUR_MS, Bucket::of(19.0)),
        ];
        let columns = steps(series, &buckets, &query);
        assert_eq!(columns.count[..3], [2, 0, 1]);
        assert_eq!(columns.mean[..3], [Some(21.0), None, Some(19.0)]);
        assert_eq!(columns.min[0], Some(20.0));
        assert_eq!(columns.max[0], Some(22.0));
        assert_eq!(columns.unit, "°C");
    }

    #[test]
    fn utc_dates_and_csv_quoting() {
        assert_eq!(utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc(951_782_400_000), "2000-02-29T00:00:00Z");
        assert_eq!(utc(1_796_000_000_000), "2026-11-30T00:53:20Z");
        assert_eq!(csv_field("a, \"b\""), "\"a, \"\"b\"\"\"");
        assert_eq!(csv_field("lab"), "lab");
    }
}
