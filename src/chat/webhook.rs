//! The outgoing webhook (`[bot] webhook_url`): each alert this node announces is posted as
//! `{"text": "..."}` with `Content-Type: application/json`, the body that Slack, Mattermost
//! and Discord-compatible (`/slack` suffixed) incoming webhooks take.
//!
//! A failing webhook is contained: the node hands messages over through a bounded queue
//! without waiting; this task retries each one a bounded number of times with doubling
//! backoff, logs one line when it gives up, and moves on to the next.

use std::time::Duration;

use reqwest::{StatusCode, Url, header::CONTENT_TYPE};
use serde::Serialize;
use thiserror::Error;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::backoff::Backoff;

/// Messages waiting to be posted. Alerts are rare; if the webhook is down long enough for
/// this to fill, newer messages are dropped (and logged) rather than anything waiting.
pub const QUEUE_CAPACITY: usize = 32;

/// Attempts per message, the first included.
pub const ATTEMPTS: u32 = 5;

/// The wait before the second attempt; it doubles for each next one (1, 2, 4, 8 s).
pub const FIRST_BACKOFF: Duration = Duration::from_secs(1);

/// The longest wait between two attempts. The default attempts never reach it; it bounds the
/// wait of a webhook set up with more attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// How long one request may take, connecting included.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Why one post failed.
#[derive(Debug, Error)]
pub enum WebhookError {
    #[error("the webhook at {host} answered {status}")]
    Status { host: String, status: StatusCode },
    #[error("cannot reach the webhook at {host}: {source}")]
    Send {
        host: String,
        #[source]
        source: reqwest::Error,
    },
}

impl WebhookError {
    /// Whether trying again may help: the server is down or overloaded, not refusing the
    /// request itself.
    fn transient(&self) -> bool {
        match self {
            WebhookError::Status { status, .. } => {
                status.is_server_error() || *status == StatusCode::TOO_MANY_REQUESTS
            }
            WebhookError::Send { .. } => true,
        }
    }
}

#[derive(Serialize)]
struct Body<'a> {
    text: &'a str,
}

/// A webhook to post to.
#[derive(Clone)]
pub struct Webhook {
    client: reqwest::Client,
    url: Url,
    attempts: u32,
    first_backoff: Duration,
}

impl Webhook {
    /// A webhook at `url` (checked by `[bot] webhook_url`'s validation), with the default
    /// retries.
    pub fn new(url: Url) -> Result<Webhook, String> {
        let client = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(|error| format!("cannot set up the HTTP client: {error}"))?;
        Ok(Webhook {
            client,
            url,
            attempts: ATTEMPTS,
            first_backoff: FIRST_BACKOFF,
        })
    }

    /// The same webhook with other retry limits (tests use short backoffs).
    pub fn with_retries(mut self, attempts: u32, first_backoff: Duration) -> Webhook {
        self.attempts = attempts.max(1);
        self.first_backoff = first_backoff;
        self
    }

    /// The host, for logs: the rest of a webhook URL is usually its secret.
    fn host(&self) -> String {
        self.url.host_str().unwrap_or_default().to_owned()
    }

    /// One attempt.
    pub async fn post_once(&self, text: &str) -> Result<(), WebhookError> {
        let body = serde_json::to_vec(&Body { text }).expect("a string serialises");
        let response = self
            .client
            .post(self.url.clone())
            .header(CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await
            .map_err(|source| WebhookError::Send {
                host: self.host(),
                source: source.without_url(),
            })?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(WebhookError::Status {
                host: self.host(),
                status,
            })
        }
    }

    /// Posts `text`, retrying transient failures with doubling backoff up to the attempt
    /// limit. Returns the last error, or at once if `shutdown` fires while waiting.
    pub async fn post(&self, text: &str, shutdown: &CancellationToken) -> Result<(), WebhookError> {
        let mut backoff = Backoff::new(self.first_backoff, MAX_BACKOFF);
        let mut attempt = 1;
        loop {
            let error = match self.post_once(text).await {
                Ok(()) => return Ok(()),
                Err(error) => error,
            };
            if attempt >= self.attempts || !error.transient() {
                return Err(error);
            }
            debug!(%error, attempt, "webhook post failed; retrying");
            tokio::select! {
                () = shutdown.cancelled() => return Err(error),
                () = tokio::time::sleep(backoff.next_delay()) => {}
            }
            attempt += 1;
        }
    }

    /// Posts every message from `queue`, in order, until `shutdown` or the queue closes.
    pub async fn run(self, mut queue: mpsc::Receiver<String>, shutdown: CancellationToken) {
        info!(host = %self.host(), "alerts go to the webhook");
        loop {
            let text = tokio::select! {
                () = shutdown.cancelled() => return,
                text = queue.recv() => match text {
                    Some(text) => text,
                    None => return,
                },
            };
            if let Err(error) = self.post(&text, &shutdown).await {
                warn!(%error, attempts = self.attempts, "alert not posted to the webhook: {text}");
            }
        }
    }
}
