//! The one integration-test binary: tests at the boundaries of the crate.

mod purity;
mod state_laws;
