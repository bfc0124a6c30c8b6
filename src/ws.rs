//! The WebSocket endpoint charge points connect to: id, client certificate (security profile 3),
//! credentials and subprotocol checks before the upgrade, then one small task per connection
//! that reads OCPP-J frames, asks the connection's `ChargePointActor` for answers and writes
//! them back, with ping/pong keep-alive.
//!
//! Built on actix-ws rather than the deprecated actix-web-actors: the session is a plain task
//! that owns the socket, and the actor stays protocol-agnostic.

use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, Addr};
use actix_web::{web, HttpRequest, HttpResponse};
use actix_ws::{AggregatedMessage, CloseCode, ProtocolError, Session};
use tokio::sync::mpsc;
use tokio::time::{interval_at, Instant, MissedTickBehavior};

use actors::charge_point::{
    ChargePointActor, Close, CloseReason, Disconnected, Services, SessionCommand,
};
use actors::id::ChargePointId;
use actors::registry::Connection;
use actors::server_call::{CallAnswered, CallError, ServerCall};

use crate::api::error_response;
use crate::ocpp::{self, ErrorCode, Frame};

/// The only OCPP version this server speaks.
pub const SUBPROTOCOL: &str = "ocpp1.6";

/// Connection settings, from `[ocpp]` and `[limits]`.
#[derive(Debug, Clone)]
pub struct WsSettings {
    /// Ping interval.
    pub ping_interval: Duration,
    /// Silence after which a connection is dropped.
    pub idle_timeout: Duration,
    /// Largest message accepted.
    pub max_frame_bytes: usize,
    /// Most connections at once.
    pub max_connections: usize,
    /// `ocpp_messages_total`, counted where each CALL is answered (shared by all sessions).
    pub ocpp_messages: crate::metrics::ocpp::OcppMessages,
    /// Whether every charge point must present a client certificate whose CN is its id
    /// (`tls.client_ca` set: OCPP security profile 3). The handshake has verified the
    /// certificate; the upgrade checks whose it is.
    pub require_client_certificate: bool,
    /// `charge_point_certificate_refusals_total`, counted here for a CN that is not the id.
    pub certificate_refusals: crate::metrics::CertificateRefusals,
}

/// What the WebSocket handler needs, shared by all workers.
#[derive(Clone)]
pub struct WsState {
    /// Wiring into the actor core.
    pub services: Services,
    /// Limits and timings.
    pub settings: Arc<WsSettings>,
    /// HTTP Basic check of the upgrade (passwords, unknown charge points, failure limit).
    pub auth: Arc<crate::security::ChargePointAuth>,
}

/// Registers the OCPP endpoints: `/ocpp/{id}` and, for chargers configured with a bare base URL,
/// `/{id}`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/ocpp/{id}", web::get().to(upgrade))
        .route("/{id}", web::get().to(upgrade));
}

/// Decodes `%XX` escapes; `None` for malformed escapes or non-UTF-8 results.
fn percent_decode(raw: &str) -> Option<String> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = raw.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The charge point id from the raw (still percent-encoded) request path.
fn id_from_path(path: &str) -> Result<ChargePointId, String> {
    let raw = path
        .strip_prefix("/ocpp/")
        .or_else(|| path.strip_prefix('/'))
        .unwrap_or(path);
    let decoded = percent_decode(raw)
        .ok_or_else(|| "the charge point id is not valid percent-encoded UTF-8".to_owned())?;
    ChargePointId::parse(&decoded).map_err(|e| e.to_string())
}

/// Checks the offered subprotocols: `Ok` when `ocpp1.6` is offered or none is (some chargers
/// omit the header), `Err` with the offers when only unknown ones are.
fn check_subprotocol(req: &HttpRequest) -> Result<(), String> {
    let offers: Vec<String> = req
        .headers()
        .get_all("sec-websocket-protocol")
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|p| p.trim().to_owned())
        .filter(|p| !p.is_empty())
        .collect();
    if offers.is_empty() || offers.iter().any(|p| p == SUBPROTOCOL) {
        Ok(())
    } else {
        Err(offers.join(", "))
    }
}

