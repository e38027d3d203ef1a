//! Who may see and change the office through this node's HTTP server.
//!
//! Who is in the office is personal data, so everything but the sign-in page needs a role:
//! - **viewer**: reads (the dashboard, `GET /api/...`, the SSE stream) and questions to the bot
//!   that change nothing. The viewer token gives it (the wall screen, colleagues); so does any
//!   request from loopback, as reads always were.
//! - **writer**: everything, also writes (readings, targets, what the bot does for "i am" and
//!   "forget me", the join token). Only the write token (the API token) gives it.
//!
//! A request proves a role with `Authorization: Bearer <token>` (API clients, the command
//! line) or with the session cookie the sign-in page sets (browsers). The cookie is not a
//! server-side session: it is the role and an expiry signed with HMAC-SHA256 under a key kept
//! in the data dir, bound to the token that signed in, so it survives a restart of the node
//! and dies with a changed token. Browser writes must also come from this server's own pages
//! (the `Origin` header), beside `SameSite=Strict`; bearer requests are not browsers' and
//! skip that check.

use std::{
    collections::HashMap,
    net::{IpAddr, SocketAddr},
    sync::Mutex,
    time::{Duration, Instant},
};

use axum::http::{HeaderMap, HeaderValue, header};
use hmac::{Hmac, KeyInit as _, Mac as _};
use sha2::{Digest as _, Sha256};

/// The cookie's name.
pub const SESSION_COOKIE: &str = "officemesh_session";

/// Failed sign-ins one address may make per [`SIGN_IN_WINDOW`]; beyond, it waits.
pub const MAX_FAILED_SIGN_INS: u32 = 5;

/// The window failed sign-ins are counted over.
pub const SIGN_IN_WINDOW: Duration = Duration::from_secs(60);

/// Addresses whose failed sign-ins are remembered; past this many the oldest windows are
/// dropped, so a flood from many addresses cannot grow the table without bound.
const MAX_TRACKED_ADDRESSES: usize = 4096;

/// What a caller may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    Viewer,
    Writer,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Writer => "writer",
        }
    }

    fn parse(text: &str) -> Option<Role> {
        match text {
            "viewer" => Some(Role::Viewer),
            "writer" => Some(Role::Writer),
            _ => None,
        }
    }
}

/// How a caller proved its role.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proof {
    /// A bearer token: an API client, not a browser.
    Bearer,
    /// The session cookie of the sign-in page: a browser.
    Session,
    /// None: a request from loopback, which may read.
    Loopback,
    /// None, from elsewhere.
    Nothing,
}

/// Who is calling, as the access check found it; handlers read it from the request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Caller {
    pub role: Option<Role>,
    pub proof: Proof,
    /// When its session ends (ms since the epoch), if it came with one.
    pub session_expires_ms: Option<u64>,
}

/// Why a request was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    /// A bearer token that is neither of the two.
    WrongToken,
}

/// The tokens, the session key and the sign-in limiter of one server.
pub struct Access {
    write_token: String,
    viewer_token: String,
    session_key: [u8; 32],
    session_lifetime: Duration,
    failures: Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

impl Access {
    pub fn new(
        write_token: String,
        viewer_token: String,
        session_key: [u8; 32],
        session_lifetime: Duration,
    ) -> Access {
        Access {
            write_token,
            viewer_token,
            session_key,
            session_lifetime,
            failures: Mutex::new(HashMap::new()),
        }
    }

    pub fn viewer_token(&self) -> &str {
        &self.viewer_token
    }

    pub fn session_lifetime(&self) -> Duration {
        self.session_lifetime
    }

    /// The role `token` gives, compared in constant time with both tokens.
    pub fn role_of_token(&self, token: &str) -> Option<Role> {
        let writer = constant_time_eq(token.as_bytes(), self.write_token.as_bytes());
        let viewer = constant_time_eq(token.as_bytes(), self.viewer_token.as_bytes());
        if writer {
            Some(Role::Writer)
        } else if viewer {
            Some(Role::Viewer)
        } else {
            None
        }
    }

