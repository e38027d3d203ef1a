//! The wire format: versioned protobuf encodings of deltas, digests and snapshots.
//!
//! Peers written in other languages must be able to read and publish office state, so the
//! format is protobuf (proto3), which has libraries in JS, Go and Python. The schema is
//! `proto/officemesh/v1/state.proto`; `proto.rs` holds the same messages as `prost` structs
//! written by hand (no build script, no `protoc`). `docs/protocol.md` explains it for the
//! author of another peer.
//!
//! Every message is an `Envelope`: a version number and one body (delta, digest or
//! snapshot). One envelope rather than three top-level messages, so a reader can check the
//! version and tell what it holds before anything else, with one rule for all three.
//!
//! Compactness, because deltas are gossiped to every node once a second:
//! - node ids (52-character peer ids) appear once per message, in a node table; dots and keys
//!   name nodes by their index, and index 0 costs nothing on the wire;
//! - a causal context is per writer a list of (gap, length) pairs of small varints;
//! - the stamps, quantities, MACs and IPs are numbers and raw bytes, not text.
//!
//! Decoding never panics and trusts nothing. Structural faults (bad index, bad ranges,
//! duplicate dots, wrong version, bytes that are not protobuf) fail the whole message. A
//! delta entry whose *values* are invalid is dropped alone and reported in
//! [`Decoded::rejected`], and its dot is left out of the context, so the rest of the delta
//! still merges and the entry is offered again by sync once its writer is fixed. A snapshot
//! is a node's own saved state: any invalid entry in it fails the decode.

mod decode;
mod encode;
pub mod history;
mod proto;
#[cfg(test)]
mod tests;

use prost::Message as _;
use thiserror::Error;

use crate::state::{Delta, Digest, Dot, Part, Snapshot};

/// The version every message carries; a message of another version is refused.
///
/// Within a version, fields may be added (readers skip fields they do not know); a change
/// that old readers would misread (a field's meaning, type or number) needs a new version.
pub const WIRE_VERSION: u32 = 1;

// The byte limits are what bound the memory a message takes while it is decoded: `prost`
// builds the whole message before the counts below can be checked, and an entry takes up to
// 64 times its smallest encoding once parsed (an empty alert is 2 bytes on the wire and 128
// in memory). So a delta at the limit may take up to 64 MiB, briefly.

/// Largest encoded delta accepted, in bytes.
pub const MAX_DELTA_BYTES: usize = 1 << 20;

/// Largest encoded digest accepted, in bytes.
pub const MAX_DIGEST_BYTES: usize = 1 << 20;

/// Largest encoded snapshot accepted, in bytes.
pub const MAX_SNAPSHOT_BYTES: usize = 64 << 20;

/// Most node ids in the node table of one message.
///
/// An office is tens of nodes and a campus a few thousand, but a context remembers every
/// writer it has ever seen, so years of nodes coming and going must fit too.
pub const MAX_WRITERS: usize = 1 << 16;

/// Most ranges in the context of one writer.
///
/// A writer's context is one range while its deltas arrive in order; each lost delta or
/// rejected entry opens a hole until sync fills it, so a healthy office sees a handful.
/// Tens of thousands of holes mean a broken or hostile peer.
pub const MAX_RANGES: usize = 1 << 16;

/// Largest sequence number accepted: the core's limit (2^53 - 1, the largest integer a
/// JavaScript number holds exactly), so a JS peer can use plain numbers.
pub use crate::state::MAX_SEQ;

/// Most entries (in all six parts together) in one message.
///
/// A whole-state snapshot of a campus is the largest message: a few thousand nodes, each
/// seeing a few hundred devices, is about a million network-map rows. At about 30 bytes a
/// row, two million entries also fill [`MAX_SNAPSHOT_BYTES`], so this limit and the byte
/// limit refuse messages of about the same size.
pub const MAX_ENTRIES: usize = 1 << 21;

#[derive(Debug, Error, Clone, PartialEq)]
pub enum WireError {
    #[error("message of {len} bytes is larger than the limit of {max} bytes")]
    TooLarge { len: usize, max: usize },
    #[error("message has wire version {found}, this node speaks version {WIRE_VERSION}")]
    Version { found: u32 },
    #[error("malformed message: {0}")]
    Malformed(String),
    /// A snapshot or a saved delta is a node's own state: an invalid entry in it is
    /// corruption, not a peer's mistake to skip over.
    #[error("invalid entry in saved state: {0}")]
    InvalidEntry(EntryError),
}

