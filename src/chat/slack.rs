//! The Slack adapter, in Socket Mode: no public URL, so it works behind an office's NAT.
//!
//! The app-level token opens a WebSocket URL with `apps.connections.open`; Slack sends
//! *envelopes* over it (`hello`, `events_api`, `disconnect`), and each envelope is
//! acknowledged at once by sending back `{"envelope_id": ...}`, before any slow work, because
//! Slack redelivers an envelope that is not acknowledged within 3 seconds. A `disconnect`
//! envelope (Slack refreshing the link) is answered by opening a new link at once; a lost
//! socket by a new link after a backoff. Replies and alerts are posted with the bot token
//! through `chat.postMessage`, honouring `429 Retry-After` and `{"ok": false}` bodies.
//!
//! Several nodes may connect with the same app: Slack hands each envelope to one of the open
//! connections, so one node answers it. A redelivered envelope (`retry_attempt` > 0) or the
//! same message seen as two events (`message` and `app_mention`) is recognised by its event
//! id and by its channel and timestamp, within a bounded window, and answered once.

use std::{sync::Arc, time::Duration};

use futures::{SinkExt, StreamExt};
use reqwest::{StatusCode, header::RETRY_AFTER};
use serde_json::{Value, json};
use thiserror::Error;
use tokio::{sync::mpsc, task::JoinSet};
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::{RecentSet, SharedAsker, Speaker, config::SlackConfig, pause, reconnect_backoff};
use crate::backoff::Backoff;

/// How many events (by id and by message) are remembered to answer each once. Slack
/// redelivers within minutes; a busy office sees far fewer messages than this in that time.
const RECENT_EVENTS: usize = 1024;

/// How many replies may be in progress at once; past it a question is dropped with a warning
/// rather than queueing without bound behind a slow bot.
const MAX_REPLIES_IN_FLIGHT: usize = 16;

/// How many times one message is tried before giving up (rate limits and refused connections).
const POST_ATTEMPTS: u32 = 5;

/// The wait after a 429 that carries no `Retry-After`.
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(1);

/// The longest `Retry-After` obeyed; a longer one is cut to this so shutdown stays prompt and
/// a bad header cannot park the adapter for a day.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

/// Timeout of one Web API call.
const HTTP_TIMEOUT: Duration = Duration::from_secs(30);

/// How often a ping goes out on the socket, so a link that died silently (NAT timeout) is
/// noticed.
const PING_INTERVAL: Duration = Duration::from_secs(30);

