//! The dashboard in a real browser (headless Chromium, `support::browser`), against real
//! nodes of the real binary on loopback: live readings from another node, charts that hold
//! the history and grow, targets set from the page (and concurrent ones shown side by side),
//! the chat box, a node restarting under the page, the wall mode, and no error in the
//! browser's console throughout. The demo office's dashboard is photographed into
//! `docs/dashboard.png` for the README. And from another host (a network namespace this test
//! creates): the page asks to sign in, refuses a wrong token, shows the office with the viewer
//! token, and refuses a target change made with it.

use std::{
    path::Path,
    time::{Duration, Instant},
};

use serde_json::Value;

use crate::{
    cli::{Demo, http_url},
    netlab::Lab,
    support::{
        DEADLINE,
        browser::Browser,
        node::{Node, TOKEN, write_swarm_key},
        wait_for,
    },
};

/// How soon a reading posted on one node must show on another node's page (issue 11).
const LIVE_WITHIN: Duration = Duration::from_secs(2);

fn card(room: &str) -> String {
    format!("article.room[data-room=\"{room}\"]")
}

/// A JavaScript string literal of `text`.
fn js(text: &str) -> String {
    serde_json::to_string(text).unwrap()
}

/// Waits until the page has drawn every card and chart of the first state, and is live.
fn wait_rendered(browser: &mut Browser) {
    browser.wait(
        "the first full render",
        DEADLINE,
        "document.documentElement.dataset.rendered === 'true'",
    );
    browser.wait(
        "the page says it is live",
        DEADLINE,
        "document.getElementById('live').dataset.live === 'yes'",
    );
}

/// The text of `selector` inside the card of `room`, or null.
fn card_text(room: &str, selector: &str) -> String {
    format!(
        "document.querySelector({})?.textContent ?? null",
        js(&format!("{} {selector}", card(room)))
    )
}

/// The points with readings of one chart: `(time_s, min, mean, max)`, as drawn.
fn chart_points(browser: &mut Browser, room: &str, quantity: &str) -> Vec<[f64; 4]> {
    let selector = format!("{} figure[data-quantity=\"{quantity}\"]", card(room));
    let data = browser.wait(
        &format!("the {quantity} chart of {room}"),
        DEADLINE,
        &format!(
            "document.querySelector({})?.uplot?.data ?? null",
            js(&selector)
        ),
    );
    let column = |index: usize| data[index].as_array().cloned().unwrap_or_default();
    let (times, min, mean, max) = (column(0), column(1), column(2), column(3));
    (0..times.len())
        .filter(|&i| !mean[i].is_null())
        .map(|i| {
            [
                times[i].as_f64().unwrap(),
                min[i].as_f64().unwrap(),
                mean[i].as_f64().unwrap(),
                max[i].as_f64().unwrap(),
            ]
        })
        .collect()
}

/// The same points from the node's own `GET /api/history` (one series), times in seconds.
fn history_points(node: &Node, room: &str, quantity: &str) -> Vec<[f64; 4]> {
    let answer = node
        .get(&format!(
            "/api/history?room={}&quantity={quantity}&from=-24h",
            room.replace(' ', "%20")
        ))
        .unwrap();
    let series = &answer["series"][0];
    let times = answer["times"].as_array().unwrap();
    (0..times.len())
        .filter(|&i| !series["mean"][i].is_null())
        .map(|i| {
            [
                times[i].as_f64().unwrap() / 1000.0,
                series["min"][i].as_f64().unwrap(),
                series["mean"][i].as_f64().unwrap(),
                series["max"][i].as_f64().unwrap(),
            ]
        })
        .collect()
}

/// How many readings the node's history of one room's quantity holds over the last day.
fn history_count(node: &Node, room: &str, quantity: &str) -> u64 {
    let answer = node
        .get(&format!(
            "/api/history?room={}&quantity={quantity}&from=-24h",
            room.replace(' ', "%20")
        ))
        .unwrap();
    answer["series"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|series| series["count"].as_array().cloned().unwrap_or_default())
        .filter_map(|count| count.as_u64())
        .sum()
}

fn close(a: &[[f64; 4]], b: &[[f64; 4]]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| x.iter().zip(y).all(|(p, q)| (p - q).abs() < 1e-4))
}

/// The target of `room`'s `quantity` in `node`'s state: the value acted on and the
/// concurrent ones.
fn target(node: &Node, room: &str, quantity: &str) -> Option<(f64, Vec<f64>)> {
    let state = node.state();
    let target = state["rooms"]
        .as_array()?
        .iter()
        .find(|entry| entry["name"] == room)?["targets"]
        .as_array()?
        .iter()
        .find(|target| target["quantity"] == quantity)?
        .clone();
    let concurrent = target["concurrent"]
        .as_array()?
        .iter()
        .filter_map(|other| other["value"].as_f64())
        .collect();
    Some((target["value"].as_f64()?, concurrent))
}

