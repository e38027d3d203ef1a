//! The one integration-test binary: tests at the boundaries of the crate.

mod binary;
mod bot;
mod mdns;
mod net;
mod office;
mod presence;
mod purity;
mod sensors;
mod sim;
mod state_laws;
mod state_rules;
mod state_sync;
