//! The bot of a real office: two `officemesh` processes on loopback. Questions asked of one
//! node, through `POST /api/ask` and through `officemesh ask` and `officemesh chat`, are
//! answered from writes made on the other, and a binding made by chatting with one node
//! shows on the other.

use serde_json::Value;

use crate::support::{
    node::{Node, write_swarm_key},
    wait_for,
};

const PHONE: &str = "00:1a:2b:3c:4d:5e";

/// Asks `node`'s bot through `POST /api/ask`.
fn ask_http(node: &Node, speaker: &str, text: &str) -> Result<String, String> {
    let body = serde_json::json!({"text": text, "speaker": speaker}).to_string();
    let answer: Value = serde_json::from_str(&node.request("POST", "/api/ask", Some(&body))?)
        .map_err(|error| error.to_string())?;
    answer["reply"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("no reply in {answer}"))
}

/// The devices `person` is bound to in `node`'s state.
fn devices_of(node: &Node, person: &str) -> Vec<Value> {
    node.state()["people"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|entry| entry["name"] == person)
        .flat_map(|entry| entry["devices"].as_array().cloned().unwrap_or_default())
        .collect()
}

#[test]
fn any_node_answers_for_the_whole_office() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("swarm.key");
    write_swarm_key(&key, 0x5a);
    let a = Node::builder(dir.path().join("a"))
        .swarm_key(&key)
        .room("meeting room")
        .start();
    let b = Node::builder(dir.path().join("b"))
        .swarm_key(&key)
        .room("open space")
        .peer(&a.dial_address())
        .start();

    // A reading written on A is answered by B, with loose room names and the bot's name.
    // The test waits on B's state, not on its bot: the bot limits how often it answers.
    a.post_reading("desk-a", "meeting room", 22.5);
    b.wait_for_reading("desk-a", 22.5);
    let reply = ask_http(&b, "mendes", "bloo, Meeting-Room temp?").unwrap();
    assert!(
        reply.starts_with("meeting room temp is 22.5°C ("),
        "{reply:?}"
    );
    let reply = b.cli(
        &[
            "ask",
            "--as",
            "mendes",
            "what's",
            "the",
            "temperature",
            "in",
            "the",
            "meeting",
            "room?",
        ],
        None,
    );
    assert!(
        reply.starts_with("meeting room temperature is 22.5°C (") && reply.ends_with(")\n"),
        "{reply:?}"
    );

    // "i am" said to B binds on A too; "forget me" said to A, through the binary, undoes it
    // everywhere.
    assert_eq!(
        ask_http(&b, "mendes", &format!("i am {PHONE}")).unwrap(),
        format!("Ok, you are {PHONE}. I haven't seen that device on the network yet")
    );
    wait_for("a sees mendes's binding", || {
        match devices_of(&a, "mendes") {
            devices if devices == [Value::from(PHONE)] => Ok(()),
            devices => Err(format!("{devices:?}")),
        }
    });
    let output = a.cli(&["ask", "--as", "mendes", "forget", "me"], None);
    assert_eq!(output, format!("Ok, I forgot you ({PHONE})\n"));
    wait_for("b forgets mendes's binding", || {
        match devices_of(&b, "mendes") {
            devices if devices.is_empty() => Ok(()),
            devices => Err(format!("{devices:?}")),
        }
    });

    // A target set by chatting with A shows in B's answer.
    assert_eq!(
        ask_http(&a, "ana", "set the meeting room temperature to 21").unwrap(),
        "Ok, the meeting room temperature target is now 21.0°C"
    );
    wait_for("b holds a's target", || {
        match b.target("meeting room", "temperature") {
            Some(21.0) => Ok(()),
            other => Err(format!("target {other:?}")),
        }
    });
    let reply = ask_http(&b, "mendes", "meeting room temp").unwrap();
    assert!(reply.ends_with("; the target is 21.0°C"), "{reply:?}");

    // `officemesh chat` answers line after line.
    wait_for("b knows both nodes", || {
        match b.state()["nodes"].as_array().map(Vec::len) {
            Some(2) => Ok(()),
            other => Err(format!("{other:?} nodes")),
        }
    });
    let output = b.cli(
        &["chat", "--as", "mendes"],
        Some("status\n\nwho's at the office?\nopen space co2\n"),
    );
    let lines: Vec<&str> = output.lines().collect();
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(
        lines[0].starts_with("2 nodes up: ") && lines[0].contains("Connected to 1 peer."),
        "{lines:?}"
    );
    assert_eq!(lines[1], "Well, I don't see anyone here");
    assert_eq!(
        lines[2],
        "I'm sorry, I don't have that data: no co2 reading in the open space."
    );
}
