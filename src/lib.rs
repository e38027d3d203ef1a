//! officemesh: a peer-to-peer smart office.
//!
//! See `ARCHITECTURE.md` for the map of the modules.

pub mod alerts;
pub mod backoff;
pub mod bot;
pub mod chat;
pub mod config;
pub mod history;
pub mod http;
pub mod net;
pub mod node;
pub mod office;
pub mod presence;
pub mod sensors;
pub mod sim;
pub mod state;
pub mod store;
pub mod validate;
pub mod wire;
