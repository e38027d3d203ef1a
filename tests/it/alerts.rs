//! Alerts end to end: real nodes (`node::start`) over libp2p on loopback, readings posted to
//! their HTTP API, and a local HTTP server on 127.0.0.1 standing in for the chat's incoming
//! webhook, configured on every node. A crossing must reach the webhook exactly once from
//! the whole office, at most once per side of a partition, and never again after a restart.
//!
//! No test sleeps to synchronise. To show that no second post comes, each test makes a later
//! *marker* alert on every node once that node holds the alert under test: a node posts in
//! order, so when its marker has arrived, any duplicate it were to send would have too.

use std::{
    net::{Ipv4Addr, SocketAddr},
    path::Path,
    sync::{Arc, Mutex},
    time::Duration,
};

use crate::support::eventually;
use axum::{Router, body::Bytes, extract::State, http::HeaderMap, http::StatusCode, routing::post};
use officemesh::{
    chat::webhook::Webhook,
    config::Config,
    net::SwarmKey,
    node::{self, RunningNode},
};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

const TOKEN: &str = "alerts-test-token-0123456789";

/// One request the webhook server received.
#[derive(Clone, Debug)]
struct Post {
    content_type: String,
    body: Bytes,
}

impl Post {
    fn text(&self) -> String {
        let body: Value = serde_json::from_slice(&self.body).expect("the body is JSON");
        body["text"].as_str().expect("a text field").to_owned()
    }
}

/// What the webhook server saw, and the statuses it answers with (200 once they run out).
#[derive(Default)]
struct Hook {
    posts: Vec<Post>,
    statuses: Vec<StatusCode>,
}

/// A local incoming webhook: records every POST and answers with the next planned status.
struct WebhookServer {
    url: String,
    hook: Arc<Mutex<Hook>>,
    stop: CancellationToken,
}

impl WebhookServer {
    async fn start(statuses: Vec<StatusCode>) -> WebhookServer {
        async fn receive(
            State(hook): State<Arc<Mutex<Hook>>>,
            headers: HeaderMap,
            body: Bytes,
        ) -> StatusCode {
            let mut hook = hook.lock().unwrap();
            let content_type = headers
                .get("content-type")
                .and_then(|value| value.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            hook.posts.push(Post { content_type, body });
            if hook.statuses.is_empty() {
                StatusCode::OK
            } else {
                hook.statuses.remove(0)
            }
        }
        let hook = Arc::new(Mutex::new(Hook {
            posts: Vec::new(),
            statuses,
        }));
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .unwrap();
        let url = format!(
            "http://{}/services/T000/B000/secret",
            listener.local_addr().unwrap()
        );
        let router = Router::new()
            .route("/services/T000/B000/secret", post(receive))
            .with_state(hook.clone());
        let stop = CancellationToken::new();
        let stopped = stop.clone();
        tokio::spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(async move { stopped.cancelled().await })
                .await
                .unwrap();
        });
        WebhookServer { url, hook, stop }
    }

    fn posts(&self) -> Vec<Post> {
        self.hook.lock().unwrap().posts.clone()
    }

    fn texts(&self) -> Vec<String> {
        self.posts().iter().map(Post::text).collect()
    }

    /// How many posts said exactly `text`.
    fn count(&self, text: &str) -> usize {
        self.texts().iter().filter(|posted| *posted == text).count()
    }

    /// Waits until `text` has been posted at least once.
    async fn wait_for(&self, text: &str) {
        eventually(&format!("the webhook receives {text:?}"), || async {
            (self.count(text) > 0).then_some(())
        })
        .await;
    }
}

