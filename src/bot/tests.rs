//! The reply table: (state, speaker, text) -> reply and writes, for every phrase of
//! `docs/bot.md`, and the bot's glue around a real office actor.

use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{
    reply::{Day, DaySummary, PastQuestion, past_answer},
    *,
};
use crate::{
    office::{Write, testing::start_office},
    state::{
        DEFAULT_RETENTION_MS, Mac, NodeId, NodeName, Quantity, Replica, Room, SensorId, Version,
    },
};

/// The time every case is asked at.
const NOW: u64 = 1_800_000_000_000;
const SECOND: u64 = 1000;
const MINUTE: u64 = 60 * SECOND;
const HOUR: u64 = 60 * MINUTE;
const CONSIDER_HOME_MS: u64 = 3 * MINUTE;

const PHONE: &str = "00:1a:2b:3c:4d:5e";
const LAPTOP: &str = "00:1a:2b:3c:4d:60";
const STRANGER: &str = "00:1a:2b:3c:4d:61";
const GONE: &str = "00:1a:2b:3c:4d:62";

fn node(id: &str, name: &str, room: &str, at_ms: u64) -> Replica {
    let mut replica = Replica::new(NodeId::new(id).unwrap(), DEFAULT_RETENTION_MS);
    replica.snapshot();
    replica
        .announce(
            NodeName::new(name).unwrap(),
            Room::new(room).unwrap(),
            Version::new("0.1.0").unwrap(),
            at_ms,
            at_ms,
        )
        .unwrap();
    replica
}

fn read(replica: &mut Replica, sensor: &str, room: &str, quantity: Quantity, value: f64, at: u64) {
    replica
        .record_reading(
            SensorId::new(sensor).unwrap(),
            Room::new(room).unwrap(),
            quantity,
            value,
            "",
            at,
        )
        .unwrap();
}

fn see(replica: &mut Replica, mac: &str, at: u64) {
    replica
        .observe_device(mac.parse().unwrap(), "192.0.2.7".parse().unwrap(), at)
        .unwrap();
}

fn bind(replica: &mut Replica, person: &str, mac: &str, at: u64) {
    replica
        .bind(Person::new(person).unwrap(), mac.parse().unwrap(), at)
        .unwrap();
}

fn merge(into: &mut Replica, from: &Replica) {
    into.merge(from.state().clone(), from.id(), NOW);
}

/// This node ("stratos", in the meeting room) alone, having seen nothing.
fn empty() -> Replica {
    node("12D3KooWNodeA", "stratos", "meeting room", NOW - 5 * SECOND)
}

/// Two devices nobody claimed are on the network.
fn strangers() -> Replica {
    let mut replica = empty();
    see(&mut replica, STRANGER, NOW - 10 * SECOND);
    see(&mut replica, LAPTOP, NOW - 5 * SECOND);
    replica
}

/// Only mendes's phone is here.
fn mendes_only() -> Replica {
    let mut replica = empty();
    bind(&mut replica, "mendes", PHONE, NOW - 20 * SECOND);
    see(&mut replica, PHONE, NOW - 10 * SECOND);
    replica
}

