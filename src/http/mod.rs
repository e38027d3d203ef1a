//! The HTTP API (`docs/api.md`) and the dashboard page at `/` ([`dashboard`]): the only
//! module that knows axum, and the one that owns the API's JSON shapes (the command line's
//! client reads them from here too).
//!
//! Reads come from the office actor's latest view; writes go through its handle and need the
//! bearer token. Request and response bodies are this module's own structs, so a refactor of
//! the core cannot silently change what clients see.

pub mod client;
pub mod config;
pub mod dashboard;
pub mod local_token;
#[cfg(test)]
mod tests;
mod view;

use std::{convert::Infallible, future::Future, pin::Pin, sync::Arc, time::Duration};

use axum::{
    Json, Router,
    body::Bytes,
    extract::{DefaultBodyLimit, Path, State},
    http::{HeaderMap, StatusCode, header},
    response::{
        IntoResponse, Response,
        sse::{Event, KeepAlive, Sse},
    },
    routing::{get, post, put},
};
use futures::Stream;
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use self::view::{AlertView, OfficeView, PeerView};
use crate::{
    bot::{AskError, Bot},
    history::{HistoryConfig, query::HistoryQuery},
    office::{OfficeError, OfficeHandle, Write, physical_ms},
    state::{Person, Quantity, Room, SensorId, WriteError},
    store::{StoreError, StoreHandle},
};

/// Largest request body accepted: a reading or a target is a few hundred bytes.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// Shortest gap between two state events on `/api/events`: a burst of changes (a sync
/// answer) becomes one event instead of hundreds.
pub const EVENT_MIN_GAP: Duration = Duration::from_millis(250);

/// What the API asks of the network actor.
pub trait PeerSource: Send + Sync + 'static {
    /// The connected peers.
    fn peers(&self) -> Pin<Box<dyn Future<Output = Vec<PeerView>> + Send + '_>>;
    /// A join token for this office: its key and this node's addresses.
    fn invite(&self) -> Pin<Box<dyn Future<Output = Option<String>> + Send + '_>>;
}

/// What every handler needs.
pub struct Api {
    pub office: OfficeHandle,
    pub peers: Box<dyn PeerSource>,
    pub token: String,
    pub started_at_ms: u64,
    /// How long a device counts as present after it was last seen.
    pub consider_home_ms: u64,
    /// The office bot, for `POST /api/ask`.
    pub bot: Arc<Bot>,
    /// The store, for `GET /api/history` and the disk use in `/api/health`.
    pub store: StoreHandle,
    /// `[history]`: which buckets are still kept.
    pub history: HistoryConfig,
}

/// The router, for serving and for tests.
pub fn router(api: Arc<Api>) -> Router {
    Router::new()
        .route("/api/health", get(health))
        .route("/api/state", get(state))
        .route("/api/peers", get(peers))
        .route("/api/alerts", get(alerts))
        .route("/api/events", get(events))
        .route("/api/history", get(history))
        .route("/api/invite", get(invite))
        .route("/api/readings", post(post_reading))
        .route("/api/targets/{room}/{quantity}", put(put_target))
        .route("/api/ask", post(ask))
        .merge(dashboard::routes())
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(api)
}

/// Serves the API on `listener` until `shutdown`.
pub async fn serve(
    listener: TcpListener,
    api: Arc<Api>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    axum::serve(listener, router(api))
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}

/// An error as the client sees it: a status and a sentence naming what was wrong.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
}

/// The body of every error answer; `officemesh` reads it back through [`client`].
#[derive(Serialize, Deserialize, Debug)]
pub struct ErrorBody {
    /// A sentence naming what was wrong.
    pub error: String,
}

impl ApiError {
    fn bad_request(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(ErrorBody {
                error: self.message,
            }),
        )
            .into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        let status = match &error {
            StoreError::Stopped { .. } => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError {
            status,
            message: error.to_string(),
        }
    }
}

