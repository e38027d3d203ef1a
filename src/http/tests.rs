//! The API through the real axum router and a real office actor.

use std::{future::Future, pin::Pin, sync::Arc};

use axum::{
    body::{Body, to_bytes},
    extract::connect_info::MockConnectInfo,
    http::{HeaderMap, Method, Request, StatusCode, header},
};
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use super::{
    Api, PeerSource, PeerView,
    access::{Access, MAX_FAILED_SIGN_INS},
    router,
};
use crate::{
    bot::{Bot, CHAT_BURST, MAX_TEXT_LEN, READ_ONLY_REPLY},
    office::{physical_ms, testing::start_office},
    state::{DEFAULT_RETENTION_MS, NodeId, Replica},
};

const TOKEN: &str = "a-test-token-of-some-length";
const VIEWER_TOKEN: &str = "a-viewer-token-of-some-length";

/// Where the tests' requests come from: this machine, or another on the office LAN.
const LOOPBACK: &str = "127.0.0.1:50000";
const LAN: &str = "192.0.2.10:50000";

/// The host the LAN tests' browser talks to.
const HOST: &str = "office.local:7878";

/// No network: `GET /api/peers` against real peers is tested with the real binary
/// (`tests/it/binary.rs`).
struct NoPeers;

impl PeerSource for NoPeers {
    fn peers(&self) -> Pin<Box<dyn Future<Output = Vec<PeerView>> + Send + '_>> {
        Box::pin(async { Vec::new() })
    }

    fn invite(&self) -> Pin<Box<dyn Future<Output = Option<String>> + Send + '_>> {
        Box::pin(async { Some("om1-token".to_owned()) })
    }
}

struct Fixture {
    /// The router as loopback clients reach it.
    app: axum::Router,
    /// The same router as a client on the LAN reaches it.
    lan: axum::Router,
    shutdown: CancellationToken,
    _dir: tempfile::TempDir,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let id = NodeId::new("12D3KooWTestNode").unwrap();
    let shutdown = CancellationToken::new();
    let (handle, _outbox, store) = start_office(
        dir.path(),
        Replica::new(id, DEFAULT_RETENTION_MS),
        &shutdown,
    )
    .await;
    let api = Api {
        bot: Arc::new(Bot::new(handle.clone(), Some("bloo".into()), 180_000)),
        office: handle,
        peers: Box::new(NoPeers),
        access: Access::new(
            TOKEN.into(),
            VIEWER_TOKEN.into(),
            [3; 32],
            std::time::Duration::from_secs(30 * 24 * 3600),
        ),
        started_at_ms: physical_ms(),
        consider_home_ms: 180_000,
        store,
        history: crate::history::HistoryConfig::default(),
    };
    let app = router(Arc::new(api));
    Fixture {
        lan: app.clone().layer(MockConnectInfo(
            LAN.parse::<std::net::SocketAddr>().unwrap(),
        )),
        app: app.layer(MockConnectInfo(
            LOOPBACK.parse::<std::net::SocketAddr>().unwrap(),
        )),
        shutdown,
        _dir: dir,
    }
}

async fn call(
    app: &axum::Router,
    method: Method,
    uri: &str,
    token: Option<&str>,
    body: &str,
) -> (StatusCode, Value) {
    let mut request = Request::builder().method(method).uri(uri);
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let request = request
        .header("content-type", "application/json")
        .body(Body::from(body.to_owned()))
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = to_bytes(response.into_body(), 1 << 20).await.unwrap();
    let json = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
    };
    (status, json)
}

/// The room called `name` in a `GET /api/state` answer (the node's own room is there too,
/// once its heartbeat is written).
fn room<'a>(state: &'a Value, name: &str) -> &'a Value {
    state["rooms"]
        .as_array()
        .and_then(|rooms| rooms.iter().find(|room| room["name"] == name))
        .unwrap_or_else(|| panic!("no room {name:?} in {state}"))
}

#[tokio::test]
async fn a_pushed_reading_shows_in_the_state_with_its_age() {
    let fixture = fixture().await;
    let body = r#"{"sensor": "desk-1", "room": "meeting room", "quantity": "temperature", "value": 72.5, "unit": "°F"}"#;
    let (status, _) = call(
        &fixture.app,
        Method::POST,
        "/api/readings",
        Some(TOKEN),
        body,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, state) = call(&fixture.app, Method::GET, "/api/state", None, "").await;
    assert_eq!(status, StatusCode::OK);
    let room = room(&state, "meeting room");
    let reading = &room["readings"][0];
    assert_eq!(reading["sensor"], "desk-1");
    assert_eq!(reading["quantity"], "temperature");
    assert_eq!(reading["unit"], "°C");
    assert!(
        (reading["value"].as_f64().unwrap() - 22.5).abs() < 1e-9,
        "{reading}"
    );
    assert!(reading["age_s"].as_u64().unwrap() < 60);
}