/// The upgrade handler: refuses bad ids (400), a client certificate that is not the charge
/// point's (403, with `tls.client_ca`), failed or missing HTTP Basic credentials (401),
/// addresses that failed too often (429), unknown subprotocols (400) and connections over the
/// limit (503) before the upgrade, then starts the session.
async fn upgrade(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<WsState>,
) -> Result<HttpResponse, actix_web::Error> {
    let id = match id_from_path(req.uri().path()) {
        Ok(id) => id,
        Err(reason) => {
            return Ok(error_response(
                actix_web::http::StatusCode::BAD_REQUEST,
                reason,
            ))
        }
    };
    if let Some(refused) = check_certificate(&req, &id, &state.settings) {
        return Ok(refused);
    }
    // Past the check, a required certificate names this charge point.
    let certified = state.settings.require_client_certificate;
    if let Some(refused) = authenticate(&req, &id, &state, certified).await {
        return Ok(refused);
    }
    if let Err(offers) = check_subprotocol(&req) {
        log::warn!("{id}: refused: it offered only unsupported subprotocols ({offers}).");
        return Ok(error_response(
            actix_web::http::StatusCode::BAD_REQUEST,
            format!(
                "unsupported WebSocket subprotocol(s) {offers}; this server speaks {SUBPROTOCOL}"
            ),
        ));
    }
    let registry = &state.services.registry;
    if registry.len() >= state.settings.max_connections && registry.get(&id).is_none() {
        log::warn!("{id}: refused: limits.max_connections reached.");
        return Ok(error_response(
            actix_web::http::StatusCode::SERVICE_UNAVAILABLE,
            "too many charge points connected".to_owned(),
        ));
    }
    let (response, session, stream) = actix_ws::handle_with_protocols(&req, body, &[SUBPROTOCOL])?;

    let (commands_tx, commands_rx) = mpsc::unbounded_channel();
    let session_number = registry.new_session();
    let actor = ChargePointActor::new(
        id.clone(),
        session_number,
        state.services.clone(),
        commands_tx,
    )
    .start();
    let connection = Connection {
        session: session_number,
        actor: actor.clone(),
    };
    if let Some(old) = registry.register(id.clone(), connection) {
        log::info!("{id}: a new connection replaces the open one.");
        old.actor.do_send(Close(CloseReason::Replaced));
    }
    log::info!(
        "{id}: connected from {}.",
        req.peer_addr().map(|a| a.to_string()).unwrap_or_default()
    );
    let stream = stream
        .max_frame_size(state.settings.max_frame_bytes)
        .aggregate_continuations()
        .max_continuation_size(state.settings.max_frame_bytes);
    actix_web::rt::spawn(run_session(
        id,
        actor,
        session,
        stream,
        commands_rx,
        state.settings.clone(),
    ));
    Ok(response)
}

/// The profile 3 check: with `tls.client_ca`, the connection's client certificate (verified in
/// the TLS handshake) must have the charge point id as its subject CN, compared exactly (ids
/// are case-sensitive). `Some(response)` refuses the upgrade with 403, logged and counted.
fn check_certificate(
    req: &HttpRequest,
    id: &ChargePointId,
    settings: &WsSettings,
) -> Option<HttpResponse> {
    use crate::metrics::CertificateRefusal;
    use crate::security::client_cert::PeerCertificate;
    use actix_web::http::StatusCode;
    if !settings.require_client_certificate {
        return None;
    }
    let from = req
        .peer_addr()
        .map(|a| a.ip().to_string())
        .unwrap_or_default();
    let (reason, refusal) = match req.conn_data::<PeerCertificate>().map(|c| &c.common_name) {
        Some(Ok(cn)) if cn == id.as_str() => return None,
        Some(Ok(cn)) => (
            format!("its client certificate is for CN {cn:?}"),
            CertificateRefusal::CnMismatch,
        ),
        Some(Err(error)) => (
            format!("its client certificate names no charge point: {error}"),
            CertificateRefusal::CnMismatch,
        ),
        // The handshake requires a certificate, so this means the listener is wired wrongly.
        None => (
            "the connection carries no client certificate although tls.client_ca is set".into(),
            CertificateRefusal::NoCertificate,
        ),
    };
    log::warn!("{id}: refused with 403 from {from}: {reason}.");
    settings.certificate_refusals.record(refusal);
    Some(error_response(
        StatusCode::FORBIDDEN,
        "a client certificate whose CN is the charge point id is required".to_owned(),
    ))
}

