//! The replication core does no I/O: no async runtime, network, database, files, threads,
//! environment, wall clock, unseeded randomness or printing. Every `.rs` file under
//! `src/state/` is scanned, comments left out, for the names that would bring one in.

use std::path::{Path, PathBuf};

/// What the core must not mention, and why.
const FORBIDDEN: &[(&str, &str)] = &[
    ("tokio", "an async runtime"),
    ("libp2p", "the network"),
    ("axum", "HTTP"),
    ("rusqlite", "the database"),
    ("sqlx", "the database"),
    ("async fn", "async code"),
    (".await", "async code"),
    ("SystemTime", "the wall clock"),
    ("Instant", "the monotonic clock"),
    ("std::time", "the clock"),
    ("time::", "the clock"),
    ("std::fs", "files"),
    ("fs::", "files"),
    ("File", "files"),
    ("TcpStream", "sockets"),
    ("TcpListener", "sockets"),
    ("UdpSocket", "sockets"),
    ("std::thread", "threads"),
    ("thread::", "threads"),
    ("std::env", "the environment"),
    ("env::", "the environment"),
    ("std::process", "processes"),
    ("thread_rng", "unseeded randomness"),
    ("rand::", "randomness"),
    ("getrandom", "unseeded randomness"),
    ("println!", "printing"),
    ("eprintln!", "printing"),
    ("print!", "printing"),
    ("eprint!", "printing"),
    ("dbg!", "printing"),
    ("stdout", "printing"),
    ("stderr", "printing"),
    ("stdin", "reading the terminal"),
];

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Whether `code` mentions `pattern` as a whole: a pattern that starts (ends) with a name
/// character must not be preceded (followed) by one, so `Instant` does not match
/// `Instantiate` and `fs::` does not match `refs::`.
fn mentions(code: &str, pattern: &str) -> bool {
    code.match_indices(pattern).any(|(start, _)| {
        let end = start + pattern.len();
        let before_ok = !pattern.starts_with(is_ident)
            || !code[..start].chars().next_back().is_some_and(is_ident);
        let after_ok =
            !pattern.ends_with(is_ident) || !code[end..].chars().next().is_some_and(is_ident);
        before_ok && after_ok
    })
}

/// The code of each line of `source`, comments blanked out. Knows line comments, nested
/// block comments, string literals (also raw ones), and character literals apart from
/// lifetimes, so that `"//"` in a string or `'"'` does not start or end anything.
fn code_lines(source: &str) -> Vec<String> {
    let chars: Vec<char> = source.chars().collect();
    let mut code = String::with_capacity(source.len());
    let mut index = 0;
    let mut block_depth = 0;
    while index < chars.len() {
        let c = chars[index];
        let next = chars.get(index + 1).copied();
        if block_depth > 0 {
            match (c, next) {
                ('*', Some('/')) => {
                    block_depth -= 1;
                    index += 2;
                }
                ('/', Some('*')) => {
                    block_depth += 1;
                    index += 2;
                }
                _ => {
                    // Keep the line structure.
                    code.push(if c == '\n' { '\n' } else { ' ' });
                    index += 1;
                }
            }
            continue;
        }
        match (c, next) {
            ('/', Some('/')) => {
                while index < chars.len() && chars[index] != '\n' {
                    index += 1;
                }
            }
            ('/', Some('*')) => {
                block_depth = 1;
                index += 2;
            }
            ('"', _) => {
                code.push(c);
                index += 1;
                while index < chars.len() && chars[index] != '"' {
                    if chars[index] == '\\' {
                        code.push(chars[index]);
                        index += 1;
                    }
                    if let Some(&inner) = chars.get(index) {
                        code.push(inner);
                    }
                    index += 1;
                }
                if index < chars.len() {
                    code.push('"');
                    index += 1;
                }
            }
            ('r', Some('"' | '#'))
                if !code.chars().next_back().is_some_and(is_ident)
                    && raw_string_end(&chars, index).is_some() =>
            {
                let end = raw_string_end(&chars, index).unwrap();
                code.extend(&chars[index..end]);
                index = end;
            }
            ('\'', _) => {
                // A character literal is 'x' or '\...'; anything else is a lifetime.
                let literal_end = match next {
                    Some('\\') => (index + 2..chars.len())
                        .find(|&i| chars[i] == '\'' && i > index + 2)
                        .map(|i| i + 1),
                    Some(_) if chars.get(index + 2) == Some(&'\'') => Some(index + 3),
                    _ => None,
                };
                let end = literal_end.unwrap_or(index + 1);
                code.extend(&chars[index..end]);
                index = end;
            }
            _ => {
                code.push(c);
                index += 1;
            }
        }
    }
    code.split('\n').map(str::to_owned).collect()
}

/// Where the raw string starting at `start` (`r"..."`, `r#"..."#`, ...) ends, if it is one.
fn raw_string_end(chars: &[char], start: usize) -> Option<usize> {
    let hashes = chars[start + 1..].iter().take_while(|&&c| c == '#').count();
    let open = start + 1 + hashes;
    if chars.get(open) != Some(&'"') {
        return None;
    }
    let closing: Vec<char> = std::iter::once('"')
        .chain(std::iter::repeat_n('#', hashes))
        .collect();
    (open + 1..chars.len())
        .find(|&i| chars[i..].starts_with(&closing))
        .map(|i| i + closing.len())
}

/// Every forbidden mention in `source`, as "line N: `pattern` (reason): the line".
fn violations(source: &str) -> Vec<String> {
    let mut found = Vec::new();
    for (number, line) in code_lines(source).iter().enumerate() {
        for &(pattern, reason) in FORBIDDEN {
            if mentions(line, pattern) {
                found.push(format!(
                    "line {}: `{pattern}` ({reason}): {}",
                    number + 1,
                    line.trim()
                ));
            }
        }
    }
    found
}

