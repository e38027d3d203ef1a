//! The history backfill messages (`wire::history`) and the packed minute buckets a page
//! carries (`HourBuckets::unpack`). The first byte picks which. Nothing panics; what decodes
//! encodes to bytes that decode to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use officemesh::{
    store::{HOUR_MS, HourBuckets},
    wire::history::{
        decode_history_ask, decode_history_page, encode_history_ask, encode_history_page,
    },
};

fuzz_target!(|data: &[u8]| {
    let Some((&pick, bytes)) = data.split_first() else {
        return;
    };
    match pick % 3 {
        0 => {
            if let Ok(ask) = decode_history_ask(bytes) {
                assert_eq!(
                    decode_history_ask(&encode_history_ask(&ask)).as_ref(),
                    Ok(&ask)
                );
            }
        }
        1 => {
            if let Ok(page) = decode_history_page(bytes) {
                assert_eq!(
                    decode_history_page(&encode_history_page(&page)).as_ref(),
                    Ok(&page)
                );
                for (_, hour_ms, buckets) in &page.hours {
                    unpack(buckets, *hour_ms);
                }
            }
        }
        _ => unpack(bytes, 7 * HOUR_MS),
    }
});

fn unpack(bytes: &[u8], hour_ms: u64) {
    let Some(buckets) = HourBuckets::unpack(bytes, hour_ms) else {
        return;
    };
    let again = HourBuckets::unpack(&buckets.pack(), hour_ms).expect("packed buckets unpack");
    assert!(
        again.minutes().eq(buckets.minutes()),
        "{bytes:?} does not unpack to what it packed"
    );
    buckets.summary();
}
