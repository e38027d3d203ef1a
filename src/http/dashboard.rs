//! The dashboard: the page every node serves at `/`, and its files under
//! `/assets/<version>/`, compiled into the binary (`build.rs` gzips them and names the
//! version after their hash). The page itself is plain HTML, CSS and JavaScript modules in
//! `assets/`; it reads the same API as any client.
//!
//! Caching: `/` is revalidated on every load (`no-cache` with an `ETag`, so a reload costs a
//! 304), and names the files by version, which lets the browser keep them for a year without
//! asking (`immutable`): a new build changes the version and so every URL. Compression: the
//! gzip made at build time, for a browser that accepts it.

use axum::{
    Router,
    extract::Path,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use thiserror::Error;

include!(concat!(env!("OUT_DIR"), "/dashboard_assets.rs"));

/// One file of the dashboard, as `build.rs` prepared it.
#[derive(Debug)]
pub struct Asset {
    /// Its path under `assets/`, `/` separated.
    pub path: &'static str,
    pub content_type: &'static str,
    /// A hash of its bytes: the entity tag, without quotes.
    pub etag: &'static str,
    pub body: &'static [u8],
    /// Its gzip encoding, when that is smaller.
    pub gzip: Option<&'static [u8]>,
}

/// What the browser may do with an answer of `/`: keep it, but ask each time.
const INDEX_CACHE: &str = "no-cache";

/// What the browser may do with a versioned file: keep it a year, never asking again.
const VERSIONED_CACHE: &str = "public, max-age=31536000, immutable";

/// The page may load only its own files and talk only to its own node; nobody may frame it.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; img-src 'self' data:; \
     base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Why a path under `/assets/` has no file.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum AssetError {
    #[error("no dashboard file {path:?}")]
    NotFound { path: String },
    #[error(
        "dashboard files of version {asked} are not served by this node, which has version {VERSION}: reload the page"
    )]
    OtherVersion { asked: String },
}

/// The routes of the dashboard, merged into the API's router.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(index))
        .route("/assets/{version}/{*path}", get(versioned))
}

/// The file at `path` under `assets/`.
pub fn asset(path: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|asset| asset.path == path)
}

/// The file a versioned URL names.
pub fn find(version: &str, path: &str) -> Result<&'static Asset, AssetError> {
    if version != VERSION {
        return Err(AssetError::OtherVersion {
            asked: version.to_owned(),
        });
    }
    // The page itself lives at `/`, not among the versioned files.
    match asset(path) {
        Some(asset) if asset.path != "index.html" => Ok(asset),
        _ => Err(AssetError::NotFound {
            path: path.to_owned(),
        }),
    }
}

async fn index(headers: HeaderMap) -> Response {
    let index = asset("index.html").expect("build.rs checks that index.html exists");
    respond(index, &headers, INDEX_CACHE)
}

async fn versioned(Path((version, path)): Path<(String, String)>, headers: HeaderMap) -> Response {
    match find(&version, &path) {
        Ok(asset) => respond(asset, &headers, VERSIONED_CACHE),
        Err(error) => (StatusCode::NOT_FOUND, error.to_string()).into_response(),
    }
}

/// The answer for `asset`: 304 when the browser holds it already, else its bytes, gzipped
/// when the browser accepts that.
fn respond(asset: &'static Asset, headers: &HeaderMap, cache: &'static str) -> Response {
    let accept = header_text(headers, header::ACCEPT_ENCODING);
    let gzip = asset.gzip.filter(|_| accepts_gzip(accept));
    // Each encoding is its own representation, so it has its own tag.
    let etag = match gzip {
        Some(_) => format!("\"{}-gz\"", asset.etag),
        None => format!("\"{}\"", asset.etag),
    };
    let mut response = if matches_etag(header_text(headers, header::IF_NONE_MATCH), &etag) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mut response = gzip.unwrap_or(asset.body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(asset.content_type),
        );
        if gzip.is_some() {
            headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }
        response
    };
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    if let Ok(value) = HeaderValue::from_str(&etag) {
        headers.insert(header::ETAG, value);
    }
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

