//! The Matrix adapter against a real homeserver: Synapse from PyPI (installed into a venv by
//! `scripts/test`; `OFFICEMESH_SYNAPSE_PYTHON` names its python), with SQLite in a temporary
//! directory, listening on 127.0.0.1 only, federation off. Without it the test fails and says
//! what is missing.
//!
//! Synapse's message rate limit is set low (one a second, bursts of three) so the adapter's
//! sends really meet `M_LIMIT_EXCEEDED`. Nothing sleeps to synchronise: the test polls the
//! room until a deadline.

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    sync::{Arc, Mutex},
    time::Duration,
};

use crate::support::{eventually, unused_port, within};
use futures::{FutureExt, future::BoxFuture};
use officemesh::chat::{
    ALERT_QUEUE_CAPACITY, SharedAsker, Speaker,
    config::MatrixConfig,
    matrix::{self, MatrixClient},
};
use reqwest::Url;
use serde_json::{Value, json};
use tokio::{process::Child, sync::mpsc, task::JoinSet};
use tokio_util::sync::CancellationToken;

/// Where `scripts/test` installs Synapse when `OFFICEMESH_SYNAPSE_PYTHON` is not set.
const DEFAULT_SYNAPSE_PYTHON: &str = "/var/cache/officemesh-ci/synapse-1.163.2/bin/python";

/// Synapse imports a lot of Python; on a loaded two-core machine it can take a minute.
const START_DEADLINE: Duration = Duration::from_secs(180);

/// A fixed ed25519 seed: the homeserver signs nothing anyone else checks here.
const SIGNING_KEY: &str = "ed25519 a_test AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA";

/// A Synapse process on 127.0.0.1, killed when dropped.
struct Synapse {
    _process: Child,
    base: String,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

fn synapse_python() -> PathBuf {
    let python = std::env::var_os("OFFICEMESH_SYNAPSE_PYTHON")
        .map_or_else(|| PathBuf::from(DEFAULT_SYNAPSE_PYTHON), PathBuf::from);
    assert!(
        python.exists(),
        "Synapse is missing: no python at {} (set OFFICEMESH_SYNAPSE_PYTHON to the python of a \
         venv with matrix-synapse installed; scripts/test installs one)",
        python.display()
    );
    python
}

fn homeserver_config(dir: &Path, port: u16) -> String {
    let dir = dir.display();
    format!(
        r#"server_name: "localhost"
pid_file: {dir}/homeserver.pid
listeners:
  - port: {port}
    bind_addresses: ['127.0.0.1']
    type: http
    tls: false
    resources:
      - names: [client]
        compress: false
database:
  name: sqlite3
  args:
    database: {dir}/homeserver.db
media_store_path: {dir}/media
signing_key_path: {dir}/signing.key
report_stats: false
macaroon_secret_key: "officemesh-test-macaroon-secret-key-0123456789"
form_secret: "officemesh-test-form-secret-0123456789"
enable_registration: true
enable_registration_without_verification: true
trusted_key_servers: []
suppress_key_server_warning: true
federation_domain_whitelist: []
rc_message: {{per_second: 1, burst_count: 3}}
rc_registration: {{per_second: 100, burst_count: 100}}
rc_joins:
  local: {{per_second: 100, burst_count: 100}}
"#
    )
}

impl Synapse {
    async fn start() -> Synapse {
        let python = synapse_python();
        let dir = tempfile::tempdir().unwrap();
        // Synapse cannot report a port it picked itself; if another process takes this one
        // before Synapse binds it, Synapse exits and the test says so with its log.
        let port = unused_port();
        let config = dir.path().join("homeserver.yaml");
        std::fs::write(&config, homeserver_config(dir.path(), port)).unwrap();
        std::fs::write(dir.path().join("signing.key"), SIGNING_KEY).unwrap();
        let log = dir.path().join("homeserver.log");
        let output = std::fs::File::create(&log).unwrap();
        let mut process = tokio::process::Command::new(&python)
            .args(["-m", "synapse.app.homeserver", "-c"])
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(output.try_clone().unwrap())
            .stderr(output)
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|error| {
                panic!("cannot start Synapse with {}: {error}", python.display())
            });
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let started = within(START_DEADLINE, || {
            if let Ok(Some(status)) = process.try_wait() {
                panic!("Synapse exited with {status}:\n{}", log_tail(&log));
            }
            let versions = http.get(format!("{base}/_matrix/client/versions")).send();
            async move { versions.await?.error_for_status().map(drop) }
        })
        .await;
        if let Err(error) = started {
            panic!(
                "Synapse did not answer within {START_DEADLINE:?} ({error}):\n{}",
                log_tail(&log)
            );
        }
        Synapse {
            _process: process,
            base,
            log,
            _dir: dir,
        }
    }