/// A whole office, as node A sees it. A ("stratos", meeting room) and B ("pi-2", open space)
/// are up, C ("pi-old", kitchen) has been silent for an hour. Writes are made in time order
/// on each replica, since a replica's clock never runs backwards.
fn office() -> Replica {
    let mut c = node("12D3KooWNodeC", "pi-old", "kitchen", NOW - 2 * HOUR);
    read(
        &mut c,
        "mic",
        "kitchen",
        Quantity::Sound,
        40.0,
        NOW - 2 * HOUR,
    );
    c.announce(
        NodeName::new("pi-old").unwrap(),
        Room::new("kitchen").unwrap(),
        Version::new("0.1.0").unwrap(),
        NOW - 2 * HOUR,
        NOW - HOUR,
    )
    .unwrap();

    let mut b = node("12D3KooWNodeB", "pi-2", "open space", NOW - HOUR);
    read(
        &mut b,
        "old-t",
        "dev-lab",
        Quantity::Temperature,
        30.0,
        NOW - HOUR,
    );
    read(
        &mut b,
        "air",
        "open space",
        Quantity::Co2,
        650.0,
        NOW - 30 * MINUTE,
    );
    read(
        &mut b,
        "lab-t",
        "dev-lab",
        Quantity::Temperature,
        19.5,
        NOW - 45 * SECOND,
    );
    read(
        &mut b,
        "t1",
        "open space",
        Quantity::Temperature,
        21.0,
        NOW - 4 * SECOND,
    );
    read(
        &mut b,
        "t2",
        "open space",
        Quantity::Temperature,
        22.0,
        NOW - 2 * SECOND,
    );
    b.announce(
        NodeName::new("pi-2").unwrap(),
        Room::new("open space").unwrap(),
        Version::new("0.1.0").unwrap(),
        NOW - HOUR,
        NOW - 2 * SECOND,
    )
    .unwrap();

    let mut a = node("12D3KooWNodeA", "stratos", "meeting room", NOW - HOUR);
    bind(&mut a, "bob", GONE, NOW - HOUR);
    see(&mut a, GONE, NOW - HOUR);
    bind(&mut a, "mendes", PHONE, NOW - 50 * SECOND);
    bind(&mut a, "ana", LAPTOP, NOW - 50 * SECOND);
    bind(&mut a, "ana", "02:00:00:00:00:07", NOW - 50 * SECOND);
    see(&mut a, LAPTOP, NOW - 20 * SECOND);
    read(
        &mut a,
        "desk-1",
        "meeting room",
        Quantity::Temperature,
        22.0,
        NOW - 12 * SECOND,
    );
    see(&mut a, PHONE, NOW - 10 * SECOND);
    see(&mut a, STRANGER, NOW - 5 * SECOND);
    read(
        &mut a,
        "hum-1",
        "meeting room",
        Quantity::Humidity,
        45.0,
        NOW - 3 * SECOND,
    );
    a.announce(
        NodeName::new("stratos").unwrap(),
        Room::new("meeting room").unwrap(),
        Version::new("0.1.0").unwrap(),
        NOW - HOUR,
        NOW - 3 * SECOND,
    )
    .unwrap();

    // ana on A and bob on B set the open space target without seeing each other's set; B's
    // is later by the clock, so it is the one acted on.
    let open_space = Room::new("open space").unwrap();
    a.set_target(
        open_space.clone(),
        Quantity::Temperature,
        21.0,
        "",
        Person::new("ana").unwrap(),
        NOW - SECOND,
    )
    .unwrap();
    b.set_target(
        open_space,
        Quantity::Temperature,
        23.0,
        "",
        Person::new("bob").unwrap(),
        NOW - SECOND / 2,
    )
    .unwrap();
    merge(&mut a, &b);
    merge(&mut a, &c);
    a
}

fn render(write: &Write) -> String {
    match write {
        Write::Bind { person, mac } => format!("bind {person} {mac}"),
        Write::Unbind { person, mac } => format!("unbind {person} {mac}"),
        Write::Target {
            room,
            quantity,
            value,
            unit,
            set_by,
        } => format!("target {room} {quantity} {value}{unit} by {set_by}"),
        other => format!("{other:?}"),
    }
}

/// Asks `text` as `speaker` of `state` and compares the reply with `expected` (a prefix
/// when it ends in "...") and the writes with `writes`.
fn check(state: &Replica, speaker: &str, text: &str, expected: &str, writes: &[&str]) {
    let situation = Situation {
        query: Query::new(state, NOW, CONSIDER_HOME_MS),
        peers: 2,
        bot_name: Some("bloo"),
    };
    let answer = reply(&situation, &Person::new(speaker).unwrap(), text);
    match expected.strip_suffix("...") {
        Some(prefix) => assert!(
            answer.text.starts_with(prefix),
            "{text:?}: {:?} does not start with {prefix:?}",
            answer.text
        ),
        None => assert_eq!(answer.text, expected, "{text:?}"),
    }
    let rendered: Vec<String> = answer.writes.iter().map(render).collect();
    assert_eq!(rendered, writes, "the writes of {text:?}");
    // `officemesh ask` without a name asks only what needs none: a phrase that binds or
    // forgets the speaker must be one `needs_speaker` knows.
    if rendered
        .iter()
        .any(|write| write.starts_with("bind ") || write.starts_with("unbind "))
    {
        assert!(needs_speaker(text), "{text:?} writes for its speaker");
    }
}

#[test]
fn only_phrases_about_the_speaker_need_one() {
    for text in [
        "i am 00:1A:2B:3C:4D:61",
        "I'm 00-1a-2b-3c-4d-5e.",
        "bloo i am 00:1a:2b:3c:4d:99",
        "i am batman",
        "forget me",
        "Bloo, please forget me!",
    ] {
        assert!(needs_speaker(text), "{text:?}");
    }
    for text in [
        "kitchen temp",
        "who's at the office?",
        "what's the temperature in the meeting room?",
        "tell me the kitchen temp",
        "set the meeting room temperature to 21",
        "status",
        "help",
        "i am",
        "forget the kitchen",
        "  ",
    ] {
        assert!(!needs_speaker(text), "{text:?}");
    }
}

