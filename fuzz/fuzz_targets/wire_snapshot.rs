//! Snapshots, the base a node saves and restores from: any bytes decode or are refused,
//! never a panic; a decoded snapshot encodes to bytes that decode to the same snapshot, and
//! a replica restored from it takes a digest and saves again without a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use officemesh::{
    state::{DEFAULT_RETENTION_MS, Replica},
    wire,
};

fuzz_target!(|data: &[u8]| {
    let Ok(snapshot) = wire::decode_snapshot(data) else {
        return;
    };
    let bytes = wire::encode_snapshot(&snapshot);
    assert_eq!(wire::decode_snapshot(&bytes).as_ref(), Ok(&snapshot));
    let mut replica = Replica::restore(snapshot, DEFAULT_RETENTION_MS);
    replica.digest();
    let saved = replica.snapshot();
    assert_eq!(
        wire::decode_snapshot(&wire::encode_snapshot(&saved)).as_ref(),
        Ok(&saved)
    );
});