    /// Who sent a request with `headers` from `peer`, at `now_ms`. A bearer token that is
    /// wrong is refused outright rather than read as no token: a client that sends one
    /// expects it to count.
    pub fn caller(
        &self,
        headers: &HeaderMap,
        peer: SocketAddr,
        now_ms: u64,
    ) -> Result<Caller, Refused> {
        let bearer = headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "));
        if let Some(token) = bearer {
            return match self.role_of_token(token.trim()) {
                Some(role) => Ok(Caller {
                    role: Some(role),
                    proof: Proof::Bearer,
                    session_expires_ms: None,
                }),
                None => Err(Refused::WrongToken),
            };
        }
        if let Some((role, expires_ms)) =
            cookie(headers, SESSION_COOKIE).and_then(|value| self.verify_session(value, now_ms))
        {
            return Ok(Caller {
                role: Some(role),
                proof: Proof::Session,
                session_expires_ms: Some(expires_ms),
            });
        }
        Ok(if peer.ip().is_loopback() {
            Caller {
                role: Some(Role::Viewer),
                proof: Proof::Loopback,
                session_expires_ms: None,
            }
        } else {
            Caller {
                role: None,
                proof: Proof::Nothing,
                session_expires_ms: None,
            }
        })
    }

    /// A session cookie's value for `role`, valid for the session lifetime from `now_ms`.
    pub fn issue_session(&self, role: Role, now_ms: u64) -> String {
        let expires_ms = now_ms.saturating_add(self.session_lifetime.as_millis() as u64);
        let claim = format!("{}.{expires_ms}", role.as_str());
        let tag = self.tag(role, &claim).finalize().into_bytes();
        format!("{claim}.{}", hex(&tag))
    }

    /// The role and expiry a session cookie's value proves at `now_ms`, if it is genuine,
    /// unexpired, and signed for the token its role has now.
    fn verify_session(&self, value: &str, now_ms: u64) -> Option<(Role, u64)> {
        let (claim, tag) = value.rsplit_once('.')?;
        let (role, expires_ms) = claim.split_once('.')?;
        let role = Role::parse(role)?;
        let expires_ms: u64 = expires_ms.parse().ok()?;
        if expires_ms <= now_ms {
            return None;
        }
        let tag = unhex(tag)?;
        self.tag(role, claim).verify_slice(&tag).ok()?;
        Some((role, expires_ms))
    }

    /// The MAC of a claim, keyed by the session key and bound to the role's token: a new
    /// token ends every session it opened.
    fn tag(&self, role: Role, claim: &str) -> Hmac<Sha256> {
        let token = match role {
            Role::Writer => &self.write_token,
            Role::Viewer => &self.viewer_token,
        };
        let mut mac = <Hmac<Sha256>>::new_from_slice(&self.session_key)
            .expect("HMAC takes a key of any length");
        mac.update(&Sha256::digest(token.as_bytes()));
        mac.update(claim.as_bytes());
        mac
    }

    /// Whether `peer` may try to sign in at `now`; if not, how long until it may.
    pub fn may_sign_in(&self, peer: IpAddr, now: Instant) -> Result<(), Duration> {
        let failures = self
            .failures
            .lock()
            .expect("never poisoned: no panics inside");
        match failures.get(&peer) {
            Some((since, count))
                if *count >= MAX_FAILED_SIGN_INS && now < *since + SIGN_IN_WINDOW =>
            {
                Err(*since + SIGN_IN_WINDOW - now)
            }
            _ => Ok(()),
        }
    }

