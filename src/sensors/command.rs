//! The escape hatch for any sensor: run a program on an interval and take a number from its
//! standard output, either the first word or a field picked by a JSON pointer. The program
//! runs without a shell, is killed when it overruns its timeout, and only the first
//! [`MAX_OUTPUT_BYTES`] of its output are read.

use std::{process::Stdio, time::Duration};

use tokio::io::{AsyncRead, AsyncReadExt as _};

use super::{Measured, ReadError};
use crate::state::Quantity;

/// The most output read from a command; more is an error (it is not a sensor reading).
pub const MAX_OUTPUT_BYTES: usize = 64 * 1024;

/// The most of a failing command's standard error quoted in the warning.
const MAX_QUOTED_STDERR: usize = 200;

/// A program to run, and how to read its answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Command {
    /// The program and its arguments; no shell.
    pub argv: Vec<String>,
    pub quantity: Quantity,
    /// The unit the program prints in; empty for the quantity's canonical unit.
    pub unit: String,
    /// An RFC 6901 JSON pointer into the output (`/sensor/temperature`); `None`: the output's
    /// first word is the number.
    pub json_pointer: Option<String>,
    pub timeout: Duration,
}

/// Takes the number out of a command's output.
pub fn parse_output(output: &str, json_pointer: Option<&str>) -> Result<f64, String> {
    match json_pointer {
        None => {
            let word = output.split_whitespace().next().unwrap_or("");
            parse_number(word)
        }
        Some(pointer) => {
            let json: serde_json::Value = serde_json::from_str(output)
                .map_err(|error| format!("the output is not JSON: {error}"))?;
            let value = json
                .pointer(pointer)
                .ok_or_else(|| format!("the output has nothing at {pointer}"))?;
            json_number(value).ok_or_else(|| format!("{pointer} is {value}, not a number"))
        }
    }
}

fn parse_number(word: &str) -> Result<f64, String> {
    word.parse::<f64>()
        .ok()
        .filter(|value| value.is_finite())
        .ok_or_else(|| format!("{:?} is not a number", truncated(word, 32)))
}

/// A JSON number, or a string holding one (some devices quote their numbers).
pub fn json_number(value: &serde_json::Value) -> Option<f64> {
    match value {
        serde_json::Value::Number(number) => number.as_f64(),
        serde_json::Value::String(text) => text.trim().parse().ok(),
        _ => None,
    }
    .filter(|value: &f64| value.is_finite())
}

fn truncated(text: &str, max_chars: usize) -> String {
    text.chars().take(max_chars).collect()
}

/// Reads at most `limit` bytes; `Err` if there is more.
async fn read_bounded(mut from: impl AsyncRead + Unpin, limit: usize) -> Result<Vec<u8>, String> {
    let mut bytes = Vec::new();
    (&mut from)
        .take(limit as u64 + 1)
        .read_to_end(&mut bytes)
        .await
        .map_err(|error| format!("cannot read the output: {error}"))?;
    if bytes.len() > limit {
        return Err(format!("printed more than {limit} bytes"));
    }
    Ok(bytes)
}

impl Command {
    /// Runs the program once and returns its reading.
    pub async fn read(&self) -> Result<Measured, ReadError> {
        let failed = |message: String| ReadError::Command {
            program: self.argv[0].clone(),
            message,
        };
        let mut child = tokio::process::Command::new(&self.argv[0])
            .args(&self.argv[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|error| failed(format!("cannot start: {error}")))?;
        let stdout = child.stdout.take().expect("stdout is piped");
        let stderr = child.stderr.take().expect("stderr is piped");
        let run = async {
            // Stops at the first stream that overflows, without waiting for the other.
            let (out, err) = tokio::try_join!(
                read_bounded(stdout, MAX_OUTPUT_BYTES),
                read_bounded(stderr, MAX_OUTPUT_BYTES)
            )?;
            let status = child
                .wait()
                .await
                .map_err(|error| format!("cannot wait for it: {error}"))?;
            Ok::<_, String>((out, err, status))
        };
        // On a timeout or too much output the child is dropped, which kills it.
        let (out, err, status) = tokio::time::timeout(self.timeout, run)
            .await
            .map_err(|_| failed(format!("did not finish within {:?}", self.timeout)))?
            .map_err(failed)?;
        if !status.success() {
            let stderr = String::from_utf8_lossy(&err);
            return Err(failed(format!(
                "exited with {status}: {}",
                truncated(stderr.trim(), MAX_QUOTED_STDERR)
            )));
        }
        let text = String::from_utf8_lossy(&out);
        let value = parse_output(&text, self.json_pointer.as_deref()).map_err(failed)?;
        Ok(Measured {
            quantity: self.quantity,
            value,
            unit: self.unit.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_number_or_a_json_field_is_taken_from_the_output() {
        assert_eq!(parse_output("21.5\n", None), Ok(21.5));
        assert_eq!(parse_output("  -3 °C\n", None), Ok(-3.0));
        assert!(parse_output("", None).unwrap_err().contains("not a number"));
        assert!(parse_output("warm", None).unwrap_err().contains("\"warm\""));
        let json = r#"{"sensor": {"temperature": 22.4, "humidity": "41.0", "ok": true}}"#;
        assert_eq!(parse_output(json, Some("/sensor/temperature")), Ok(22.4));
        assert_eq!(parse_output(json, Some("/sensor/humidity")), Ok(41.0));
        assert!(
            parse_output(json, Some("/sensor/ok"))
                .unwrap_err()
                .contains("not a number")
        );
        assert!(
            parse_output(json, Some("/sensor/co2"))
                .unwrap_err()
                .contains("nothing at /sensor/co2")
        );
        assert!(
            parse_output("21.5", Some("/x"))
                .unwrap_err()
                .contains("nothing at")
        );
        assert!(
            parse_output("<html>", Some("/x"))
                .unwrap_err()
                .contains("not JSON")
        );
    }

    fn shell(script: &str, timeout: Duration) -> Command {
        Command {
            argv: vec!["sh".into(), "-c".into(), script.into()],
            quantity: Quantity::Temperature,
            unit: String::new(),
            json_pointer: None,
            timeout,
        }
    }

    #[tokio::test]
    async fn a_real_program_is_run_and_bounded() {
        let second = Duration::from_secs(5);
        let reading = shell("echo 21.25", second).read().await.unwrap();
        assert_eq!(reading.value, 21.25);
        let error = shell("echo broken >&2; exit 3", second)
            .read()
            .await
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("exit status: 3") && error.contains("broken"),
            "{error}"
        );
        let error = shell("sleep 30", Duration::from_millis(200))
            .read()
            .await
            .unwrap_err()
            .to_string();
        assert!(error.contains("did not finish"), "{error}");
        let error = shell("yes 1", second).read().await.unwrap_err().to_string();
        assert!(error.contains("more than 65536 bytes"), "{error}");
        let missing = Command {
            argv: vec!["/nonexistent/officemesh-sensor".into()],
            ..shell("", second)
        };
        let error = missing.read().await.unwrap_err().to_string();
        assert!(error.contains("cannot start"), "{error}");
    }
}
