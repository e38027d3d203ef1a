//! Digests, the first frame of a sync: any bytes decode or are refused, never a panic; a
//! decoded digest encodes to bytes that decode to the same digest, and a replica answers it
//! (`missing_for`, then the first page after no cursor) without a panic.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use officemesh::{
    net::{SYNC_PAGE_BYTES, paging},
    state::Replica,
    wire,
};
use officemesh_fuzz::office;

fn alpha() -> &'static Replica {
    static ALPHA: OnceLock<Replica> = OnceLock::new();
    ALPHA.get_or_init(|| office().0)
}

fuzz_target!(|data: &[u8]| {
    let Ok(digest) = wire::decode_digest(data) else {
        return;
    };
    let bytes = wire::encode_digest(&digest);
    assert_eq!(wire::decode_digest(&bytes).as_ref(), Ok(&digest));
    let missing = alpha().missing_for(&digest);
    let page = paging::first_page(&missing, None, SYNC_PAGE_BYTES);
    assert!(wire::decode_delta(&wire::encode_delta(&page.delta)).is_ok());
});
