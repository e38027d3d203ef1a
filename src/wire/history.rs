//! The messages of the history backfill protocol `/officemesh/history/1`
//! (`docs/protocol.md`, schema in `proto/officemesh/v1/history.proto`): an asker says which
//! hours it wants and how many readings it holds of each series-hour; the answerer sends the
//! series-hours it holds more readings of, one page at a time.
//!
//! Series names travel once per message in a table; the rest refers to them by index. The
//! minute buckets of an hour travel packed as the store keeps them; the history module checks
//! them when it unpacks them.

use super::WireError;
use crate::state::{NodeId, Quantity, Room, SensorId, Series};

/// Version of the history messages; a message of another version is refused.
pub const HISTORY_VERSION: u32 = 1;

/// Largest ask accepted: about 60 000 series-hours of counts (48 hours of 1 250 series).
pub const MAX_HISTORY_ASK_BYTES: usize = 1 << 20;

/// Largest page accepted.
pub const MAX_HISTORY_PAGE_BYTES: usize = 1 << 20;

/// What an asker wants: the hours starting in `from_ms..to_ms`, and per series-hour how many
/// readings it holds (a series-hour it does not list, it holds none of).
#[derive(Clone, Debug, PartialEq, Default)]
pub struct HistoryAsk {
    pub from_ms: u64,
    pub to_ms: u64,
    /// (series, hour start, readings held).
    pub have: Vec<(Series, u64, u64)>,
}

/// One page of an answer: series-hours with their packed minute buckets, and whether more
/// would follow (the asker asks again with its new counts).
#[derive(Clone, Debug, PartialEq, Default)]
pub struct HistoryPage {
    /// (series, hour start, packed buckets).
    pub hours: Vec<(Series, u64, Vec<u8>)>,
    pub more: bool,
}

