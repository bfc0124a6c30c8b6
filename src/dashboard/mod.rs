//! The live web dashboard: a single page at `/` and its static files at `/dashboard/{file}`,
//! embedded in the binary so the admin listener serves it offline, with no CDN and no separate
//! web server. The page holds no data: it reads the admin API (`/api/v1/...`) with the operator's
//! bearer token, which is why these routes are open (see `security::admin_tokens`).
//!
//! # Layout
//!
//! - `assets/index.html`: the page; `assets/errors.js` (classic script, runs first),
//!   `assets/app.js` (ES module entry point) and its modules, `assets/app.css`.
//! - `CONTRACT.md`: the routes, ids and `data-*` attributes the browser tests rely on.
//! - `assets/vendor/`: uPlot, vendored from the npm registry (version and licence in its
//!   README.md).
//!
//! There is no build step: the files are served as written. Kept outside `src/api/` because
//! they are not part of the JSON API and its OpenAPI document.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::OnceLock;

use actix_web::http::header::{
    HeaderValue, CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, ETAG, IF_NONE_MATCH,
    REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS,
};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};

use crate::api::error_response;

/// Self only; uPlot sets inline styles on the elements it creates, hence `'unsafe-inline'` for
/// styles (never for scripts). `connect-src 'self'` covers the API and the event stream.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
img-src 'self'; connect-src 'self'; font-src 'self'; manifest-src 'self'; base-uri 'none'; \
form-action 'self'; frame-ancestors 'none'";

/// One embedded file.
struct Asset {
    /// Path under `/dashboard/` (and under `assets/`).
    path: &'static str,
    /// `Content-Type` it is served with; module scripts are refused by browsers without a
    /// JavaScript type.
    content_type: &'static str,
    /// The file itself.
    bytes: &'static [u8],
}

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const SVG: &str = "image/svg+xml";
const TEXT: &str = "text/plain; charset=utf-8";

macro_rules! asset {
    ($path:literal, $content_type:expr) => {
        Asset {
            path: $path,
            content_type: $content_type,
            bytes: include_bytes!(concat!("assets/", $path)),
        }
    };
}

/// The page served at `/`.
const INDEX: Asset = asset!("index.html", HTML);

/// Every file under `/dashboard/`. `tests/dashboard_assets.rs` fails when a file in `assets/`
/// is missing here or a reference in the page or an `import` points nowhere.
static ASSETS: &[Asset] = &[
    asset!("errors.js", JS),
    asset!("app.js", JS),
    asset!("api.js", JS),
    asset!("live.js", JS),
    asset!("format.js", JS),
    asset!("dom.js", JS),
    asset!("charts.js", JS),
    asset!("power.js", JS),
    asset!("pages/overview.js", JS),
    asset!("pages/detail.js", JS),
    asset!("pages/fleet.js", JS),
    asset!("pages/alerts.js", JS),
    asset!("pages/alert_rows.js", JS),
    asset!("pages/thresholds.js", JS),
    asset!("app.css", CSS),
    asset!("favicon.svg", SVG),
    asset!("vendor/uPlot.esm.js", JS),
    asset!("vendor/uPlot.min.css", CSS),
    asset!("vendor/LICENSE", TEXT),
];

/// Registers `/` and `/dashboard/{file}` (only when `admin.dashboard` is on).
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(index))
        .route("/dashboard/{file:.*}", web::get().to(file));
}

/// Strong validators, computed once: the files never change while the process runs, so a
/// browser revalidating after `max-age` gets a 304 instead of the bytes again.
fn etags() -> &'static [String] {
    static ETAGS: OnceLock<Vec<String>> = OnceLock::new();
    ETAGS.get_or_init(|| {
        std::iter::once(&INDEX)
            .chain(ASSETS)
            .map(|asset| {
                let mut hasher = DefaultHasher::new();
                asset.bytes.hash(&mut hasher);
                format!("\"{:016x}\"", hasher.finish())
            })
            .collect()
    })
}

/// `GET /`: the page. Never cached without revalidation, so a new binary's page (and with it
/// the module graph) is picked up at the next load.
async fn index(req: HttpRequest) -> HttpResponse {
    serve(&req, &INDEX, 0, "no-cache")
}

/// `GET /dashboard/{file}`: a static file, cached briefly (the names carry no version).
async fn file(req: HttpRequest, path: web::Path<String>) -> HttpResponse {
    let wanted = path.into_inner();
    match ASSETS.iter().position(|a| a.path == wanted) {
        Some(i) => serve(&req, &ASSETS[i], i + 1, "public, max-age=300"),
        None => error_response(
            StatusCode::NOT_FOUND,
            format!("no dashboard file {wanted:?}"),
        ),
    }
}

/// Answers with `asset` (or 304 when the browser's copy is current) and the security headers
/// every dashboard response carries.
fn serve(req: &HttpRequest, asset: &Asset, index: usize, cache: &'static str) -> HttpResponse {
    let etag = etags().get(index).map_or("", String::as_str);
    let fresh = req
        .headers()
        .get(IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|tag| tag.trim() == etag));
    let mut response = if fresh {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    response
        .insert_header((CACHE_CONTROL, cache))
        .insert_header((X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")))
        .insert_header((CONTENT_SECURITY_POLICY, CSP))
        .insert_header((REFERRER_POLICY, "no-referrer"));
    if !etag.is_empty() {
        response.insert_header((ETAG, etag));
    }
    if fresh {
        return response.finish();
    }
    response
        .insert_header((CONTENT_TYPE, asset.content_type))
        .body(asset.bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asset_paths_are_unique_and_typed_by_extension() {
        let mut seen = std::collections::HashSet::new();
        for asset in ASSETS {
            assert!(seen.insert(asset.path), "{} listed twice", asset.path);
            let expected = match asset.path.rsplit_once('.').map(|(_, ext)| ext) {
                Some("js") => JS,
                Some("css") => CSS,
                Some("svg") => SVG,
                Some("html") => HTML,
                _ => TEXT,
            };
            assert_eq!(asset.content_type, expected, "{}", asset.path);
            assert!(!asset.bytes.is_empty(), "{} is empty", asset.path);
        }
        assert_eq!(etags().len(), ASSETS.len() + 1);
    }
}