    /// Registers `user` (open registration, dummy auth): its user id and access token.
    async fn register(&self, user: &str) -> (String, String) {
        let answer = call(
            reqwest::Method::POST,
            self.url(&["register"]),
            None,
            json!({ "username": user, "password": format!("{user}-password-1234"),
                "auth": { "type": "m.login.dummy" } }),
        )
        .await;
        (
            answer["user_id"].as_str().unwrap().to_owned(),
            answer["access_token"].as_str().unwrap().to_owned(),
        )
    }

    fn url(&self, segments: &[&str]) -> Url {
        let mut url = Url::parse(&self.base).unwrap();
        url.path_segments_mut()
            .unwrap()
            .extend(["_matrix", "client", "v3"])
            .extend(segments);
        url
    }

    /// The text messages in `room`, oldest first, as (sender, body).
    async fn messages(&self, room: &str, token: &str) -> Vec<(String, String)> {
        let mut url = self.url(&["rooms", room, "messages"]);
        url.query_pairs_mut()
            .append_pair("dir", "b")
            .append_pair("limit", "200");
        let answer = call(reqwest::Method::GET, url, Some(token), Value::Null).await;
        let mut messages: Vec<(String, String)> = answer["chunk"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|event| event["type"] == "m.room.message")
            .map(|event| {
                (
                    event["sender"].as_str().unwrap().to_owned(),
                    event["content"]["body"].as_str().unwrap_or("").to_owned(),
                )
            })
            .collect();
        messages.reverse();
        messages
    }

    fn config(&self, token: &str, alert_room: Option<&str>) -> MatrixConfig {
        MatrixConfig {
            homeserver_url: self.base.clone(),
            access_token: token.to_owned(),
            alert_room: alert_room.map(str::to_owned),
            sync_timeout: Duration::from_secs(2),
        }
    }
}