impl Drop for WebhookServer {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// The alert rule of the tests: the default one, with a short `for_s`.
fn rules(webhook: &str) -> String {
    format!(
        "[[alerts.rule]]\nquantity = \"temperature\"\nabove = 24.0\nhysteresis = 0.5\nfor_s = 1\n\
         message = \"the {{room}} temperature is at {{value}}. You might want to turn the AC on.\"\n\
         [bot]\nwebhook_url = \"{webhook}\"\n"
    )
}

fn hot(room: &str, value: f64) -> String {
    format!("the {room} temperature is at {value:.1}°C. You might want to turn the AC on.")
}

struct TestNode {
    node: RunningNode,
    shutdown: CancellationToken,
    client: reqwest::Client,
}

impl TestNode {
    async fn start(dir: &Path, name: &str, webhook: &str, peers: Vec<String>) -> TestNode {
        let mut config = Config::from_toml(&rules(webhook)).expect("the test config is valid");
        config.node.data_dir = dir.join(name);
        config.network.mdns = false;
        config.network.listen = vec!["/ip4/127.0.0.1/tcp/0".into()];
        config.network.peers = peers;
        config.network.swarm_key_file = Some(dir.join("swarm.key"));
        config.http.listen = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
        config.http.api_token = Some(TOKEN.into());
        config.network.publish_interval = Duration::from_millis(100);
        config.network.sync_interval = Duration::from_secs(1);
        let shutdown = CancellationToken::new();
        let node = node::start(config, shutdown.clone())
            .await
            .expect("the node starts");
        TestNode {
            node,
            shutdown,
            client: reqwest::Client::new(),
        }
    }

    async fn stop(self) {
        self.shutdown.cancel();
        self.node.wait().await;
    }

    fn id(&self) -> String {
        self.node.node_id.to_string()
    }

    /// Posts a temperature reading through the HTTP API, as a pushing sensor would.
    async fn reading(&self, sensor: &str, room: &str, value: f64) {
        let response = self
            .client
            .post(format!("http://{}/api/readings", self.node.http))
            .bearer_auth(TOKEN)
            .header("content-type", "application/json")
            .body(
                json!({"sensor": sensor, "room": room, "quantity": "temperature", "value": value})
                    .to_string(),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201, "{:?}", response.text().await);
    }

    async fn alerts(&self) -> Vec<Value> {
        let body = self
            .client
            .get(format!("http://{}/api/alerts", self.node.http))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        serde_json::from_slice(&body).expect("GET /api/alerts answers a JSON array")
    }

    /// Waits until this node's `GET /api/alerts` shows the alert of `raiser` with `message`,
    /// active or cleared as asked.
    async fn wait_for_alert(&self, raiser: &TestNode, message: &str, active: bool) -> Value {
        let raiser = raiser.id();
        eventually(&format!("the node sees the alert {message:?}"), || async {
            self.alerts().await.into_iter().find(|alert| {
                alert["node"] == raiser.as_str()
                    && alert["message"] == message
                    && alert["cleared_at_ms"].is_null() == active
            })
        })
        .await
    }

