//! Deltas as peers gossip them and as a node reads its own journal back: any bytes decode
//! or are refused, never a panic; a decoded delta keeps the state's invariant (every dot in
//! its store is in its context), encodes to bytes that decode to the same delta, and merges
//! into a replica (or replays into one, for the journal) without a panic.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use officemesh::{
    state::{Delta, NodeId, Replica},
    wire,
};
use officemesh_fuzz::{NOW_MS, office};

fn bravo() -> &'static Replica {
    static BRAVO: OnceLock<Replica> = OnceLock::new();
    BRAVO.get_or_init(|| office().1)
}

fn check(delta: &Delta) {
    for (part, dot) in delta.store.dots() {
        assert!(
            delta.context.contains(dot),
            "{part} {dot} is not in the context"
        );
    }
    let bytes = wire::encode_delta(delta);
    // The journal's decoder: an encoded delta may be larger than a gossiped one may be.
    let again = wire::decode_saved_delta(&bytes).expect("an encoded delta decodes");
    assert_eq!(&again, delta);
}

fuzz_target!(|data: &[u8]| {
    if let Ok(decoded) = wire::decode_delta(data) {
        check(&decoded.delta);
        // Merged as gossip is: the sender is the first writer the delta names, so the
        // writer rule admits some of it and refuses the rest.
        let sender = decoded
            .delta
            .store
            .dots()
            .map(|(_, dot)| dot.writer.clone())
            .next()
            .unwrap_or_else(|| NodeId::new(officemesh_fuzz::ALPHA).unwrap());
        let mut replica = bravo().clone();
        replica.merge(decoded.delta, &sender, NOW_MS);
        check(replica.state());
    }
    if let Ok(delta) = wire::decode_saved_delta(data) {
        check(&delta);
        let mut replica = bravo().clone();
        replica.replay(&delta);
        check(replica.state());
    }
});