fn header_text(headers: &HeaderMap, name: header::HeaderName) -> &str {
    headers
        .get(name)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("")
}

/// Whether an `Accept-Encoding` value takes gzip: named (or `*`) without `q=0`.
pub fn accepts_gzip(accept_encoding: &str) -> bool {
    let mut gzip = None;
    let mut any = None;
    for item in accept_encoding.split(',') {
        let mut parts = item.split(';').map(str::trim);
        let coding = parts.next().unwrap_or("").to_ascii_lowercase();
        let quality = parts
            .filter_map(|parameter| parameter.strip_prefix("q="))
            .filter_map(|value| value.trim().parse::<f32>().ok())
            .next()
            .unwrap_or(1.0);
        match coding.as_str() {
            "gzip" | "x-gzip" => gzip = Some(quality > 0.0),
            "*" => any = Some(quality > 0.0),
            _ => {}
        }
    }
    gzip.or(any).unwrap_or(false)
}

/// Whether an `If-None-Match` value names `etag` (weak comparison, as RFC 9110 asks for
/// this header), or is `*`.
pub fn matches_etag(if_none_match: &str, etag: &str) -> bool {
    if_none_match.split(',').map(str::trim).any(|tag| {
        tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == etag.trim_start_matches("W/")
    })
}

#[cfg(test)]
mod tests {
    use axum::{body::Body, http::Request};
    use tower::ServiceExt as _;

    use super::*;

    fn check_gzip(header: &str, expected: bool) {
        assert_eq!(
            accepts_gzip(header),
            expected,
            "Accept-Encoding: {header:?}"
        );
    }

    #[test]
    fn accept_encoding_is_read_with_its_qualities() {
        check_gzip("", false);
        check_gzip("gzip", true);
        check_gzip("gzip, deflate, br, zstd", true);
        check_gzip("br;q=1.0, GZIP;q=0.5", true);
        check_gzip("gzip;q=0", false);
        check_gzip("gzip; q=0.0, *", false);
        check_gzip("*", true);
        check_gzip("*;q=0", false);
        check_gzip("identity", false);
        check_gzip("deflate, x-gzip", true);
    }

    fn check_etag(header: &str, etag: &str, expected: bool) {
        assert_eq!(
            matches_etag(header, etag),
            expected,
            "If-None-Match: {header:?} against {etag}"
        );
    }

    #[test]
    fn if_none_match_compares_weakly() {
        check_etag("\"abc\"", "\"abc\"", true);
        check_etag("W/\"abc\"", "\"abc\"", true);
        check_etag("\"x\", \"abc\"", "\"abc\"", true);
        check_etag("*", "\"abc\"", true);
        check_etag("\"abc-gz\"", "\"abc\"", false);
        check_etag("", "\"abc\"", false);
    }

    #[test]
    fn every_asset_is_found_by_version_and_only_by_the_current_one() {
        assert!(ASSETS.len() >= 5, "assets: {ASSETS:?}");
        for asset in ASSETS.iter().filter(|asset| asset.path != "index.html") {
            assert_eq!(
                find(VERSION, asset.path).map(|found| found.path),
                Ok(asset.path)
            );
            assert_eq!(
                find("0123456789ab", asset.path).map(|found| found.path),
                Err(AssetError::OtherVersion {
                    asked: "0123456789ab".into()
                })
            );
        }
        assert_eq!(
            find(VERSION, "index.html").map(|found| found.path),
            Err(AssetError::NotFound {
                path: "index.html".into()
            })
        );
        assert_eq!(
            find(VERSION, "../Cargo.toml").map(|found| found.path),
            Err(AssetError::NotFound {
                path: "../Cargo.toml".into()
            })
        );
    }