    async fn wait_for_peers(&self, count: usize) {
        eventually(&format!("{count} peers subscribed"), || async {
            let peers = self.node.net.peers().await.unwrap();
            (peers.iter().filter(|peer| peer.subscribed).count() == count).then_some(())
        })
        .await;
    }
}

fn office_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("swarm.key"),
        SwarmKey::generate().unwrap().to_file(),
    )
    .unwrap();
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crossing_reaches_the_webhook_once_from_a_three_node_office() {
    let dir = office_dir();
    let hook = WebhookServer::start(Vec::new()).await;
    let a = TestNode::start(dir.path(), "a", &hook.url, Vec::new()).await;
    let address = a.node.dial_address().await.unwrap();
    let b = TestNode::start(dir.path(), "b", &hook.url, vec![address.clone()]).await;
    let c = TestNode::start(dir.path(), "c", &hook.url, vec![address]).await;
    // b and c know only a; they learn each other from it (peer exchange).
    a.wait_for_peers(2).await;
    b.wait_for_peers(2).await;
    c.wait_for_peers(2).await;

    a.reading("desk", "lab", 25.0).await;
    let expected = hot("lab", 25.0);
    hook.wait_for(&expected).await;
    let post = &hook.posts()[0];
    assert_eq!(post.content_type, "application/json");
    assert_eq!(
        post.body,
        serde_json::to_vec(&json!({"text": expected})).unwrap()
    );
    let alert = b.wait_for_alert(&a, &expected, true).await;
    assert_eq!(alert["id"], "temperature-above-24/desk");
    assert_eq!(alert["room"], "lab");
    assert!(alert["raised_at_ms"].as_u64().unwrap() > 0);
    c.wait_for_alert(&a, &expected, true).await;
    // Still above: nothing new to announce.
    a.reading("desk", "lab", 25.5).await;

    // Markers, each raised after its node holds the alert above.
    for (node, room) in [(&a, "marker a"), (&b, "marker b"), (&c, "marker c")] {
        node.reading("marker", room, 30.0).await;
    }
    for room in ["marker a", "marker b", "marker c"] {
        hook.wait_for(&hot(room, 30.0)).await;
    }
    assert_eq!(hook.count(&expected), 1, "posts: {:?}", hook.texts());
    assert_eq!(hook.posts().len(), 4, "posts: {:?}", hook.texts());
    for node in [a, b, c] {
        node.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partitioned_office_announces_at_most_once_per_side() {
    let dir = office_dir();
    let hook = WebhookServer::start(Vec::new()).await;
    // One side: a and b. The other: c alone, which knows no address of theirs.
    let a = TestNode::start(dir.path(), "a", &hook.url, Vec::new()).await;
    let address = a.node.dial_address().await.unwrap();
    let b = TestNode::start(dir.path(), "b", &hook.url, vec![address.clone()]).await;
    let c = TestNode::start(dir.path(), "c", &hook.url, Vec::new()).await;
    a.wait_for_peers(1).await;
    b.wait_for_peers(1).await;

    // The same room crosses on both sides, measured by a sensor on each.
    a.reading("desk", "open space", 25.0).await;
    c.reading("window", "open space", 26.0).await;
    let (left, right) = (hot("open space", 25.0), hot("open space", 26.0));
    hook.wait_for(&left).await;
    hook.wait_for(&right).await;
    b.wait_for_alert(&a, &left, true).await;
    assert!(
        c.alerts()
            .await
            .iter()
            .all(|alert| alert["node"] != a.id().as_str()),
        "c cannot have heard of a's alert across the partition"
    );
    assert_eq!(
        hook.texts().len(),
        2,
        "one post per side: {:?}",
        hook.texts()
    );

    // The partition heals: every node learns both alerts, and nobody announces them again.
    c.node.net.dial(address.parse().unwrap()).await.unwrap();
    for node in [&a, &b, &c] {
        node.wait_for_alert(&a, &left, true).await;
        node.wait_for_alert(&c, &right, true).await;
    }
    for (node, room) in [(&a, "marker a"), (&b, "marker b"), (&c, "marker c")] {
        node.reading("marker", room, 30.0).await;
    }
    for room in ["marker a", "marker b", "marker c"] {
        hook.wait_for(&hot(room, 30.0)).await;
    }
    assert_eq!(hook.count(&left), 1, "posts: {:?}", hook.texts());
    assert_eq!(hook.count(&right), 1, "posts: {:?}", hook.texts());
    assert_eq!(hook.posts().len(), 5, "posts: {:?}", hook.texts());
    for node in [a, b, c] {
        node.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_keeps_a_raised_alert_quiet_and_a_clear_rearms_it() {
    let dir = office_dir();
    let hook = WebhookServer::start(Vec::new()).await;
    let node = TestNode::start(dir.path(), "a", &hook.url, Vec::new()).await;
    node.reading("desk", "lab", 25.0).await;
    let expected = hot("lab", 25.0);
    hook.wait_for(&expected).await;
    node.wait_for_alert(&node, &expected, true).await;
    // Stopping saves the state, the raised alert with it.
    node.stop().await;

    let node = TestNode::start(dir.path(), "a", &hook.url, Vec::new()).await;
    node.wait_for_alert(&node, &expected, true).await;
    node.reading("desk", "lab", 25.0).await;
    node.reading("marker", "marker 1", 30.0).await;
    hook.wait_for(&hot("marker 1", 30.0)).await;
    assert_eq!(hook.count(&expected), 1, "posts: {:?}", hook.texts());

    // Under the threshold but within the hysteresis: still raised.
    node.reading("desk", "lab", 23.6).await;
    node.reading("marker-2", "marker 2", 30.0).await;
    hook.wait_for(&hot("marker 2", 30.0)).await;
    node.wait_for_alert(&node, &expected, true).await;
    // Past the hysteresis: cleared, and the next crossing is announced again.
    node.reading("desk", "lab", 23.4).await;
    node.wait_for_alert(&node, &expected, false).await;
    node.reading("desk", "lab", 25.0).await;
    eventually("the second crossing is posted", || async {
        (hook.count(&expected) == 2).then_some(())
    })
    .await;
    node.wait_for_alert(&node, &expected, true).await;
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_webhook_posts_json_text_and_retries_a_server_error() {
    let hook = WebhookServer::start(vec![StatusCode::INTERNAL_SERVER_ERROR]).await;
    let webhook = Webhook::new(hook.url.parse().unwrap())
        .unwrap()
        .with_retries(3, Duration::from_millis(10));
    let text = "the \"open space\" temperature is at 24.0°C.\nYou might want to turn the AC on.";
    webhook.post(text, &CancellationToken::new()).await.unwrap();
    let posts = hook.posts();
    assert_eq!(posts.len(), 2, "a 500, then the retry that succeeded");
    let expected = serde_json::to_vec(&json!({"text": text})).unwrap();
    for post in &posts {
        assert_eq!(post.content_type, "application/json");
        assert_eq!(post.body, expected);
    }
    assert_eq!(
        posts[0].body,
        Bytes::from(
            "{\"text\":\"the \\\"open space\\\" temperature is at 24.0°C.\\nYou might want to turn the AC on.\"}"
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_webhook_gives_up_after_its_attempts_and_on_a_refusal() {
    let down = WebhookServer::start(vec![StatusCode::SERVICE_UNAVAILABLE; 10]).await;
    let webhook = Webhook::new(down.url.parse().unwrap())
        .unwrap()
        .with_retries(3, Duration::from_millis(10));
    let error = webhook
        .post("hello", &CancellationToken::new())
        .await
        .unwrap_err();
    assert!(error.to_string().contains("503"), "{error}");
    assert!(
        !error.to_string().contains("secret"),
        "the URL's secret path stays out of logs: {error}"
    );
    assert_eq!(down.posts().len(), 3, "three attempts, then it gives up");

    let refusing = WebhookServer::start(vec![StatusCode::NOT_FOUND; 10]).await;
    let webhook = Webhook::new(refusing.url.parse().unwrap())
        .unwrap()
        .with_retries(3, Duration::from_millis(10));
    let error = webhook
        .post("hello", &CancellationToken::new())
        .await
        .unwrap_err();
    assert!(error.to_string().contains("404"), "{error}");
    assert_eq!(refusing.posts().len(), 1, "a refusal is not retried");

    // Nothing listens on a port just closed: a connection error, retried, then reported.
    let closed = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let webhook = Webhook::new(format!("http://127.0.0.1:{port}/hook").parse().unwrap())
        .unwrap()
        .with_retries(2, Duration::from_millis(10));
    let error = webhook
        .post("hello", &CancellationToken::new())
        .await
        .unwrap_err();
    assert!(error.to_string().contains("cannot reach"), "{error}");
}