    /// Counts a failed sign-in of `peer` at `now`.
    pub fn failed_sign_in(&self, peer: IpAddr, now: Instant) {
        let mut failures = self
            .failures
            .lock()
            .expect("never poisoned: no panics inside");
        if failures.len() >= MAX_TRACKED_ADDRESSES && !failures.contains_key(&peer) {
            failures.retain(|_, (since, _)| now < *since + SIGN_IN_WINDOW);
            if failures.len() >= MAX_TRACKED_ADDRESSES {
                failures.clear();
            }
        }
        let entry = failures.entry(peer).or_insert((now, 0));
        if now >= entry.0 + SIGN_IN_WINDOW {
            *entry = (now, 0);
        }
        entry.1 += 1;
    }
}

/// Whether a browser's state-changing request comes from this server's own pages: its
/// `Origin` (or, without one, its `Referer`) names the host the request was sent to. A
/// request with neither is refused: every browser sends `Origin` with a POST or PUT.
pub fn same_origin(headers: &HeaderMap) -> bool {
    let Some(host) = headers
        .get(header::HOST)
        .and_then(|host| host.to_str().ok())
    else {
        return false;
    };
    let origin = headers
        .get(header::ORIGIN)
        .or_else(|| headers.get(header::REFERER))
        .and_then(|value| value.to_str().ok());
    let Some(origin) = origin else {
        return false;
    };
    let Some(rest) = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
    else {
        return false;
    };
    let authority = rest.split('/').next().unwrap_or_default();
    authority.eq_ignore_ascii_case(host)
}

/// The `Set-Cookie` value that stores `value` for `max_age`, or clears the cookie with a
/// zero age. `Secure` is left out: a node on the office LAN serves plain HTTP.
pub fn set_cookie(value: &str, max_age: Duration) -> HeaderValue {
    HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}",
        max_age.as_secs()
    ))
    .expect("a cookie of ASCII letters, digits and dots is a valid header")
}

/// The value of cookie `name` in the request's `Cookie` headers.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

