//! Sensor sources: what turns the physical office into readings. Each source fails on its
//! own, logs a clear line and retries; none can take the node down.

pub mod simulated;
