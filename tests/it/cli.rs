//! `officemesh ask` as a user runs it: the real binary against a real node on loopback with
//! no `USER` in its environment and no token given, against a running `officemesh demo` with the command the
//! demo prints, and with the errors a wrong address or token gives; `invite` through the
//! same client.

use std::{
    io::{BufRead as _, BufReader, Read as _},
    path::Path,
    process::{Child, Command, Output, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use crate::support::{
    node::{Node, TOKEN},
    unused_port, wait_for,
};

/// How long the demo may take to print its nodes.
const DEMO_START_DEADLINE: Duration = Duration::from_secs(60);

/// Lines of the demo's output waiting to be read by the test; it prints about ten.
const DEMO_LINES_CAPACITY: usize = 64;

/// `officemesh` with `args`, in an environment without `USER`, `LOGNAME` or a token, and
/// with `HOME` and the runtime dir in `home`, so that nothing of this machine's user leaks in.
fn officemesh(home: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_officemesh"));
    command
        .args(args)
        .env_remove("USER")
        .env_remove("LOGNAME")
        .env_remove("OFFICEMESH_API_TOKEN")
        .env_remove("XDG_DATA_HOME")
        .env("HOME", home)
        .env("XDG_RUNTIME_DIR", home.join("run"))
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null());
    command
}

fn run(mut command: Command) -> Output {
    command.output().expect("the officemesh binary runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The reply of a successful `ask`, else an error with what it printed.
fn reply(output: &Output) -> Result<String, String> {
    if output.status.success() {
        Ok(stdout(output))
    } else {
        Err(format!("{}: {}", output.status, stderr(output)))
    }
}

#[test]
fn ask_answers_where_user_is_unset_invites_and_names_a_wrong_token() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    std::fs::create_dir(&home).unwrap();
    // The node's data dir is not where `ask` looks by default; it runs as the same user.
    let node = Node::builder(dir.path().join("kitchen"))
        .room("kitchen")
        .env("XDG_RUNTIME_DIR", home.join("run"))
        .start();
    node.post_reading("desk-k", "kitchen", 21.5);
    let url = node.url();

    // The node left its token for the commands of this machine: no --token needed.
    let output = run(officemesh(
        &home,
        &["ask", "--node", &url, "kitchen", "temp"],
    ));
    let answer = reply(&output).unwrap();
    assert!(answer.starts_with("kitchen temp is 21.5°C ("), "{answer:?}");

    // A question whose answer is the same for anyone needs no name (and --token wins).
    let output = run(officemesh(
        &home,
        &["ask", "--node", &url, "--token", TOKEN, "kitchen", "temp"],
    ));
    let answer = reply(&output).unwrap();
    assert!(answer.starts_with("kitchen temp is 21.5°C ("), "{answer:?}");

    // A phrase about the speaker takes the login name of the user id, as `id -un` finds it.
    let login = Command::new("id").arg("-un").output().expect("id runs");
    assert!(login.status.success(), "this user id has no name");
    let login = stdout(&login).trim().to_owned();
    let output = run(officemesh(
        &home,
        &["ask", "--node", &url, "--token", TOKEN, "forget", "me"],
    ));
    assert_eq!(
        reply(&output).unwrap(),
        format!("I didn't know any device of yours, {login}\n")
    );

    // `invite` reads its answer through the same client.
    let output = run(officemesh(
        &home,
        &["invite", "--node", &url, "--token", TOKEN],
    ));
    let join = reply(&output).unwrap();
    assert!(
        join.starts_with("om1-") && join.lines().count() == 1,
        "{join:?}"
    );

    // A wrong token is named as such, with where it came from and what to give instead.
    let output = run(officemesh(
        &home,
        &[
            "ask",
            "--node",
            &url,
            "--token",
            "not-the-token-of-this-node",
            "status",
        ],
    ));
    assert!(!output.status.success());
    let error = stderr(&output);
    assert!(
        error.contains(&format!("the node at {url}/api/ask refused the API token"))
            && error.contains("wrong bearer token")
            && error.contains("the token came from --token")
            && error.contains("--data-dir"),
        "{error}"
    );
}

#[test]
fn ask_names_the_address_where_no_node_runs() {
    let home = tempfile::tempdir().unwrap();
    // Bound and released: nothing listens there during the test.
    let url = format!("http://127.0.0.1:{}", unused_port());
    let output = run(officemesh(
        home.path(),
        &["ask", "--node", &url, "--token", TOKEN, "kitchen", "temp"],
    ));
    assert!(!output.status.success());
    let error = stderr(&output);
    assert!(
        error.contains(&format!("cannot reach the node at {url}/: is it running?")),
        "{error}"
    );
}

/// A running `officemesh demo`, stopped (SIGKILL) if the test fails before it stops it.
pub(crate) struct Demo {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Demo {
    pub(crate) fn start(home: &Path, nodes: u16, http_port: u16) -> Demo {
        let mut command = officemesh(
            home,
            &[
                "demo",
                "--nodes",
                &nodes.to_string(),
                "--http-port",
                &http_port.to_string(),
            ],
        );
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the demo starts");
        let (sender, lines) = mpsc::sync_channel(DEMO_LINES_CAPACITY);
        let (stdout, stderr) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
        // The demo's warnings come with its lines, so a failure shows why.
        let warnings = sender.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = sender.send(line);
            }
        });
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = BufReader::new(stderr).read_to_string(&mut text);
            if !text.is_empty() {
                let _ = warnings.send(format!("stderr: {text}"));
            }
        });
        Demo {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// The first line of the demo's output that starts with `prefix`.
    pub(crate) fn line_starting(&mut self, prefix: &str) -> String {
        let deadline = Instant::now() + DEMO_START_DEADLINE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.starts_with(prefix) => return line,
                Ok(line) => self.seen.push(line),
                Err(error) => panic!(
                    "the demo printed no line starting with {prefix:?} ({error}); it printed:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// SIGTERM, and waits for a clean exit.
    pub(crate) fn stop(&mut self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
        let exit = self.child.wait().expect("reaped");
        assert!(exit.success(), "the demo did not stop cleanly: {exit}");
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `http://...` address in a line the demo prints for one of its nodes.
pub(crate) fn http_url(line: &str) -> String {
    line.split_whitespace()
        .find(|word| word.starts_with("http://"))
        .unwrap_or_else(|| panic!("no http:// address in {line:?}"))
        .to_owned()
}

/// The arguments of a printed `officemesh ask ... "question"` command, as a shell splits it.
fn printed_args(command: &str) -> Vec<String> {
    let (flags, quoted) = command
        .split_once('"')
        .unwrap_or_else(|| panic!("no quoted question in {command:?}"));
    let mut args: Vec<String> = flags.split_whitespace().map(str::to_owned).collect();
    args.push(
        quoted
            .strip_suffix('"')
            .unwrap_or_else(|| panic!("{command:?} does not end its question"))
            .to_owned(),
    );
    args
}

#[test]
fn ask_answers_from_a_running_demo_with_the_command_it_prints() {
    let home = tempfile::tempdir().unwrap();
    // Port 0: every node of the demo takes a free port, and the demo prints them.
    let mut demo = Demo::start(home.path(), 2, 0);
    let node = http_url(&demo.line_starting("  "));
    let second = http_url(&demo.line_starting("  "));

    // The demo prints the command to ask it; it needs no token.
    let line = demo.line_starting("ask it: ");
    let command = line.strip_prefix("ask it: officemesh ").unwrap();
    let args = printed_args(command);
    assert!(!args.iter().any(|arg| arg == "--token"), "{line}");
    assert_eq!(args[..3], ["ask", "--node", node.as_str()], "{line}");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let output = run(officemesh(home.path(), &args));
    let answer = reply(&output).unwrap();
    assert!(answer.starts_with("Well, I "), "{answer:?}");

    // Every node of the demo takes its token, and they form one office.
    wait_for("the demo's second node sees both", || {
        let output = run(officemesh(
            home.path(),
            &["ask", "--node", &second, "status"],
        ));
        let answer = reply(&output)?;
        match answer.starts_with("2 nodes up: ") {
            true => Ok(()),
            false => Err(answer),
        }
    });

    // Stopped cleanly, the demo takes its token files with it.
    demo.stop();
    let left: Vec<_> = std::fs::read_dir(home.path().join("run/officemesh"))
        .expect("the demo made its token dir")
        .map(|entry| entry.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "the demo left {left:?}");
}
