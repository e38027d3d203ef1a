//! Who may see the office from another machine, with the real binary: a node in a network
//! namespace this test creates, serving HTTP on the namespace's bridge address, and requests
//! from the host across that bridge (not loopback). Without a token nothing is shown; the
//! viewer token (from `officemesh viewer-token`) reads and changes nothing; the sign-in page
//! refuses a wrong token and turns a right one into a session cookie. Needs root and
//! iproute2 (CI runs as root); without them the test fails, saying so.

use std::net::SocketAddr;

use crate::{
    netlab::Lab,
    support::node::{Node, TOKEN, exchange, write_swarm_key},
};

#[test]
fn from_another_host_the_office_needs_a_token_or_a_session() {
    let lab = Lab::new("oa", 78).unwrap_or_else(|error| {
        panic!("this test needs root and iproute2 to create network namespaces: {error}")
    });
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("swarm.key");
    write_swarm_key(&key, 0x3c);
    let node = Node::builder(dir.path().join("a"))
        .namespace(lab.namespace(1))
        .swarm_key(&key)
        .room("lab")
        .listen("/ip4/0.0.0.0/tcp/0")
        .http(&format!("{}:0", lab.address(1)))
        .start();
    let address: SocketAddr = node.http;
    let host = address.to_string();

    let anonymous = exchange(address, "GET", "/api/state", &[], "").unwrap();
    assert_eq!(anonymous.status, 401, "{}", anonymous.body);
    assert!(anonymous.body.contains("/signin"), "{}", anonymous.body);

    // The write token works from anywhere, as the bearer token always did.
    let viewer_token = node.cli(&["viewer-token"], None).trim().to_owned();
    assert!(viewer_token.len() >= 32, "{viewer_token:?}");
    assert_ne!(viewer_token, TOKEN);

    let viewer = format!("Bearer {viewer_token}");
    let state = exchange(
        address,
        "GET",
        "/api/state",
        &[("Authorization", &viewer)],
        "",
    )
    .unwrap();
    assert_eq!(state.status, 200, "{}", state.body);
    let target = exchange(
        address,
        "PUT",
        "/api/targets/lab/temperature",
        &[
            ("Authorization", &viewer),
            ("Content-Type", "application/json"),
        ],
        r#"{"value": 22}"#,
    )
    .unwrap();
    assert_eq!(target.status, 403, "{}", target.body);
    assert_eq!(node.target("lab", "temperature"), None);

    // The sign-in page, as a browser on the LAN uses it.
    let form = [
        ("Origin", format!("http://{host}")),
        (
            "Content-Type",
            "application/x-www-form-urlencoded".to_owned(),
        ),
    ];
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let wrong = exchange(
        address,
        "POST",
        "/signin",
        &form,
        "token=not-the-token-at-all&next=%2F",
    )
    .unwrap();
    assert_eq!(wrong.status, 200, "the form again");
    assert!(wrong.body.contains("not right"), "{}", wrong.body);
    assert!(wrong.header("set-cookie").is_none());
    let right = exchange(
        address,
        "POST",
        "/signin",
        &form,
        &format!("token={viewer_token}&next=%2F%3Fwall"),
    )
    .unwrap();
    assert_eq!(right.status, 303, "{}", right.body);
    assert_eq!(right.header("location"), Some("/?wall"));
    let cookie = right
        .header("set-cookie")
        .expect("a session cookie")
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let session = exchange(address, "GET", "/api/session", &[("Cookie", &cookie)], "").unwrap();
    assert_eq!(session.status, 200, "{}", session.body);
    assert!(
        session.body.contains(r#""role":"viewer""#),
        "{}",
        session.body
    );
    let log = node.log_text();
    assert!(
        log.contains("a wrong token on the sign-in page"),
        "the wrong token was not logged: {log}"
    );
}