fn log_tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// One client-server call that must succeed.
async fn call(method: reqwest::Method, url: Url, token: Option<&str>, body: Value) -> Value {
    let mut request = reqwest::Client::new().request(method, url.clone());
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if !body.is_null() {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let answer: Value = response.json().await.unwrap();
    assert!(status.is_success(), "{url}: {status} {answer}");
    answer
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

fn count(messages: &[(String, String)], sender: &str, body: &str) -> usize {
    messages
        .iter()
        .filter(|(from, text)| from == sender && text == body)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn matrix_answers_each_message_once_from_two_nodes_posts_alerts_and_never_doubles_a_retried_send()
 {
    let synapse = Synapse::start().await;
    let (bot, bot_token) = synapse.register("officebot").await;
    let (mendes, mendes_token) = synapse.register("mendes").await;
    let created = call(
        reqwest::Method::POST,
        synapse.url(&["createRoom"]),
        Some(&mendes_token),
        json!({ "preset": "private_chat", "name": "office", "invite": [bot] }),
    )
    .await;
    let room = created["room_id"].as_str().unwrap().to_owned();
    call(
        reqwest::Method::POST,
        synapse.url(&["join", &room]),
        Some(&bot_token),
        json!({}),
    )
    .await;
    let shutdown = CancellationToken::new();
    let person = MatrixClient::new(&synapse.config(&mendes_token, None)).unwrap();
    let say = |text: &str| {
        let message = person.outgoing(&room, text);
        let person = person.clone();
        let shutdown = shutdown.clone();
        async move { person.send(&message, &shutdown).await.unwrap() }
    };
    // Written before the adapter starts: backlog, never answered.
    say("old question").await;

    // Two nodes run the adapter as the same bot user: both see every message.
    let mut tasks = JoinSet::new();
    let mut asked: Vec<Arc<Mutex<Vec<String>>>> = Vec::new();
    let mut alert_queues = Vec::new();
    for node in ["node-a", "node-b"] {
        let node_asked = Arc::default();
        asked.push(Arc::clone(&node_asked));
        let (alerts, alerts_rx) = mpsc::channel(ALERT_QUEUE_CAPACITY);
        alert_queues.push(alerts);
        tasks.spawn(matrix::run(
            synapse.config(&bot_token, Some(&room)),
            asker(node, node_asked),
            alerts_rx,
            shutdown.clone(),
        ));
    }

    // An alert arrives once its adapter has skipped the backlog.
    let alert = "the open space temperature is at 24.0°C. You might want to turn the AC on.";
    let other_alert = "the meeting room co2 is at 1500 ppm.";
    alert_queues[0].send(alert.to_owned()).await.unwrap();
    alert_queues[1].send(other_alert.to_owned()).await.unwrap();
    eventually("both alerts in the room", || async {
        let messages = synapse.messages(&room, &mendes_token).await;
        (count(&messages, &bot, alert) == 1 && count(&messages, &bot, other_alert) == 1)
            .then_some(())
    })
    .await;

    // Each question is answered once, though both nodes answer it: the reply's transaction
    // id names the question.
    let replies_to = |messages: &[(String, String)], question: &str| {
        let suffix = format!(" to mendes: {question}");
        messages
            .iter()
            .filter(|(from, text)| *from == bot && text.ends_with(&suffix))
            .count()
    };
    for question in ["who's at the office?", "status"] {
        say(question).await;
        eventually("the reply", || async {
            let messages = synapse.messages(&room, &mendes_token).await;
            (replies_to(&messages, question) > 0).then_some(())
        })
        .await;
        eventually("both nodes asked", || async {
            asked
                .iter()
                .all(|node| node.lock().unwrap().iter().any(|text| text == question))
                .then_some(())
        })
        .await;
    }
    let messages = synapse.messages(&room, &mendes_token).await;
    for question in ["who's at the office?", "status"] {
        assert_eq!(replies_to(&messages, question), 1, "{messages:?}");
    }
    assert_eq!(count(&messages, &bot, alert), 1, "{messages:?}");
    assert_eq!(count(&messages, &mendes, "status"), 1, "{messages:?}");
    // Neither the backlog nor the bot's own alerts and replies were taken as questions.
    for node in &asked {
        assert_eq!(*node.lock().unwrap(), ["who's at the office?", "status"]);
    }

    // A send repeated with its transaction id (a retry after a lost answer) is stored once.
    let client = MatrixClient::new(&synapse.config(&bot_token, None)).unwrap();
    let message = client.outgoing(&room, "sent twice");
    let sent = client.send(&message, &shutdown).await.unwrap();
    let resent = client.send(&message, &shutdown).await.unwrap();
    assert_eq!(sent, resent);

    // A burst beyond the homeserver's rate limit: every message lands once, after waits.
    for n in 0..5 {
        let message = client.outgoing(&room, &format!("burst {n}"));
        client.send(&message, &shutdown).await.unwrap();
    }
    let messages = synapse.messages(&room, &mendes_token).await;
    assert_eq!(count(&messages, &bot, "sent twice"), 1, "{messages:?}");
    for n in 0..5 {
        assert_eq!(
            count(&messages, &bot, &format!("burst {n}")),
            1,
            "{messages:?}"
        );
    }
    let log = std::fs::read_to_string(&synapse.log).unwrap();
    assert!(
        log.contains("429 \"PUT /_matrix/client/v3/rooms/"),
        "the burst never met the rate limit:\n{}",
        log_tail(&synapse.log)
    );

    shutdown.cancel();
    while tasks.join_next().await.is_some() {}
}