impl From<OfficeError> for ApiError {
    fn from(error: OfficeError) -> Self {
        let status = match &error {
            OfficeError::Write(WriteError::Invalid(_)) => StatusCode::BAD_REQUEST,
            OfficeError::Write(WriteError::UnknownAlert(_)) => StatusCode::NOT_FOUND,
            OfficeError::Stopped => StatusCode::SERVICE_UNAVAILABLE,
            OfficeError::Write(WriteError::LeaseExhausted { .. })
            | OfficeError::Save(_)
            | OfficeError::NotSaved(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError {
            status,
            message: error.to_string(),
        }
    }
}

fn authorize(api: &Api, headers: &HeaderMap) -> Result<(), ApiError> {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "));
    match given {
        Some(token) if constant_time_eq(token.as_bytes(), api.token.as_bytes()) => Ok(()),
        Some(_) => Err(ApiError {
            status: StatusCode::UNAUTHORIZED,
            message: "wrong bearer token".into(),
        }),
        None => Err(ApiError {
            status: StatusCode::UNAUTHORIZED,
            message: "this needs an Authorization: Bearer <token> header (the token is in <data-dir>/api-token)".into(),
        }),
    }
}

/// Compares without stopping at the first difference, so response times do not leak how
/// much of a guessed token was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Parses a JSON body; the error names the field when serde knows it.
fn parse_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|error| ApiError::bad_request(format!("invalid request body: {error}")))
}

fn field<T, E: std::fmt::Display>(name: &str, result: Result<T, E>) -> Result<T, ApiError> {
    result.map_err(|error| ApiError::bad_request(format!("field `{name}`: {error}")))
}

#[derive(Serialize)]
struct Health {
    id: String,
    name: String,
    room: String,
    version: &'static str,
    uptime_s: u64,
    /// Changes not yet saved to disk: readings of its own sensors and scans, saved every
    /// `[store] save_interval_s`, and what peers sent.
    unsaved_changes: bool,
    /// Bytes the node's database takes on disk (its file and write-ahead log): the saved
    /// state and the reading history. `null` if the store could not say.
    disk_bytes: Option<u64>,
}

async fn health(State(api): State<Arc<Api>>) -> Json<Health> {
    let disk_bytes = api.store.run(|store| store.disk_bytes()).await.ok();
    let view = api.office.view();
    let me = view.id().clone();
    let info = view
        .latest::<crate::state::NodeInfo>()
        .find(|(id, _)| **id == me)
        .map(|(_, info)| info.clone());
    Json(Health {
        id: me.to_string(),
        name: info
            .as_ref()
            .map(|info| info.name.to_string())
            .unwrap_or_default(),
        room: info
            .as_ref()
            .map(|info| info.room.to_string())
            .unwrap_or_default(),
        version: env!("CARGO_PKG_VERSION"),
        uptime_s: physical_ms().saturating_sub(api.started_at_ms) / 1000,
        unsaved_changes: api.office.unsaved(),
        disk_bytes,
    })
}

/// `GET /api/history`: buckets of the history, by the query string (`docs/api.md`).
async fn history(
    State(api): State<Arc<Api>>,
    axum::extract::Query(params): axum::extract::Query<std::collections::BTreeMap<String, String>>,
) -> Result<Response, ApiError> {
    let minute_retention_ms = api.history.minute_retention.as_millis() as u64;
    let query = HistoryQuery::parse(&params, physical_ms(), minute_retention_ms)
        .map_err(|error| ApiError::bad_request(error.to_string()))?;
    let csv = query.csv;
    let answer = api
        .store
        .run(move |store| crate::history::query::answer(store, &query))
        .await
        .map_err(ApiError::from)?
        .map_err(|error| match error {
            crate::history::query::QueryError::Bad(bad) => ApiError::bad_request(bad.to_string()),
            crate::history::query::QueryError::Store(error) => ApiError::from(error),
        })?;
    Ok(if csv {
        (
            [(header::CONTENT_TYPE, "text/csv; charset=utf-8")],
            answer.to_csv(),
        )
            .into_response()
    } else {
        Json(answer).into_response()
    })
}

async fn state(State(api): State<Arc<Api>>) -> Json<OfficeView> {
    Json(OfficeView::new(
        &api.office.view(),
        physical_ms(),
        api.consider_home_ms,
    ))
}

/// `GET /api/alerts`: active and recently cleared alerts, from any node.
async fn alerts(State(api): State<Arc<Api>>) -> Json<Vec<AlertView>> {
    Json(view::alert_views(&api.office.view()))
}

async fn peers(State(api): State<Arc<Api>>) -> Json<Vec<PeerView>> {
    Json(api.peers.peers().await)
}

/// The answer of `GET /api/invite`.
#[derive(Serialize, Deserialize, Debug)]
pub struct Invite {
    /// The join token (`om1-...`) for `officemesh up --join`.
    pub token: String,
}

