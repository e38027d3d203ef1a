//! The frames of the request-response protocols, read by the codecs the node runs
//! (`/officemesh/sync/1`, `/officemesh/hold/1`, `/officemesh/history/1`), from a stream that
//! holds the fuzzer's bytes. The first byte picks the frame. Nothing panics; a frame that
//! reads is written by the same codec and read back equal; a sync request is answered as
//! the node answers it (the first page after the asker's cursor); a hold request and the
//! history frames are decoded as the net actor and the history module decode them.
#![no_main]

use std::sync::OnceLock;

use futures::{executor::block_on, io::Cursor};
use libfuzzer_sys::fuzz_target;
use libp2p::request_response::Codec;
use officemesh::{
    net::{
        HISTORY_PROTOCOL, HOLD_PROTOCOL, SYNC_PAGE_BYTES, SYNC_PROTOCOL, history::HistoryCodec,
        hold::HoldCodec, paging, sync::SyncCodec,
    },
    state::Replica,
    wire,
};
use officemesh_fuzz::office;

fn alpha() -> &'static Replica {
    static ALPHA: OnceLock<Replica> = OnceLock::new();
    ALPHA.get_or_init(|| office().0)
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, frame)) = data.split_first() else {
        return;
    };
    let mut io = Cursor::new(frame);
    block_on(async {
        match pick % 6 {
            0 => sync_request(&mut io).await,
            1 => sync_response(&mut io).await,
            2 => {
                let Ok(request) = HoldCodec.read_request(&HOLD_PROTOCOL, &mut io).await else {
                    return;
                };
                // The net actor decodes it as gossip before checking its writers (the
                // rest of that path is `wire_delta`'s).
                let _ = wire::decode_delta(&request);
                let mut out = Cursor::new(Vec::new());
                HoldCodec
                    .write_request(&HOLD_PROTOCOL, &mut out, request.clone())
                    .await
                    .expect("a request that was read is written");
                out.set_position(0);
                let again = HoldCodec.read_request(&HOLD_PROTOCOL, &mut out).await;
                assert_eq!(again.ok(), Some(request));
            }
            3 => {
                let _ = HoldCodec.read_response(&HOLD_PROTOCOL, &mut io).await;
            }
            4 => {
                if let Ok(ask) = HistoryCodec.read_request(&HISTORY_PROTOCOL, &mut io).await {
                    let _ = wire::history::decode_history_ask(&ask);
                }
            }
            _ => {
                if let Ok(page) = HistoryCodec.read_response(&HISTORY_PROTOCOL, &mut io).await {
                    let _ = wire::history::decode_history_page(&page);
                }
            }
        }
    });
});

async fn sync_request(io: &mut Cursor<&[u8]>) {
    let Ok(request) = SyncCodec.read_request(&SYNC_PROTOCOL, io).await else {
        return;
    };
    let mut out = Cursor::new(Vec::new());
    SyncCodec
        .write_request(&SYNC_PROTOCOL, &mut out, request.clone())
        .await
        .expect("a request that was read is written");
    out.set_position(0);
    let again = SyncCodec.read_request(&SYNC_PROTOCOL, &mut out).await;
    assert_eq!(again.ok().as_ref(), Some(&request));
    // The responder's side: the asker's digest and cursor are both the fuzzer's.
    let missing = alpha().missing_for(&request.digest);
    for budget in [SYNC_PAGE_BYTES, 64] {
        paging::first_page(&missing, request.after.as_ref(), budget);
    }
}

async fn sync_response(io: &mut Cursor<&[u8]>) {
    let Ok(response) = SyncCodec.read_response(&SYNC_PROTOCOL, io).await else {
        return;
    };
    let mut out = Cursor::new(Vec::new());
    let sent = officemesh::net::sync::SyncResponse {
        invalid: Vec::new(),
        ..response.clone()
    };
    // A page is at most what a peer accepts; one re-encoded may not be, and is not sent.
    if SyncCodec
        .write_response(&SYNC_PROTOCOL, &mut out, sent.clone())
        .await
        .is_err()
    {
        assert!(wire::encode_delta(&sent.page).len() > wire::MAX_DELTA_BYTES);
        return;
    }
    out.set_position(0);
    let again = SyncCodec
        .read_response(&SYNC_PROTOCOL, &mut out)
        .await
        .expect("a response that was written reads back");
    assert_eq!(again, sent);
}
