//! The Slack adapter against a local server speaking Slack's protocol, because Slack itself
//! cannot run here: the Web API methods the adapter calls (`apps.connections.open`,
//! `chat.postMessage`, with bearer tokens, `{"ok": ...}` bodies and `429 Retry-After`) over
//! HTTP, and Socket Mode over a WebSocket on 127.0.0.1 (`hello`, `events_api` envelopes with
//! `envelope_id`, `retry_attempt` and `retry_reason`, `disconnect`, and the
//! `{"envelope_id": ...}` acknowledgements it expects back). Envelope and event shapes follow
//! Slack's Socket Mode and Events API documentation.
//!
//! Nothing sleeps to synchronise: tests poll the server's records until a deadline.

use std::{
    net::{Ipv4Addr, SocketAddr},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use crate::support::eventually;
use axum::{
    Json, Router,
    extract::State,
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::post,
};
use futures::{FutureExt, SinkExt, StreamExt, future::BoxFuture};
use officemesh::{
    chat::{ALERT_QUEUE_CAPACITY, SharedAsker, Speaker, config::SlackConfig, slack},
    config::Config,
    net::SwarmKey,
    node,
};
use serde_json::{Value, json};
use tokio::{net::TcpListener, sync::mpsc, task::JoinSet};
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

const APP_TOKEN: &str = "xapp-1-A0TEST-1-secret";
const BOT_TOKEN: &str = "xoxb-1-secret";
/// The node's own API token, in the test that starts a node.
const NODE_TOKEN: &str = "slack-test-token-0123456789";

/// What the fake Slack has seen and holds.
#[derive(Default)]
struct Records {
    /// `apps.connections.open` calls answered.
    opened: usize,
    /// Per connection: the sender of envelopes to it while it is open.
    sockets: Vec<Option<mpsc::Sender<Message>>>,
    /// (connection index, envelope id) of every acknowledgement received.
    acks: Vec<(usize, String)>,
    /// The bodies of the messages posted (accepted `chat.postMessage` calls).
    posted: Vec<Value>,
    /// How many upcoming `chat.postMessage` calls get a 429.
    rate_limit_next: usize,
    /// When each 429 was answered, and when each post was accepted.
    limited_at: Vec<Instant>,
    posted_at: Vec<Instant>,
}

#[derive(Clone)]
struct FakeSlack {
    records: Arc<Mutex<Records>>,
    ws_address: SocketAddr,
}

fn bearer(headers: &HeaderMap) -> &str {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .unwrap_or("")
}

async fn connections_open(State(slack): State<FakeSlack>, headers: HeaderMap) -> Json<Value> {
    if bearer(&headers) != APP_TOKEN {
        return Json(json!({ "ok": false, "error": "invalid_auth" }));
    }
    let ticket = {
        let mut records = slack.records.lock().unwrap();
        records.opened += 1;
        records.opened
    };
    Json(json!({
        "ok": true,
        "url": format!("ws://{}/link/?ticket={ticket}&app_id=A0TEST", slack.ws_address),
    }))
}

async fn post_message(
    State(slack): State<FakeSlack>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    if bearer(&headers) != BOT_TOKEN {
        return Json(json!({ "ok": false, "error": "invalid_auth" })).into_response();
    }
    let mut records = slack.records.lock().unwrap();
    if records.rate_limit_next > 0 {
        records.rate_limit_next -= 1;
        records.limited_at.push(Instant::now());
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, "1")],
            Json(json!({ "ok": false, "error": "ratelimited" })),
        )
            .into_response();
    }
    if body["channel"].as_str().is_none_or(str::is_empty) || body["text"].as_str().is_none() {
        return Json(json!({ "ok": false, "error": "channel_not_found" })).into_response();
    }
    let ts = format!("1700000000.{:06}", records.posted.len());
    records.posted.push(body.clone());
    records.posted_at.push(Instant::now());
    Json(json!({
        "ok": true,
        "channel": body["channel"],
        "ts": ts,
        "message": { "type": "message", "text": body["text"], "bot_id": "B0BOT", "ts": ts },
    }))
    .into_response()
}