/// `GET /api/invite`: the join token. It holds the office's key, so it needs the API token.
async fn invite(State(api): State<Arc<Api>>, headers: HeaderMap) -> Result<Json<Invite>, ApiError> {
    authorize(&api, &headers)?;
    match api.peers.invite().await {
        Some(token) => Ok(Json(Invite { token })),
        None => Err(ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            message: "this node is not listening on any address yet".into(),
        }),
    }
}

async fn events(State(api): State<Arc<Api>>) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let receiver = api.office.subscribe();
    let consider_home_ms = api.consider_home_ms;
    // The first event is the current state; then one per change, at most every EVENT_MIN_GAP.
    let stream =
        futures::stream::unfold((receiver, true), move |(mut receiver, first)| async move {
            if !first {
                tokio::time::sleep(EVENT_MIN_GAP).await;
                receiver.changed().await.ok()?;
            }
            let view = OfficeView::new(
                &receiver.borrow_and_update().clone(),
                physical_ms(),
                consider_home_ms,
            );
            let event = Event::default()
                .event("state")
                .json_data(&view)
                .unwrap_or_else(|_| Event::default().event("error"));
            Some((Ok(event), (receiver, false)))
        });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

/// `POST /api/readings`: a reading owned by this node, for devices that push.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReadingRequest {
    sensor: String,
    room: String,
    quantity: String,
    value: f64,
    #[serde(default)]
    unit: String,
}

async fn post_reading(
    State(api): State<Arc<Api>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    authorize(&api, &headers)?;
    let request: ReadingRequest = parse_body(&body)?;
    let quantity: Quantity = field("quantity", request.quantity.parse())?;
    let write = Write::Reading {
        sensor: field("sensor", SensorId::new(&request.sensor))?,
        room: field("room", Room::new(&request.room))?,
        quantity,
        value: field(
            "value",
            quantity
                .normalize(request.value, &request.unit)
                .map(|_| request.value),
        )?,
        unit: request.unit,
    };
    api.office.write_durable(write).await?;
    Ok(StatusCode::CREATED)
}

/// `PUT /api/targets/{room}/{quantity}`: a setpoint.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TargetRequest {
    value: f64,
    #[serde(default)]
    unit: String,
    /// Who sets it; "api" when not said.
    #[serde(default)]
    set_by: Option<String>,
}

async fn put_target(
    State(api): State<Arc<Api>>,
    Path((room, quantity)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    authorize(&api, &headers)?;
    let request: TargetRequest = parse_body(&body)?;
    let quantity: Quantity = field("quantity", quantity.parse())?;
    let write = Write::Target {
        room: field("room", Room::new(&room))?,
        quantity,
        value: field(
            "value",
            quantity
                .normalize(request.value, &request.unit)
                .map(|_| request.value),
        )?,
        unit: request.unit,
        set_by: field(
            "set_by",
            Person::new(request.set_by.as_deref().unwrap_or("api")),
        )?,
    };
    api.office.write_durable(write).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/ask`: a message for the bot. It may write (a binding, a target), so it needs
/// the token.
#[derive(Serialize, Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct AskRequest {
    /// What was said, as typed.
    pub text: String,
    /// Who said it: the person "i am ..." binds and "forget me" forgets.
    pub speaker: String,
}

/// The answer of `POST /api/ask`.
#[derive(Serialize, Deserialize, Debug)]
pub struct AskReply {
    /// The bot's answer, possibly several lines.
    pub reply: String,
}

async fn ask(
    State(api): State<Arc<Api>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<AskReply>, ApiError> {
    authorize(&api, &headers)?;
    let request: AskRequest = parse_body(&body)?;
    let speaker = field("speaker", Person::new(&request.speaker))?;
    let peers = api.peers.peers().await.len();
    match api.bot.ask(&speaker, &request.text, peers).await {
        Ok(reply) => Ok(Json(AskReply { reply })),
        Err(error @ AskError::TooLong { .. }) => {
            Err(ApiError::bad_request(format!("field `text`: {error}")))
        }
        Err(error @ AskError::TooFast { .. }) => Err(ApiError {
            status: StatusCode::TOO_MANY_REQUESTS,
            message: error.to_string(),
        }),
        Err(AskError::Office(error)) => Err(error.into()),
    }
}