/// Compares without stopping at the first difference, so response times do not leak how
/// much of a guessed token was right.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|at| u8::from_str_radix(text.get(at..at + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW_MS: u64 = 1_800_000_000_000;

    fn access() -> Access {
        Access::new(
            "write-token-0123456789".into(),
            "viewer-token-0123456789".into(),
            [9; 32],
            Duration::from_secs(3600),
        )
    }

    fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(name, HeaderValue::from_str(value).unwrap());
        }
        headers
    }

    fn lan() -> SocketAddr {
        "192.0.2.7:40000".parse().unwrap()
    }

    fn loopback() -> SocketAddr {
        "127.0.0.1:40000".parse().unwrap()
    }

    #[test]
    fn tokens_give_their_roles_and_a_wrong_one_is_refused() {
        let access = access();
        let bearer = |token: &str| headers(&[(header::AUTHORIZATION, &format!("Bearer {token}"))]);
        let writer = access
            .caller(&bearer("write-token-0123456789"), lan(), NOW_MS)
            .unwrap();
        assert_eq!(
            (writer.role, writer.proof),
            (Some(Role::Writer), Proof::Bearer)
        );
        let viewer = access
            .caller(&bearer("viewer-token-0123456789"), lan(), NOW_MS)
            .unwrap();
        assert_eq!(viewer.role, Some(Role::Viewer));
        assert_eq!(
            access.caller(&bearer("write-token-012345678"), loopback(), NOW_MS),
            Err(Refused::WrongToken),
            "a wrong token counts even from loopback"
        );
    }

    #[test]
    fn loopback_may_read_and_the_lan_nothing_without_a_token() {
        let access = access();
        let local = access
            .caller(&HeaderMap::new(), loopback(), NOW_MS)
            .unwrap();
        assert_eq!(
            (local.role, local.proof),
            (Some(Role::Viewer), Proof::Loopback)
        );
        let v6 = access
            .caller(&HeaderMap::new(), "[::1]:1".parse().unwrap(), NOW_MS)
            .unwrap();
        assert_eq!(v6.role, Some(Role::Viewer));
        let far = access.caller(&HeaderMap::new(), lan(), NOW_MS).unwrap();
        assert_eq!((far.role, far.proof), (None, Proof::Nothing));
    }

    #[test]
    fn a_session_proves_its_role_until_it_expires_or_its_token_changes() {
        let access = access();
        let value = access.issue_session(Role::Viewer, NOW_MS);
        let with_cookie = headers(&[(
            header::COOKIE,
            &format!("theme=dark; {SESSION_COOKIE}={value}"),
        )]);
        let caller = access.caller(&with_cookie, lan(), NOW_MS + 1000).unwrap();
        assert_eq!(
            (caller.role, caller.proof),
            (Some(Role::Viewer), Proof::Session)
        );
        assert_eq!(caller.session_expires_ms, Some(NOW_MS + 3_600_000));

        let expired = access
            .caller(&with_cookie, lan(), NOW_MS + 3_600_000)
            .unwrap();
        assert_eq!(expired.role, None, "expired");

        // The same cookie with its role raised fails its MAC.
        let forged = value.replacen("viewer", "writer", 1);
        let forged = headers(&[(header::COOKIE, &format!("{SESSION_COOKIE}={forged}"))]);
        assert_eq!(access.caller(&forged, lan(), NOW_MS).unwrap().role, None);

        // A new viewer token ends the sessions the old one opened.
        let renewed = Access::new(
            "write-token-0123456789".into(),
            "another-viewer-token-99".into(),
            [9; 32],
            Duration::from_secs(3600),
        );
        assert_eq!(
            renewed.caller(&with_cookie, lan(), NOW_MS).unwrap().role,
            None
        );
        // So does another session key.
        let rekeyed = Access::new(
            "write-token-0123456789".into(),
            "viewer-token-0123456789".into(),
            [8; 32],
            Duration::from_secs(3600),
        );
        assert_eq!(
            rekeyed.caller(&with_cookie, lan(), NOW_MS).unwrap().role,
            None
        );
        for garbage in ["", "viewer", "viewer.1.zz", "writer.x.00", "a.b.c.d"] {
            let cookie = headers(&[(header::COOKIE, &format!("{SESSION_COOKIE}={garbage}"))]);
            assert_eq!(access.caller(&cookie, lan(), NOW_MS).unwrap().role, None);
        }
    }

    #[test]
    fn failed_sign_ins_are_limited_per_address_for_a_window() {
        let access = access();
        let start = Instant::now();
        let peer: IpAddr = "192.0.2.7".parse().unwrap();
        let other: IpAddr = "192.0.2.8".parse().unwrap();
        for _ in 0..MAX_FAILED_SIGN_INS {
            assert_eq!(access.may_sign_in(peer, start), Ok(()));
            access.failed_sign_in(peer, start);
        }
        let wait = access
            .may_sign_in(peer, start + Duration::from_secs(10))
            .unwrap_err();
        assert_eq!(wait, SIGN_IN_WINDOW - Duration::from_secs(10));
        assert_eq!(access.may_sign_in(other, start), Ok(()), "per address");
        assert_eq!(access.may_sign_in(peer, start + SIGN_IN_WINDOW), Ok(()));
    }

    #[test]
    fn writes_from_a_browser_must_come_from_this_host() {
        let host = (header::HOST, "office.local:7878");
        assert!(same_origin(&headers(&[
            host.clone(),
            (header::ORIGIN, "http://office.local:7878")
        ])));
        assert!(same_origin(&headers(&[
            host.clone(),
            (header::REFERER, "http://office.local:7878/?wall")
        ])));
        assert!(!same_origin(&headers(&[
            host.clone(),
            (header::ORIGIN, "http://evil.example")
        ])));
        assert!(!same_origin(&headers(&[
            host.clone(),
            (header::ORIGIN, "http://office.local:7878.evil.example")
        ])));
        assert!(!same_origin(&headers(&[
            host.clone(),
            (header::ORIGIN, "null")
        ])));
        assert!(!same_origin(&headers(&[host])), "neither header");
    }

    #[test]
    fn the_cookie_is_http_only_strict_and_expiring() {
        let value = set_cookie("viewer.1.ab", Duration::from_secs(60));
        let text = value.to_str().unwrap();
        for part in ["HttpOnly", "SameSite=Strict", "Max-Age=60", "Path=/"] {
            assert!(text.contains(part), "{text}");
        }
    }
}