mod proto {
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct SeriesName {
        #[prost(string, tag = "1")]
        pub node: String,
        #[prost(string, tag = "2")]
        pub sensor: String,
        #[prost(string, tag = "3")]
        pub room: String,
        #[prost(string, tag = "4")]
        pub quantity: String,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Have {
        #[prost(uint32, tag = "1")]
        pub series: u32,
        #[prost(uint64, tag = "2")]
        pub hour_ms: u64,
        #[prost(uint64, tag = "3")]
        pub count: u64,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct HistoryAsk {
        #[prost(uint32, tag = "1")]
        pub version: u32,
        #[prost(uint64, tag = "2")]
        pub from_ms: u64,
        #[prost(uint64, tag = "3")]
        pub to_ms: u64,
        #[prost(message, repeated, tag = "4")]
        pub series: Vec<SeriesName>,
        #[prost(message, repeated, tag = "5")]
        pub have: Vec<Have>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Hour {
        #[prost(uint32, tag = "1")]
        pub series: u32,
        #[prost(uint64, tag = "2")]
        pub hour_ms: u64,
        #[prost(bytes = "vec", tag = "3")]
        pub buckets: Vec<u8>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct HistoryPage {
        #[prost(uint32, tag = "1")]
        pub version: u32,
        #[prost(message, repeated, tag = "2")]
        pub series: Vec<SeriesName>,
        #[prost(message, repeated, tag = "3")]
        pub hours: Vec<Hour>,
        #[prost(bool, tag = "4")]
        pub more: bool,
    }
}

/// Numbers series in order of first use.
#[derive(Default)]
struct SeriesTable {
    names: Vec<proto::SeriesName>,
    index: std::collections::HashMap<Series, u32>,
}

impl SeriesTable {
    fn index(&mut self, series: &Series) -> u32 {
        if let Some(index) = self.index.get(series) {
            return *index;
        }
        let index = self.names.len() as u32;
        self.names.push(proto::SeriesName {
            node: series.node.as_str().to_owned(),
            sensor: series.sensor.as_str().to_owned(),
            room: series.room.as_str().to_owned(),
            quantity: series.quantity.name().to_owned(),
        });
        self.index.insert(series.clone(), index);
        index
    }
}

fn decode_series(names: Vec<proto::SeriesName>) -> Result<Vec<Series>, WireError> {
    names
        .into_iter()
        .enumerate()
        .map(|(at, name)| {
            let bad = |what: &str, error: String| {
                WireError::Malformed(format!("series {at} has an invalid {what}: {error}"))
            };
            Ok(Series {
                node: NodeId::new(name.node).map_err(|error| bad("node id", error.to_string()))?,
                sensor: SensorId::new(&name.sensor)
                    .map_err(|error| bad("sensor", error.to_string()))?,
                room: Room::new(&name.room).map_err(|error| bad("room", error.to_string()))?,
                quantity: name
                    .quantity
                    .parse::<Quantity>()
                    .map_err(|error| bad("quantity", error.to_string()))?,
            })
        })
        .collect()
}

fn series_at(table: &[Series], index: u32) -> Result<Series, WireError> {
    table.get(index as usize).cloned().ok_or_else(|| {
        WireError::Malformed(format!(
            "series index {index} is past the table of {}",
            table.len()
        ))
    })
}

fn open<M: prost::Message + Default>(bytes: &[u8], max: usize) -> Result<M, WireError> {
    if bytes.len() > max {
        return Err(WireError::TooLarge {
            len: bytes.len(),
            max,
        });
    }
    M::decode(bytes).map_err(|error| WireError::Malformed(error.to_string()))
}

fn check_version(found: u32) -> Result<(), WireError> {
    if found == HISTORY_VERSION {
        Ok(())
    } else {
        Err(WireError::Version { found })
    }
}

pub fn encode_history_ask(ask: &HistoryAsk) -> Vec<u8> {
    use prost::Message as _;
    let mut table = SeriesTable::default();
    let have = ask
        .have
        .iter()
        .map(|(series, hour_ms, count)| proto::Have {
            series: table.index(series),
            hour_ms: *hour_ms,
            count: *count,
        })
        .collect();
    proto::HistoryAsk {
        version: HISTORY_VERSION,
        from_ms: ask.from_ms,
        to_ms: ask.to_ms,
        series: table.names,
        have,
    }
    .encode_to_vec()
}

pub fn decode_history_ask(bytes: &[u8]) -> Result<HistoryAsk, WireError> {
    let ask: proto::HistoryAsk = open(bytes, MAX_HISTORY_ASK_BYTES)?;
    check_version(ask.version)?;
    if ask.from_ms > ask.to_ms {
        return Err(WireError::Malformed(format!(
            "asks for hours from {} to {}, which is backwards",
            ask.from_ms, ask.to_ms
        )));
    }
    let table = decode_series(ask.series)?;
    let have = ask
        .have
        .into_iter()
        .map(|have| Ok((series_at(&table, have.series)?, have.hour_ms, have.count)))
        .collect::<Result<_, WireError>>()?;
    Ok(HistoryAsk {
        from_ms: ask.from_ms,
        to_ms: ask.to_ms,
        have,
    })
}

pub fn encode_history_page(page: &HistoryPage) -> Vec<u8> {
    use prost::Message as _;
    let mut table = SeriesTable::default();
    let hours = page
        .hours
        .iter()
        .map(|(series, hour_ms, buckets)| proto::Hour {
            series: table.index(series),
            hour_ms: *hour_ms,
            buckets: buckets.clone(),
        })
        .collect();
    proto::HistoryPage {
        version: HISTORY_VERSION,
        series: table.names,
        hours,
        more: page.more,
    }
    .encode_to_vec()
}

pub fn decode_history_page(bytes: &[u8]) -> Result<HistoryPage, WireError> {
    let page: proto::HistoryPage = open(bytes, MAX_HISTORY_PAGE_BYTES)?;
    check_version(page.version)?;
    let table = decode_series(page.series)?;
    let hours = page
        .hours
        .into_iter()
        .map(|hour| Ok((series_at(&table, hour.series)?, hour.hour_ms, hour.buckets)))
        .collect::<Result<_, WireError>>()?;
    Ok(HistoryPage {
        hours,
        more: page.more,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(sensor: &str) -> Series {
        Series {
            node: NodeId::new("12D3KooWNode").unwrap(),
            sensor: SensorId::new(sensor).unwrap(),
            room: Room::new("meeting room").unwrap(),
            quantity: Quantity::Temperature,
        }
    }

    #[test]
    fn asks_and_pages_round_trip_with_series_named_once() {
        let ask = HistoryAsk {
            from_ms: 0,
            to_ms: 7_200_000,
            have: vec![
                (series("a"), 0, 360),
                (series("a"), 3_600_000, 12),
                (series("b"), 0, 1),
            ],
        };
        let bytes = encode_history_ask(&ask);
        assert_eq!(decode_history_ask(&bytes).unwrap(), ask);
        let page = HistoryPage {
            hours: vec![(series("a"), 3_600_000, vec![1, 2, 3])],
            more: true,
        };
        assert_eq!(
            decode_history_page(&encode_history_page(&page)).unwrap(),
            page
        );
    }

    #[test]
    fn bad_messages_are_refused_with_the_reason() {
        use prost::Message as _;
        let bad_index = proto::HistoryPage {
            version: HISTORY_VERSION,
            series: vec![],
            hours: vec![proto::Hour {
                series: 3,
                hour_ms: 0,
                buckets: vec![],
            }],
            more: false,
        };
        let error = decode_history_page(&bad_index.encode_to_vec()).unwrap_err();
        assert!(error.to_string().contains("series index 3"), "{error}");
        let later = proto::HistoryPage {
            version: 2,
            ..bad_index
        };
        assert!(matches!(
            decode_history_page(&later.encode_to_vec()),
            Err(WireError::Version { found: 2 })
        ));
        let bad_quantity = proto::HistoryAsk {
            version: HISTORY_VERSION,
            from_ms: 0,
            to_ms: 1,
            series: vec![proto::SeriesName {
                node: "12D3KooWNode".into(),
                sensor: "a".into(),
                room: "lab".into(),
                quantity: "joy".into(),
            }],
            have: vec![],
        };
        let error = decode_history_ask(&bad_quantity.encode_to_vec()).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("series 0 has an invalid quantity"),
            "{error}"
        );
        assert!(matches!(
            decode_history_ask(&vec![0u8; MAX_HISTORY_ASK_BYTES + 1]),
            Err(WireError::TooLarge { .. })
        ));
    }
}