/// Runs the HTTP Basic check (OCPP security profiles 1 and 2, and 3 where a password is set);
/// `Some(response)` refuses the upgrade with 401 (and `WWW-Authenticate`), 429 or 503.
async fn authenticate(
    req: &HttpRequest,
    id: &ChargePointId,
    state: &WsState,
    certified: bool,
) -> Option<HttpResponse> {
    use crate::security::Refusal;
    use actix_web::http::{header, StatusCode};
    let peer = req.peer_addr().map(|a| a.ip());
    let from = peer.map(|ip| ip.to_string()).unwrap_or_default();
    let authorization = req.headers().get(header::AUTHORIZATION);
    match state.auth.check(id, peer, authorization, certified).await {
        Ok(()) => None,
        Err(Refusal::Unauthorized(reason)) => {
            if certified {
                log::warn!("{id}: refused with 401 from {from}: {reason}; its client certificate is valid, but a charge point with a password must send it too (delete the password to let the certificate alone authenticate it).");
            } else {
                log::warn!("{id}: refused with 401 from {from}: {reason}.");
            }
            let mut response =
                error_response(StatusCode::UNAUTHORIZED, "authentication failed".to_owned());
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Basic realm=\"ocpp-meter\""),
            );
            Some(response)
        }
        Err(Refusal::TooManyFailures) => {
            log::warn!("{id}: refused with 429: {from} failed to authenticate too often.");
            Some(error_response(
                StatusCode::TOO_MANY_REQUESTS,
                "too many failed authentications from this address; try again later".to_owned(),
            ))
        }
        Err(Refusal::Unavailable) => Some(error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            "credentials cannot be checked right now".to_owned(),
        )),
    }
}

