//! An acknowledgement is a promise: a write the API answered with 2xx, or the bot with its
//! reply, is on this node's disk before the answer, so a kill -9 the next moment keeps it;
//! so is an alert the node raised, before it announces it. The real binary, alone (no peer
//! could give anything back), killed right after each answer; between runs the test reads
//! the killed node's store through the library to check that no sequence number is reused.
//! A reading may instead be held by a peer that confirmed it: then the killed node gets it
//! back from that peer, and when the peer is frozen, the node syncs it itself.

use std::{collections::BTreeSet, path::Path};

use officemesh::{
    state::{DEFAULT_RETENTION_MS, Dot, Reading, Replica},
    store::Store,
};
use serde_json::{Value, json};

use crate::support::{
    node::{Node, QUIET_CONFIG, reading_in, write_swarm_key},
    wait_for,
};

/// An alert rule that any reading of 30 °C or more raises at once.
const HOT_RULE: &str = "[[alerts.rule]]
quantity = \"temperature\"
above = 30.0
for_s = 0
message = \"{sensor} is at {value}\"
";

/// The replica a killed node left in `data_dir`, as its next start restores it.
fn restored(data_dir: &Path) -> Replica {
    let store = Store::open(data_dir).expect("the killed node's store opens");
    store
        .load()
        .expect("the killed node's store loads")
        .expect("a saved replica")
        .restore(DEFAULT_RETENTION_MS)
}

/// The node's own writes alive in `replica`.
fn own_dots(replica: &Replica) -> BTreeSet<Dot> {
    replica
        .store()
        .dots()
        .filter(|(_, dot)| dot.writer == *replica.id())
        .map(|(_, dot)| dot.clone())
        .collect()
}

/// The value of the node's own reading of `sensor` in `replica`.
fn own_reading(replica: &Replica, sensor: &str) -> Option<f64> {
    replica
        .latest::<Reading>()
        .find(|(key, _)| key.node == *replica.id() && key.sensor.as_str() == sensor)
        .map(|(_, reading)| reading.value)
}

/// The ids of the alerts in a `GET /api/alerts` answer.
fn alert_ids(alerts: &Value) -> Vec<String> {
    alerts
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|alert| alert["id"].as_str().map(str::to_owned))
        .collect()
}

/// The MACs bound to `person` in a `GET /api/state` answer.
fn devices_of(state: &Value, person: &str) -> Vec<String> {
    state["people"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|entry| entry["name"] == person)
        .flat_map(|entry| entry["devices"].as_array().cloned().unwrap_or_default())
        .filter_map(|device| device.as_str().map(str::to_owned))
        .collect()
}

#[test]
fn acknowledged_writes_survive_a_kill_right_after_the_answer() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("alone");
    let builder = Node::builder(&data_dir)
        .room("lab")
        .config(&format!("{QUIET_CONFIG}{HOT_RULE}"));
    let mut node = builder.start();
    // What the previous run left: the number it restarted above, and its writes.
    let mut restarted_above = 0;
    let mut before = BTreeSet::new();
    for round in 1..=3u8 {
        let value = 20.0 + f64::from(round);
        node.post_reading("pushed", "lab", value);
        let target = 18.0 + f64::from(round);
        node.request(
            "PUT",
            "/api/targets/lab/temperature",
            Some(&json!({"value": target, "set_by": "mendes"}).to_string()),
        )
        .expect("the target is taken");
        let mac = format!("00:1a:2b:3c:4d:{round:02x}");
        let said = node.cli(&["ask", "--as", "mendes", &format!("i am {mac}")], None);
        assert!(
            said.contains(&mac),
            "the bot did not take the binding: {said:?}"
        );
        // The node raises the alert, durably, before it announces it (logs it).
        let hot = format!("hot-{round}");
        node.post_reading(&hot, "lab", 35.0);
        let alert = format!("temperature-above-30/{hot}");
        wait_for(&format!("{alert} raised"), || {
            let log = node.log_text();
            if log
                .lines()
                .any(|line| line.contains("alert raised") && line.contains(&alert))
            {
                Ok(())
            } else {
                Err("not raised yet".to_owned())
            }
        });
        // No wait for any periodic save: the answers above were the promise.
        node.kill();

        // Every write of this run took a number above all the previous run could have used.
        let replica = restored(&data_dir);
        let after = own_dots(&replica);
        let new: Vec<&Dot> = after.difference(&before).collect();
        assert!(
            new.len() >= 4,
            "round {round}: the reading, target, binding and alert are new writes: {new:?}"
        );
        for dot in &new {
            assert!(
                dot.seq > restarted_above,
                "round {round}: {dot} reuses a number at or below {restarted_above}, where the previous run restarted"
            );
        }
        restarted_above = replica.seq();
        before = after;

        node = builder.start();
        assert_eq!(
            node.reading("pushed"),
            Some(value),
            "round {round}: the acknowledged reading was lost"
        );
        assert_eq!(
            node.target("lab", "temperature"),
            Some(target),
            "round {round}: the acknowledged target was lost"
        );
        let devices = devices_of(&node.state(), "mendes");
        assert!(
            devices.contains(&mac),
            "round {round}: the binding of {mac} was lost; mendes has {devices:?}"
        );
        let alerts = alert_ids(&node.get("/api/alerts").expect("the alerts"));
        for earlier in 1..=round {
            let id = format!("temperature-above-30/hot-{earlier}");
            assert!(
                alerts.contains(&id),
                "round {round}: the raised alert {id} was lost; the node has {alerts:?}"
            );
        }
    }
}