impl FakeSlack {
    /// Starts the Web API and the Socket Mode endpoint; both stop with `tasks`.
    async fn start(tasks: &mut JoinSet<()>) -> (FakeSlack, String) {
        let ws_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let slack = FakeSlack {
            records: Arc::default(),
            ws_address: ws_listener.local_addr().unwrap(),
        };
        let http_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let api_url = format!("http://{}/api", http_listener.local_addr().unwrap());
        let app = Router::new()
            .route("/api/apps.connections.open", post(connections_open))
            .route("/api/chat.postMessage", post(post_message))
            .with_state(slack.clone());
        tasks.spawn(async move {
            axum::serve(http_listener, app).await.unwrap();
        });
        let sockets = slack.clone();
        tasks.spawn(async move {
            let mut connections = JoinSet::new();
            loop {
                let (stream, _) = ws_listener.accept().await.unwrap();
                connections.spawn(sockets.clone().serve_socket(stream));
            }
        });
        (slack, api_url)
    }

    /// One Socket Mode connection: `hello`, then envelopes out and acknowledgements in.
    async fn serve_socket(self, stream: tokio::net::TcpStream) {
        let Ok(mut socket) = tokio_tungstenite::accept_async(stream).await else {
            return;
        };
        let (envelopes, mut outgoing) = mpsc::channel(16);
        let index = {
            let mut records = self.records.lock().unwrap();
            records.sockets.push(Some(envelopes));
            records.sockets.len() - 1
        };
        let hello = json!({
            "type": "hello",
            "num_connections": 1,
            "debug_info": { "host": "applink-test", "build_number": 1, "approximate_connection_time": 18060 },
            "connection_info": { "app_id": "A0TEST" },
        });
        if socket.send(Message::text(hello.to_string())).await.is_err() {
            return;
        }
        loop {
            tokio::select! {
                out = outgoing.recv() => match out {
                    Some(Message::Close(_)) | None => break,
                    Some(message) => {
                        if socket.send(message).await.is_err() {
                            break;
                        }
                    }
                },
                incoming = socket.next() => match incoming {
                    Some(Ok(Message::Text(text))) => {
                        let ack: Value = serde_json::from_str(text.as_str()).unwrap();
                        let id = ack["envelope_id"].as_str().expect("an ack names its envelope");
                        self.records.lock().unwrap().acks.push((index, id.to_owned()));
                    }
                    Some(Ok(_)) => {}
                    Some(Err(_)) | None => break,
                },
            }
        }
        self.records.lock().unwrap().sockets[index] = None;
    }

    /// Sends `envelope` to connection `index`, as Slack hands an event to one connection.
    async fn send(&self, index: usize, envelope: Value) {
        let sender = self.records.lock().unwrap().sockets[index]
            .clone()
            .expect("the connection is open");
        sender
            .send(Message::text(envelope.to_string()))
            .await
            .unwrap();
    }

    /// Drops connection `index` without a word, as a lost network does.
    async fn drop_socket(&self, index: usize) {
        let sender = self.records.lock().unwrap().sockets[index].clone().unwrap();
        sender.send(Message::Close(None)).await.unwrap();
    }

    fn open_sockets(&self) -> Vec<usize> {
        let records = self.records.lock().unwrap();
        (0..records.sockets.len())
            .filter(|index| records.sockets[*index].is_some())
            .collect()
    }

    /// The connections that acknowledged `envelope_id`, once at least one has: an
    /// acknowledgement may still be in flight when the reply it preceded has been posted.
    async fn acked(&self, envelope_id: &str) -> Vec<usize> {
        eventually(&format!("an acknowledgement of {envelope_id}"), || async {
            let records = self.records.lock().unwrap();
            let acks: Vec<usize> = records
                .acks
                .iter()
                .filter(|(_, id)| id == envelope_id)
                .map(|(index, _)| *index)
                .collect();
            (!acks.is_empty()).then_some(acks)
        })
        .await
    }

    /// The posted messages whose text is `text`.
    fn posts_of(&self, text: &str) -> Vec<Value> {
        let records = self.records.lock().unwrap();
        records
            .posted
            .iter()
            .filter(|post| post["text"] == text)
            .cloned()
            .collect()
    }
}

/// An `events_api` envelope holding a message event, shaped as Slack documents it.
fn message_envelope(envelope_id: &str, event_id: &str, event: Value, retry_attempt: u64) -> Value {
    json!({
        "type": "events_api",
        "envelope_id": envelope_id,
        "accepts_response_payload": false,
        "retry_attempt": retry_attempt,
        "retry_reason": if retry_attempt == 0 { "" } else { "timeout" },
        "payload": {
            "token": "verification-token",
            "team_id": "T0TEST",
            "api_app_id": "A0TEST",
            "event": event,
            "type": "event_callback",
            "event_id": event_id,
            "event_time": 1_700_000_000,
            "authorizations": [{ "team_id": "T0TEST", "user_id": "U0BOT", "is_bot": true }],
        },
    })
}