#[tokio::test]
async fn a_target_is_set_and_shown() {
    let fixture = fixture().await;
    let (status, body) = call(
        &fixture.app,
        Method::PUT,
        "/api/targets/meeting%20room/temperature",
        Some(TOKEN),
        r#"{"value": 21.0, "set_by": "mendes"}"#,
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let (_, state) = call(&fixture.app, Method::GET, "/api/state", None, "").await;
    let target = &room(&state, "meeting room")["targets"][0];
    assert_eq!(target["quantity"], "temperature");
    assert_eq!(target["value"], 21.0);
    assert_eq!(target["set_by"], "mendes");
    assert_eq!(target["concurrent"], Value::Array(Vec::new()));
}

#[tokio::test]
async fn writes_need_the_token() {
    let fixture = fixture().await;
    let body = r#"{"sensor": "s", "room": "r", "quantity": "temperature", "value": 20}"#;
    let (status, error) = call(&fixture.app, Method::POST, "/api/readings", None, body).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(error["error"].as_str().unwrap().contains("Bearer"));
    let (status, _) = call(
        &fixture.app,
        Method::POST,
        "/api/readings",
        Some("wrong-token"),
        body,
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (_, state) = call(&fixture.app, Method::GET, "/api/state", None, "").await;
    assert_eq!(
        state["rooms"],
        Value::Array(Vec::new()),
        "a refused write changed the state"
    );
}

async fn check_bad_request(body: &str, expected: &str) {
    let fixture = fixture().await;
    let (status, error) = call(
        &fixture.app,
        Method::POST,
        "/api/readings",
        Some(TOKEN),
        body,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {error}");
    let message = error["error"].as_str().unwrap();
    assert!(
        message.contains(expected),
        "{body}: {message:?} lacks {expected:?}"
    );
}

#[tokio::test]
async fn bad_requests_name_the_field() {
    check_bad_request("{not json", "invalid request body").await;
    check_bad_request(
        r#"{"sensor": "s", "room": "r", "quantity": "temperature"}"#,
        "missing field `value`",
    )
    .await;
    check_bad_request(
        r#"{"sensor": "s", "room": "r", "quantity": "wind", "value": 1}"#,
        "field `quantity`",
    )
    .await;
    check_bad_request(
        r#"{"sensor": "s", "room": "r", "quantity": "humidity", "value": 150}"#,
        "field `value`",
    )
    .await;
    check_bad_request(
        r#"{"sensor": "s", "room": "", "quantity": "humidity", "value": 50}"#,
        "field `room`",
    )
    .await;
    check_bad_request(
        r#"{"sensor": "s", "room": "r", "quantity": "sound", "value": 1e999}"#,
        "invalid request body",
    )
    .await;
    check_bad_request(
        r#"{"sensor": "s", "room": "r", "quantity": "sound", "value": 40, "colour": 1}"#,
        "unknown field `colour`",
    )
    .await;
    check_bad_request(r#"{"sensor": "s", "room": "r", "quantity": "temperature", "value": 20, "unit": "furlongs"}"#, "field `value`").await;
}

#[tokio::test]
async fn oversized_bodies_are_refused() {
    let fixture = fixture().await;
    let body = format!(
        r#"{{"sensor": "{}", "room": "r", "quantity": "sound", "value": 40}}"#,
        "x".repeat(64 * 1024)
    );
    let (status, _) = call(
        &fixture.app,
        Method::POST,
        "/api/readings",
        Some(TOKEN),
        &body,
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn health_and_invite_answer() {
    let fixture = fixture().await;
    let (status, health) = call(&fixture.app, Method::GET, "/api/health", None, "").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(health["id"], "12D3KooWTestNode");
    assert_eq!(health["version"], env!("CARGO_PKG_VERSION"));
    let (status, _) = call(&fixture.app, Method::GET, "/api/invite", None, "").await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "the invite holds the office key"
    );
    let (_, invite) = call(&fixture.app, Method::GET, "/api/invite", Some(TOKEN), "").await;
    assert_eq!(invite["token"], "om1-token");
}

/// Reads from `stream` until `needle` has appeared `times` times, with a deadline.
async fn read_until(
    stream: &mut tokio::net::TcpStream,
    seen: &mut String,
    needle: &str,
    times: usize,
) {
    use tokio::io::AsyncReadExt as _;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut buffer = [0u8; 4096];
    while seen.matches(needle).count() < times {
        let read = tokio::time::timeout_at(deadline, stream.read(&mut buffer))
            .await
            .unwrap_or_else(|_| panic!("no {needle:?} ({times}) within 10 s; got {seen:?}"))
            .unwrap();
        assert!(read > 0, "the event stream closed; got {seen:?}");
        seen.push_str(&String::from_utf8_lossy(&buffer[..read]));
    }
}

#[tokio::test]
async fn events_stream_the_state_and_its_changes() {
    use tokio::io::AsyncWriteExt as _;
    let fixture = fixture().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let app = fixture.app.clone();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    stream
        .write_all(b"GET /api/events HTTP/1.1\r\nHost: test\r\nAccept: text/event-stream\r\n\r\n")
        .await
        .unwrap();
    let mut seen = String::new();
    read_until(&mut stream, &mut seen, "event: state", 1).await;
    assert!(seen.contains("text/event-stream"), "{seen}");
    assert!(!seen.contains("desk-9"), "{seen}");
    let body = r#"{"sensor": "desk-9", "room": "lab", "quantity": "co2", "value": 650}"#;
    let (status, _) = call(
        &fixture.app,
        Method::POST,
        "/api/readings",
        Some(TOKEN),
        body,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    read_until(&mut stream, &mut seen, "desk-9", 1).await;
}

async fn ask(fixture: &Fixture, body: &str) -> (StatusCode, Value) {
    call(&fixture.app, Method::POST, "/api/ask", Some(TOKEN), body).await
}

#[tokio::test]
async fn the_bot_answers_from_the_state_and_its_writes_show() {
    let fixture = fixture().await;
    let reading =
        r#"{"sensor": "desk-1", "room": "meeting room", "quantity": "temperature", "value": 22.5}"#;
    let (status, _) = call(
        &fixture.app,
        Method::POST,
        "/api/readings",
        Some(TOKEN),
        reading,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, answer) = ask(
        &fixture,
        r#"{"text": "bloo, Meeting-Room temp?", "speaker": "mendes"}"#,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let reply = answer["reply"].as_str().unwrap();
    assert!(
        reply.starts_with("meeting room temp is 22.5°C ("),
        "{reply}"
    );

    let (status, answer) = ask(
        &fixture,
        r#"{"text": "i am 00:1a:2b:3c:4d:5e", "speaker": "mendes"}"#,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(
        answer["reply"],
        "Ok, you are 00:1a:2b:3c:4d:5e. I haven't seen that device on the network yet"
    );
    let (_, state) = call(&fixture.app, Method::GET, "/api/state", None, "").await;
    assert_eq!(state["people"][0]["name"], "mendes", "{state}");
    assert_eq!(state["people"][0]["devices"][0], "00:1a:2b:3c:4d:5e");

    let (_, answer) = ask(&fixture, r#"{"text": "status", "speaker": "mendes"}"#).await;
    assert!(
        answer["reply"]
            .as_str()
            .unwrap()
            .contains("Connected to 0 peers."),
        "{answer}"
    );
}

#[tokio::test]
async fn binding_needs_the_write_token_and_asking_a_valid_body() {
    let fixture = fixture().await;
    let body = r#"{"text": "i am 00:1a:2b:3c:4d:5e", "speaker": "mendes"}"#;
    // Loopback may ask without a token, as it may read; the binding is not made.
    let (status, reply) = call(&fixture.app, Method::POST, "/api/ask", None, body).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(reply["reply"], READ_ONLY_REPLY);
    for (body, expected) in [
        (
            r#"{"text": "status"}"#.to_owned(),
            "missing field `speaker`",
        ),
        (
            r#"{"speaker": "mendes"}"#.to_owned(),
            "missing field `text`",
        ),
        (
            r#"{"text": "status", "speaker": ""}"#.to_owned(),
            "field `speaker`",
        ),
        (
            format!(
                r#"{{"text": "{}", "speaker": "mendes"}}"#,
                "x".repeat(MAX_TEXT_LEN + 1)
            ),
            "field `text`",
        ),
    ] {
        let (status, error) = ask(&fixture, &body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{error}");
        let message = error["error"].as_str().unwrap();
        assert!(message.contains(expected), "{message:?} lacks {expected:?}");
    }
    let (_, state) = call(&fixture.app, Method::GET, "/api/state", None, "").await;
    assert_eq!(
        state["people"],
        Value::Array(Vec::new()),
        "a refused ask wrote"
    );
}

#[tokio::test]
async fn a_flood_of_questions_is_slowed_down() {
    let fixture = fixture().await;
    let body = r#"{"text": "status", "speaker": "mendes"}"#;
    let mut statuses = Vec::new();
    for _ in 0..CHAT_BURST * 2 {
        statuses.push(ask(&fixture, body).await.0);
    }
    assert!(
        statuses[..CHAT_BURST as usize]
            .iter()
            .all(|status| *status == StatusCode::OK)
    );
    assert!(
        statuses.contains(&StatusCode::TOO_MANY_REQUESTS),
        "{statuses:?}"
    );
}

/// One request with `headers`; the status, the answer's headers and its body as text.
async fn send<S: AsRef<str>>(
    app: &axum::Router,
    method: Method,
    uri: &str,
    headers: &[(header::HeaderName, S)],
    body: &str,
) -> (StatusCode, HeaderMap, String) {
    let mut request = Request::builder().method(method).uri(uri);
    for (name, value) in headers {
        request = request.header(name, value.as_ref());
    }
    let response = app
        .clone()
        .oneshot(request.body(Body::from(body.to_owned())).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = to_bytes(response.into_body(), 1 << 20).await.unwrap();
    (
        status,
        headers,
        String::from_utf8_lossy(&bytes).into_owned(),
    )
}

/// Posts the sign-in form from a browser on the LAN (from this node's own page) with
/// `token` and `next`; with `json`, as the dashboard's dialog does (accepting JSON).
async fn post_sign_in(
    fixture: &Fixture,
    token: &str,
    next: &str,
    json: bool,
) -> (StatusCode, HeaderMap, String) {
    let origin = format!("http://{HOST}");
    let mut headers = vec![
        (header::HOST, HOST),
        (header::ORIGIN, origin.as_str()),
        (header::CONTENT_TYPE, "application/x-www-form-urlencoded"),
    ];
    if json {
        headers.push((header::ACCEPT, "application/json"));
    }
    let body = format!("token={token}&next={}", super::signin::encode_next(next));
    send(&fixture.lan, Method::POST, "/signin", &headers, &body).await
}

/// Signs in on the LAN app with `token`; the session cookie (`name=value`) it set.
async fn sign_in(fixture: &Fixture, token: &str) -> String {
    let (status, headers, body) = post_sign_in(fixture, token, "/?wall", false).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    assert_eq!(headers[header::LOCATION], "/?wall");
    let cookie = headers[header::SET_COOKIE].to_str().unwrap().to_owned();
    for part in ["HttpOnly", "SameSite=Strict", "Max-Age="] {
        assert!(cookie.contains(part), "{cookie}");
    }
    cookie.split(';').next().unwrap().to_owned()
}

#[tokio::test]
async fn from_the_lan_nothing_is_shown_without_a_token() {
    let fixture = fixture().await;
    for path in [
        "/api/state",
        "/api/health",
        "/api/events",
        "/api/history?from=-1h",
    ] {
        let (status, _, body) = send::<&str>(&fixture.lan, Method::GET, path, &[], "").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}: {body}");
        assert!(body.contains("/signin"), "{body}");
    }
    // Loopback reads as before.
    let (status, _, _) = send::<&str>(&fixture.app, Method::GET, "/api/state", &[], "").await;
    assert_eq!(status, StatusCode::OK);
    // The viewer token reads from the LAN, and writes nothing.
    let viewer = format!("Bearer {VIEWER_TOKEN}");
    let (status, _, _) = send(
        &fixture.lan,
        Method::GET,
        "/api/state",
        &[(header::AUTHORIZATION, &viewer)],
        "",
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let reading = r#"{"sensor": "s", "room": "r", "quantity": "temperature", "value": 20}"#;
    let (status, _, body) = send(
        &fixture.lan,
        Method::POST,
        "/api/readings",
        &[(header::AUTHORIZATION, &viewer)],
        reading,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(body.contains("viewer token may only read"), "{body}");
    // The write token writes from the LAN.
    let (status, _, body) = send(
        &fixture.lan,
        Method::POST,
        "/api/readings",
        &[(header::AUTHORIZATION, &format!("Bearer {TOKEN}"))],
        reading,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

#[tokio::test]
async fn a_session_from_the_sign_in_page_reads_and_a_write_session_writes_from_its_pages() {
    let fixture = fixture().await;
    let (status, _, page) =
        send::<&str>(&fixture.lan, Method::GET, "/signin?next=/", &[], "").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains(r#"<label for="token">"#), "{page}");

    let viewer = sign_in(&fixture, VIEWER_TOKEN).await;
    let (status, _, body) = send(
        &fixture.lan,
        Method::GET,
        "/api/session",
        &[(header::COOKIE, &viewer)],
        "",
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let session: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(session["role"], "viewer");
    assert_eq!(session["proof"], "session");

    let target = r#"{"value": 21.5, "set_by": "ada"}"#;
    let browser = |cookie: &str| {
        [
            (header::COOKIE, cookie.to_owned()),
            (header::HOST, HOST.to_owned()),
            (header::ORIGIN, format!("http://{HOST}")),
            (header::CONTENT_TYPE, "application/json".to_owned()),
        ]
    };
    let (status, _, body) = send(
        &fixture.lan,
        Method::PUT,
        "/api/targets/lab/temperature",
        &browser(&viewer),
        target,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "a viewer session: {body}");

    let writer = sign_in(&fixture, TOKEN).await;
    // From another site, the write session's cookie changes nothing.
    let (status, _, body) = send(
        &fixture.lan,
        Method::PUT,
        "/api/targets/lab/temperature",
        &[
            (header::COOKIE, writer.as_str()),
            (header::HOST, HOST),
            (header::ORIGIN, "http://evil.example"),
        ],
        target,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(body.contains("own pages"), "{body}");
    let (status, _, body) = send(
        &fixture.lan,
        Method::PUT,
        "/api/targets/lab/temperature",
        &browser(&writer),
        target,
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");

    // Signing out clears the cookie.
    let (status, headers, _) = send::<&str>(&fixture.lan, Method::POST, "/signout", &[], "").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(
        headers[header::SET_COOKIE]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
}

#[tokio::test]
async fn wrong_tokens_on_the_sign_in_page_are_refused_and_then_slowed_down() {
    let fixture = fixture().await;
    let attempt = || post_sign_in(&fixture, "guess-guess-guess-guess", "/", false);
    for _ in 0..MAX_FAILED_SIGN_INS - 1 {
        // A person at the form gets the form again, saying so.
        let (status, headers, page) = attempt().await;
        assert_eq!(status, StatusCode::OK);
        assert!(page.contains("not right"), "{page}");
        assert!(!headers.contains_key(header::SET_COOKIE));
    }
    // A script that takes JSON gets a 401.
    let (status, headers, body) =
        post_sign_in(&fixture, "guess-guess-guess-guess", "/", true).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert!(body.contains("not right"), "{body}");
    assert!(!headers.contains_key(header::SET_COOKIE));
    let (status, headers, page) = attempt().await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{page}");
    assert!(headers.contains_key(header::RETRY_AFTER));
    // Even the right token waits now: the limit is per address, not per guess.
    let (status, _, _) = post_sign_in(&fixture, TOKEN, "/", false).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn a_viewer_may_ask_but_not_change_the_office() {
    let fixture = fixture().await;
    let viewer = format!("Bearer {VIEWER_TOKEN}");
    let ask = |text: &str| {
        let body = serde_json::json!({"text": text, "speaker": "mendes"}).to_string();
        let viewer = viewer.clone();
        let lan = fixture.lan.clone();
        async move {
            send(
                &lan,
                Method::POST,
                "/api/ask",
                &[
                    (header::AUTHORIZATION, viewer.as_str()),
                    (header::CONTENT_TYPE, "application/json"),
                ],
                &body,
            )
            .await
        }
    };
    let (status, _, body) = ask("status").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains("peers"), "{body}");
    let (status, _, body) = ask("i am 00:1a:2b:3c:4d:5e").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let reply: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(reply["reply"], READ_ONLY_REPLY);
    let (_, state) = call(&fixture.app, Method::GET, "/api/state", None, "").await;
    assert_eq!(
        state["people"],
        Value::Array(Vec::new()),
        "a viewer bound a device"
    );
}