/// Writes in flight when the node is killed, at another moment each round (after the 3rd,
/// 11th, 23rd acknowledgement of a writer that never pauses): every target acknowledged
/// before the kill is there after the restart, and the minute history of the node's own
/// sensor lacks at most what came after its last periodic save.
#[test]
fn a_kill_in_the_middle_of_writes_keeps_every_acknowledged_one() {
    let dir = tempfile::tempdir().unwrap();
    let builder = Node::builder(dir.path().join("busy"))
        .room("lab")
        .config(&format!("{QUIET_CONFIG}[store]\nsave_interval_s = 1\n"));
    let mut node = builder.start();
    let mut acknowledged: Vec<(String, f64)> = Vec::new();
    let mut readings_saved = 0u64;
    for (round, kill_after) in [3usize, 11, 23].into_iter().enumerate() {
        // Five sensors: the raw history keeps one point per sensor and millisecond, and
        // acknowledged readings can be that close.
        for (sensor, value) in [20.0, 21.0, 22.0, 23.0, 24.0].into_iter().enumerate() {
            node.post_reading(&format!("desk-{sensor}"), "lab", value);
        }
        // The periodic save (every second here) takes the raw points with it.
        node.wait_saved();
        readings_saved += 5;

        let address: std::net::SocketAddr = node.url()["http://".len()..].parse().unwrap();
        // Far more than the writer gets answered between the kill and its failed request.
        let (acks, acked) = std::sync::mpsc::sync_channel(1024);
        let writer = std::thread::spawn(move || {
            for i in 0.. {
                let room = format!("room-{round}-{i}");
                let value = 15.0 + f64::from(i % 10);
                let body = json!({"value": value, "set_by": "mendes"}).to_string();
                let path = format!("/api/targets/{room}/temperature");
                match crate::support::node::request(address, "PUT", &path, Some(&body)) {
                    Ok(_) => {
                        if acks.send((room, value)).is_err() {
                            return;
                        }
                    }
                    Err(_) => return,
                }
            }
        });
        let mut this_round = Vec::new();
        while this_round.len() < kill_after {
            this_round.push(acked.recv().expect("the writer acknowledges writes"));
        }
        node.kill();
        writer.join().unwrap();
        // Answers that came back while the kill was on its way count too.
        this_round.extend(acked.try_iter());
        acknowledged.extend(this_round);

        node = builder.start();
        for (room, value) in &acknowledged {
            assert_eq!(
                node.target(room, "temperature"),
                Some(*value),
                "round {round}: the acknowledged target of {room} was lost"
            );
        }
        let query = format!(
            "/api/history?node={}&room=lab&from=-2h&step=1m",
            node.peer_id()
        );
        let answer = node.get(&query).unwrap();
        let counted: u64 = answer["series"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|series| {
                series["sensor"]
                    .as_str()
                    .is_some_and(|s| s.starts_with("desk-"))
            })
            .flat_map(|series| series["count"].as_array().cloned().unwrap_or_default())
            .filter_map(|count| count.as_u64())
            .sum();
        assert!(
            counted >= readings_saved,
            "round {round}: the history holds {counted} readings of the desk sensors, fewer than the {readings_saved} saved before the kill: {answer}"
        );
    }
}

/// A reading the API acknowledged once a peer held it: the writer's own disk does not have
/// it (that is the point: no synced write per pushed reading), the peer does at the moment
/// of the answer, and after a kill -9 the writer gets it back from the peer. With the peer
/// frozen (SIGSTOP), the writer syncs the reading on its own disk after `peer_hold_ms`, and
/// it survives the kill without any peer.
#[test]
fn a_reading_a_peer_holds_survives_a_kill_of_its_writer() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("swarm.key");
    write_swarm_key(&key, 0x5e);
    let holder = Node::builder(dir.path().join("holder"))
        .swarm_key(&key)
        .room("hall")
        .start();
    let writer_dir = dir.path().join("writer");
    let builder = Node::builder(&writer_dir)
        .swarm_key(&key)
        .room("lab")
        .peer(&holder.dial_address());
    let mut writer = builder.start();
    let holder_id = holder.peer_id();
    let connected = |node: &Node| {
        wait_for("the writer is connected to the holder", || {
            let peers = node.get("/api/peers")?;
            let ids: Vec<&str> = peers
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|peer| peer["id"].as_str())
                .collect();
            if ids.contains(&holder_id.as_str()) {
                Ok(())
            } else {
                Err(format!("peers: {peers}"))
            }
        })
    };
    connected(&writer);

    for round in 1..=3u8 {
        let value = 20.0 + f64::from(round);
        writer.post_reading("pushed", "lab", value);
        // The holder merged it before it confirmed; no gossip is needed.
        let held = reading_in(&holder.state(), "pushed");
        writer.kill();
        let saved = own_reading(&restored(&writer_dir), "pushed");
        assert_ne!(
            saved,
            Some(value),
            "round {round}: the writer synced a reading a peer held"
        );
        assert_eq!(
            held,
            Some(value),
            "round {round}: the holder did not have the reading when the writer answered"
        );
        writer = builder.start();
        writer.wait_for_reading("pushed", value);
        connected(&writer);
    }

    // A frozen peer confirms nothing: the writer syncs the reading itself.
    holder.signal("STOP");
    writer.post_reading("pushed", "lab", 30.0);
    writer.kill();
    assert_eq!(
        own_reading(&restored(&writer_dir), "pushed"),
        Some(30.0),
        "the reading no peer held was not synced on the writer's disk"
    );
    let writer = builder.start();
    assert_eq!(
        writer.reading("pushed"),
        Some(30.0),
        "the acknowledged reading was lost"
    );
    holder.signal("CONT");
}
