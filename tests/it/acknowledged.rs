//! An acknowledgement is a promise: a write the API answered with 2xx, or the bot with its
//! reply, is on this node's disk before the answer, so a kill -9 the next moment keeps it.
//! The real binary, alone (no peer could give anything back), killed right after each answer.

use serde_json::{Value, json};

use crate::support::node::Node;

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
    let builder = Node::builder(dir.path().join("alone")).room("lab");
    let mut node = builder.start();
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
        // No wait for any periodic save: the answers above were the promise.
        node.kill();

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
    }
}
