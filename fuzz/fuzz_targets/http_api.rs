//! What the HTTP API reads from a client: the JSON bodies of `POST /api/readings`,
//! `PUT /api/targets/{room}/{quantity}` and `POST /api/ask`, each parsed and checked into
//! the write or question it asks for, and the query string of `GET /api/history`. The
//! first byte picks which. Nothing panics; a write that passes the checks applies to a
//! replica.
#![no_main]

use std::{collections::BTreeMap, sync::OnceLock};

use libfuzzer_sys::fuzz_target;
use officemesh::{
    history::query::HistoryQuery,
    http::{ask_request, reading_request, target_request},
    office::Write,
    state::Replica,
};
use officemesh_fuzz::{NOW_MS, office};

fn alpha() -> &'static Replica {
    static ALPHA: OnceLock<Replica> = OnceLock::new();
    ALPHA.get_or_init(|| office().0)
}

fn applies(write: Write) {
    let mut replica = alpha().clone();
    // The checks above are the API's promise that the office takes the write.
    if let Err(error) = write.apply(&mut replica, NOW_MS) {
        panic!("{write:?} passed the API's checks but the office refuses it: {error}");
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    match pick % 4 {
        0 => {
            if let Ok(write) = reading_request(body) {
                applies(write);
            }
        }
        1 => {
            // The path's two segments come first, one per line; axum has decoded them.
            let text = String::from_utf8_lossy(body);
            let mut lines = text.splitn(3, '\n');
            let (room, quantity) = (lines.next().unwrap_or(""), lines.next().unwrap_or(""));
            let body = lines.next().unwrap_or("");
            if let Ok(write) = target_request(room, quantity, body.as_bytes()) {
                applies(write);
            }
        }
        2 => {
            let _ = ask_request(body);
        }
        _ => {
            // axum has split and decoded the query string into names and values.
            let text = String::from_utf8_lossy(body);
            let params: BTreeMap<String, String> = text
                .split('&')
                .filter_map(|pair| pair.split_once('='))
                .map(|(name, value)| (name.to_owned(), value.to_owned()))
                .collect();
            if let Ok(query) = HistoryQuery::parse(&params, NOW_MS, 35 * 86_400_000) {
                let _ = query.points();
            }
        }
    }
});
