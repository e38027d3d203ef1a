//! The wiring of one office node: the office actor, the network, the store, the HTTP API and
//! the sensors, each a task owned here and stopped by one shutdown signal.

pub mod office;
