//! Writes the seed corpus under `fuzz/corpus/<target>/`: real examples of each input, the
//! binary ones made by the node's own encoders. Run from `fuzz/` after a format changes:
//!
//! ```sh
//! cargo run --example seed_corpus
//! ```
//!
//! Existing seeds of the same name are overwritten; inputs libFuzzer added (crashes that
//! became regression seeds) are left alone.

use std::{fs, path::Path};

use futures::{executor::block_on, io::Cursor};
use libp2p::request_response::Codec;
use officemesh::{
    config::DEFAULT_CONFIG,
    net::{
        HISTORY_PROTOCOL, HOLD_PROTOCOL, JoinToken, SYNC_PROTOCOL, SwarmKey, history::HistoryCodec,
        hold::HoldCodec, paging::Cursor as PageCursor, sync::SyncCodec, sync::SyncRequest,
        sync::SyncResponse,
    },
    state::{Delta, Digest, NodeId, Quantity, Room, SensorId, Series},
    store::HOUR_MS,
    wire::{
        self,
        history::{HistoryAsk, HistoryPage, encode_history_ask, encode_history_page},
    },
};
use officemesh_fuzz::{ALPHA, BRAVO, office};

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let mut count = 0;
    let mut seed = |target: &str, name: &str, bytes: &[u8]| {
        let dir = root.join(target);
        fs::create_dir_all(&dir).expect("the corpus directory can be made");
        fs::write(dir.join(name), bytes).expect("a seed can be written");
        count += 1;
    };
    let picked = |pick: u8, bytes: &[u8]| [&[pick][..], bytes].concat();

    // ---- the state's wire format ----
    let (mut alpha, mut bravo, deltas) = office();
    for (index, (_, delta)) in deltas.iter().enumerate() {
        seed(
            "wire_delta",
            &format!("write-{index:02}"),
            &wire::encode_delta(delta),
        );
    }
    seed(
        "wire_delta",
        "alpha-state",
        &wire::encode_delta(alpha.state()),
    );
    let answer = bravo.missing_for(&alpha.digest());
    seed("wire_delta", "sync-answer", &wire::encode_delta(&answer));
    seed(
        "wire_delta",
        "empty",
        &wire::encode_delta(&Delta::default()),
    );
    seed(
        "wire_digest",
        "alpha",
        &wire::encode_digest(&alpha.digest()),
    );
    seed(
        "wire_digest",
        "bravo",
        &wire::encode_digest(&bravo.digest()),
    );
    seed(
        "wire_digest",
        "empty",
        &wire::encode_digest(&Digest::default()),
    );
    seed(
        "wire_snapshot",
        "alpha",
        &wire::encode_snapshot(&alpha.snapshot()),
    );
    seed(
        "wire_snapshot",
        "bravo",
        &wire::encode_snapshot(&bravo.snapshot()),
    );

    // ---- the frames of the request-response protocols ----
    let frame = |write: &dyn Fn(&mut Cursor<Vec<u8>>)| {
        let mut out = Cursor::new(Vec::new());
        write(&mut out);
        out.into_inner()
    };
    let cursor = PageCursor {
        writer: NodeId::new(ALPHA).unwrap(),
        seq: 3,
    };
    for (name, after) in [("first", None), ("after-cursor", Some(cursor.clone()))] {
        let request = SyncRequest {
            digest: bravo.digest(),
            after,
        };
        let bytes = frame(&|out| {
            block_on(SyncCodec.write_request(&SYNC_PROTOCOL, out, request.clone())).unwrap()
        });
        seed(
            "sync_frames",
            &format!("sync-request-{name}"),
            &picked(0, &bytes),
        );
    }
    let response = SyncResponse {
        page: answer.clone(),
        next: Some(cursor),
        invalid: Vec::new(),
    };
    let bytes = frame(&|out| {
        block_on(SyncCodec.write_response(&SYNC_PROTOCOL, out, response.clone())).unwrap()
    });
    seed("sync_frames", "sync-response", &picked(1, &bytes));
    let held = wire::encode_delta(&deltas[1].1);
    let bytes =
        frame(&|out| block_on(HoldCodec.write_request(&HOLD_PROTOCOL, out, held.clone())).unwrap());
    seed("sync_frames", "hold-request", &picked(2, &bytes));
    seed("sync_frames", "hold-response", &picked(3, &[1]));

    // ---- history backfill ----
    let series = Series {
        node: NodeId::new(BRAVO).unwrap(),
        sensor: SensorId::new("hwmon-0").unwrap(),
        room: Room::new("kitchen").unwrap(),
        quantity: Quantity::Humidity,
    };
    let hour_ms = 490_000 * HOUR_MS;
    let ask = HistoryAsk {
        from_ms: hour_ms - 2 * HOUR_MS,
        to_ms: hour_ms + HOUR_MS,
        have: vec![(series.clone(), hour_ms - HOUR_MS, 42)],
    };
    // Two minutes of packed buckets, as `HourBuckets::pack` lays them out: minute, count,
    // the last reading's milliseconds into the minute, then min, max, mean, last as f32.
    let mut packed = Vec::new();
    for (minute, count, values) in [
        (3u8, 6u16, [47.5f32, 48.5, 48.0, 48.25]),
        (4, 5, [48.0, 49.0, 48.5, 49.0]),
    ] {
        packed.push(minute);
        packed.extend_from_slice(&count.to_le_bytes());
        packed.extend_from_slice(&50_000u16.to_le_bytes());
        for value in values {
            packed.extend_from_slice(&value.to_le_bytes());
        }
    }
    let page = HistoryPage {
        hours: vec![(series, hour_ms, packed.clone())],
        more: true,
    };
    seed("wire_history", "ask", &picked(0, &encode_history_ask(&ask)));
    seed(
        "wire_history",
        "page",
        &picked(1, &encode_history_page(&page)),
    );
    seed("wire_history", "packed-buckets", &picked(2, &packed));
    let ask_bytes = encode_history_ask(&ask);
    let bytes = frame(&|out| {
        block_on(HistoryCodec.write_request(&HISTORY_PROTOCOL, out, ask_bytes.clone())).unwrap()
    });
    seed("sync_frames", "history-request", &picked(4, &bytes));
    let page_bytes = encode_history_page(&page);
    let bytes = frame(&|out| {
        block_on(HistoryCodec.write_response(&HISTORY_PROTOCOL, out, page_bytes.clone())).unwrap()
    });
    seed("sync_frames", "history-response", &picked(5, &bytes));

    // ---- keys and tokens ----
    let key = SwarmKey::from_bytes(*b"an office key, thirty-two bytes!");
    seed("swarm_key", "key", key.to_file().as_bytes());
    seed(
        "swarm_key",
        "crlf",
        key.to_file().replace('\n', "\r\n").as_bytes(),
    );
    let token = JoinToken {
        key,
        addresses: vec![
            "/ip4/192.0.2.11/tcp/7879".parse().unwrap(),
            "/ip6/fe80::1/tcp/7879".parse().unwrap(),
            "/dns4/pi-kitchen.lan/tcp/7879".parse().unwrap(),
        ],
    };
    seed("join_token", "token", token.to_string().as_bytes());

    // ---- files and text ----
    seed("config", "default", DEFAULT_CONFIG.as_bytes());
    seed("config", "office", OFFICE_CONFIG.as_bytes());
    for (pick, name, text) in [
        (0, "hwmon-input", "23125\n"),
        (0, "hwmon-channel", "temp1"),
        (1, "iio-number", "0.010000\n"),
        (1, "iio-channel", "temp_ambient"),
        (
            2,
            "w1-slave",
            "72 01 4b 46 7f ff 0e 10 57 : crc=57 YES\n72 01 4b 46 7f ff 0e 10 57 t=23125\n",
        ),
        (3, "command-number", "412 ppm\n"),
        (
            4,
            "command-json",
            "/sensor/humidity\n{\"sensor\": {\"humidity\": \"48.5\"}}\n",
        ),
    ] {
        seed("sensor_text", name, &picked(pick, text.as_bytes()));
    }
    for (pick, name, text) in [
        (
            0,
            "zigbee2mqtt",
            r#"{"battery":100,"humidity":48.12,"linkquality":134,"pressure":1012.4,"temperature":21.37,"voltage":3025}"#,
        ),
        (
            1,
            "tasmota",
            r#"{"Time":"2026-01-15T09:30:00","BME280":{"Temperature":21.4,"Humidity":48.1,"DewPoint":10.0,"Pressure":1012.3},"PressureUnit":"hPa","TempUnit":"C"}"#,
        ),
        (
            2,
            "tasmota-two-sensors",
            r#"{"Time":"2026-01-15T09:30:00","BME280":{"Temperature":70.5,"Pressure":29.9},"DS18B20":{"Id":"0316A27933FF","Temperature":70.1},"PressureUnit":"inHg","TempUnit":"F"}"#,
        ),
        (3, "plain", "71.6\n"),
        (4, "plain-json", r#"{"sensor":{"pressure":1013.2}}"#),
    ] {
        seed("mqtt", name, &picked(pick, text.as_bytes()));
    }
    seed(
        "presence",
        "arp",
        &picked(0, include_bytes!("../../src/presence/testdata/arp.txt")),
    );
    let hex = include_str!("../../src/presence/testdata/neighbours.hex").trim();
    let dump: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|index| u8::from_str_radix(&hex[index..index + 2], 16).unwrap())
        .collect();
    seed("presence", "neighbour-dump", &picked(1, &dump));
    for (name, text) in [
        ("who", "who's at the office?"),
        ("reading", "meeting room temp"),
        ("reading-named", "officebot, kitchen humidity"),
        ("past", "kitchen humidity yesterday"),
        ("bind", "i am 00:1a:2b:3c:4d:5e"),
        ("forget", "forget me"),
        ("set", "set meeting room temperature to 21.5"),
        ("status", "status"),
        ("help", "help"),
    ] {
        seed("bot", name, text.as_bytes());
    }
    for (pick, name, text) in [
        (
            0,
            "reading",
            r#"{"sensor": "desk-1", "room": "meeting room", "quantity": "temperature", "value": 22.5}"#,
        ),
        (
            0,
            "reading-unit",
            r#"{"sensor": "desk-2", "room": "kitchen", "quantity": "temperature", "value": 71.5, "unit": "°F"}"#,
        ),
        (
            1,
            "target",
            "meeting room\ntemperature\n{\"value\": 21.5, \"set_by\": \"mendes\"}",
        ),
        (
            2,
            "ask",
            r#"{"text": "who's at the office?", "speaker": "mendes"}"#,
        ),
        (
            3,
            "history",
            "room=meeting room&quantity=temperature&from=-24h&step=1h",
        ),
        (3, "history-csv", "from=1768435200000&to=-1h&format=csv"),
    ] {
        seed("http_api", name, &picked(pick, text.as_bytes()));
    }
    println!("wrote {count} seeds under {}", root.display());
}

/// A config as an office writes one: a few sections set.
const OFFICE_CONFIG: &str = r#"
[node]
name = "kitchen-pi"
room = "kitchen"

[network]
listen = ["/ip4/0.0.0.0/tcp/7879"]
peers = ["/dns4/pi-meeting.lan/tcp/7879"]
mdns = true

[http]
listen = "0.0.0.0:7878"

[[sensors.source]]
kind = "zigbee2mqtt"
broker = "192.0.2.10:1883"
device = "kitchen sensor"
room = "kitchen"

[[alerts.rule]]
quantity = "temperature"
above = 26.0
for_s = 300
"#;