/// A socket that has received nothing (not even a pong) for this long is taken as dead.
const IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// Why a Web API call failed.
#[derive(Debug, Error)]
pub enum SlackError {
    #[error("cannot reach {method}: {source}")]
    Http {
        method: &'static str,
        source: reqwest::Error,
    },
    #[error("{method} answered HTTP {status}")]
    Status {
        method: &'static str,
        status: StatusCode,
    },
    #[error("{method} refused: {error}")]
    Refused { method: &'static str, error: String },
    #[error("{method} is still rate limited after {POST_ATTEMPTS} attempts")]
    RateLimited { method: &'static str },
    #[error("{method} answered without a {field}")]
    Malformed {
        method: &'static str,
        field: &'static str,
    },
    #[error("shutting down")]
    Shutdown,
}

/// The Web API with this adapter's tokens.
#[derive(Clone)]
struct WebApi {
    client: reqwest::Client,
    config: Arc<SlackConfig>,
}

impl WebApi {
    /// Calls `method` with `token` and a JSON body; retries a 429 (after `Retry-After`), a
    /// `ratelimited` error and a refused connection, none of which can have posted anything.
    async fn call(
        &self,
        method: &'static str,
        token: &str,
        body: &Value,
        shutdown: &CancellationToken,
    ) -> Result<Value, SlackError> {
        let url = format!("{}/{method}", self.config.api_url);
        let mut backoff = reconnect_backoff();
        for _ in 0..POST_ATTEMPTS {
            let sent = self
                .client
                .post(&url)
                .bearer_auth(token)
                .json(body)
                .send()
                .await;
            let response = match sent {
                Ok(response) => response,
                Err(error) if error.is_connect() => {
                    debug!(%error, method, "cannot connect to Slack; retrying");
                    if !pause(backoff.next_delay(), shutdown).await {
                        return Err(SlackError::Shutdown);
                    }
                    continue;
                }
                Err(source) => return Err(SlackError::Http { method, source }),
            };
            if response.status() == StatusCode::TOO_MANY_REQUESTS {
                let wait = retry_after(response.headers().get(RETRY_AFTER));
                debug!(
                    method,
                    ?wait,
                    "Slack rate limit; waiting as Retry-After says"
                );
                if !pause(wait, shutdown).await {
                    return Err(SlackError::Shutdown);
                }
                continue;
            }
            let status = response.status();
            if !status.is_success() {
                return Err(SlackError::Status { method, status });
            }
            let answer: Value = response
                .json()
                .await
                .map_err(|source| SlackError::Http { method, source })?;
            if answer["ok"].as_bool() == Some(true) {
                return Ok(answer);
            }
            let error = answer["error"].as_str().unwrap_or("no error given");
            if error == "ratelimited" {
                if !pause(DEFAULT_RETRY_AFTER, shutdown).await {
                    return Err(SlackError::Shutdown);
                }
                continue;
            }
            return Err(SlackError::Refused {
                method,
                error: error.to_owned(),
            });
        }
        Err(SlackError::RateLimited { method })
    }

    /// `apps.connections.open`: a fresh WebSocket URL, with the app-level token.
    async fn open_connection(&self, shutdown: &CancellationToken) -> Result<String, SlackError> {
        let method = "apps.connections.open";
        let answer = self
            .call(method, &self.config.app_token, &json!({}), shutdown)
            .await?;
        answer["url"]
            .as_str()
            .map(str::to_owned)
            .ok_or(SlackError::Malformed {
                method,
                field: "url",
            })
    }

    /// `chat.postMessage` with the bot token, in a thread when `thread_ts` is given.
    async fn post_message(
        &self,
        channel: &str,
        text: &str,
        thread_ts: Option<&str>,
        shutdown: &CancellationToken,
    ) -> Result<(), SlackError> {
        let mut body = json!({ "channel": channel, "text": text });
        if let Some(thread_ts) = thread_ts {
            body["thread_ts"] = json!(thread_ts);
        }
        self.call("chat.postMessage", &self.config.bot_token, &body, shutdown)
            .await
            .map(drop)
    }
}

/// The wait a `Retry-After` header asks for (whole seconds, as Slack sends it).
fn retry_after(header: Option<&reqwest::header::HeaderValue>) -> Duration {
    header
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse::<u64>().ok())
        .map_or(DEFAULT_RETRY_AFTER, Duration::from_secs)
        .min(MAX_RETRY_AFTER)
}

/// A message someone wrote that the bot should answer.
#[derive(Debug, PartialEq, Eq)]
struct Question {
    channel: String,
    user: String,
    text: String,
    /// The thread to answer in, if the message was in one.
    thread_ts: Option<String>,
    /// The message's timestamp: with the channel, Slack's id of the message.
    ts: String,
}

/// The question in an `events_api` payload, if it is a message from a person: not the bot's
/// own or another bot's (they carry `bot_id`), not an edit, deletion or join notice (they
/// carry a `subtype`).
fn question(payload: &Value) -> Option<Question> {
    let event = &payload["event"];
    if !matches!(event["type"].as_str(), Some("message" | "app_mention")) {
        return None;
    }
    if !event["subtype"].is_null() || !event["bot_id"].is_null() {
        return None;
    }
    let text = strip_mentions(event["text"].as_str()?);
    if text.is_empty() {
        return None;
    }
    Some(Question {
        channel: event["channel"].as_str()?.to_owned(),
        user: event["user"].as_str()?.to_owned(),
        text,
        thread_ts: event["thread_ts"].as_str().map(str::to_owned),
        ts: event["ts"].as_str()?.to_owned(),
    })
}

/// The text without leading user mentions (`<@U0123ABCD> who's at the office?`), which is how
/// people address the bot in a channel.
fn strip_mentions(text: &str) -> String {
    let mut rest = text.trim();
    while let Some(after) = rest.strip_prefix("<@") {
        match after.find('>') {
            Some(end) => rest = after[end + 1..].trim_start_matches([':', ',']).trim_start(),
            None => break,
        }
    }
    rest.trim().to_owned()
}

/// How a socket session ended.
enum Ended {
    Shutdown,
    /// Slack asked for a new link (`disconnect`): open one at once.
    Refresh,
    /// The link broke: open a new one after a backoff.
    Lost(String),
}

/// Runs the Slack adapter until `shutdown` fires: answers questions asked over Socket Mode and
/// posts the texts received on `alerts` to the alert channel. Never returns an error: every
/// failure is logged and retried.
pub async fn run(
    config: SlackConfig,
    asker: SharedAsker,
    alerts: mpsc::Receiver<String>,
    shutdown: CancellationToken,
) {
    let client = match reqwest::Client::builder().timeout(HTTP_TIMEOUT).build() {
        Ok(client) => client,
        Err(error) => {
            warn!(%error, "slack: cannot build an HTTP client; the Slack adapter is off");
            return;
        }
    };
    let api = WebApi {
        client,
        config: Arc::new(config),
    };
    tokio::join!(
        answer_questions(api.clone(), asker, shutdown.clone()),
        post_alerts(api, alerts, shutdown),
    );
}

/// Posts each alert to the alert channel, one at a time, so a burst stays within the rate
/// limit; without an alert channel, drains the queue so senders never block.
async fn post_alerts(api: WebApi, mut alerts: mpsc::Receiver<String>, shutdown: CancellationToken) {
    loop {
        let text = tokio::select! {
            () = shutdown.cancelled() => return,
            text = alerts.recv() => match text {
                Some(text) => text,
                None => return,
            },
        };
        let Some(channel) = api.config.alert_channel.as_deref() else {
            continue;
        };
        match api.post_message(channel, &text, None, &shutdown).await {
            Ok(()) => {}
            Err(SlackError::Shutdown) => return,
            Err(error) => warn!(%error, channel, "slack: cannot post an alert; dropped it"),
        }
    }
}

/// Keeps a Socket Mode link open and answers what arrives on it.
async fn answer_questions(api: WebApi, asker: SharedAsker, shutdown: CancellationToken) {
    let mut backoff = reconnect_backoff();
    let mut seen = RecentSet::new(RECENT_EVENTS);
    let mut replies = JoinSet::new();
    loop {
        let ended = match api.open_connection(&shutdown).await {
            Ok(url) => {
                session(
                    &api,
                    &asker,
                    &url,
                    &mut seen,
                    &mut replies,
                    &mut backoff,
                    &shutdown,
                )
                .await
            }
            Err(SlackError::Shutdown) => Ended::Shutdown,
            Err(error) => Ended::Lost(error.to_string()),
        };
        match ended {
            Ended::Shutdown => break,
            Ended::Refresh => debug!("slack: Slack refreshed the link; reconnecting"),
            Ended::Lost(reason) => {
                let delay = backoff.next_delay();
                warn!(%reason, ?delay, "slack: Socket Mode link down; reconnecting after a backoff");
                if !pause(delay, &shutdown).await {
                    break;
                }
            }
        }
    }
    // Replies in progress end with the node: their tasks watch the same token.
    while replies.join_next().await.is_some() {}
}

/// One WebSocket session: acknowledges envelopes, starts replies, until the link ends.
async fn session(
    api: &WebApi,
    asker: &SharedAsker,
    url: &str,
    seen: &mut RecentSet<String>,
    replies: &mut JoinSet<()>,
    backoff: &mut Backoff,
    shutdown: &CancellationToken,
) -> Ended {
    let socket = tokio::select! {
        () = shutdown.cancelled() => return Ended::Shutdown,
        socket = tokio_tungstenite::connect_async(url) => socket,
    };
    let mut socket = match socket {
        Ok((socket, _response)) => socket,
        Err(error) => return Ended::Lost(format!("cannot open the WebSocket: {error}")),
    };
    let mut ping = tokio::time::interval(PING_INTERVAL);
    ping.tick().await;
    loop {
        while replies.try_join_next().is_some() {}
        let frame = tokio::select! {
            () = shutdown.cancelled() => {
                let _ = socket.close(None).await;
                return Ended::Shutdown;
            }
            _ = ping.tick() => {
                if let Err(error) = socket.send(Message::Ping(Vec::new().into())).await {
                    return Ended::Lost(format!("cannot ping: {error}"));
                }
                continue;
            }
            frame = tokio::time::timeout(IDLE_TIMEOUT, socket.next()) => frame,
        };
        let text = match frame {
            Err(_) => return Ended::Lost(format!("nothing received for {IDLE_TIMEOUT:?}")),
            Ok(None) => return Ended::Lost("the socket closed".into()),
            Ok(Some(Err(error))) => return Ended::Lost(format!("socket error: {error}")),
            Ok(Some(Ok(Message::Text(text)))) => text,
            Ok(Some(Ok(Message::Close(frame)))) => {
                return Ended::Lost(format!("Slack closed the socket: {frame:?}"));
            }
            Ok(Some(Ok(_))) => continue,
        };
        let envelope: Value = match serde_json::from_str(text.as_str()) {
            Ok(envelope) => envelope,
            Err(error) => {
                warn!(%error, "slack: an envelope is not JSON; ignored it");
                continue;
            }
        };
        // Acknowledge first: Slack redelivers what is not acknowledged within 3 s.
        if let Some(envelope_id) = envelope["envelope_id"].as_str() {
            let ack = json!({ "envelope_id": envelope_id }).to_string();
            if let Err(error) = socket.send(Message::text(ack)).await {
                return Ended::Lost(format!("cannot acknowledge an envelope: {error}"));
            }
        }
        match envelope["type"].as_str() {
            Some("hello") => {
                backoff.reset();
                info!(
                    connections = envelope["num_connections"].as_u64(),
                    "slack: connected in Socket Mode"
                );
            }
            Some("disconnect") => {
                let reason = envelope["reason"].as_str().unwrap_or("none given");
                if reason == "link_disabled" {
                    return Ended::Lost("Socket Mode is disabled for this app".into());
                }
                return Ended::Refresh;
            }
            Some("events_api") => {
                let payload = &envelope["payload"];
                let Some(question) = question(payload) else {
                    continue;
                };
                let event_new = match payload["event_id"].as_str() {
                    Some(event_id) => seen.insert(format!("event {event_id}")),
                    None => true,
                };
                let message_new =
                    seen.insert(format!("message {} {}", question.channel, question.ts));
                if !(event_new && message_new) {
                    debug!(
                        retry = envelope["retry_attempt"].as_u64(),
                        "slack: already answered this message"
                    );
                    continue;
                }
                if replies.len() >= MAX_REPLIES_IN_FLIGHT {
                    warn!(channel = %question.channel, "slack: too many replies in progress; dropped a question");
                    continue;
                }
                replies.spawn(reply(
                    api.clone(),
                    asker.clone(),
                    question,
                    shutdown.clone(),
                ));
            }
            _ => {}
        }
    }
}

/// Asks the bot and posts its answer where the question was asked.
async fn reply(api: WebApi, asker: SharedAsker, question: Question, shutdown: CancellationToken) {
    let speaker = Speaker {
        service: "slack",
        user: question.user.clone(),
        name: question.user.clone(),
    };
    let answer = tokio::select! {
        () = shutdown.cancelled() => return,
        answer = asker.ask(speaker, question.text.clone()) => answer,
    };
    let posted = api
        .post_message(
            &question.channel,
            &answer,
            question.thread_ts.as_deref(),
            &shutdown,
        )
        .await;
    match posted {
        Ok(()) | Err(SlackError::Shutdown) => {}
        Err(error) => warn!(%error, channel = %question.channel, "slack: cannot post a reply"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(event: Value) -> Value {
        json!({ "type": "event_callback", "event_id": "Ev1", "event": event })
    }

    #[test]
    fn people_are_answered_and_bots_edits_and_notices_are_not() {
        let asked = question(&payload(json!({
            "type": "message", "channel": "C1", "user": "U1",
            "text": "<@U0BOT> who's at the office?", "ts": "1.1"
        })));
        assert_eq!(
            asked,
            Some(Question {
                channel: "C1".into(),
                user: "U1".into(),
                text: "who's at the office?".into(),
                thread_ts: None,
                ts: "1.1".into(),
            })
        );
        let in_thread = question(&payload(json!({
            "type": "message", "channel": "C1", "user": "U1", "text": "status",
            "ts": "1.3", "thread_ts": "1.2"
        })));
        assert_eq!(in_thread.unwrap().thread_ts.as_deref(), Some("1.2"));
        for ignored in [
            json!({ "type": "message", "channel": "C1", "user": "U0BOT", "bot_id": "B1", "text": "hi", "ts": "1" }),
            json!({ "type": "message", "subtype": "bot_message", "channel": "C1", "text": "hi", "ts": "1" }),
            json!({ "type": "message", "subtype": "message_changed", "channel": "C1", "ts": "1" }),
            json!({ "type": "message", "channel": "C1", "user": "U1", "text": "<@U0BOT>", "ts": "1" }),
            json!({ "type": "reaction_added", "user": "U1", "ts": "1" }),
        ] {
            assert_eq!(question(&payload(ignored.clone())), None, "{ignored}");
        }
    }

    #[test]
    fn retry_after_is_read_in_seconds_and_capped() {
        let header = |text: &str| reqwest::header::HeaderValue::from_str(text).unwrap();
        assert_eq!(retry_after(Some(&header("3"))), Duration::from_secs(3));
        assert_eq!(retry_after(Some(&header("soon"))), DEFAULT_RETRY_AFTER);
        assert_eq!(retry_after(None), DEFAULT_RETRY_AFTER);
        assert_eq!(retry_after(Some(&header("86400"))), MAX_RETRY_AFTER);
    }
}
