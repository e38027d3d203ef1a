//! The wire format: versioned protobuf encodings of deltas, digests and snapshots.
//!
//! Placeholder API; the encoding is being written.

use thiserror::Error;

use crate::state::{Delta, Digest, Dot, Part, Snapshot};

/// The version every message carries; a message of another version is refused.
pub const WIRE_VERSION: u32 = 1;

/// Largest encoded delta accepted, in bytes.
pub const MAX_DELTA_BYTES: usize = 1 << 20;

/// Largest encoded digest accepted, in bytes.
pub const MAX_DIGEST_BYTES: usize = 1 << 20;

/// Largest encoded snapshot accepted, in bytes.
pub const MAX_SNAPSHOT_BYTES: usize = 64 << 20;

#[derive(Debug, Error, Clone, PartialEq)]
pub enum WireError {
    #[error("message of {len} bytes is larger than the limit of {max} bytes")]
    TooLarge { len: usize, max: usize },
    #[error("message has wire version {found}, this node speaks version {WIRE_VERSION}")]
    Version { found: u32 },
    #[error("malformed message: {0}")]
    Malformed(String),
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

pub fn encode_delta(_delta: &Delta) -> Vec<u8> {
    unimplemented!("wire format")
}

pub fn decode_delta(_bytes: &[u8]) -> Result<Decoded, WireError> {
    unimplemented!("wire format")
}

pub fn encode_digest(_digest: &Digest) -> Vec<u8> {
    unimplemented!("wire format")
}

pub fn decode_digest(_bytes: &[u8]) -> Result<Digest, WireError> {
    unimplemented!("wire format")
}

pub fn encode_snapshot(_snapshot: &Snapshot) -> Vec<u8> {
    unimplemented!("wire format")
}

pub fn decode_snapshot(_bytes: &[u8]) -> Result<Snapshot, WireError> {
    unimplemented!("wire format")
}
