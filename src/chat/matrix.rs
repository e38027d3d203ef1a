//! The Matrix adapter, over the client-server API as a bot user.
//!
//! It long-polls `GET /_matrix/client/v3/sync` with the `since` token of the previous answer,
//! and answers each `m.room.message` of `msgtype` `m.text` in a joined room, except its own.
//! The first sync only yields the token to start from: messages written before the adapter
//! started are backlog, not questions. Replies and alerts are sent with
//! `PUT /_matrix/client/v3/rooms/{roomId}/send/m.room.message/{txnId}`; a message keeps its
//! transaction id across retries, so the homeserver stores it once however often it is sent.
//! A rate-limited request (`M_LIMIT_EXCEEDED`) waits for the `retry_after_ms` it names.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use reqwest::{Method, StatusCode, Url};
use serde_json::{Value, json};
use thiserror::Error;
use tokio::{sync::mpsc, task::JoinSet};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::{SharedAsker, Speaker, config::MatrixConfig, pause, reconnect_backoff};

/// How many times one message is sent before giving up; safe to repeat thanks to its
/// transaction id.
const SEND_ATTEMPTS: u32 = 5;

/// How many replies may be in progress at once; past it a question is dropped with a warning.
const MAX_REPLIES_IN_FLIGHT: usize = 16;

/// The longest rate-limit wait obeyed, so shutdown stays prompt.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

/// The wait after a rate limit that names none.
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(1);

/// Time allowed to a request beyond the long-poll's own timeout.
const HTTP_SLACK_TIME: Duration = Duration::from_secs(30);

/// The sync filter: only messages in joined rooms' timelines, at most 50 per room and sync,
/// no presence, receipts or account data, which the bot never reads.
const SYNC_FILTER: &str = r#"{"presence":{"types":[]},"account_data":{"types":[]},"room":{"timeline":{"limit":50,"types":["m.room.message"]},"state":{"lazy_load_members":true},"ephemeral":{"types":[]},"account_data":{"types":[]}}}"#;

/// Why a client-server API call failed.
#[derive(Debug, Error)]
pub enum MatrixError {
    #[error("cannot reach the homeserver ({what}): {source}")]
    Http {
        what: &'static str,
        source: reqwest::Error,
    },
    #[error("the homeserver refused {what}: HTTP {status} {errcode}: {message}")]
    Refused {
        what: &'static str,
        status: StatusCode,
        errcode: String,
        message: String,
    },
    #[error("the homeserver still rate-limits {what} after {SEND_ATTEMPTS} attempts")]
    RateLimited { what: &'static str },
    #[error("the homeserver's answer to {what} lacks {field}")]
    Malformed {
        what: &'static str,
        field: &'static str,
    },
    #[error("the homeserver URL cannot take a path: {0}")]
    BadUrl(String),
    #[error("shutting down")]
    Shutdown,
}

/// The client-server API as the bot user.
#[derive(Clone)]
pub struct MatrixClient {
    http: reqwest::Client,
    base: Url,
    access_token: Arc<str>,
    /// Makes transaction ids unique across restarts of this process.
    run_id: u64,
    next_txn: Arc<AtomicU64>,
}

/// A message to send, with the transaction id it keeps across retries.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub room_id: String,
    pub txn_id: String,
    pub text: String,
}

impl MatrixClient {
    /// A client for `config`'s homeserver and token.
    pub fn new(config: &MatrixConfig) -> Result<MatrixClient, MatrixError> {
        let base = Url::parse(&config.homeserver_url)
            .map_err(|error| MatrixError::BadUrl(error.to_string()))?;
        if base.cannot_be_a_base() {
            return Err(MatrixError::BadUrl(config.homeserver_url.clone()));
        }
        let http = reqwest::Client::builder()
            .timeout(config.sync_timeout + HTTP_SLACK_TIME)
            .build()
            .map_err(|source| MatrixError::Http {
                what: "client setup",
                source,
            })?;
        Ok(MatrixClient {
            http,
            base,
            access_token: config.access_token.as_str().into(),
            run_id: getrandom::u64().unwrap_or(0),
            next_txn: Arc::new(AtomicU64::new(0)),
        })
    }