#[test]
fn the_reply_table() {
    let (empty, strangers, mendes_only, office) = (empty(), strangers(), mendes_only(), office());
    let randomised_warning = "Careful: that is a randomised (locally administered) address";
    #[rustfmt::skip]
    let table: &[(&Replica, &str, &str, &str, &[&str])] = &[
        // Who is here.
        (&empty, "mendes", "who's at the office?", "Well, I don't see anyone here", &[]),
        (&empty, "mendes", "Who is at the office", "Well, I don't see anyone here", &[]),
        (&strangers, "mendes", "whos here", "Well, I don't see anyone I know, but I see 2 unknown devices", &[]),
        (&mendes_only, "ana", "bloo, who's at the office?", "Well, I see mendes", &[]),
        (&office, "ana", "stratos: WHO’S AT THE OFFICE", "Well, I see ana and mendes, and 1 unknown device", &[]),
        (&office, "ana", "@bloo is anyone in?", "Well, I see ana and mendes, and 1 unknown device", &[]),
        // Binding.
        (&office, "carla", "i am 00:1A:2B:3C:4D:61", "Ok, you are 00:1a:2b:3c:4d:61", &["bind carla 00:1a:2b:3c:4d:61"]),
        (&office, "carla", "I'm 00-1a-2b-3c-4d-5e.", "Ok, you are 00:1a:2b:3c:4d:5e (so is mendes)", &["bind carla 00:1a:2b:3c:4d:5e"]),
        (&office, "carla", "bloo i am 00:1a:2b:3c:4d:99", "Ok, you are 00:1a:2b:3c:4d:99. I haven't seen that device on the network yet", &["bind carla 00:1a:2b:3c:4d:99"]),
        (&office, "carla", "i am da:a1:19:00:00:01", &format!("Ok, you are da:a1:19:00:00:01. I haven't seen that device on the network yet. {randomised_warning}..."), &["bind carla da:a1:19:00:00:01"]),
        (&empty, "mendes", "i am ff:ff:ff:ff:ff:ff", &format!("Ok, you are ff:ff:ff:ff:ff:ff. I haven't seen that device on the network yet. {randomised_warning}..."), &["bind mendes ff:ff:ff:ff:ff:ff"]),
        (&office, "carla", "i am batman", "Tell me your device's MAC address...", &[]),
        (&office, "mendes", "forget me", "Ok, I forgot you (00:1a:2b:3c:4d:5e)", &["unbind mendes 00:1a:2b:3c:4d:5e"]),
        (&office, "ana", "Bloo, please forget me!", "Ok, I forgot you (00:1a:2b:3c:4d:60 and 02:00:00:00:00:07)", &["unbind ana 00:1a:2b:3c:4d:60", "unbind ana 02:00:00:00:00:07"]),
        (&office, "carla", "forget me", "I didn't know any device of yours, carla", &[]),
        // Readings, with loose room names.
        (&office, "mendes", "meeting room temp", "meeting room temp is 22.0°C (12 s ago)", &[]),
        (&office, "mendes", "stratos meeting room temp", "meeting room temp is 22.0°C (12 s ago)", &[]),
        (&office, "mendes", "Meeting-Room TEMPERATURE?", "meeting room temperature is 22.0°C (12 s ago)", &[]),
        (&office, "mendes", "what's the temperature in the meeting room?", "meeting room temperature is 22.0°C (12 s ago)", &[]),
        (&office, "mendes", "meetingroom temp", "meeting room temp is 22.0°C (12 s ago)", &[]),
        (&office, "mendes", "meeting temp", "meeting room temp is 22.0°C (12 s ago)", &[]),
        (&office, "mendes", "meeting room hum", "meeting room humidity is 45% (3 s ago)", &[]),
        (&office, "mendes", "humidity in the meeting room", "meeting room humidity is 45% (3 s ago)", &[]),
        (&office, "mendes", "kitchen sound", "kitchen sound was 40 dB (2 h ago), but that is stale: no recent reading", &[]),
        (&office, "mendes", "how's the noise level in the kitchen", "kitchen noise was 40 dB (2 h ago), but that is stale: no recent reading", &[]),
        (&office, "mendes", "open space co2", "open space co2 was 650 ppm (30 min ago), but that is stale: no recent reading", &[]),
        (&office, "mendes", "DEV LAB temp", "dev-lab temp is 19.5°C (45 s ago); left out 1 stale sensor with no recent reading", &[]),
        (&office, "mendes", "open space temperature", "open space temperature is 21.5°C (mean of 2 sensors: 21.0°C, 22.0°C; newest 2 s ago); the target is 23.0°C (also set at the same time: 21.0°C by ana)", &[]),
        (&office, "mendes", "temp", "dev-lab temp is 19.5°C (45 s ago); left out 1 stale sensor with no recent reading\nmeeting room temp is 22.0°C (12 s ago)\nopen space temp is 21.5°C (mean of 2 sensors: 21.0°C, 22.0°C; newest 2 s ago); the target is 23.0°C (also set at the same time: 21.0°C by ana)", &[]),
        (&office, "mendes", "attic temp", "I'm sorry, I don't know a room called \"attic\" (I know dev-lab, kitchen, meeting room and open space).", &[]),
        (&office, "mendes", "meeting room co2", "I'm sorry, I don't have that data: no co2 reading in the meeting room.", &[]),
        (&empty, "mendes", "meeting room temp", "I'm sorry, I don't have that data: no temperature reading in the meeting room.", &[]),
        (&empty, "mendes", "co2", SORRY, &[]),
        // Targets.
        (&office, "mendes", "set the meeting room temperature to 21", "Ok, the meeting room temperature target is now 21.0°C", &["target meeting room temperature 21 by mendes"]),
        (&office, "mendes", "bloo, set the temperature in the Meeting Room to 70°F", "Ok, the meeting room temperature target is now 21.1°C", &["target meeting room temperature 70°f by mendes"]),
        (&office, "mendes", "set the open space temp target to 22 °C", "Ok, the open space temperature target is now 22.0°C. Note: bob set 23.0°C and ana set 21.0°C at the same time; yours replaces them", &["target open space temperature 22c by mendes"]),
        (&office, "mendes", "set the attic temperature to 21", "I'm sorry, I don't know a room called \"attic\" (I know dev-lab, kitchen, meeting room and open space).", &[]),
        (&office, "mendes", "set the meeting room temperature to 500", "I can't set the meeting room temperature to that: temperature value 500 °C is outside the possible range -60..=125 °C.", &[]),
        (&office, "mendes", "set the meeting room temperature to warm", "Set it to what number? ...", &[]),
        (&office, "mendes", "set the meeting room to 21", "Set which quantity? ...", &[]),
        // Status and help.
        (&office, "mendes", "status", "2 nodes up: stratos and pi-2. Silent: pi-old (last heard 1 h ago). Connected to 2 peers. Rooms: dev-lab, kitchen, meeting room, open space.", &[]),
        (&empty, "mendes", "Status?", "1 node up: stratos. Connected to 2 peers. Rooms: meeting room.", &[]),
        (&office, "mendes", "HELP", "I answer, on any node of the office:\n- who's at the office?...", &[]),
        // Anything else.
        (&office, "mendes", "what's the meaning of life?", SORRY, &[]),
        (&office, "mendes", "bloo", SORRY, &[]),
        (&office, "mendes", "  ", "Yes? Say \"help\" to see what I can answer.", &[]),
    ];
    for (state, speaker, text, expected, writes) in table {
        check(state, speaker, text, expected, writes);
    }
}

