//! Helpers shared by the integration tests.

use std::{
    future::Future,
    time::{Duration, Instant},
};

/// How long [`eventually`] waits: long enough for a loaded CI machine; a passing check
/// usually takes well under a second.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// How often [`eventually`] asks again.
const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// Polls `check` until it returns `Some`, and returns that; panics naming `what` after
/// [`DEADLINE`]. Tests wait for a condition with this, never with a blind sleep.
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {DEADLINE:?} waiting for: {what}"
        );
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}
