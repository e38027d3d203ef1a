//! The one integration-test binary: tests at the boundaries of the crate.

mod access;
mod acknowledged;
mod alerts;
mod binary;
mod bot;
mod chat_matrix;
mod chat_slack;
mod cli;
mod dashboard;
mod full_disk;
mod history;
mod invite;
mod layers;
mod mdns;
mod net;
mod netlab;
mod office;
mod presence;
mod purity;
mod sensors;
mod sim;
mod state_journal;
mod state_laws;
mod state_rules;
mod state_sync;
mod support;