    #[test]
    fn the_page_links_to_files_that_exist() {
        let index = std::str::from_utf8(asset("index.html").unwrap().body).unwrap();
        let prefix = format!("/assets/{VERSION}/");
        let linked: Vec<&str> = index
            .split(&prefix)
            .skip(1)
            .map(|rest| rest.split('"').next().unwrap())
            .collect();
        assert!(linked.len() >= 4, "links: {linked:?}");
        for path in linked {
            assert!(find(VERSION, path).is_ok(), "index.html links to {path}");
        }
        assert!(!index.contains("{{"), "a placeholder is left in index.html");
    }

    #[test]
    fn the_gzip_of_every_asset_is_smaller() {
        for asset in ASSETS {
            if let Some(gzip) = asset.gzip {
                assert!(gzip.len() < asset.body.len(), "{}", asset.path);
                assert_eq!(&gzip[..2], &[0x1f, 0x8b], "{} is not gzip", asset.path);
            }
        }
    }

    async fn get(uri: &str, headers: &[(&str, &str)]) -> Response {
        let mut request = Request::get(uri);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        routes::<()>()
            .oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap()
    }

    fn header<'a>(response: &'a Response, name: &str) -> &'a str {
        response
            .headers()
            .get(name)
            .map_or("", |value| value.to_str().unwrap())
    }

    async fn body(response: Response) -> Vec<u8> {
        axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap()
            .to_vec()
    }

    #[tokio::test]
    async fn the_page_is_revalidated_and_compressed() {
        let plain = get("/?wall", &[]).await;
        assert_eq!(plain.status(), StatusCode::OK);
        assert_eq!(header(&plain, "cache-control"), "no-cache");
        assert_eq!(header(&plain, "content-type"), "text/html; charset=utf-8");
        assert_eq!(header(&plain, "content-encoding"), "");
        let etag = header(&plain, "etag").to_owned();
        assert_eq!(body(plain).await, asset("index.html").unwrap().body);

        let gzipped = get("/", &[("accept-encoding", "gzip, br")]).await;
        assert_eq!(header(&gzipped, "content-encoding"), "gzip");
        assert_eq!(header(&gzipped, "vary"), "accept-encoding");
        let gzip_etag = header(&gzipped, "etag").to_owned();
        assert_ne!(etag, gzip_etag);

        let again = get(
            "/",
            &[("accept-encoding", "gzip"), ("if-none-match", &gzip_etag)],
        )
        .await;
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
        assert!(body(again).await.is_empty());
        // The identity tag does not match the gzip representation.
        let other = get(
            "/",
            &[("accept-encoding", "gzip"), ("if-none-match", &etag)],
        )
        .await;
        assert_eq!(other.status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn versioned_files_are_kept_for_good_and_others_are_404() {
        let script = get(&format!("/assets/{VERSION}/app.js"), &[]).await;
        assert_eq!(script.status(), StatusCode::OK);
        assert_eq!(
            header(&script, "cache-control"),
            "public, max-age=31536000, immutable"
        );
        assert_eq!(
            header(&script, "content-type"),
            "text/javascript; charset=utf-8"
        );
        assert!(header(&script, "content-security-policy").contains("default-src 'self'"));

        let old = get("/assets/0123456789ab/app.js", &[]).await;
        assert_eq!(old.status(), StatusCode::NOT_FOUND);
        let text = String::from_utf8(body(old).await).unwrap();
        assert!(text.contains("reload the page"), "{text}");

        let missing = get(&format!("/assets/{VERSION}/nothing.js"), &[]).await;
        assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    }

    #[test]
    fn the_page_weighs_at_most_100_kib_compressed() {
        // What a first visit downloads: every file but the vendored licence and notes.
        let weight: usize = ASSETS
            .iter()
            .filter(|asset| !asset.content_type.starts_with("text/plain"))
            .map(|asset| asset.gzip.unwrap_or(asset.body).len())
            .sum();
        assert!(weight <= 100 * 1024, "{weight} bytes compressed");
    }
}
