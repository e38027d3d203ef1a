//! The office bot's reading of a message (`bot::reply`, what `POST /api/ask`, Slack, Matrix
//! and `officemesh ask` all end in), against a small office with rooms, readings, devices
//! and people. Any text up to the bot's length limit gets an answer, never a panic, and the
//! writes the answer asks for apply to the office without a panic.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use officemesh::{
    bot::{MAX_TEXT_LEN, Situation, needs_speaker, reply},
    state::{Person, Replica, query::Query},
};
use officemesh_fuzz::{NOW_MS, office};

/// Alpha, having heard all of Bravo's writes too.
fn merged() -> &'static Replica {
    static MERGED: OnceLock<Replica> = OnceLock::new();
    MERGED.get_or_init(|| {
        let (mut alpha, bravo, _) = office();
        alpha.merge(bravo.state().clone(), bravo.id(), NOW_MS);
        alpha
    })
}

fuzz_target!(|data: &[u8]| {
    // Every way in hands the bot a string; the bot refuses longer ones before reading them.
    let text = String::from_utf8_lossy(data);
    if text.len() > MAX_TEXT_LEN {
        return;
    }
    let office = merged();
    let speaker = Person::new("mendes").unwrap();
    let situation = Situation {
        query: Query::new(office, NOW_MS, 180_000),
        peers: 1,
        bot_name: Some("officebot"),
    };
    let _ = needs_speaker(&text);
    let answer = reply(&situation, &speaker, &text);
    assert!(!answer.text.is_empty(), "no answer to {text:?}");
    let mut replica = office.clone();
    for write in &answer.writes {
        let _ = write.apply(&mut replica, NOW_MS);
    }
});