    /// `base/_matrix/client/v3/<segments>`, each segment percent-encoded.
    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty()
                .extend(["_matrix", "client", "v3"])
                .extend(segments);
        }
        url
    }

    /// One request; a Matrix error body becomes [`MatrixError::Refused`], and a rate limit is
    /// returned as `Ok(Err(wait))` for the caller to retry.
    async fn request(
        &self,
        what: &'static str,
        method: Method,
        url: Url,
        body: Option<&Value>,
    ) -> Result<Result<Value, Duration>, MatrixError> {
        let mut request = self
            .http
            .request(method, url)
            .bearer_auth(&*self.access_token);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request
            .send()
            .await
            .map_err(|source| MatrixError::Http { what, source })?;
        let status = response.status();
        let answer: Value = response.json().await.unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(Ok(answer));
        }
        let errcode = answer["errcode"].as_str().unwrap_or("").to_owned();
        if status == StatusCode::TOO_MANY_REQUESTS || errcode == "M_LIMIT_EXCEEDED" {
            let wait = answer["retry_after_ms"]
                .as_u64()
                .map_or(DEFAULT_RETRY_AFTER, Duration::from_millis)
                .min(MAX_RETRY_AFTER);
            return Ok(Err(wait));
        }
        Err(MatrixError::Refused {
            what,
            status,
            errcode,
            message: answer["error"].as_str().unwrap_or("").to_owned(),
        })
    }

    /// The bot's own user id (`GET /account/whoami`), to skip its own messages.
    pub async fn whoami(&self) -> Result<String, MatrixError> {
        let what = "whoami";
        match self
            .request(what, Method::GET, self.url(&["account", "whoami"]), None)
            .await?
        {
            Ok(answer) => {
                answer["user_id"]
                    .as_str()
                    .map(str::to_owned)
                    .ok_or(MatrixError::Malformed {
                        what,
                        field: "user_id",
                    })
            }
            Err(_) => Err(MatrixError::RateLimited { what }),
        }
    }

    /// One `/sync`: from `since` (long-polling up to `timeout`), or the initial one.
    async fn sync(
        &self,
        since: Option<&str>,
        timeout: Duration,
    ) -> Result<Result<Value, Duration>, MatrixError> {
        let mut url = self.url(&["sync"]);
        {
            let mut query = url.query_pairs_mut();
            query.append_pair("filter", SYNC_FILTER);
            if let Some(since) = since {
                query.append_pair("since", since);
                query.append_pair("timeout", &timeout.as_millis().to_string());
            } else {
                query.append_pair("timeout", "0");
            }
        }
        self.request("sync", Method::GET, url, None).await
    }

    /// A new message for `room_id`, with a transaction id used by no other message.
    pub fn outgoing(&self, room_id: &str, text: &str) -> Outgoing {
        let n = self.next_txn.fetch_add(1, Ordering::Relaxed);
        Outgoing {
            room_id: room_id.to_owned(),
            txn_id: format!("officemesh.{:016x}.{n}", self.run_id),
            text: text.to_owned(),
        }
    }

    /// Sends `message` as `m.text`, retrying rate limits and failures with the same
    /// transaction id; returns the event id the homeserver gave it.
    pub async fn send(
        &self,
        message: &Outgoing,
        shutdown: &CancellationToken,
    ) -> Result<String, MatrixError> {
        let what = "send";
        let url = self.url(&[
            "rooms",
            &message.room_id,
            "send",
            "m.room.message",
            &message.txn_id,
        ]);
        let body = json!({ "msgtype": "m.text", "body": message.text });
        let mut backoff = reconnect_backoff();
        let mut last_error = MatrixError::RateLimited { what };
        for _ in 0..SEND_ATTEMPTS {
            let wait = match self
                .request(what, Method::PUT, url.clone(), Some(&body))
                .await
            {
                Ok(Ok(answer)) => {
                    return answer["event_id"].as_str().map(str::to_owned).ok_or(
                        MatrixError::Malformed {
                            what,
                            field: "event_id",
                        },
                    );
                }
                Ok(Err(wait)) => wait,
                // A refusal other than a rate limit (no such room, not joined) will not change.
                Err(error @ MatrixError::Refused { status, .. }) if !status.is_server_error() => {
                    return Err(error);
                }
                Err(error) => {
                    debug!(%error, "matrix: send failed; retrying with the same transaction id");
                    last_error = error;
                    backoff.next_delay()
                }
            };
            if !pause(wait, shutdown).await {
                return Err(MatrixError::Shutdown);
            }
        }
        Err(last_error)
    }
}

/// A message someone wrote in a joined room.
#[derive(Debug, PartialEq, Eq)]
struct Question {
    room_id: String,
    /// The question's event id: the reply's transaction id derives from it.
    event_id: String,
    sender: String,
    text: String,
}

