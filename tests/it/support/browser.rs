//! A real headless Chromium driven over the Chrome DevTools protocol: navigate, run script
//! in the page, click and type as a person does (input events at an element's place), take
//! screenshots, and collect every error the page reports (exceptions, `console.error`, and
//! the browser's own log, such as a failed request).
//!
//! The protocol is JSON over a WebSocket, one page target, commands answered by id; events
//! arriving meanwhile are read on the way and kept. So no WebDriver server is needed, only
//! Debian's `chromium`. Self-contained (no other support module), because the dashboard
//! benchmark includes this file too.

use std::{
    io::{BufRead as _, BufReader, Read as _, Write as _},
    net::TcpStream,
    os::unix::process::CommandExt as _,
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::{Value, json};
use tungstenite::{Message, WebSocket};

/// The flags Chromium needs on this machine (a container, as root, with no GPU) and those
/// that keep it from calling home.
const FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-extensions",
    "--remote-debugging-port=0",
];

/// How long one protocol command may take before the test gives up on the browser.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// How often a condition in the page is asked again.
const POLL_INTERVAL: Duration = Duration::from_millis(25);

/// Where Debian installs Chromium.
const CHROMIUM_PATHS: &[&str] = &["/usr/bin/chromium", "/usr/bin/chromium-browser"];

/// One error the page or the browser reported.
#[derive(Debug, Clone)]
pub struct PageError {
    /// `exception`, `console`, or the browser log's source (`network`, `security`, ...).
    pub source: String,
    pub text: String,
}

/// A running Chromium with one page, killed (with its helper processes) when dropped.
pub struct Browser {
    child: Child,
    socket: WebSocket<TcpStream>,
    next_id: u64,
    errors: Vec<PageError>,
    _profile: tempfile::TempDir,
}

/// The Chromium binary, or a panic that says what is missing and how to get it.
fn chromium() -> &'static str {
    CHROMIUM_PATHS
        .iter()
        .copied()
        .find(|path| Path::new(path).exists())
        .unwrap_or_else(|| {
            panic!(
                "chromium is missing (looked for {CHROMIUM_PATHS:?}): the dashboard's browser \
                 tests need Debian's `chromium` package; scripts/test installs it when run as root"
            )
        })
}

