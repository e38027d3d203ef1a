//! Helpers shared by the integration tests: one way to wait for a condition (polling with a
//! deadline, [`wait_for`] in plain threads and [`eventually`] in async tests), one way to
//! start the real `officemesh` binary ([`node::Node::builder`]), one way to drive a real
//! headless Chromium ([`browser::Browser`]), and ports.
//!
//! Ports: a program under test binds port 0 and tells which port it got (the node logs its
//! addresses; see [`node`]), so no test hands a released port to a program while another
//! test may take it. Only programs that cannot report a bound port (Mosquitto, Synapse) get
//! one from [`unused_port`], and must cope with losing it.

pub mod browser;
pub mod node;

use std::{
    fmt::Display,
    future::Future,
    net::TcpListener,
    time::{Duration, Instant},
};

/// How long a test waits for anything: long enough for a loaded two-core CI machine running
/// several tests at once; a passing check usually takes well under a second.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// How often a check is asked again.
const POLL_INTERVAL: Duration = Duration::from_millis(25);

/// What a check returns: ready with a value, or not yet with what it saw (for the message
/// when the deadline passes). `Option`, `Result` and `bool` are checks.
pub trait Check {
    type Value;
    fn ready(self) -> Result<Self::Value, String>;
}

impl<T> Check for Option<T> {
    type Value = T;
    fn ready(self) -> Result<T, String> {
        self.ok_or_else(|| "not yet".to_owned())
    }
}

impl<T, E: Display> Check for Result<T, E> {
    type Value = T;
    fn ready(self) -> Result<T, String> {
        self.map_err(|error| error.to_string())
    }
}

impl Check for bool {
    type Value = ();
    fn ready(self) -> Result<(), String> {
        self.then_some(()).ok_or_else(|| "not yet".to_owned())
    }
}

/// Asks `check` until it is ready and returns its value; panics naming `what` and the last
/// thing `check` saw after [`DEADLINE`]. Tests wait with this (or [`eventually`]), never
/// with a blind sleep.
pub fn wait_for<C: Check>(what: &str, mut check: impl FnMut() -> C) -> C::Value {
    let deadline = Instant::now() + DEADLINE;
    loop {
        match check().ready() {
            Ok(value) => return value,
            Err(seen) if Instant::now() >= deadline => {
                panic!("timed out after {DEADLINE:?} waiting for: {what}; last saw: {seen}")
            }
            Err(_) => std::thread::sleep(POLL_INTERVAL),
        }
    }
}

/// [`wait_for`] in an async test: the check is a future, and waiting yields to the runtime.
pub async fn eventually<C, F, Fut>(what: &str, check: F) -> C::Value
where
    C: Check,
    F: FnMut() -> Fut,
    Fut: Future<Output = C>,
{
    match within(DEADLINE, check).await {
        Ok(value) => value,
        Err(seen) => panic!("timed out after {DEADLINE:?} waiting for: {what}; last saw: {seen}"),
    }
}

/// Asks `check` until it is ready, for at most `limit`: its value, or what it last saw.
/// For a test that retries something itself when a shorter wait runs out.
pub async fn within<C, F, Fut>(limit: Duration, mut check: F) -> Result<C::Value, String>
where
    C: Check,
    F: FnMut() -> Fut,
    Fut: Future<Output = C>,
{
    let deadline = Instant::now() + limit;
    loop {
        match check().await.ready() {
            Ok(value) => return Ok(value),
            Err(seen) if Instant::now() >= deadline => return Err(seen),
            Err(_) => tokio::time::sleep(POLL_INTERVAL).await,
        }
    }
}

/// A loopback port that was free a moment ago, for a program that cannot bind port 0 and
/// report what it got. Another process may take it before the program binds it, so the
/// caller must notice a failed bind (the program exits) and try again with a new port.
pub fn unused_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("the system hands out a loopback port")
        .port()
}