/// The questions in a sync answer: text messages in joined rooms from anyone but `me`.
fn questions(sync: &Value, me: &str) -> Vec<Question> {
    let mut found = Vec::new();
    let Some(rooms) = sync["rooms"]["join"].as_object() else {
        return found;
    };
    for (room_id, room) in rooms {
        let Some(events) = room["timeline"]["events"].as_array() else {
            continue;
        };
        for event in events {
            let content = &event["content"];
            let (Some(sender), Some(text), Some(event_id)) = (
                event["sender"].as_str(),
                content["body"].as_str(),
                event["event_id"].as_str(),
            ) else {
                continue;
            };
            if event["type"] != "m.room.message" || content["msgtype"] != "m.text" || sender == me {
                continue;
            }
            // An edit repeats its text as a new event; the question was already answered.
            if content["m.relates_to"]["rel_type"] == "m.replace" {
                continue;
            }
            let text = text.trim();
            if !text.is_empty() {
                found.push(Question {
                    room_id: room_id.clone(),
                    event_id: event_id.to_owned(),
                    sender: sender.to_owned(),
                    text: text.to_owned(),
                });
            }
        }
    }
    found
}

/// `mendes` for `@mendes:example.org`.
fn localpart(user_id: &str) -> &str {
    let name = user_id.strip_prefix('@').unwrap_or(user_id);
    name.split(':').next().unwrap_or(name)
}

/// Runs the Matrix adapter until `shutdown` fires: answers messages in the bot's joined rooms
/// and sends the texts received on `alerts` to the alert room. Never returns an error: every
/// failure is logged and retried.
///
/// Alerts are sent only once the bot knows who it is and where "now" is in its rooms, so an
/// alert that has arrived tells that every later message will be answered.
pub async fn run(
    config: MatrixConfig,
    asker: SharedAsker,
    alerts: mpsc::Receiver<String>,
    shutdown: CancellationToken,
) {
    let client = match MatrixClient::new(&config) {
        Ok(client) => client,
        Err(error) => {
            warn!(%error, "matrix: the Matrix adapter is off");
            return;
        }
    };
    let Some((me, since)) = connect(&client, &shutdown).await else {
        return;
    };
    tokio::join!(
        answer_questions(
            client.clone(),
            me,
            since,
            config.sync_timeout,
            asker,
            shutdown.clone()
        ),
        post_alerts(client, config.alert_room, alerts, shutdown),
    );
}

/// Learns the bot's user id and skips the backlog with an initial sync, retrying with backoff;
/// `None` on shutdown.
async fn connect(client: &MatrixClient, shutdown: &CancellationToken) -> Option<(String, String)> {
    let mut backoff = reconnect_backoff();
    loop {
        let attempt = async {
            let me = client.whoami().await?;
            let sync = client.sync(None, Duration::ZERO).await?;
            Ok::<_, MatrixError>((me, sync))
        };
        let outcome = tokio::select! {
            () = shutdown.cancelled() => return None,
            outcome = attempt => outcome,
        };
        let delay = match outcome {
            Ok((me, Ok(sync))) => match sync["next_batch"].as_str() {
                Some(since) => {
                    info!(user = %me, "matrix: connected");
                    return Some((me, since.to_owned()));
                }
                None => {
                    warn!("matrix: the initial sync lacks next_batch; retrying after a backoff");
                    backoff.next_delay()
                }
            },
            Ok((_, Err(wait))) => wait,
            Err(error) => {
                let delay = backoff.next_delay();
                warn!(%error, ?delay, "matrix: cannot connect; retrying after a backoff");
                delay
            }
        };
        if !pause(delay, shutdown).await {
            return None;
        }
    }
}

/// Sends each alert to the alert room, one at a time; without an alert room, drains the queue
/// so senders never block.
async fn post_alerts(
    client: MatrixClient,
    room: Option<String>,
    mut alerts: mpsc::Receiver<String>,
    shutdown: CancellationToken,
) {
    loop {
        let text = tokio::select! {
            () = shutdown.cancelled() => return,
            text = alerts.recv() => match text {
                Some(text) => text,
                None => return,
            },
        };
        let Some(room) = room.as_deref() else {
            continue;
        };
        match client.send(&client.outgoing(room, &text), &shutdown).await {
            Ok(_) | Err(MatrixError::Shutdown) => {}
            Err(error) => warn!(%error, room, "matrix: cannot send an alert; dropped it"),
        }
    }
}