#[test]
fn a_three_node_office_in_the_browser() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("swarm.key");
    write_swarm_key(&key, 0x5a);
    let a = Node::builder(dir.path().join("a"))
        .swarm_key(&key)
        .room("open space")
        .start();
    let b = Node::builder(dir.path().join("b"))
        .swarm_key(&key)
        .room("meeting room")
        .peer(&a.dial_address())
        .start();
    let c = Node::builder(dir.path().join("c"))
        .swarm_key(&key)
        .room("kitchen")
        .peer(&a.dial_address())
        .start();
    // The history the chart must show: three readings of one sensor.
    for value in [21.0, 21.5, 22.0] {
        a.post_reading("desk-a", "open space", value);
    }
    c.post_reading("desk-c", "kitchen", 20.0);
    a.wait_for_reading("desk-c", 20.0);
    // A node hands readings to its history every few seconds.
    wait_for("node A's history holds the three readings", || {
        history_count(&a, "open space", "temperature") == 3
    });

    let mut browser = Browser::start(1280, 1000);
    browser.navigate(&a.url());
    wait_rendered(&mut browser);
    browser.assert_no_errors("the first render");

    // The chart holds the points of the history.
    let drawn = chart_points(&mut browser, "open space", "temperature");
    let history = history_points(&a, "open space", "temperature");
    assert!(!history.is_empty(), "the node has no history");
    assert!(
        close(&drawn, &history),
        "the chart draws {drawn:?}, the history has {history:?}"
    );

    // A new reading grows it: folded into its point as the node's own bucket folds it.
    a.post_reading("desk-a", "open space", 25.0);
    let grown = browser.wait(
        "the chart takes the new reading",
        DEADLINE,
        &format!(
            "(document.querySelector({})?.uplot?.data[3] ?? []).includes(25)",
            js(&format!(
                "{} figure[data-quantity=\"temperature\"]",
                card("open space")
            ))
        ),
    );
    assert_eq!(grown, Value::Bool(true));
    // The node's history takes the reading a few seconds later; then both agree.
    wait_for("node A's history holds the new reading", || {
        history_count(&a, "open space", "temperature") == 4
    });
    let drawn = chart_points(&mut browser, "open space", "temperature");
    let history = history_points(&a, "open space", "temperature");
    assert!(
        close(&drawn, &history),
        "after a live reading the chart draws {drawn:?}, the history has {history:?}"
    );

    // A reading posted on node C shows on node A's page, without a reload, within 2 s.
    let posted = Instant::now();
    c.post_reading("desk-c", "kitchen", 23.4);
    browser.wait(
        "the reading posted on node C",
        DEADLINE,
        &format!(
            "({} ?? '').includes('23.4 °C')",
            card_text("kitchen", ".readings")
        ),
    );
    let took = posted.elapsed();
    assert!(
        took <= LIVE_WITHIN,
        "node C's reading took {took:?} to show on node A's page"
    );
    assert_eq!(
        browser.eval("performance.getEntriesByType('navigation').length"),
        Ok(Value::from(1)),
        "the page reloaded"
    );

    // Every node is listed, this one marked; its peers with their round trips.
    browser.wait(
        "three nodes, this one marked",
        DEADLINE,
        &format!(
            "document.querySelectorAll('#node-rows tr').length === 3 && \
             document.querySelector('#node-rows tr.self th')?.title === {}",
            js(&a.peer_id())
        ),
    );
    browser.wait(
        "both peers with a round trip",
        DEADLINE,
        "[...document.querySelectorAll('#peer-rows tr')].filter(r => r.textContent.endsWith(' ms')).length === 2",
    );

    // A target set in the page, with the write token asked for once, reaches node B.
    browser.type_into(
        &format!("{} .set-target input[name=value]", card("open space")),
        "21.5",
    );
    browser.click(&format!(
        "{} .set-target button[type=submit]",
        card("open space")
    ));
    browser.wait(
        "the page asks for the write token",
        DEADLINE,
        "document.getElementById('token-dialog').open",
    );
    browser.type_into("#token-dialog input[name=token]", TOKEN);
    browser.click("#token-dialog button[value=ok]");
    wait_for("node B has the target set in node A's page", || {
        target(&b, "open space", "temperature") == Some((21.5, Vec::new()))
    });
    browser.wait(
        "the page says the target is set",
        DEADLINE,
        &format!(
            "({} ?? '').includes('Set to 21.5 °C')",
            card_text("open space", ".set-target output")
        ),
    );

    // Node D, alone, sets another value; once it joins, both concurrent values show.
    let d_alone = Node::builder(dir.path().join("d"))
        .swarm_key(&key)
        .room("lab");
    let d = d_alone.start();
    d.request(
        "PUT",
        "/api/targets/open%20space/temperature",
        Some(r#"{"value": 23.0, "set_by": "dora"}"#),
    )
    .unwrap();
    d.terminate();
    let _d = d_alone.peer(&a.dial_address()).start();
    wait_for("node B holds both concurrent targets", || {
        target(&b, "open space", "temperature").is_some_and(|(_, others)| others.len() == 1)
    });
    let both = browser.wait(
        "both concurrent values side by side",
        DEADLINE,
        &format!(
            "(() => {{ const t = [...document.querySelectorAll({})].map(e => e.textContent); \
             return t.length === 2 && t.some(s => s.includes('21.5 °C')) && t.some(s => s.includes('23.0 °C by dora')) && t; }})()",
            js(&format!("{} .target-list .target", card("open space")))
        ),
    );
    assert!(both.is_array(), "{both}");

    // Keeping one of them resolves it everywhere.
    browser.click(&format!(
        "{} button.keep[data-value=\"23\"]",
        card("open space")
    ));
    wait_for("node B has the kept value alone", || {
        target(&b, "open space", "temperature") == Some((23.0, Vec::new()))
    });
    browser.wait(
        "one value left in the page",
        DEADLINE,
        &format!(
            "document.querySelectorAll({}).length === 1",
            js(&format!("{} .target-list .target", card("open space")))
        ),
    );

    // The chat box asks the bot, and the page says who is in as the bot does.
    browser.type_into("#ask-form input[name=text]", "who's at the office?");
    browser.click("#ask-form button[type=submit]");
    let reply = browser.wait(
        "the bot's answer in the chat box",
        DEADLINE,
        "document.querySelector('#chat-log .reply')?.lastChild?.textContent ?? null",
    );
    let expected: Value = serde_json::from_str(
        &a.request(
            "POST",
            "/api/ask",
            Some(r#"{"text": "who's at the office?", "speaker": "someone"}"#),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(reply, expected["reply"], "the chat box's answer");
    assert_eq!(
        browser.eval("document.getElementById('who').textContent"),
        Ok(expected["reply"].clone()),
        "who's in, in the page"
    );

    browser.assert_no_errors("the whole visit");
}

#[test]
fn the_page_says_when_it_is_not_live_and_comes_back_by_itself() {
    let dir = tempfile::tempdir().unwrap();
    let builder = Node::builder(dir.path().join("a")).room("open space");
    let a = builder.start();
    a.post_reading("desk-a", "open space", 21.0);

    let mut browser = Browser::start(1280, 900);
    browser.navigate(&a.url());
    wait_rendered(&mut browser);
    browser.assert_no_errors("the first render");

    // The node stops: the page keeps what it showed and says it is not live.
    let http = a.http;
    a.terminate();
    let banner = browser.wait(
        "the page says it is not live",
        DEADLINE,
        "(() => { const e = document.getElementById('live'); return e.dataset.live === 'no' && e.textContent; })()",
    );
    assert!(
        banner
            .as_str()
            .is_some_and(|text| text.starts_with("Not live")),
        "{banner}"
    );
    assert_eq!(
        browser.eval(&card_text("open space", ".readings .value")),
        Ok(Value::from("21.0 °C")),
        "the last reading stays shown"
    );

    // It comes back on the same address: the page reconnects by itself and is live again.
    let a = builder.http(&http.to_string()).start();
    browser.wait(
        "the page is live again",
        DEADLINE,
        "document.getElementById('live').dataset.live === 'yes'",
    );
    a.post_reading("desk-a", "open space", 24.5);
    browser.wait(
        "a reading made after the restart",
        DEADLINE,
        &format!(
            "{} === '24.5 °C'",
            card_text("open space", ".readings .value")
        ),
    );

    // The only errors are the browser's own notes of the requests the stopped node refused.
    let unexpected: Vec<_> = browser
        .take_errors()
        .into_iter()
        .filter(|error| !(error.source == "network" && error.text.contains(&http.to_string())))
        .collect();
    assert!(
        unexpected.is_empty(),
        "errors other than refused requests while the node was down: {unexpected:#?}"
    );
}

#[test]
fn the_demo_office_on_a_screen_and_on_the_wall() {
    let home = tempfile::tempdir().unwrap();
    let mut demo = Demo::start(home.path(), 5, 0);
    let first = http_url(&demo.line_starting("  "));

    let mut browser = Browser::start(1440, 1000);
    browser.navigate(&first);
    wait_rendered(&mut browser);
    browser.wait(
        "the five rooms of the demo, each with readings",
        DEADLINE,
        "document.querySelectorAll('article.room').length === 5 && \
         document.querySelectorAll('article.room .readings tr').length >= 5",
    );
    browser.click("#range input[value='1h']");
    browser.wait(
        "charts of the last hour",
        DEADLINE,
        "[...document.querySelectorAll('figure.chart')].every(f => f.dataset.range === '1h' && \
          f.querySelector('figcaption').textContent.endsWith('last 1 h'))",
    );
    let picture = browser.screenshot();
    assert!(picture.starts_with(b"\x89PNG"), "not a PNG");
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/dashboard.png");
    std::fs::write(&path, picture).unwrap();
    browser.assert_no_errors("the demo office");

    // The wall: dark, no controls, every room on the screen.
    browser.navigate(&format!("{first}/?wall"));
    wait_rendered(&mut browser);
    let wall = browser.eval(
        "(() => { const cards = [...document.querySelectorAll('article.room')]; return { \
           rooms: cards.length, \
           inside: cards.every(c => { const r = c.getBoundingClientRect(); return r.top >= 0 && r.bottom <= innerHeight && r.right <= innerWidth; }), \
           controls: [...document.querySelectorAll('.controls, form, button, input')].filter(e => e.getClientRects().length > 0).length, \
           background: getComputedStyle(document.body).backgroundColor }; })()",
    );
    let wall = wall.unwrap();
    assert_eq!(wall["rooms"], 5, "{wall}");
    assert_eq!(wall["inside"], true, "a room is off the screen: {wall}");
    assert_eq!(wall["controls"], 0, "controls on the wall: {wall}");
    assert_eq!(wall["background"], "rgb(0, 0, 0)", "{wall}");
    browser.assert_no_errors("the wall");
    demo.stop();
}

/// Node A in a network namespace, serving the LAN side of the lab's bridge; the browser on
/// the host, so every request crosses the bridge and none is from loopback.
#[test]
fn from_another_host_the_page_asks_to_sign_in_and_a_viewer_only_looks() {
    let lab = Lab::new("od", 79).unwrap_or_else(|error| {
        panic!("this test needs root and iproute2 to create network namespaces: {error}")
    });
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("swarm.key");
    write_swarm_key(&key, 0x6d);
    let a = Node::builder(dir.path().join("a"))
        .namespace(lab.namespace(1))
        .swarm_key(&key)
        .room("lab")
        .listen("/ip4/0.0.0.0/tcp/0")
        .http(&format!("{}:0", lab.address(1)))
        .start();
    a.post_reading("desk", "lab", 21.0);
    let viewer_token = a.cli(&["viewer-token"], None).trim().to_owned();

    let mut browser = Browser::start(1280, 900);
    browser.navigate(&a.url());
    browser.wait(
        "the node sends the browser to its sign-in page",
        DEADLINE,
        "location.pathname === '/signin' && !!document.getElementById('token')",
    );
    browser.type_into("#token", "not-the-token-at-all");
    browser.click("button[type=submit]");
    browser.wait(
        "the sign-in page refuses the wrong token",
        DEADLINE,
        "(document.querySelector('.problem')?.textContent ?? '').includes('not right')",
    );
    browser.type_into("#token", &viewer_token);
    browser.click("button[type=submit]");
    browser.wait(
        "signed in, the dashboard",
        DEADLINE,
        "location.pathname === '/' && !!document.getElementById('live')",
    );
    wait_rendered(&mut browser);
    let shown = browser.eval(&card_text("lab", "td.value")).unwrap();
    assert!(
        shown.as_str().is_some_and(|text| text.contains("21")),
        "the viewer does not see the reading: {shown}"
    );

    // A viewer changes nothing: the page asks for the write token, and the viewer token,
    // given there, is refused.
    browser.type_into(
        &format!("{} .set-target input[name=value]", card("lab")),
        "19",
    );
    browser.click(&format!("{} .set-target button[type=submit]", card("lab")));
    browser.wait(
        "the page asks for the write token",
        DEADLINE,
        "document.getElementById('token-dialog').open",
    );
    browser.type_into("#token-dialog input[name=token]", &viewer_token);
    browser.click("#token-dialog button[value=ok]");
    browser.wait(
        "the page says the viewer token only looks",
        DEADLINE,
        "document.getElementById('token-dialog').open && document.getElementById('token-reason').textContent.includes('only lets you look')",
    );
    browser.click("#token-dialog button[value=cancel]");
    assert_eq!(
        target(&a, "lab", "temperature"),
        None,
        "a viewer set a target"
    );
    browser.assert_no_errors("signing in from another host and looking");
}
