//! Where the office talks to people outside the node: today the outgoing webhook that
//! alerts are posted to. Each adapter fails on its own and never blocks the node.

pub mod webhook;
