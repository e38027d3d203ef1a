//! The HTTP API (`docs/api.md`) and the dashboard page at `/` ([`dashboard`]): the only
//! module that knows axum, and the one that owns the API's JSON shapes (the command line's
//! client reads them from here too).
//!
//! Reads come from the office actor's latest view; writes go through its handle and need the
//! bearer token. Request and response bodies are this module's own structs, so a refactor of
//! the core cannot silently change what clients see.

pub mod access;
pub mod client;
pub mod config;
pub mod dashboard;
pub mod local_token;
mod signin;
#[cfg(test)]
mod tests;
mod view;

use std::{
    convert::Infallible, future::Future, net::SocketAddr, pin::Pin, sync::Arc, time::Duration,
};

use axum::{
    Extension, Json, Router,
    body::Bytes,
    extract::{ConnectInfo, DefaultBodyLimit, Path, Request, State},
    http::{Method, StatusCode, header},
    middleware::{self, Next},
    response::{
        IntoResponse, Redirect, Response,
        sse::{Event, KeepAlive, Sse},
    },
    routing::{get, post, put},
};
use futures::Stream;
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use self::access::{Access, Caller, Proof, Refused, Role};
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
    /// The write and viewer tokens, sessions and the sign-in limit.
    pub access: Access,
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

/// The router, for serving and for tests. Every route but the sign-in page's goes through
/// [`guard`], which needs the caller's address (`ConnectInfo<SocketAddr>`).
pub fn router(api: Arc<Api>) -> Router {
    Router::new()
        .route("/api/session", get(session))
        .route("/api/health", get(health))
        .route("/api/state", get(state))
        .route("/api/peers", get(peers))
        .route("/api/alerts", get(alerts))
        .route("/api/events", get(events))
        .route("/api/history", get(history))
        .route("/api/invite", get(invite))
        .route("/api/viewer-token", get(viewer_token))
        .route("/api/readings", post(post_reading))
        .route("/api/targets/{room}/{quantity}", put(put_target))
        .route("/api/ask", post(ask))
        .merge(dashboard::routes())
        .route_layer(middleware::from_fn_with_state(api.clone(), guard))
        .route("/signin", get(signin::page).post(signin::sign_in))
        .route("/signout", post(signin::sign_out))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(api)
}

/// Lets a request through only with a role (module [`access`]): without one, an API request
/// gets a 401 and a page a redirect to the sign-in page. A state-changing request from a
/// browser (signed in, or marked with an `Origin`) must come from this server's own pages.
/// A session past half its life is renewed on the way out, so a wall screen stays signed in.
async fn guard(
    State(api): State<Arc<Api>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    mut request: Request,
    next: Next,
) -> Response {
    let now_ms = physical_ms();
    let caller = match api.access.caller(request.headers(), peer, now_ms) {
        Ok(caller) => caller,
        Err(Refused::WrongToken) => {
            return ApiError {
                status: StatusCode::UNAUTHORIZED,
                message: "wrong bearer token".into(),
            }
            .into_response();
        }
    };
    let path = request.uri().path();
    if caller.role.is_none() {
        if path.starts_with("/api/") {
            return ApiError {
                status: StatusCode::UNAUTHORIZED,
                message: "from outside this machine, this needs a token: an Authorization: Bearer <token> header, or a session from the sign-in page /signin".into(),
            }
            .into_response();
        }
        let wanted = request
            .uri()
            .path_and_query()
            .map_or("/", |wanted| wanted.as_str());
        return Redirect::to(&format!("/signin?next={}", signin::encode_next(wanted)))
            .into_response();
    }
    // Cookies are what a cross-site request abuses: a browser's change must come from this
    // server's pages. So must any request a browser marks with another origin.
    let safe = matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    );
    let from_browser =
        caller.proof == Proof::Session || request.headers().contains_key(header::ORIGIN);
    if !safe
        && caller.proof != Proof::Bearer
        && from_browser
        && !access::same_origin(request.headers())
    {
        return ApiError {
            status: StatusCode::FORBIDDEN,
            message: "a change without a bearer token must come from this node's own pages (its Origin header); API clients send Authorization: Bearer <token>".into(),
        }
        .into_response();
    }
    request.extensions_mut().insert(caller);
    let mut response = next.run(request).await;
    if let (Some(role), Some(expires_ms)) = (caller.role, caller.session_expires_ms) {
        let lifetime_ms = api.access.session_lifetime().as_millis() as u64;
        if expires_ms.saturating_sub(now_ms) < lifetime_ms / 2 {
            let renewed = api.access.issue_session(role, now_ms);
            response.headers_mut().append(
                header::SET_COOKIE,
                access::set_cookie(&renewed, api.access.session_lifetime()),
            );
        }
    }
    response
}

/// The answer of `GET /api/viewer-token`.
#[derive(Serialize, Deserialize, Debug)]
pub struct ViewerToken {
    /// The token that lets a browser or client read from outside this machine.
    pub token: String,
}

