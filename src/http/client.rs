//! A client of a running node's API, as `officemesh ask`, `chat` and `invite` use it. It
//! sends and reads the same request and answer structs the server uses, so the two cannot
//! drift apart.

use std::time::Duration;

use reqwest::{StatusCode, Url};
use thiserror::Error;

use super::{AskReply, AskRequest, ErrorBody, Invite, ViewerToken};

/// How long one request may take, connecting included: a node on the LAN answers in
/// milliseconds, a bot question in well under a second.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// How much of an error answer that is not the API's JSON is shown (a proxy's HTML page).
const MAX_SHOWN_BODY_CHARS: usize = 200;

/// Why a request to a node got no useful answer.
#[derive(Debug, Error)]
pub enum ClientError {
    #[error("the node address {given:?} is not an http:// or https:// URL: {reason}")]
    BadUrl { given: String, reason: String },
    /// Nothing answers at the node's address. `reason` is the system's word for it
    /// ("Connection refused"), without the layers of the HTTP client around it.
    #[error("cannot reach the node at {url}: is it running? ({reason})")]
    Unreachable { url: Url, reason: String },
    #[error("the node at {url} did not answer within {} s", REQUEST_TIMEOUT.as_secs())]
    Timeout { url: Url },
    #[error("the node at {url} refused the API token: {message}")]
    Unauthorized { url: Url, message: String },
    #[error("the request to the node at {url} failed")]
    Request {
        url: Url,
        #[source]
        source: reqwest::Error,
    },
    #[error("the node at {url} answered {status}: {message}")]
    Status {
        url: Url,
        status: StatusCode,
        message: String,
    },
    #[error("the node at {url} answered something that is not the expected JSON")]
    Decode {
        url: Url,
        #[source]
        source: reqwest::Error,
    },
    #[error("cannot set up the HTTP client")]
    Setup(#[source] reqwest::Error),
}

/// The base URL of a node's API from what a user typed: `http://host:port`, with or without
/// a trailing slash (or a path prefix, behind a proxy). Always ends with `/`, so two
/// spellings of one node compare equal.
pub fn node_url(given: &str) -> Result<Url, ClientError> {
    let bad = |reason: String| ClientError::BadUrl {
        given: given.to_owned(),
        reason,
    };
    if !given.contains("://") {
        return Err(bad(
            "it lacks the scheme, as in http://127.0.0.1:7878".into()
        ));
    }
    let mut url = Url::parse(given.trim()).map_err(|error| bad(error.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad(format!("the scheme is {:?}", url.scheme())));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad("it has no host".into()));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad("it has a query or a fragment".into()));
    }
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok(url)
}

/// A node's API, with the bearer token its writes need.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base: Url,
    token: String,
}

impl Client {
    /// A client of the node at `base` (see [`node_url`]).
    pub fn new(base: Url, token: &str) -> Result<Client, ClientError> {
        // A node is on this machine or the LAN, and the request carries the token: it goes
        // straight there, never through an HTTP_PROXY meant for the internet.
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .no_proxy()
            .build()
            .map_err(ClientError::Setup)?;
        Ok(Client {
            http,
            base,
            token: token.to_owned(),
        })
    }

    /// The node's base URL, normalised.
    pub fn base(&self) -> &Url {
        &self.base
    }

    /// Asks the node's bot `text` as `speaker` (`POST /api/ask`) and returns its reply.
    pub async fn ask(&self, text: &str, speaker: &str) -> Result<String, ClientError> {
        let request = AskRequest {
            text: text.to_owned(),
            speaker: speaker.to_owned(),
        };
        let url = self.endpoint("api/ask");
        let response = self
            .send(&url, self.http.post(url.clone()).json(&request))
            .await?;
        let answer: AskReply = decode(&url, response).await?;
        Ok(answer.reply)
    }