/// How a session ended, for the log and the close frame.
enum Ending {
    /// The peer closed or vanished.
    PeerLeft,
    /// The server closes with this code and reason.
    Close(CloseCode, &'static str),
}

/// The per-connection loop. Every frame is answered before the next is read, which is what
/// OCPP-J asks of a charge point anyway (one outstanding CALL per direction).
async fn run_session(
    id: ChargePointId,
    actor: Addr<ChargePointActor>,
    mut session: Session,
    mut stream: actix_ws::AggregatedMessageStream,
    mut commands: mpsc::UnboundedReceiver<SessionCommand>,
    settings: Arc<WsSettings>,
) {
    let mut ping = interval_at(
        Instant::now() + settings.ping_interval,
        settings.ping_interval,
    );
    ping.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut last_heard = Instant::now();
    // The server-initiated call on the wire (uniqueId and call), so its answer can be decoded.
    let mut outstanding: Option<(String, ServerCall)> = None;
    let ending = loop {
        tokio::select! {
            message = stream.recv() => {
                last_heard = Instant::now();
                let text = match message {
                    Some(Ok(AggregatedMessage::Text(text))) => text.to_string(),
                    Some(Ok(AggregatedMessage::Binary(bytes))) => {
                        // OCPP-J uses text frames; accept UTF-8 sent as binary, refuse the rest.
                        match String::from_utf8(bytes.to_vec()) {
                            Ok(text) => text,
                            Err(_) => {
                                let reply = ocpp::encode_call_error(
                                    "-1",
                                    ErrorCode::FormationViolation,
                                    "binary frame is not UTF-8 JSON",
                                );
                                if session.text(reply).await.is_err() { break Ending::PeerLeft; }
                                continue;
                            }
                        }
                    }
                    Some(Ok(AggregatedMessage::Ping(bytes))) => {
                        if session.pong(&bytes).await.is_err() { break Ending::PeerLeft; }
                        continue;
                    }
                    Some(Ok(AggregatedMessage::Pong(_))) => continue,
                    Some(Ok(AggregatedMessage::Close(_))) | None => break Ending::PeerLeft,
                    Some(Err(ProtocolError::Overflow)) => {
                        log::warn!("{id}: message over limits.max_frame_bytes; closing with 1009.");
                        break Ending::Close(CloseCode::Size, "message too big");
                    }
                    Some(Err(ProtocolError::Io(e))) if e.to_string().contains("maximum continuation size") => {
                        log::warn!("{id}: fragmented message over limits.max_frame_bytes; closing with 1009.");
                        break Ending::Close(CloseCode::Size, "message too big");
                    }
                    Some(Err(e)) => {
                        log::warn!("{id}: WebSocket protocol error ({e}); closing.");
                        break Ending::Close(CloseCode::Protocol, "websocket protocol error");
                    }
                };
                if is_answer(&text) {
                    route_answer(&id, &actor, &text, &mut outstanding);
                    continue;
                }
                if let Some(reply) = answer(&id, &actor, &text, &settings.ocpp_messages).await {
                    if session.text(reply).await.is_err() { break Ending::PeerLeft; }
                }
            }
            command = commands.recv() => match command {
                Some(SessionCommand::Close(CloseReason::Replaced)) => {
                    break Ending::Close(CloseCode::Policy, "replaced by a new connection");
                }
                Some(SessionCommand::Close(CloseReason::Shutdown)) | None => {
                    break Ending::Close(CloseCode::Away, "server shutting down");
                }
                Some(SessionCommand::Call { unique_id, call }) => {
                    let frame = ocpp::outgoing::encode_server_call(&unique_id, &call);
                    log::debug!("{id}: sending {} as {unique_id}.", call.action());
                    outstanding = Some((unique_id, call));
                    if session.text(frame).await.is_err() { break Ending::PeerLeft; }
                }
            },
            _ = ping.tick() => {
                if last_heard.elapsed() >= settings.idle_timeout {
                    log::info!("{id}: silent for {:?}; dropping the connection.", settings.idle_timeout);
                    break Ending::Close(CloseCode::Away, "idle timeout");
                }
                if session.ping(b"").await.is_err() { break Ending::PeerLeft; }
            }
        }
    };
    if let Ending::Close(code, description) = ending {
        let reason = actix_ws::CloseReason {
            code,
            description: Some(description.to_owned()),
        };
        let _ = session.close(Some(reason)).await;
    }
    actor.do_send(Disconnected);
}

/// Answers one text frame: a CALLRESULT or CALLERROR for a CALL, nothing for the charge point's
/// own CALLRESULT/CALLERROR (answers to server-initiated calls).
async fn answer(
    id: &ChargePointId,
    actor: &Addr<ChargePointActor>,
    text: &str,
    messages: &crate::metrics::ocpp::OcppMessages,
) -> Option<String> {
    match ocpp::decode_frame(text) {
        Ok(Frame::Call {
            unique_id,
            action,
            payload,
        }) => match ocpp::decode_request(&action, payload) {
            Ok(request) => match actor.send(request).await {
                Ok(reply) => {
                    messages.record_reply(&action, &reply);
                    Some(ocpp::encode_reply(&unique_id, &reply))
                }
                Err(e) => {
                    log::error!("{id}: the charge point actor is gone ({e}).");
                    messages.record(&action, ErrorCode::InternalError.as_str());
                    Some(ocpp::encode_call_error(
                        &unique_id,
                        ErrorCode::InternalError,
                        "the server could not handle the request",
                    ))
                }
            },
            Err(error) => {
                log::warn!("{id}: {action} refused: {error}.");
                messages.record_refused(&action, &error);
                Some(ocpp::encode_payload_error(&unique_id, &error))
            }
        },
        Ok(_) => {
            log::debug!("{id}: ignoring a response to a call this server did not make.");
            None
        }
        Err(error) if is_answer(text) => {
            log::warn!("{id}: malformed answer to a server call, not answered: {error}.");
            None
        }
        Err(error) => {
            log::warn!("{id}: malformed frame: {error}.");
            messages.record_malformed(&error);
            Some(ocpp::encode_frame_error(&error))
        }
    }
}

/// Hands the charge point's CALLRESULT or CALLERROR to the actor as the answer to the
/// outstanding server call. Never answered on the wire (OCPP-J 1.6 section 4.2.3): a malformed
/// answer fails the outstanding call instead, an answer to another uniqueId is dropped.
fn route_answer(
    id: &ChargePointId,
    actor: &Addr<ChargePointActor>,
    text: &str,
    outstanding: &mut Option<(String, ServerCall)>,
) {
    let result = match ocpp::decode_frame(text) {
        Ok(frame) => match outstanding
            .as_ref()
            .and_then(|(uid, call)| ocpp::outgoing::read_answer(&frame, uid, call))
        {
            Some(result) => result,
            None => {
                log::debug!("{id}: ignoring a response to a call that is not outstanding.");
                return;
            }
        },
        Err(error) => {
            log::warn!("{id}: malformed answer to a server call, not answered: {error}.");
            if outstanding.is_none() {
                return;
            }
            Err(CallError::BadResponse(error.to_string()))
        }
    };
    if let Some((unique_id, call)) = outstanding.take() {
        if let Err(error) = &result {
            log::warn!("{id}: {} {unique_id} failed: {error}.", call.action());
        }
        actor.do_send(CallAnswered { unique_id, result });
    }
}

/// Whether a message that could not be decoded starts as a CALLRESULT or CALLERROR
/// (MessageTypeId 3 or 4). Only a CALL may be answered with a CALLERROR (OCPP-J 1.6 section
/// 4.2.3); answering a broken answer could make both ends loop.
fn is_answer(text: &str) -> bool {
    let Some(rest) = text.trim_start().strip_prefix('[') else {
        return false;
    };
    let rest = rest.trim_start();
    let end = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '+')))
        .unwrap_or(rest.len());
    matches!(
        serde_json::from_str::<u8>(&rest[..end]),
        Ok(ocpp::frame::CALL_RESULT | ocpp::frame::CALL_ERROR)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_percent_decoded_and_validated() {
        assert!(id_from_path("/ocpp/CP%201").unwrap_err().contains("' '"));
        assert_eq!(id_from_path("/ocpp/CP%2D1").unwrap().as_str(), "CP-1");
        assert_eq!(id_from_path("/CP7").unwrap().as_str(), "CP7");
        assert!(id_from_path("/ocpp/a%2Fb").is_err());
        assert!(id_from_path("/ocpp/%7Bx%7D").is_err());
        assert!(id_from_path("/ocpp/%zz").is_err());
        assert!(id_from_path("/ocpp/").is_err());
    }

    #[test]
    fn broken_answers_are_told_from_broken_calls() {
        assert!(is_answer(r#"[3,"a"]"#));
        assert!(is_answer(r#" [ 4 , "a", 1, "d", {}]"#));
        assert!(is_answer(r#"[3, "a", {"#));
        assert!(!is_answer(r#"[2, "a"]"#));
        assert!(!is_answer(r#"[34, "a"]"#));
        assert!(!is_answer(r#"[3.5, "a"]"#));
        assert!(!is_answer(r#"["3", "a"]"#));
        assert!(!is_answer("{not json"));
        assert!(!is_answer(""));
    }
}