impl Browser {
    /// Starts Chromium with a fresh profile and a window of `width` x `height` CSS pixels.
    pub fn start(width: u32, height: u32) -> Browser {
        let profile = tempfile::tempdir().expect("a temporary profile directory");
        let mut child = Command::new(chromium())
            .args(FLAGS)
            .arg(format!("--window-size={width},{height}"))
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            // Its own process group, so that dropping the browser ends its helpers too.
            .process_group(0)
            .spawn()
            .expect("chromium starts");
        let stderr = child.stderr.take().expect("stderr is piped");
        let (found, receive) = std::sync::mpsc::sync_channel(1);
        // Chromium says where its protocol listens on standard error; the rest of what it
        // writes there is read and dropped, so that it never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut sent = false;
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if !sent && let Some((_, url)) = line.split_once("DevTools listening on ") {
                    let _ = found.send(url.trim().to_owned());
                    sent = true;
                }
            }
        });
        let browser_url = match receive.recv_timeout(COMMAND_TIMEOUT) {
            Ok(url) => url,
            Err(_) => {
                let _ = child.kill();
                panic!("chromium did not open its DevTools port within {COMMAND_TIMEOUT:?}")
            }
        };
        let host = browser_url
            .strip_prefix("ws://")
            .and_then(|rest| rest.split('/').next())
            .expect("a ws:// URL")
            .to_owned();
        let page_url = page_target(&host);
        let stream = TcpStream::connect(&host).expect("the DevTools port answers");
        stream
            .set_read_timeout(Some(COMMAND_TIMEOUT))
            .expect("a read timeout");
        let (socket, _) = tungstenite::client(page_url.as_str(), stream)
            .unwrap_or_else(|error| panic!("cannot open the page's DevTools socket: {error}"));
        let mut browser = Browser {
            child,
            socket,
            next_id: 0,
            errors: Vec::new(),
            _profile: profile,
        };
        browser.command("Runtime.enable", json!({}));
        browser.command("Log.enable", json!({}));
        browser.command("Page.enable", json!({}));
        browser
    }

    /// Sends one command and returns its result, keeping the events that arrive first.
    pub fn command(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let message = json!({"id": id, "method": method, "params": params}).to_string();
        self.socket
            .send(Message::text(message))
            .unwrap_or_else(|error| panic!("{method}: cannot send: {error}"));
        loop {
            let message = self
                .socket
                .read()
                .unwrap_or_else(|error| panic!("{method}: no answer from chromium: {error}"));
            let Message::Text(text) = message else {
                continue;
            };
            let value: Value = serde_json::from_str(text.as_str()).expect("the protocol is JSON");
            if value["id"].as_u64() == Some(id) {
                if let Some(error) = value.get("error") {
                    panic!("{method} failed: {error}");
                }
                return value["result"].clone();
            }
            self.event(&value);
        }
    }

    /// Reads events until one named `method` arrives; the events read, that one last.
    #[allow(dead_code)] // used by the dashboard benchmark's profile
    pub fn events_until(&mut self, method: &str) -> Vec<Value> {
        let mut events = Vec::new();
        loop {
            let message = self
                .socket
                .read()
                .unwrap_or_else(|error| panic!("waiting for {method}: {error}"));
            let Message::Text(text) = message else {
                continue;
            };
            let value: Value = serde_json::from_str(text.as_str()).expect("the protocol is JSON");
            self.event(&value);
            let done = value["method"].as_str() == Some(method);
            events.push(value);
            if done {
                return events;
            }
        }
    }

    /// Keeps what an event says about errors.
    fn event(&mut self, event: &Value) {
        let params = &event["params"];
        match event["method"].as_str() {
            Some("Runtime.exceptionThrown") => {
                let details = &params["exceptionDetails"];
                let text = details["exception"]["description"]
                    .as_str()
                    .or(details["text"].as_str())
                    .unwrap_or("an exception");
                self.errors.push(PageError {
                    source: "exception".into(),
                    text: format!("{text} at {}:{}", details["url"], details["lineNumber"]),
                });
            }
            Some("Runtime.consoleAPICalled")
                if matches!(params["type"].as_str(), Some("error" | "assert")) =>
            {
                let text: Vec<String> = params["args"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|arg| {
                        arg["value"]
                            .as_str()
                            .map(str::to_owned)
                            .or_else(|| arg["description"].as_str().map(str::to_owned))
                            .unwrap_or_else(|| arg.to_string())
                    })
                    .collect();
                self.errors.push(PageError {
                    source: "console".into(),
                    text: text.join(" "),
                });
            }
            Some("Log.entryAdded") if params["entry"]["level"] == "error" => {
                let entry = &params["entry"];
                self.errors.push(PageError {
                    source: entry["source"].as_str().unwrap_or("log").to_owned(),
                    text: format!(
                        "{} ({})",
                        entry["text"].as_str().unwrap_or(""),
                        entry["url"].as_str().unwrap_or("")
                    ),
                });
            }
            _ => {}
        }
    }

    /// Opens `url` in the page.
    pub fn navigate(&mut self, url: &str) {
        let result = self.command("Page.navigate", json!({"url": url}));
        if let Some(error) = result["errorText"].as_str() {
            panic!("cannot open {url}: {error}");
        }
    }

    /// Runs `expression` in the page (awaiting it if it is a promise); its value as JSON, or
    /// the exception it threw.
    pub fn eval(&mut self, expression: &str) -> Result<Value, String> {
        let result = self.command(
            "Runtime.evaluate",
            json!({"expression": expression, "returnByValue": true, "awaitPromise": true}),
        );
        if let Some(details) = result.get("exceptionDetails") {
            return Err(details["exception"]["description"]
                .as_str()
                .or(details["text"].as_str())
                .unwrap_or("an exception")
                .to_owned());
        }
        Ok(result["result"]["value"].clone())
    }

    /// Asks `expression` in the page until it gives something other than `null`, `false`,
    /// `""` or `undefined`, for at most `limit`; its value, or a panic naming `what` and
    /// the last thing seen.
    pub fn wait(&mut self, what: &str, limit: Duration, expression: &str) -> Value {
        let deadline = Instant::now() + limit;
        loop {
            let seen = self.eval(expression);
            match &seen {
                Ok(value)
                    if !(value.is_null()
                        || *value == Value::Bool(false)
                        || *value == Value::String(String::new())) =>
                {
                    return value.clone();
                }
                _ if Instant::now() >= deadline => {
                    panic!(
                        "timed out after {limit:?} waiting in the page for: {what}; last saw: {seen:?}; page errors: {:?}",
                        self.errors
                    )
                }
                _ => std::thread::sleep(POLL_INTERVAL),
            }
        }
    }

    /// The centre of the first element matching `selector`, scrolled into view.
    fn centre(&mut self, selector: &str) -> (f64, f64) {
        let expression = format!(
            "(() => {{ const e = document.querySelector({selector:?}); if (!e) return null; \
             e.scrollIntoView({{block: 'center'}}); const r = e.getBoundingClientRect(); \
             return (r.width && r.height) ? [r.x + r.width / 2, r.y + r.height / 2] : null; }})()"
        );
        let value = self.wait(
            &format!("a visible {selector}"),
            Duration::from_secs(10),
            &expression,
        );
        (
            value[0].as_f64().expect("a number"),
            value[1].as_f64().expect("a number"),
        )
    }

    /// Clicks the first element matching `selector` with the mouse, as a person would.
    pub fn click(&mut self, selector: &str) {
        let (x, y) = self.centre(selector);
        for kind in ["mouseMoved", "mousePressed", "mouseReleased"] {
            self.command(
                "Input.dispatchMouseEvent",
                json!({"type": kind, "x": x, "y": y, "button": "left", "clickCount": 1}),
            );
        }
    }

    /// Clicks into the field matching `selector`, selects what it holds and types `text`.
    pub fn type_into(&mut self, selector: &str, text: &str) {
        self.click(selector);
        self.eval(&format!("document.querySelector({selector:?}).select?.()"))
            .expect("the field takes a selection");
        self.command("Input.insertText", json!({"text": text}));
    }

    /// A PNG of the page as the window shows it.
    pub fn screenshot(&mut self) -> Vec<u8> {
        let result = self.command("Page.captureScreenshot", json!({"format": "png"}));
        decode_base64(result["data"].as_str().expect("screenshot data"))
    }

    /// Every error reported since the last call, read up to now.
    pub fn take_errors(&mut self) -> Vec<PageError> {
        // A round trip, so the events sent before it are read.
        self.command("Runtime.evaluate", json!({"expression": "0"}));
        std::mem::take(&mut self.errors)
    }

    /// Panics if the page or the browser reported an error since [`Browser::take_errors`].
    pub fn assert_no_errors(&mut self, during: &str) {
        let errors = self.take_errors();
        assert!(
            errors.is_empty(),
            "errors in the browser console during {during}: {errors:#?}"
        );
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // The whole process group: the browser and the helpers it started.
        // SAFETY: kill(2) with a negative id signals exactly the group this test started.
        unsafe {
            libc::kill(-(self.child.id() as i32), libc::SIGKILL);
        }
        let _ = self.child.wait();
    }
}

