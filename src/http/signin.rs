//! The sign-in page: a token in, a session cookie out (module [`super::access`]).
//!
//! `GET /signin?next=/path` shows a form; `POST /signin` with `token` (and `next`) checks the
//! token, counts a wrong one against the caller's address (the form again, saying so; a 401
//! to a caller that accepts JSON), and on success sets the session cookie and sends the
//! browser on to `next`. `POST /signout` clears the cookie. The page is
//! one self-contained document (no script, inline style), so it works before anything else
//! may be loaded.

use std::{net::SocketAddr, sync::Arc, time::Instant};

use axum::{
    Form,
    extract::{ConnectInfo, Query, State},
    http::{HeaderMap, StatusCode, header},
    response::{Html, IntoResponse, Redirect, Response},
};
use serde::Deserialize;
use tracing::{info, warn};

use super::{Api, access};
use crate::office::physical_ms;

/// `GET /signin`'s query.
#[derive(Deserialize, Default)]
pub struct Next {
    #[serde(default)]
    next: String,
}

/// `POST /signin`'s form.
#[derive(Deserialize)]
pub struct SignIn {
    #[serde(default)]
    token: String,
    #[serde(default)]
    next: String,
}

pub async fn page(Query(query): Query<Next>) -> Html<String> {
    Html(render(&safe_next(&query.next), None))
}

pub async fn sign_in(
    State(api): State<Arc<Api>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<SignIn>,
) -> Response {
    let next = safe_next(&form.next);
    if !access::same_origin(&headers) {
        let page = render(
            &next,
            Some(
                "This sign-in did not come from this node's own page. Open the page again and sign in there.",
            ),
        );
        return (StatusCode::FORBIDDEN, Html(page)).into_response();
    }
    let now = Instant::now();
    if let Err(wait) = api.access.may_sign_in(peer.ip(), now) {
        let seconds = wait.as_secs().max(1);
        let page = render(
            &next,
            Some(&format!(
                "Too many wrong tokens from this address. Try again in {seconds} s."
            )),
        );
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, seconds.to_string())],
            Html(page),
        )
            .into_response();
    }
    match api.access.role_of_token(form.token.trim()) {
        Some(role) => {
            info!(peer = %peer.ip(), role = role.as_str(), "signed in on the dashboard");
            let value = api.access.issue_session(role, physical_ms());
            (
                [(
                    header::SET_COOKIE,
                    access::set_cookie(&value, api.access.session_lifetime()),
                )],
                Redirect::to(&next),
            )
                .into_response()
        }
        None => {
            api.access.failed_sign_in(peer.ip(), now);
            warn!(peer = %peer.ip(), "a wrong token on the sign-in page");
            if wants_json(&headers) {
                return super::ApiError {
                    status: StatusCode::UNAUTHORIZED,
                    message: "that token is not right".into(),
                }
                .into_response();
            }
            // The form again, saying what went wrong: a page a person reads, not an error
            // for the browser to log.
            Html(render(&next, Some("That token is not right."))).into_response()
        }
    }
}

pub async fn sign_out() -> Response {
    (
        [(
            header::SET_COOKIE,
            access::set_cookie("", std::time::Duration::ZERO),
        )],
        Redirect::to("/signin"),
    )
        .into_response()
}

/// Whether the caller is a script that asked for JSON (the dashboard's own sign-in from its
/// dialog) rather than a person at the form.
fn wants_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|accept| accept.to_str().ok())
        .is_some_and(|accept| accept.contains("application/json"))
}

/// Where to go after signing in: a path on this server, never another site (`//host` or a
/// scheme would leave it).
fn safe_next(next: &str) -> String {
    if next.starts_with('/') && !next.starts_with("//") && !next.contains('\\') {
        next.to_owned()
    } else {
        "/".to_owned()
    }
}

/// `next` as a query value: what is not a URL-safe character is percent-encoded.
pub fn encode_next(next: &str) -> String {
    next.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                char::from(byte).to_string()
            }
            _ => format!("%{byte:02X}"),
        })
        .collect()
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

fn render(next: &str, problem: Option<&str>) -> String {
    let problem = problem.map_or_else(String::new, |problem| {
        format!(r#"<p class="problem" role="alert">{}</p>"#, escape(problem))
    });
    format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sign in · officemesh</title>
<link rel="icon" href="data:,">
<style>
body {{ font: 17px/1.5 system-ui, sans-serif; background: #14171c; color: #eef1f5; margin: 0;
  display: grid; place-items: center; min-height: 100vh; }}
main {{ width: min(26rem, 90vw); }}
h1 {{ font-size: 1.5rem; margin: 0 0 .5rem; }}
label {{ display: block; margin: 1rem 0 .25rem; }}
input {{ width: 100%; box-sizing: border-box; font: inherit; padding: .6rem; border-radius: .4rem;
  border: 1px solid #8a94a3; background: #0b0d10; color: inherit; }}
button {{ margin-top: 1rem; font: inherit; padding: .6rem 1.2rem; border: 0; border-radius: .4rem;
  background: #7cc4ff; color: #0b0d10; cursor: pointer; }}
input:focus, button:focus {{ outline: 3px solid #ffd166; outline-offset: 2px; }}
.problem {{ background: #5c1f24; border-radius: .4rem; padding: .5rem .8rem; }}
.hint {{ color: #b8c0cc; font-size: .9rem; }}
</style>
</head>
<body>
<main>
<h1>officemesh</h1>
<p>Who is in the office is personal data: sign in to see it.</p>
{problem}
<form method="post" action="/signin">
<input type="hidden" name="next" value="{next}">
<label for="token">Token</label>
<input id="token" name="token" type="password" autocomplete="current-password" required autofocus>
<button type="submit">Sign in</button>
</form>
<p class="hint">The viewer token shows the office (<code>officemesh viewer-token</code> on a node);
the write token (<code>&lt;data-dir&gt;/api-token</code>) also changes targets and bindings.</p>
</main>
</body>
</html>
"#,
        next = escape(next),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_stays_on_this_server() {
        assert_eq!(safe_next("/?wall"), "/?wall");
        assert_eq!(safe_next("//evil.example/"), "/");
        assert_eq!(safe_next("https://evil.example/"), "/");
        assert_eq!(safe_next("/\\evil.example"), "/");
        assert_eq!(safe_next(""), "/");
    }

    #[test]
    fn the_page_escapes_what_it_echoes() {
        let page = render("/\"><script>", Some("<b>"));
        assert!(!page.contains("<script>"), "{page}");
        assert!(page.contains("&lt;b&gt;"));
        assert_eq!(encode_next("/?wall&x=1"), "/%3Fwall%26x%3D1");
    }
}