fn person_says(user: &str, channel: &str, text: &str, ts: &str) -> Value {
    json!({
        "type": "message", "channel": channel, "user": user, "text": text, "ts": ts,
        "event_ts": ts, "channel_type": "channel", "team": "T0TEST",
    })
}

/// An asker that answers "<node> to <speaker>: <text>" and records what it was asked.
fn asker(node: &'static str, asked: Arc<Mutex<Vec<String>>>) -> SharedAsker {
    Arc::new(
        move |speaker: Speaker, text: String| -> BoxFuture<'static, String> {
            asked.lock().unwrap().push(text.clone());
            async move { format!("{node} to {}: {text}", speaker.name) }.boxed()
        },
    )
}

fn config(api_url: &str) -> SlackConfig {
    SlackConfig {
        app_token: APP_TOKEN.into(),
        bot_token: BOT_TOKEN.into(),
        alert_channel: Some("C0ALERTS".into()),
        api_url: api_url.into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slack_answers_once_acknowledges_reconnects_and_honours_rate_limits() {
    let mut tasks = JoinSet::new();
    let (slack, api_url) = FakeSlack::start(&mut tasks).await;
    let asked = Arc::default();
    let (alerts, alerts_rx) = mpsc::channel(ALERT_QUEUE_CAPACITY);
    let shutdown = CancellationToken::new();
    tasks.spawn(slack::run(
        config(&api_url),
        asker("node-a", Arc::clone(&asked)),
        alerts_rx,
        shutdown.clone(),
    ));
    let socket = eventually("a Socket Mode connection", || async {
        slack.open_sockets().first().copied()
    })
    .await;

    // A question is acknowledged and answered in its channel.
    let question = person_says(
        "U0MENDES",
        "C0OFFICE",
        "<@U0BOT> who's at the office?",
        "100.1",
    );
    slack
        .send(
            socket,
            message_envelope("env-1", "Ev1", question.clone(), 0),
        )
        .await;
    let reply = "node-a to U0MENDES: who's at the office?";
    let posted = eventually("the reply", || async { slack.posts_of(reply).pop() }).await;
    assert_eq!(posted["channel"], "C0OFFICE");
    assert!(posted["thread_ts"].is_null(), "{posted}");
    assert_eq!(slack.acked("env-1").await, vec![socket]);

    // The bot's own message, another bot's, and an edit are acknowledged but never answered;
    // a question in a thread is answered in that thread.
    let own = json!({ "type": "message", "channel": "C0OFFICE", "user": "U0BOT", "bot_id": "B0BOT",
        "text": reply, "ts": "100.2" });
    let other_bot = json!({ "type": "message", "subtype": "bot_message", "channel": "C0OFFICE",
        "bot_id": "B0OTHER", "text": "status", "ts": "100.3" });
    let edit = json!({ "type": "message", "subtype": "message_changed", "channel": "C0OFFICE",
        "hidden": true, "ts": "100.4", "message": { "type": "message", "user": "U0MENDES", "text": "status" } });
    let mut threaded = person_says("U0MENDES", "C0OFFICE", "status", "100.5");
    threaded["thread_ts"] = json!("100.1");
    slack
        .send(socket, message_envelope("env-2", "Ev2", own, 0))
        .await;
    slack
        .send(socket, message_envelope("env-3", "Ev3", other_bot, 0))
        .await;
    slack
        .send(socket, message_envelope("env-4", "Ev4", edit, 0))
        .await;
    slack
        .send(socket, message_envelope("env-5", "Ev5", threaded, 0))
        .await;
    let posted = eventually("the threaded reply", || async {
        slack.posts_of("node-a to U0MENDES: status").pop()
    })
    .await;
    assert_eq!(posted["thread_ts"], "100.1");
    for envelope in ["env-2", "env-3", "env-4", "env-5"] {
        assert_eq!(slack.acked(envelope).await, vec![socket], "{envelope}");
    }

    // Slack redelivers the first event (as after a missed acknowledgement): acknowledged again,
    // not answered again. The same message as an app_mention event is not answered either.
    slack
        .send(
            socket,
            message_envelope("env-6", "Ev1", question.clone(), 1),
        )
        .await;
    let mut mention = question.clone();
    mention["type"] = json!("app_mention");
    slack
        .send(socket, message_envelope("env-7", "Ev7", mention, 0))
        .await;
    let marker = person_says("U0MENDES", "C0OFFICE", "marker one", "100.8");
    slack
        .send(socket, message_envelope("env-8", "Ev8", marker, 0))
        .await;
    eventually("the marker's reply", || async {
        slack.posts_of("node-a to U0MENDES: marker one").pop()
    })
    .await;
    assert_eq!(slack.acked("env-6").await, vec![socket]);
    assert_eq!(slack.acked("env-7").await, vec![socket]);
    assert_eq!(
        slack.posts_of(reply).len(),
        1,
        "the redelivered event was answered twice"
    );
    assert_eq!(
        *asked.lock().unwrap(),
        ["who's at the office?", "status", "marker one"],
        "the bot was asked about something it should have ignored"
    );

    // A `disconnect` envelope: the adapter opens a new link at once and keeps answering on it.
    slack
        .send(
            socket,
            json!({ "type": "disconnect", "reason": "refresh_requested",
                "debug_info": { "host": "applink-test" } }),
        )
        .await;
    let second = eventually("a new connection after disconnect", || async {
        slack
            .open_sockets()
            .into_iter()
            .find(|index| *index != socket)
    })
    .await;
    assert_eq!(slack.records.lock().unwrap().opened, 2);
    let after = person_says("U0PIA", "C0OFFICE", "meeting room temp", "100.9");
    slack
        .send(second, message_envelope("env-9", "Ev9", after, 0))
        .await;
    eventually("the reply on the new connection", || async {
        slack.posts_of("node-a to U0PIA: meeting room temp").pop()
    })
    .await;
    assert_eq!(slack.acked("env-9").await, vec![second]);

    // A lost socket: the adapter reconnects after a backoff.
    slack.drop_socket(second).await;
    let third = eventually("a new connection after a lost socket", || async {
        slack
            .open_sockets()
            .into_iter()
            .find(|index| *index > second)
    })
    .await;
    let again = person_says("U0PIA", "C0OFFICE", "help", "101.0");
    slack
        .send(third, message_envelope("env-10", "Ev10", again, 0))
        .await;
    eventually("the reply after the lost socket", || async {
        slack.posts_of("node-a to U0PIA: help").pop()
    })
    .await;

    // An alert meets a 429: it is posted once, after the Retry-After the server asked for.
    slack.records.lock().unwrap().rate_limit_next = 1;
    let alert = "the open space temperature is at 24.0°C. You might want to turn the AC on.";
    alerts.send(alert.to_owned()).await.unwrap();
    let posted = eventually("the alert", || async { slack.posts_of(alert).pop() }).await;
    assert_eq!(posted["channel"], "C0ALERTS");
    {
        let records = slack.records.lock().unwrap();
        assert_eq!(records.limited_at.len(), 1);
        let waited = *records.posted_at.last().unwrap() - records.limited_at[0];
        assert!(
            waited >= Duration::from_secs(1),
            "retried after {waited:?}, before Retry-After"
        );
    }
    assert_eq!(slack.posts_of(alert).len(), 1);

    shutdown.cancel();
    tasks.abort_all();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_on_one_slack_app_answer_each_message_once() {
    let mut tasks = JoinSet::new();
    let (slack, api_url) = FakeSlack::start(&mut tasks).await;
    let shutdown = CancellationToken::new();
    let mut alert_senders = Vec::new();
    for node in ["node-a", "node-b"] {
        let (alerts, alerts_rx) = mpsc::channel(ALERT_QUEUE_CAPACITY);
        alert_senders.push(alerts);
        tasks.spawn(slack::run(
            config(&api_url),
            asker(node, Arc::default()),
            alerts_rx,
            shutdown.clone(),
        ));
    }
    let sockets = eventually("two Socket Mode connections", || async {
        let open = slack.open_sockets();
        (open.len() == 2).then_some(open)
    })
    .await;

    // Slack hands each event to one of the app's connections.
    let count = 10;
    for n in 0..count {
        let text = format!("question {n}");
        let event = person_says("U0MENDES", "C0OFFICE", &text, &format!("200.{n}"));
        let socket = sockets[n % 2];
        slack
            .send(
                socket,
                message_envelope(&format!("env-{n}"), &format!("Ev{n}"), event, 0),
            )
            .await;
    }
    eventually("every question answered", || async {
        (slack.records.lock().unwrap().posted.len() >= count).then_some(())
    })
    .await;
    // Each question is answered once, by the node whose connection received it.
    let mut answerer = [None, None];
    for n in 0..count {
        let suffix = format!(" to U0MENDES: question {n}");
        let replies: Vec<String> = slack
            .records
            .lock()
            .unwrap()
            .posted
            .iter()
            .filter_map(|post| post["text"].as_str())
            .filter(|text| text.ends_with(&suffix))
            .map(str::to_owned)
            .collect();
        assert_eq!(replies.len(), 1, "question {n}: {replies:?}");
        let node = replies[0].strip_suffix(&suffix).unwrap().to_owned();
        let expected = answerer[n % 2].get_or_insert_with(|| node.clone());
        assert_eq!(*expected, node, "question {n} answered by another node");
        assert_eq!(slack.acked(&format!("env-{n}")).await, vec![sockets[n % 2]]);
    }
    assert_ne!(
        answerer[0], answerer[1],
        "one node answered for both connections"
    );
    assert_eq!(slack.records.lock().unwrap().posted.len(), count);

    shutdown.cancel();
    tasks.abort_all();
}

/// The wiring of a real node: its `[slack]` config starts the adapter, questions reach the
/// node's bot (which knows the office's readings), and the alerts the node raises are posted
/// to the alert channel.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_answers_in_slack_with_its_bot_and_posts_its_alerts() {
    let mut tasks = JoinSet::new();
    let (slack, api_url) = FakeSlack::start(&mut tasks).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("swarm.key"),
        SwarmKey::generate().unwrap().to_file(),
    )
    .unwrap();
    let mut config = Config::from_toml(&format!(
        "[slack]\nenabled = true\napp_token = \"{APP_TOKEN}\"\nbot_token = \"{BOT_TOKEN}\"\n\
         alert_channel = \"C0ALERTS\"\napi_url = \"{api_url}\"\n\
         [[alerts.rule]]\nquantity = \"temperature\"\nabove = 24.0\nfor_s = 0\n\
         message = \"the {{room}} temperature is at {{value}}. You might want to turn the AC on.\"\n"
    ))
    .expect("the test config is valid");
    config.node.data_dir = dir.path().join("node");
    config.network.mdns = false;
    config.presence.enabled = false;
    config.sensors.auto_detect = false;
    config.network.listen = vec!["/ip4/127.0.0.1/tcp/0".into()];
    config.network.swarm_key_file = Some(dir.path().join("swarm.key"));
    config.http.listen = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
    config.http.api_token = Some(NODE_TOKEN.into());
    let shutdown = CancellationToken::new();
    let node = node::start(config, shutdown.clone())
        .await
        .expect("the node starts");
    let socket = eventually("the node's Socket Mode connection", || async {
        slack.open_sockets().first().copied()
    })
    .await;

    // A reading in the meeting room, then a question about it in Slack.
    let response = reqwest::Client::new()
        .post(format!("http://{}/api/readings", node.http))
        .bearer_auth(NODE_TOKEN)
        .header("content-type", "application/json")
        .body(
            json!({"sensor": "desk-1", "room": "meeting room", "quantity": "temperature", "value": 22.5})
                .to_string(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let question = person_says(
        "U0MENDES",
        "C0OFFICE",
        "bloo, meeting room temp",
        "1.000100",
    );
    slack
        .send(
            socket,
            message_envelope("env-node-1", "Ev0NODE1", question, 0),
        )
        .await;
    let reply = eventually("the bot's reply in Slack", || async {
        let records = slack.records.lock().unwrap();
        records
            .posted
            .iter()
            .find(|post| post["channel"] == "C0OFFICE")
            .cloned()
    })
    .await;
    let text = reply["text"].as_str().unwrap();
    assert!(
        text.starts_with("meeting room temp is 22.5°C"),
        "the bot answered from the office state: {text}"
    );

    // Too warm: the node raises the alert and posts it to the alert channel, once.
    let response = reqwest::Client::new()
        .post(format!("http://{}/api/readings", node.http))
        .bearer_auth(NODE_TOKEN)
        .header("content-type", "application/json")
        .body(
            json!({"sensor": "desk-1", "room": "meeting room", "quantity": "temperature", "value": 25.0})
                .to_string(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let expected = "the meeting room temperature is at 25.0°C. You might want to turn the AC on.";
    eventually("the alert in the alert channel", || async {
        (!slack.posts_of(expected).is_empty()).then_some(())
    })
    .await;
    let posts = slack.posts_of(expected);
    assert_eq!(posts.len(), 1);
    assert_eq!(posts[0]["channel"], "C0ALERTS");

    shutdown.cancel();
    node.wait().await;
    tasks.abort_all();
}