    /// A join token for this office (`GET /api/invite`).
    pub async fn invite(&self) -> Result<String, ClientError> {
        let url = self.endpoint("api/invite");
        let response = self.send(&url, self.http.get(url.clone())).await?;
        let invite: Invite = decode(&url, response).await?;
        Ok(invite.token)
    }

    /// The node's viewer token (`GET /api/viewer-token`; needs the write token).
    pub async fn viewer_token(&self) -> Result<String, ClientError> {
        let url = self.endpoint("api/viewer-token");
        let response = self.send(&url, self.http.get(url.clone())).await?;
        let answer: ViewerToken = decode(&url, response).await?;
        Ok(answer.token)
    }

    /// Why a request got no answer: a node that cannot be reached is named by its base URL,
    /// the one the user gave.
    fn classify(&self, url: &Url, source: reqwest::Error) -> ClientError {
        let source = source.without_url();
        if source.is_connect() {
            let mut innermost: &dyn std::error::Error = &source;
            while let Some(cause) = innermost.source() {
                innermost = cause;
            }
            ClientError::Unreachable {
                url: self.base.clone(),
                reason: innermost.to_string(),
            }
        } else if source.is_timeout() {
            ClientError::Timeout { url: url.clone() }
        } else {
            ClientError::Request {
                url: url.clone(),
                source,
            }
        }
    }

    fn endpoint(&self, path: &str) -> Url {
        self.base
            .join(path)
            .expect("a relative path joins any http base URL")
    }

    /// Sends with the token; a 2xx answer is returned, anything else is an error with the
    /// status and the node's own message.
    async fn send(
        &self,
        url: &Url,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, ClientError> {
        let response = request
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(|source| self.classify(url, source))?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let body = response.text().await.unwrap_or_default();
        let message = match serde_json::from_str::<ErrorBody>(&body) {
            Ok(error) => error.error,
            Err(_) if body.trim().is_empty() => "(no message)".to_owned(),
            Err(_) => body.trim().chars().take(MAX_SHOWN_BODY_CHARS).collect(),
        };
        let url = url.clone();
        Err(match status {
            StatusCode::UNAUTHORIZED => ClientError::Unauthorized { url, message },
            _ => ClientError::Status {
                url,
                status,
                message,
            },
        })
    }
}

async fn decode<T: serde::de::DeserializeOwned>(
    url: &Url,
    response: reqwest::Response,
) -> Result<T, ClientError> {
    response.json().await.map_err(|source| match source {
        source if source.is_timeout() => ClientError::Timeout { url: url.clone() },
        source => ClientError::Decode {
            url: url.clone(),
            source: source.without_url(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_urls_are_normalised_or_refused_with_the_reason() {
        for (given, expected) in [
            ("http://127.0.0.1:7878", "http://127.0.0.1:7878/"),
            ("http://127.0.0.1:7878/", "http://127.0.0.1:7878/"),
            (
                " https://office.example/mesh ",
                "https://office.example/mesh/",
            ),
            ("http://[::1]:7878", "http://[::1]:7878/"),
        ] {
            assert_eq!(node_url(given).unwrap().as_str(), expected, "{given:?}");
        }
        for (given, reason) in [
            ("127.0.0.1:7878", "lacks the scheme"),
            ("localhost:7878", "lacks the scheme"),
            ("ftp://127.0.0.1:7878", "the scheme is \"ftp\""),
            ("http://127.0.0.1:7878/?x=1", "a query or a fragment"),
            ("http://:7878", "empty host"),
        ] {
            let error = node_url(given).unwrap_err().to_string();
            assert!(
                error.contains(given.trim()) && error.contains(reason),
                "{given:?}: {error}"
            );
        }
    }

    #[test]
    fn endpoints_keep_a_path_prefix() {
        let base = node_url("http://127.0.0.1:7878/mesh").unwrap();
        let client = Client::new(base, "token").unwrap();
        assert_eq!(
            client.endpoint("api/ask").as_str(),
            "http://127.0.0.1:7878/mesh/api/ask"
        );
    }
}
