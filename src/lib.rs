//! officemesh: a peer-to-peer smart office.
//!
//! See `ARCHITECTURE.md` for the map of the modules.

pub mod net;
pub mod sim;
pub mod state;
pub mod wire;