/// The sync loop: long-polls from `since` and answers each new message.
async fn answer_questions(
    client: MatrixClient,
    me: String,
    mut since: String,
    timeout: Duration,
    asker: SharedAsker,
    shutdown: CancellationToken,
) {
    let mut backoff = reconnect_backoff();
    let mut replies = JoinSet::new();
    loop {
        while replies.try_join_next().is_some() {}
        let outcome = tokio::select! {
            () = shutdown.cancelled() => break,
            outcome = client.sync(Some(&since), timeout) => outcome,
        };
        let sync = match outcome {
            Ok(Ok(sync)) => sync,
            Ok(Err(wait)) => {
                debug!(?wait, "matrix: sync rate-limited");
                if !pause(wait, &shutdown).await {
                    break;
                }
                continue;
            }
            Err(error) => {
                let delay = backoff.next_delay();
                warn!(%error, ?delay, "matrix: sync failed; retrying after a backoff");
                if !pause(delay, &shutdown).await {
                    break;
                }
                continue;
            }
        };
        backoff.reset();
        match sync["next_batch"].as_str() {
            Some(next_batch) => since = next_batch.to_owned(),
            None => {
                warn!("matrix: a sync answer lacks next_batch; ignored it");
                continue;
            }
        }
        for question in questions(&sync, &me) {
            if replies.len() >= MAX_REPLIES_IN_FLIGHT {
                warn!(room = %question.room_id, "matrix: too many replies in progress; dropped a question");
                continue;
            }
            replies.spawn(reply(
                client.clone(),
                asker.clone(),
                question,
                shutdown.clone(),
            ));
        }
    }
    while replies.join_next().await.is_some() {}
}

/// Asks the bot and sends its answer to the room the question came from.
async fn reply(
    client: MatrixClient,
    asker: SharedAsker,
    question: Question,
    shutdown: CancellationToken,
) {
    let speaker = Speaker {
        service: "matrix",
        name: localpart(&question.sender).to_owned(),
        user: question.sender,
    };
    let answer = tokio::select! {
        () = shutdown.cancelled() => return,
        answer = asker.ask(speaker, question.text) => answer,
    };
    // The transaction id names the question, not this node: nodes sharing the bot's access
    // token all receive the question, and the homeserver keeps one reply per transaction id.
    let message = Outgoing {
        room_id: question.room_id.clone(),
        txn_id: format!("officemesh.reply.{}", question.event_id),
        text: answer,
    };
    match client.send(&message, &shutdown).await {
        Ok(_) | Err(MatrixError::Shutdown) => {}
        Err(error) => warn!(%error, room = %question.room_id, "matrix: cannot send a reply"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_messages_from_others_are_questions() {
        let sync = json!({ "next_batch": "s2", "rooms": { "join": { "!r:hs": { "timeline": { "events": [
            { "type": "m.room.message", "event_id": "$q1", "sender": "@mendes:hs", "content": { "msgtype": "m.text", "body": " status " } },
            { "type": "m.room.message", "event_id": "$q2", "sender": "@bot:hs", "content": { "msgtype": "m.text", "body": "mine" } },
            { "type": "m.room.message", "event_id": "$q3", "sender": "@mendes:hs", "content": { "msgtype": "m.image", "body": "cat.png" } },
            { "type": "m.room.message", "sender": "@mendes:hs", "content": { "msgtype": "m.text", "body": "* status",
              "m.relates_to": { "rel_type": "m.replace", "event_id": "$1" } } },
            { "type": "m.room.member", "sender": "@mendes:hs", "content": { "membership": "join" } }
        ] } } } } });
        assert_eq!(
            questions(&sync, "@bot:hs"),
            vec![Question {
                room_id: "!r:hs".into(),
                event_id: "$q1".into(),
                sender: "@mendes:hs".into(),
                text: "status".into(),
            }]
        );
        assert_eq!(localpart("@mendes:example.org"), "mendes");
    }

    #[test]
    fn urls_encode_room_ids_and_keep_a_base_path() {
        let config = MatrixConfig {
            homeserver_url: "https://hs.example/prefix".into(),
            access_token: "t".into(),
            alert_room: None,
            sync_timeout: Duration::from_secs(1),
        };
        let client = MatrixClient::new(&config).unwrap();
        let url = client.url(&["rooms", "!a/b:hs.example", "send"]);
        assert_eq!(
            url.as_str(),
            "https://hs.example/prefix/_matrix/client/v3/rooms/!a%2Fb:hs.example/send"
        );
        let first = client.outgoing("!a:hs", "one");
        let second = client.outgoing("!a:hs", "two");
        assert_ne!(first.txn_id, second.txn_id);
    }
}
