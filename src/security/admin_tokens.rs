//! Bearer tokens for the admin API. Every route needs one when any token is configured, except
//! `/health` and `/ready` (probes), the dashboard's page and files (`/`, `/dashboard/*`: they
//! hold no data, and the page must load to ask for a token) and `/metrics` (which needs
//! `admin.metrics_token` when that is set). With no token configured the API is open only on a loopback address: on any other
//! address a token is generated at start and logged once, so a default install never exposes
//! an open write API on 0.0.0.0.

use std::net::SocketAddr;
use std::sync::Arc;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderValue, AUTHORIZATION, WWW_AUTHENTICATE};
use actix_web::http::StatusCode;
use actix_web::middleware::Next;
use actix_web::web;

use super::passwords::random_token;
use crate::api::error_response;
use crate::config::AdminConfig;

/// Routes that never need a token.
const OPEN: &[&str] = &["/health", "/ready", "/"];
/// Prefix of the dashboard's static files, which never need a token either.
const OPEN_PREFIX: &str = "/dashboard/";
/// The route guarded by `admin.metrics_token` instead.
const METRICS: &str = "/metrics";

/// The tokens in force, shared by the admin listener's workers.
#[derive(Debug, Clone, Default)]
pub struct AdminTokens {
    /// Admin tokens; empty: the API is open.
    tokens: Arc<Vec<String>>,
    /// `/metrics` token; `None`: `/metrics` is open.
    metrics: Option<Arc<str>>,
}

impl AdminTokens {
    /// The tokens of `[admin]` for an admin listener on `http_addr`; the second value is the
    /// token generated because none is configured and `http_addr` is not loopback.
    pub fn from_config(
        admin: &AdminConfig,
        http_addr: SocketAddr,
    ) -> (AdminTokens, Option<String>) {
        let mut tokens = admin.tokens.clone();
        let mut generated = None;
        if tokens.is_empty() && !http_addr.ip().is_loopback() {
            let token = random_token();
            log::warn!(
                "The admin API listens on {http_addr}, which is not a loopback address, and no admin token is configured, so this token was generated for this run only: {token} . Send it as 'Authorization: Bearer <token>'. Set [admin] tokens in config.toml (or OCPP_METER_ADMIN_TOKENS='[\"...\"]') to choose your own, or bind server.http_addr to 127.0.0.1."
            );
            tokens.push(token.clone());
            generated = Some(token);
        }
        let metrics =
            (!admin.metrics_token.is_empty()).then(|| Arc::from(admin.metrics_token.as_str()));
        (
            AdminTokens {
                tokens: Arc::new(tokens),
                metrics,
            },
            generated,
        )
    }

    /// Whether a request for `path` with this Authorization header may proceed.
    fn allows(&self, path: &str, authorization: Option<&HeaderValue>) -> bool {
        if OPEN.contains(&path) || path.starts_with(OPEN_PREFIX) {
            return true;
        }
        let presented = authorization.and_then(bearer);
        let admin_ok = |token: &str| self.tokens.iter().any(|t| constant_time_eq(t, token));
        if path == METRICS {
            return match (&self.metrics, presented) {
                (None, _) => true,
                (Some(metrics), Some(token)) => constant_time_eq(metrics, token) || admin_ok(token),
                (Some(_), None) => false,
            };
        }
        if self.tokens.is_empty() {
            return true;
        }
        presented.is_some_and(admin_ok)
    }
}

/// The token of a `Bearer` Authorization header.
fn bearer(header: &HeaderValue) -> Option<&str> {
    let (scheme, token) = header.to_str().ok()?.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Compares without stopping at the first differing byte, so response times do not tell an
/// attacker how much of a token was right.
fn constant_time_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut diff = u8::from(a.len() != b.len());
    for i in 0..a.len().max(b.len()) {
        diff |= a.get(i).copied().unwrap_or(0) ^ b.get(i).copied().unwrap_or(0);
    }
    diff == 0
}

/// Middleware (`actix_web::middleware::from_fn`) enforcing [`AdminTokens`] registered as app
/// data; 401 `{"error"}` with `WWW-Authenticate: Bearer` otherwise.
pub async fn require_token(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let allowed = match req.app_data::<web::Data<AdminTokens>>() {
        Some(tokens) => tokens.allows(req.path(), req.headers().get(AUTHORIZATION)),
        None => true,
    };
    if allowed {
        return Ok(next.call(req).await?.map_into_left_body());
    }
    let mut response = error_response(
        StatusCode::UNAUTHORIZED,
        "this route needs 'Authorization: Bearer <token>' with a configured admin token".to_owned(),
    );
    response.headers_mut().insert(
        WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"ocpp-meter\""),
    );
    Ok(req.into_response(response).map_into_right_body())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(admin: &[&str], metrics: &str) -> AdminTokens {
        let config = AdminConfig {
            tokens: admin.iter().map(|t| (*t).to_owned()).collect(),
            metrics_token: metrics.to_owned(),
            ..AdminConfig::default()
        };
        AdminTokens::from_config(&config, "127.0.0.1:0".parse().unwrap()).0
    }

    #[test]
    fn routes_are_guarded_as_documented() {
        let h = |v: &'static str| Some(HeaderValue::from_static(v));
        let t = tokens(&["admin-token-0123456789"], "metrics-token-0123456789");
        assert!(t.allows("/health", None));
        assert!(t.allows("/ready", None));
        assert!(
            t.allows("/", None),
            "the dashboard page asks for the token itself"
        );
        assert!(t.allows("/dashboard/app.js", None));
        assert!(t.allows("/dashboard/vendor/uPlot.esm.js", None));
        assert!(!t.allows("/dashboard", None));
        assert!(!t.allows("/dashboardx/app.js", None));
        assert!(!t.allows("//api/v1/charge-points", None));
        assert!(!t.allows("/api/v1/charge-points", None));
        assert!(!t.allows("/api/v1/charge-points", h("Bearer wrong").as_ref()));
        assert!(!t.allows("/anything-else", None));
        assert!(t.allows(
            "/api/v1/charge-points",
            h("Bearer admin-token-0123456789").as_ref()
        ));
        assert!(t.allows("/api/v1/x", h("bearer  admin-token-0123456789 ").as_ref()));
        assert!(!t.allows("/api/v1/x", h("Bearer metrics-token-0123456789").as_ref()));
        assert!(!t.allows("/metrics", None));
        assert!(t.allows("/metrics", h("Bearer metrics-token-0123456789").as_ref()));
        assert!(t.allows("/metrics", h("Bearer admin-token-0123456789").as_ref()));
        let open = tokens(&[], "");
        assert!(open.allows("/api/v1/charge-points", None));
        assert!(open.allows("/metrics", None));
    }

    #[test]
    fn a_token_is_generated_only_off_loopback() {
        let config = AdminConfig::default();
        let (_, none) = AdminTokens::from_config(&config, "127.0.0.1:8081".parse().unwrap());
        assert!(none.is_none());
        let (t, generated) = AdminTokens::from_config(&config, "0.0.0.0:8081".parse().unwrap());
        let generated = generated.unwrap();
        assert!(!t.allows("/api/v1/charge-points", None));
        let header = HeaderValue::from_str(&format!("Bearer {generated}")).unwrap();
        assert!(t.allows("/api/v1/charge-points", Some(&header)));
    }

    #[test]
    fn comparison_is_exact() {
        assert!(constant_time_eq("abc", "abc"));
        assert!(!constant_time_eq("abc", "abd"));
        assert!(!constant_time_eq("abc", "abcd"));
        assert!(!constant_time_eq("", "a"));
    }
}
