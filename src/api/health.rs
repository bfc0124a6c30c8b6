//! `/health` (the process answers) and `/ready` (it can store what it accepts).

use std::sync::atomic::Ordering;

use actix_web::{web, HttpResponse};
use serde_json::json;

use super::ApiState;
use actors::store::reads;

/// Registers `/health` and `/ready`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/health", web::get().to(health))
        .route("/ready", web::get().to(ready));
}

/// The OpenAPI description of the routes above (`openapi.rs` merges it); a route added
/// here without its handler listed fails `tests/openapi.rs`.
#[derive(utoipa::OpenApi)]
#[openapi(paths(health, ready))]
pub(super) struct Doc;

#[utoipa::path(get, path = "/health", tag = "operations", responses((status = 200, description = "The process answers", body = super::schemas::Health)))]
async fn health() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

/// 200 when Redis answers and the writer's backlog is under its bound; 503 with the reasons
/// otherwise, so a load balancer or orchestrator can act on it.
#[utoipa::path(get, path = "/ready", tag = "operations", responses((status = 200, description = "Redis answers and the writer backlog is under its bound", body = super::schemas::Ready), (status = 503, description = "Not ready; `reasons` says why", body = super::schemas::Ready)))]
async fn ready(state: web::Data<ApiState>) -> HttpResponse {
    let mut reasons = Vec::new();
    let redis = reads::ping(&state.pool).await;
    if let Err(error) = &redis {
        reasons.push(format!("redis: {error}"));
    }
    if let Some(error) = state.writer_stats.last_error() {
        reasons.push(format!("redis writes failing: {error}"));
    }
    let wal_trouble = state.wal.as_ref().and_then(|wal| wal.trouble());
    if let Some(trouble) = &wal_trouble {
        reasons.push(format!("wal: {trouble}"));
    }
    let cluster = if state.pool.is_cluster() {
        match reads::cluster_health(&state.pool).await {
            Ok(health) => {
                if health.state != "ok" {
                    reasons.push(format!(
                        "redis cluster state {} ({} slots failing)",
                        health.state, health.slots_failing
                    ));
                }
                json!({
                    "state": health.state,
                    "slots_ok": health.slots_ok,
                    "slots_failing": health.slots_failing,
                    "known_nodes": health.known_nodes,
                    "size": health.size,
                })
            }
            Err(error) => {
                if redis.is_ok() {
                    reasons.push(format!("redis cluster: {error}"));
                }
                json!({ "state": "unknown" })
            }
        }
    } else {
        serde_json::Value::Null
    };
    let pending = state.writer_stats.samples_pending.load(Ordering::Relaxed);
    if pending as usize >= state.max_pending_samples {
        reasons.push(format!(
            "writer backlog of {pending} samples reached buffer.max_pending_samples"
        ));
    }
    let body = json!({
        "status": if reasons.is_empty() { "ready" } else { "not ready" },
        "redis": if redis.is_ok() { "up" } else { "down" },
        "pending_samples": pending,
        "connected_charge_points": state.registry.len(),
        "wal": match (&state.wal, &wal_trouble) {
            (None, _) => "disabled",
            (Some(_), None) => "ok",
            (Some(_), Some(_)) => "failing",
        },
        "reasons": reasons,
        "redis_mode": if state.pool.is_cluster() { "cluster" } else { "standalone" },
    });
    let mut body = body;
    if !cluster.is_null() {
        body["cluster"] = cluster;
    }
    if reasons.is_empty() {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}