/// `GET /api/viewer-token`: for `officemesh viewer-token`; it needs the write token.
async fn viewer_token(
    State(api): State<Arc<Api>>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<ViewerToken>, ApiError> {
    authorize(&caller)?;
    Ok(Json(ViewerToken {
        token: api.access.viewer_token().to_owned(),
    }))
}

/// What `GET /api/session` answers: the caller's role, for the dashboard to show or hide
/// its controls.
#[derive(Serialize, Deserialize, Debug)]
pub struct SessionView {
    /// `"viewer"` or `"writer"`.
    pub role: String,
    /// How the role was proven: `"bearer"`, `"session"` (signed in) or `"loopback"`.
    pub proof: String,
    /// When the session ends (ms since the epoch), when signed in.
    pub expires_ms: Option<u64>,
}

async fn session(Extension(caller): Extension<Caller>) -> Json<SessionView> {
    Json(SessionView {
        role: caller.role.map_or("none", Role::as_str).to_owned(),
        proof: match caller.proof {
            Proof::Bearer => "bearer",
            Proof::Session => "session",
            Proof::Loopback => "loopback",
            Proof::Nothing => "none",
        }
        .to_owned(),
        expires_ms: caller.session_expires_ms,
    })
}

/// Serves the API on `listener` until `shutdown`.
pub async fn serve(
    listener: TcpListener,
    api: Arc<Api>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        router(api).into_make_service_with_connect_info::<SocketAddr>(),
    )
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
            OfficeError::Write(WriteError::TooManyEntries) => StatusCode::INSUFFICIENT_STORAGE,
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

/// Lets only a writer through: the write token, or a session it opened.
fn authorize(caller: &Caller) -> Result<(), ApiError> {
    match (caller.role, caller.proof) {
        (Some(Role::Writer), _) => Ok(()),
        (Some(Role::Viewer), Proof::Bearer | Proof::Session) => Err(ApiError {
            status: StatusCode::FORBIDDEN,
            message: "the viewer token may only read; this needs the write token".into(),
        }),
        _ => Err(ApiError {
            status: StatusCode::UNAUTHORIZED,
            message: "this needs an Authorization: Bearer <token> header (the token is in <data-dir>/api-token), or a session signed in with that token at /signin".into(),
        }),
    }
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
async fn invite(
    State(api): State<Arc<Api>>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<Invite>, ApiError> {
    authorize(&caller)?;
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
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    authorize(&caller)?;
    let write = reading_request(&body)?;
    api.office.write_durable(write).await?;
    Ok(StatusCode::CREATED)
}

/// The write a `POST /api/readings` body asks for: the JSON parsed and every field checked,
/// the error naming the field. Public so the fuzz targets (`fuzz/`) can feed it any bytes.
pub fn reading_request(body: &[u8]) -> Result<Write, ApiError> {
    let request: ReadingRequest = parse_body(body)?;
    let quantity: Quantity = field("quantity", request.quantity.parse())?;
    Ok(Write::Reading {
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
    })
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
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    authorize(&caller)?;
    let write = target_request(&room, &quantity, &body)?;
    api.office.write_durable(write).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The write a `PUT /api/targets/{room}/{quantity}` asks for: the path's room and quantity
/// and the JSON body checked, the error naming the field. Public so the fuzz targets
/// (`fuzz/`) can feed it any bytes.
pub fn target_request(room: &str, quantity: &str, body: &[u8]) -> Result<Write, ApiError> {
    let request: TargetRequest = parse_body(body)?;
    let quantity: Quantity = field("quantity", quantity.parse())?;
    Ok(Write::Target {
        room: field("room", Room::new(room))?,
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
    })
}

/// `POST /api/ask`: a message for the bot. Any role may ask; what would write (a binding)
/// needs the write token, and a viewer is told so instead.
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
    /// The message would have changed the office and the caller may only look: nothing was
    /// changed, and the same message with the write token would do it.
    #[serde(default)]
    pub needs_write_token: bool,
}

async fn ask(
    State(api): State<Arc<Api>>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> Result<Json<AskReply>, ApiError> {
    // A viewer may ask; what would change the office is left to a writer.
    let may_write = authorize(&caller).is_ok();
    let (speaker, request) = ask_request(&body)?;
    let peers = api.peers.peers().await.len();
    match api
        .bot
        .ask_as(&speaker, &request.text, peers, may_write)
        .await
    {
        Ok(reply) => Ok(Json(AskReply {
            needs_write_token: !may_write && reply == crate::bot::READ_ONLY_REPLY,
            reply,
        })),
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

/// A `POST /api/ask` body: the JSON parsed and the speaker checked (the bot bounds the text
/// itself). Public so the fuzz targets (`fuzz/`) can feed it any bytes.
pub fn ask_request(body: &[u8]) -> Result<(Person, AskRequest), ApiError> {
    let request: AskRequest = parse_body(body)?;
    let speaker = field("speaker", Person::new(&request.speaker))?;
    Ok((speaker, request))
}
