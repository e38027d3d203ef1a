//! What presence reads from the kernel: a `/proc/net/arp` table (text) and a datagram of
//! the netlink neighbour dump (bytes). The first byte picks which. Nothing panics; every
//! neighbour parsed turns into an observation or into nothing.
#![no_main]

use libfuzzer_sys::fuzz_target;
use officemesh::presence::{arp, neighbours};

fuzz_target!(|data: &[u8]| {
    let Some((&pick, bytes)) = data.split_first() else {
        return;
    };
    if pick % 2 == 0 {
        // The table is read as UTF-8 (the read fails otherwise).
        if let Ok(text) = std::str::from_utf8(bytes) {
            let _ = arp::parse(text);
        }
    } else if let Ok((found, _done)) = neighbours::parse_dump(bytes) {
        for neighbour in &found {
            let _ = neighbour.counts_as_seen();
            let _ = neighbour.observed();
        }
    }
});
