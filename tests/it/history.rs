//! The office's history on every node, with the real binary: readings written on node A are
//! in node B's history (B does not own the sensor), and B, stopped while A took more
//! readings, fills the hole from A when it is back (`/officemesh/history/1`).

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;

use crate::support::{
    node::{Node, write_swarm_key},
    wait_for,
};

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// The (count, mean) per minute of the one series an answer holds; an error says what the
/// node answered instead.
fn minutes(node: &Node, query: &str) -> Result<Vec<(u64, Option<f64>)>, String> {
    let answer: Value = node.get(query)?;
    let series = answer["series"].as_array().ok_or("no series array")?;
    let [series] = series.as_slice() else {
        return Err(format!("{} series, not one: {answer}", series.len()));
    };
    let counts = series["count"].as_array().ok_or("no counts")?;
    let means = series["mean"].as_array().ok_or("no means")?;
    Ok(counts
        .iter()
        .zip(means)
        .map(|(count, mean)| (count.as_u64().unwrap_or(0), mean.as_f64()))
        .collect())
}

/// B's minutes of the sensor equal A's, and hold `total` readings.
fn same_history(a: &Node, b: &Node, query: &str, total: u64) -> Result<(), String> {
    let theirs = minutes(a, query)?;
    let mine = minutes(b, query)?;
    let count: u64 = theirs.iter().map(|(count, _)| count).sum();
    if count != total {
        return Err(format!("A holds {count} readings, not {total}"));
    }
    let equal = theirs.len() == mine.len()
        && theirs.iter().zip(&mine).all(|((c1, m1), (c2, m2))| {
            c1 == c2
                && match (m1, m2) {
                    (Some(m1), Some(m2)) => (m1 - m2).abs() < 1e-3,
                    (None, None) => true,
                    _ => false,
                }
        });
    if equal {
        Ok(())
    } else {
        Err(format!("A has {theirs:?}, B has {mine:?}"))
    }
}

#[test]
fn history_is_on_every_node_and_a_node_back_from_an_outage_fills_the_hole() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("swarm.key");
    write_swarm_key(&key, 0x42);
    let a = Node::builder(dir.path().join("a"))
        .swarm_key(&key)
        .room("lab")
        .start();
    let b_builder = Node::builder(dir.path().join("b"))
        .swarm_key(&key)
        .room("hall")
        .peer(&a.dial_address());
    let b = b_builder.start();
    let from = now_ms().saturating_sub(2 * 60_000);
    let query = format!(
        "/api/history?node={}&sensor=desk&from={from}&step=1m",
        a.peer_id()
    );

    // One at a time: gossip batches what a node writes within its publish interval, and a
    // batch carries only a sensor's latest reading (the rest reaches B by backfill).
    for value in [21.0, 22.0, 23.0] {
        a.post_reading("desk", "lab", value);
        b.wait_for_reading("desk", value);
    }
    wait_for("B's history of A's sensor to match A's", || {
        same_history(&a, &b, &query, 3)
    });

    // B is away while A takes five more readings; back, it has only the latest by the
    // state's sync, and the rest from A's history.
    b.terminate();
    for value in [24.0, 25.0, 26.0, 27.0, 28.0] {
        a.post_reading("desk", "lab", value);
    }
    let b = b_builder.start();
    wait_for("B's history, after the outage, to match A's", || {
        same_history(&a, &b, &query, 8)
    });

    // The same answer as CSV, and a bad parameter named.
    let csv = b
        .request("GET", &format!("{query}&format=csv"), None)
        .unwrap();
    assert!(
        csv.starts_with("time_ms,time_utc,node,sensor,room,quantity,unit,count,min,mean,max\n"),
        "{csv}"
    );
    assert!(csv.contains(",desk,lab,temperature,°C,"), "{csv}");
    let error = b.request("GET", "/api/history?step=30s", None).unwrap_err();
    assert!(error.contains("400") && error.contains("step"), "{error}");
    let health = b.get("/api/health").unwrap();
    assert!(
        health["disk_bytes"].as_u64().is_some_and(|bytes| bytes > 0),
        "disk use reported: {health}"
    );
}
