//! The bot of a real office: two `officemesh` processes on loopback. Questions asked of one
//! node, through `POST /api/ask` and through `officemesh ask` and `officemesh chat`, are
//! answered from writes made on the other, and a binding made by chatting with one node
//! shows on the other.

use std::{
    io::Write as _,
    process::{Command, Output, Stdio},
};

use serde_json::Value;

use crate::binary::{Node, TOKEN, free_port, request, wait_for, write_key};

const PHONE: &str = "00:1a:2b:3c:4d:5e";

/// Asks `node`'s bot through `POST /api/ask`.
fn ask_http(node: &Node, speaker: &str, text: &str) -> Result<String, String> {
    let body = serde_json::json!({"text": text, "speaker": speaker}).to_string();
    let answer: Value =
        serde_json::from_str(&request(node.http_port, "POST", "/api/ask", Some(&body))?)
            .map_err(|error| error.to_string())?;
    answer["reply"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("no reply in {answer}"))
}

/// Runs the real binary against `node` with `args`, the token given as `--token`.
fn cli(node: &Node, args: &[&str], stdin: Option<&str>) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_officemesh"));
    command
        .arg(args[0])
        .args(["--node", &format!("http://127.0.0.1:{}", node.http_port)])
        .args(["--token", TOKEN])
        .args(&args[1..])
        .env_remove("OFFICEMESH_API_TOKEN")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().expect("the officemesh binary starts");
    let mut input = child.stdin.take().expect("stdin is piped");
    if let Some(text) = stdin {
        input
            .write_all(text.as_bytes())
            .expect("the chat reads its input");
    }
    drop(input);
    let output = child.wait_with_output().expect("the command ends");
    assert!(
        output.status.success(),
        "officemesh {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
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
    write_key(&key, 0x5a);
    let a_port = free_port();
    let a = Node::start(
        &dir.path().join("a"),
        &key,
        "meeting room",
        a_port,
        free_port(),
        &[],
    );
    let b = Node::start(
        &dir.path().join("b"),
        &key,
        "open space",
        free_port(),
        free_port(),
        &[a_port],
    );

    // A reading written on A is answered by B, with loose room names and the bot's name.
    a.post_reading("desk-a", "meeting room", 22.5);
    wait_for("b's bot knows a's reading", || {
        let reply = ask_http(&b, "mendes", "bloo, Meeting-Room temp?")?;
        match reply.starts_with("meeting room temp is 22.5°C (") {
            true => Ok(()),
            false => Err(reply),
        }
    });
    let output = cli(
        &b,
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
    let reply = stdout(&output);
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
    let output = cli(&a, &["ask", "--as", "mendes", "forget", "me"], None);
    assert_eq!(stdout(&output), format!("Ok, I forgot you ({PHONE})\n"));
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
    wait_for("b's bot knows a's target", || {
        let reply = ask_http(&b, "mendes", "meeting room temp")?;
        match reply.ends_with("; the target is 21.0°C") {
            true => Ok(()),
            false => Err(reply),
        }
    });

    // `officemesh chat` answers line after line.
    wait_for("b knows both nodes", || {
        match b.state()["nodes"].as_array().map(Vec::len) {
            Some(2) => Ok(()),
            other => Err(format!("{other:?} nodes")),
        }
    });
    let output = cli(
        &b,
        &["chat", "--as", "mendes"],
        Some("status\n\nwho's at the office?\nopen space co2\n"),
    );
    let lines: Vec<String> = stdout(&output).lines().map(str::to_owned).collect();
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
