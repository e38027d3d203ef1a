//! The one integration-test binary: tests at the boundaries of the crate.

mod purity;
mod sim;
mod state_laws;