#[test]
fn a_node_named_like_a_room_still_answers_for_the_room() {
    let mut state = node("12D3KooWNodeA", "kitchen", "kitchen", NOW - 5 * SECOND);
    read(
        &mut state,
        "t",
        "kitchen",
        Quantity::Temperature,
        20.0,
        NOW - SECOND,
    );
    check(
        &state,
        "mendes",
        "kitchen temp",
        "kitchen temp is 20.0°C (1 s ago)",
        &[],
    );
    check(
        &state,
        "mendes",
        "kitchen, kitchen temp",
        "kitchen temp is 20.0°C (1 s ago)",
        &[],
    );
}

#[test]
fn the_rate_limit_allows_a_burst_then_the_sustained_rate() {
    let start = Instant::now();
    let mut limit = RateLimit::new(start);
    for _ in 0..CHAT_BURST {
        assert!(limit.take(start).is_ok());
    }
    let wait = limit.take(start).expect_err("the burst is spent");
    assert!(wait > Duration::ZERO && wait <= Duration::from_secs(1));
    assert!(limit.take(start + wait).is_ok(), "one message per 1/rate");
    assert!(limit.take(start + wait).is_err());
}

#[tokio::test]
async fn the_bot_makes_its_writes_as_urgent_chat_writes() {
    let dir = tempfile::tempdir().unwrap();
    let replica = Replica::new(NodeId::new("12D3KooWBot").unwrap(), DEFAULT_RETENTION_MS);
    let shutdown = CancellationToken::new();
    let (handle, mut outbox, _store) = start_office(dir.path(), replica, &shutdown).await;
    let bot = Bot::new(handle.clone(), Some("bloo".into()), CONSIDER_HOME_MS);
    let mendes = Person::new("mendes").unwrap();

    let answer = bot
        .ask(&mendes, "bloo, i am 00:1a:2b:3c:4d:5e", 0)
        .await
        .unwrap();
    assert!(
        answer.starts_with("Ok, you are 00:1a:2b:3c:4d:5e"),
        "{answer}"
    );
    let mac: Mac = "00:1a:2b:3c:4d:5e".parse().unwrap();
    assert!(handle.view().is_bound(&mendes, mac));
    // The heartbeat may come first; the binding must come out marked urgent.
    loop {
        let outgoing = tokio::time::timeout(Duration::from_secs(10), outbox.recv())
            .await
            .expect("a delta within 10 s")
            .expect("the outbox is open");
        if !outgoing.delta.store.people.is_empty() {
            assert!(outgoing.urgent, "a chat-driven write waits for the batch");
            break;
        }
    }

    let answer = bot.ask(&mendes, "forget me", 0).await.unwrap();
    assert_eq!(answer, "Ok, I forgot you (00:1a:2b:3c:4d:5e)");
    assert!(!handle.view().is_bound(&mendes, mac));

    let long = "x".repeat(MAX_TEXT_LEN + 1);
    assert!(matches!(
        bot.ask(&mendes, &long, 0).await,
        Err(AskError::TooLong { .. })
    ));
    shutdown.cancel();
}