/// The WebSocket URL of the page Chromium opened, from its `/json/list`.
fn page_target(host: &str) -> String {
    let deadline = Instant::now() + COMMAND_TIMEOUT;
    loop {
        let mut stream = TcpStream::connect(host).expect("the DevTools port answers");
        write!(
            stream,
            "GET /json/list HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
        )
        .expect("the request is sent");
        stream
            .set_read_timeout(Some(COMMAND_TIMEOUT))
            .expect("a read timeout");
        // Chromium keeps the connection open whatever the request says: read the head, then
        // exactly the body it announces.
        let mut reader = BufReader::new(stream);
        let mut length = 0;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).expect("the answer's head");
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().expect("a length");
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).expect("the answer's body");
        let body = String::from_utf8_lossy(&body);
        let targets: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        let page =
            targets.as_array().into_iter().flatten().find(|target| {
                target["type"] == "page" && target["webSocketDebuggerUrl"].is_string()
            });
        if let Some(page) = page {
            return page["webSocketDebuggerUrl"].as_str().unwrap().to_owned();
        }
        assert!(
            Instant::now() < deadline,
            "chromium lists no page target: {body}"
        );
        std::thread::sleep(POLL_INTERVAL);
    }
}

fn decode_base64(text: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut bytes = Vec::with_capacity(text.len() * 3 / 4);
    let mut buffer = 0u32;
    let mut bits = 0;
    for c in text.bytes().filter(|&c| c != b'=') {
        let value = ALPHABET
            .iter()
            .position(|&a| a == c)
            .expect("base64 from chromium") as u32;
        buffer = (buffer << 6) | value;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            bytes.push((buffer >> bits) as u8);
            buffer &= (1 << bits) - 1;
        }
    }
    bytes
}