fn rust_files(dir: &Path, files: &mut Vec<PathBuf>) {
    let entries =
        std::fs::read_dir(dir).unwrap_or_else(|error| panic!("{}: {error}", dir.display()));
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, files);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            files.push(path);
        }
    }
}

#[test]
fn the_state_core_does_no_io() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/state");
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    files.sort();
    assert!(
        files.iter().any(|file| file.ends_with("mod.rs")) && files.len() >= 5,
        "found only {files:?} under {}",
        root.display()
    );
    let mut found = Vec::new();
    for file in &files {
        let source = std::fs::read_to_string(file).unwrap();
        // The scanner must see the code, not mistake it for a comment.
        let code = code_lines(&source).concat();
        assert!(
            code.contains("fn ") && code.len() * 4 > source.len(),
            "{}: the scanner sees only {} of {} bytes as code",
            file.display(),
            code.len(),
            source.len()
        );
        for violation in violations(&source) {
            found.push(format!("{}: {violation}", file.display()));
        }
    }
    assert!(
        found.is_empty(),
        "src/state/ must do no I/O:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_bot_reply_does_no_io() {
    // The bot's answers are a pure function of the state, like the core: the table of
    // cases in src/bot/tests.rs depends on it.
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/bot/reply.rs");
    let source = std::fs::read_to_string(&path).unwrap();
    assert!(source.contains("pub fn reply("), "{} moved", path.display());
    let found = violations(&source);
    assert!(
        found.is_empty(),
        "src/bot/reply.rs must do no I/O:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_alert_rules_do_no_io() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/alerts");
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    assert!(
        files.len() >= 2,
        "found only {files:?} under {}",
        root.display()
    );
    let found: Vec<String> = files
        .iter()
        .flat_map(|file| {
            let source = std::fs::read_to_string(file).unwrap();
            violations(&source)
                .into_iter()
                .map(|violation| format!("{}: {violation}", file.display()))
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(
        found.is_empty(),
        "src/alerts/ must do no I/O:\n{}",
        found.join("\n")
    );
}

/// Checks which lines of `source` the scanner flags, by line number.
fn check(source: &str, flagged_lines: &[usize]) {
    let found: Vec<usize> = violations(source)
        .iter()
        .map(|violation| {
            let number = violation
                .strip_prefix("line ")
                .unwrap()
                .split(':')
                .next()
                .unwrap();
            number.parse().unwrap()
        })
        .collect();
    let mut lines = found.clone();
    lines.dedup();
    assert_eq!(
        lines,
        flagged_lines,
        "scanning {source:?} found {:?}",
        violations(source)
    );
}

#[test]
fn the_scanner_flags_forbidden_code_and_not_comments() {
    check("use tokio::sync::mpsc;", &[1]);
    check("fn f() {}\nlet now = std::time::SystemTime::now();", &[2]);
    check("use std::{collections::BTreeMap, time::Instant};", &[1]);
    check("async fn run() {}", &[1]);
    check("    handle.recv().await", &[1]);
    check("let data = std::fs::read(path)?;", &[1]);
    check("let mut rng = rand::thread_rng();", &[1]);
    check("std::thread::spawn(work);", &[1]);
    check("println!(\"{x}\");", &[1]);
    check("let socket = UdpSocket::bind(address)?;", &[1]);
    check("let home = std::env::var(\"HOME\");", &[1]);
    // Comments are not code.
    check(
        "// tokio is not used here\nlet x = 1; // nor SystemTime",
        &[],
    );
    check(
        "/// Time arrives as arguments: no `std::time`.\nfn f() {}",
        &[],
    );
    check(
        "/* std::thread\n   /* nested: tokio */ still a comment: .await */ let x = 1;",
        &[],
    );
    check(
        "let x = 1; /* println!(\"\") */ let y = 2;\ntokio::spawn(f);",
        &[2],
    );
    // Strings do not hide code, and do not start comments.
    check("let url = \"http://example\"; std::thread::sleep(d);", &[1]);
    check("let s = r#\"a \"quoted\" // text\"#; Instant::now();", &[1]);
    check("let quote = '\"'; let c = '/'; std::env::args();", &[1]);
    check("fn f<'a>(x: &'a str) -> &'a str { x } // println!", &[]);
    // Whole names only.
    check(
        "let instantiated = Instantiate::new(); let prefs::x = 1; Profile::get();",
        &[],
    );
    check("fn time_ms() {} let uptime::x = 1;", &[]);
}

#[test]
fn the_backoff_is_a_foundation_module() {
    // Every layer retries with `src/backoff.rs`, so it must not import any of them back.
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/backoff.rs");
    let source = std::fs::read_to_string(&path).unwrap();
    assert!(
        source.contains("pub struct Backoff"),
        "{} moved",
        path.display()
    );
    // Its unit tests may `use super::*`; the module itself may not reach the crate.
    let module = source.split("#[cfg(test)]").next().unwrap();
    let found: Vec<String> = code_lines(module)
        .iter()
        .enumerate()
        .filter(|(_, line)| {
            ["crate::", "super::", "officemesh::"]
                .iter()
                .any(|p| line.contains(p))
        })
        .map(|(number, line)| format!("line {}: {}", number + 1, line.trim()))
        .collect();
    assert!(
        found.is_empty(),
        "src/backoff.rs must import nothing from the crate:\n{}",
        found.join("\n")
    );
}