#[tokio::test]
async fn today_and_yesterday_are_answered_from_the_history() {
    let dir = tempfile::tempdir().unwrap();
    let id = NodeId::new("12D3KooWPast").unwrap();
    let replica = Replica::new(id.clone(), DEFAULT_RETENTION_MS);
    let shutdown = CancellationToken::new();
    let (handle, _outbox, store) = start_office(dir.path(), replica, &shutdown).await;
    // The room must exist in the state for the bot to know it.
    handle
        .write(Write::Reading {
            sensor: SensorId::new("desk").unwrap(),
            room: Room::new("lab").unwrap(),
            quantity: Quantity::Temperature,
            value: 22.0,
            unit: "°C".into(),
        })
        .await
        .unwrap();
    let bot = Bot::new(handle.clone(), None, CONSIDER_HOME_MS).with_history(store.clone());
    let mendes = Person::new("mendes").unwrap();
    let now = physical_ms();
    let rows: Vec<_> = [(20.0, 2000), (24.0, 1000)]
        .into_iter()
        .map(|(value, ago_ms)| crate::store::HistoryRow {
            node: id.clone(),
            sensor: SensorId::new("desk").unwrap(),
            room: Room::new("lab").unwrap(),
            quantity: Quantity::Temperature,
            value,
            measured_at_ms: now - ago_ms,
        })
        .collect();
    store.observe(rows, now).await.unwrap();
    let answer = bot.ask(&mendes, "lab temp today", 0).await.unwrap();
    // The office also hands the history the reading written above, once it observes it.
    assert!(
        answer.starts_with("lab temp today: between 20.0°C and 24.0°C, "),
        "{answer}"
    );
    let answer = bot.ask(&mendes, "lab temp yesterday", 0).await.unwrap();
    assert_eq!(
        answer,
        "I'm sorry, I have no temperature history of the lab for yesterday."
    );
    let answer = bot.ask(&mendes, "temp today", 0).await.unwrap();
    assert_eq!(
        answer,
        "Which room? Say for example \"meeting room temp today\"."
    );
    shutdown.cancel();
}

#[test]
fn a_past_answer_names_the_day_and_the_range() {
    let question = PastQuestion {
        room: Room::new("meeting room").unwrap(),
        quantity: Quantity::Temperature,
        day: Day::Yesterday,
        word: "temp".into(),
    };
    let summary = DaySummary {
        count: 1440,
        min: 21.0,
        max: 23.5,
        mean: 22.14,
    };
    assert_eq!(
        past_answer(&question, Some(summary)),
        "meeting room temp yesterday: between 21.0°C and 23.5°C, 22.1°C on average (1440 readings)"
    );
}