/// An entry of a decoded delta that was dropped because its fields were invalid.
#[derive(Debug, Error, Clone, PartialEq)]
#[error("invalid {part} {dot}: {reason}")]
pub struct EntryError {
    pub part: Part,
    pub dot: Dot,
    pub reason: String,
}

/// A decoded delta, and the entries that were dropped from it (their dots left out of its
/// context, so they are not taken as seen).
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    pub delta: Delta,
    pub rejected: Vec<EntryError>,
}

/// Encodes a delta to publish or to answer a digest with.
///
/// The result may be larger than [`MAX_DELTA_BYTES`] (the answer to a digest from an empty
/// replica is the whole office); the sender checks and splits, since a peer will refuse it.
pub fn encode_delta(delta: &Delta) -> Vec<u8> {
    envelope(proto::Body::Delta(encode::state(delta)))
}

/// Decodes a delta from a peer, dropping the entries whose values are invalid.
pub fn decode_delta(bytes: &[u8]) -> Result<Decoded, WireError> {
    match open(bytes, MAX_DELTA_BYTES)? {
        proto::Body::Delta(delta) => decode::state(delta),
        other => Err(wrong_body("delta", &other)),
    }
}

/// Decodes a delta this node saved itself (the store's journal, written by
/// [`encode_delta`]). Like a snapshot it is the node's own state: any invalid entry fails it
/// whole, and it may be as large as a snapshot.
pub fn decode_saved_delta(bytes: &[u8]) -> Result<Delta, WireError> {
    match open(bytes, MAX_SNAPSHOT_BYTES)? {
        proto::Body::Delta(delta) => {
            let Decoded { delta, rejected } = decode::state(delta)?;
            match rejected.into_iter().next() {
                Some(first) => Err(WireError::InvalidEntry(first)),
                None => Ok(delta),
            }
        }
        other => Err(wrong_body("delta", &other)),
    }
}

pub fn encode_digest(digest: &Digest) -> Vec<u8> {
    envelope(proto::Body::Digest(encode::digest(digest)))
}

pub fn decode_digest(bytes: &[u8]) -> Result<Digest, WireError> {
    match open(bytes, MAX_DIGEST_BYTES)? {
        proto::Body::Digest(digest) => decode::digest(digest),
        other => Err(wrong_body("digest", &other)),
    }
}

pub fn encode_snapshot(snapshot: &Snapshot) -> Vec<u8> {
    envelope(proto::Body::Snapshot(encode::snapshot(snapshot)))
}

/// Decodes a saved snapshot; unlike a delta, any invalid entry fails it whole.
pub fn decode_snapshot(bytes: &[u8]) -> Result<Snapshot, WireError> {
    match open(bytes, MAX_SNAPSHOT_BYTES)? {
        proto::Body::Snapshot(snapshot) => decode::snapshot(snapshot),
        other => Err(wrong_body("snapshot", &other)),
    }
}

fn envelope(body: proto::Body) -> Vec<u8> {
    proto::Envelope {
        version: WIRE_VERSION,
        body: Some(body),
    }
    .encode_to_vec()
}

/// Checks the size and the version, then parses the envelope and returns its body.
fn open(bytes: &[u8], max: usize) -> Result<proto::Body, WireError> {
    if bytes.len() > max {
        return Err(WireError::TooLarge {
            len: bytes.len(),
            max,
        });
    }
    // The version first, alone: a later version's body need not parse as this one's.
    let probe = proto::VersionProbe::decode(bytes).map_err(decode::protobuf)?;
    if probe.version != WIRE_VERSION {
        return Err(WireError::Version {
            found: probe.version,
        });
    }
    let envelope = proto::Envelope::decode(bytes).map_err(decode::protobuf)?;
    envelope
        .body
        .ok_or_else(|| WireError::Malformed("the envelope has no body".to_owned()))
}

fn wrong_body(expected: &str, found: &proto::Body) -> WireError {
    let found = match found {
        proto::Body::Delta(_) => "delta",
        proto::Body::Digest(_) => "digest",
        proto::Body::Snapshot(_) => "snapshot",
    };
    WireError::Malformed(format!("expected a {expected}, found a {found}"))
}
