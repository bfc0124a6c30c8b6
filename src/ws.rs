//! The WebSocket endpoint charge points connect to: id, client certificate (security profile 3),
//! credentials and subprotocol checks before the upgrade, then one small task per connection
//! that reads OCPP-J frames, asks the connection's `ChargePointActor` for answers and writes
//! them back, with ping/pong keep-alive.
//!
//! Built on actix-ws rather than the deprecated actix-web-actors: the session is a plain task
//! that owns the socket, and the actor stays protocol-agnostic.
//!
//! # Slow and hostile peers
//!
//! Every way one connection could cost the server without bound is bounded here (keys in
//! `[limits]`, each trip counted in `ocpp_hostile_closed_total{reason}`):
//!
//! - connect floods: a token bucket per source address ([`crate::security::connect_rate`]),
//!   checked by [`limit_connects`] before routing, 429;
//! - handshakes that never finish: actix-web's request-head and TLS handshake timeouts, set from
//!   `handshake_timeout_secs`; [`on_connect`] counts connections that end without a request;
//! - peers that never read: actix-ws queues at most 32 frames (a bounded channel; `Session::text`
//!   waits when it is full), actix-http's write buffer holds 32 KiB, the kernel send buffer is
//!   capped by [`tune_listener`]; every write waits at most `write_timeout_secs`, then the
//!   session is dropped, and the kernel's TCP_USER_TIMEOUT cuts the socket itself;
//! - ping floods: `control_frames_per_minute` per connection;
//! - CALL floods: the session reads ahead and answers in order, at most `max_inflight_calls`
//!   frames unanswered. Server-initiated calls need no bound of their own: the actor sends one
//!   at a time (`CallQueue`), so its command channel holds at most a call and a close.

use std::any::Any;
use std::cell::Cell;
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, Addr};
use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Extensions, ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::FromRequest;
use actix_web::{web, HttpRequest, HttpResponse};
use actix_ws::{CloseCode, Closed, Session};
use futures_util::StreamExt;
use tokio::time::{interval_at, Instant, MissedTickBehavior};

use actors::charge_point::{
    CallAnswered, ChargePointActor, Close, CloseReason, Disconnected, Request, Services,
    SessionCommand,
};
use actors::fleet::Fleet;
use actors::id::ChargePointId;
use actors::registry::Connection;
use actors::server_call::{CallError, ServerCall};

use crate::api::error_response;
use crate::metrics::hostile::{HostileClosed, Reason};
use crate::metrics::ocpp::OcppMessages;
use crate::ocpp::{self, ErrorCode, Frame, Protocol};
use crate::security::connect_rate::{Admission, ConnectLimiter};

mod reader;

use reader::{Message, MessageReader, ReadError};

/// The OCPP 1.6 subprotocol name, kept for callers (tests, the load generator) that speak 1.6.
pub const SUBPROTOCOL: &str = "ocpp1.6";

/// The body of a 429 for connecting too fast; fixed, so refusing a flood formats nothing.
const CONNECT_RATE_REFUSAL: &str =
    r#"{"error":"too many connections from this address; try again later"}"#;

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
    pub ocpp_messages: OcppMessages,
    /// Whether every charge point must present a client certificate whose CN is its id
    /// (`tls.client_ca` set: OCPP security profile 3). The handshake has verified the
    /// certificate; the upgrade checks whose it is.
    pub require_client_certificate: bool,
    /// `charge_point_certificate_refusals_total`, counted here for a CN that is not the id.
    pub certificate_refusals: crate::metrics::CertificateRefusals,
    /// Longest one write may wait for room in the outbound queue (`limits.write_timeout_secs`).
    pub write_timeout: Duration,
    /// Pings and pongs one connection may send per minute (`limits.control_frames_per_minute`).
    pub control_frames_per_minute: u32,
    /// Frames read and not yet answered before a connection counts as flooding
    /// (`limits.max_inflight_calls`).
    pub max_inflight_calls: usize,
    /// `ocpp_hostile_closed_total`, counted where each bound trips.
    pub hostile: HostileClosed,
    /// The OCPP versions a charge point may choose (`ocpp.protocols`); the first of its offers
    /// that is in this list wins.
    pub protocols: Vec<Protocol>,
}

/// What the WebSocket handler needs, shared by all workers.
#[derive(Clone)]
pub struct WsState {
    /// Wiring into the actor core, shared by every session's actor.
    pub services: Arc<Services>,
    /// The fleet, where a new session claims its charge point before it starts.
    pub fleet: Fleet,
    /// Limits and timings.
    pub settings: Arc<WsSettings>,
    /// HTTP Basic check of the upgrade (passwords, unknown charge points, failure limit).
    pub auth: Arc<crate::security::ChargePointAuth>,
    /// Upgrades per source address (`limits.connects_per_address_per_sec`, `connect_burst`).
    pub connects: Arc<ConnectLimiter>,
}

/// Caps what the kernel holds for one connection: SO_SNDBUF (`limits.socket_send_buffer_bytes`)
/// and TCP_USER_TIMEOUT (twice `limits.write_timeout_secs`, so the session's own write timeout,
/// which is counted, normally trips first). Set on the listener: Linux copies both to every
/// accepted socket. Without them a peer that never reads lets the send buffer grow to
/// `net.ipv4.tcp_wmem`'s maximum (4 MiB) and keeps the socket forever, answering zero-window
/// probes.
pub fn tune_listener(
    listener: &std::net::TcpListener,
    send_buffer_bytes: usize,
    write_timeout: Duration,
) -> std::io::Result<()> {
    let socket = socket2::SockRef::from(listener);
    socket.set_send_buffer_size(send_buffer_bytes)?;
    socket.set_tcp_user_timeout(Some(write_timeout.saturating_mul(2)))
}

/// Marks a connection that delivered a request head, so [`on_connect`]'s guard can tell the
/// connections that never did.
#[derive(Debug)]
struct HandshakeGuard {
    /// Set by the first request that reaches a handler.
    requested: Cell<bool>,
    /// Where a connection without a request is counted when it ends.
    hostile: HostileClosed,
}

impl Drop for HandshakeGuard {
    fn drop(&mut self) {
        if !self.requested.get() {
            self.hostile.record(Reason::HandshakeIncomplete);
        }
    }
}

/// The `HttpServer::on_connect` hook of the WebSocket listener: gives every connection a guard
/// that counts it as `handshake_incomplete` when it ends without a request head reaching the
/// handler (it timed out after `limits.handshake_timeout_secs` with 408, sent garbage, or the
/// peer gave up). TLS handshakes that time out end before this hook and are not counted.
pub fn on_connect(hostile: HostileClosed) -> impl Fn(&dyn Any, &mut Extensions) + Send + Sync {
    move |_, extensions| {
        extensions.insert(HandshakeGuard {
            requested: Cell::new(false),
            hostile: hostile.clone(),
        });
    }
}

/// Marks the connection of `req` as having delivered a request.
fn mark_requested(req: &HttpRequest) {
    if let Some(guard) = req.conn_data::<HandshakeGuard>() {
        guard.requested.set(true);
    }
}

/// Middleware (`actix_web::middleware::from_fn`) of the WebSocket listener, the first thing a
/// request meets: marks the connection as having made a request (see [`on_connect`]) and
/// applies the per-address connect limit, answering 429 (`Retry-After: 1`, connection closed)
/// before routing, authentication or any actor, so refusing a flood costs as little as an HTTP
/// request can.
pub async fn limit_connects(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    mark_requested(req.request());
    let refused = match (req.app_data::<web::Data<WsState>>(), req.peer_addr()) {
        (Some(state), Some(peer)) => {
            match state.connects.admit(peer.ip(), std::time::Instant::now()) {
                Admission::Allowed => None,
                Admission::Refused { first } => {
                    if first {
                        log::warn!("{} connects faster than limits.connects_per_address_per_sec; refusing with 429 (further refusals are only counted).", peer.ip());
                    }
                    state.settings.hostile.record(Reason::ConnectRate);
                    Some(())
                }
            }
        }
        _ => None,
    };
    if refused.is_none() {
        return Ok(next.call(req).await?.map_into_left_body());
    }
    let response = HttpResponse::TooManyRequests()
        .force_close()
        .insert_header((actix_web::http::header::RETRY_AFTER, "1"))
        .content_type("application/json")
        .body(CONNECT_RATE_REFUSAL);
    Ok(req.into_response(response).map_into_right_body())
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

/// Picks the session's OCPP version from the offered subprotocols ([`Protocol::negotiate`]):
/// the first offer that `ocpp.protocols` enables, 1.6 when none is offered (some chargers omit
/// the header); `Err` with the offers when only unsupported ones are.
fn choose_protocol(req: &HttpRequest, enabled: &[Protocol]) -> Result<Protocol, String> {
    let offers: Vec<&str> = req
        .headers()
        .get_all("sec-websocket-protocol")
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect();
    Protocol::negotiate(&offers, enabled).ok_or_else(|| {
        if offers.is_empty() {
            "none".to_owned()
        } else {
            offers.join(", ")
        }
    })
}

/// The upgrade handler: refuses bad ids (400), a client certificate that is not the charge
/// point's (403, with `tls.client_ca`), failed or missing HTTP Basic credentials (401),
/// addresses that failed too often (429), unknown subprotocols (400) and connections over the
/// limit (503) before the upgrade, then starts the session. Addresses that connect too fast
/// were refused before routing ([`limit_connects`]).
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
    let protocol = match choose_protocol(&req, &state.settings.protocols) {
        Ok(protocol) => protocol,
        Err(offers) => {
            let speaks: Vec<&str> = state
                .settings
                .protocols
                .iter()
                .map(|p| p.subprotocol())
                .collect();
            let speaks = speaks.join(", ");
            log::warn!("{id}: refused: it offered only unsupported subprotocols ({offers}).");
            return Ok(error_response(
                actix_web::http::StatusCode::BAD_REQUEST,
                format!(
                    "unsupported WebSocket subprotocol(s) {offers}; this server speaks {speaks}"
                ),
            ));
        }
    };
    let registry = &state.services.registry;
    if registry.len() >= state.settings.max_connections && registry.get(&id).is_none() {
        log::warn!("{id}: refused: limits.max_connections reached.");
        return Ok(error_response(
            actix_web::http::StatusCode::SERVICE_UNAVAILABLE,
            "too many charge points connected".to_owned(),
        ));
    }
    // Fleet-wide second-connection rule: claim the charge point in Redis; when another
    // instance held it, that instance closes its session and flushes what it holds first
    // (bounded wait), and the charge point's active alerts are restored from Redis, all
    // before this session can send anything.
    let session_number = registry.new_session();
    let held_here = registry.get(&id).is_some();
    state.fleet.arrive(&id, session_number, held_here).await;
    // actix-ws answers the handshake and owns the outbound side (its bounded queue); the
    // inbound bytes go to this module's reader, which decodes one frame at a time. actix-ws is
    // handed an empty payload for the reading side it would otherwise own.
    let unused = web::Payload::extract(&req).await?;
    let (response, session, _) =
        actix_ws::handle_with_protocols(&req, unused, &[protocol.subprotocol()])?;
    let reader = MessageReader::new(body, state.settings.max_frame_bytes);

    let (commands_tx, commands_rx) = futures_channel::mpsc::unbounded();
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
        "{id}: connected from {} speaking {protocol}.",
        req.peer_addr().map(|a| a.to_string()).unwrap_or_default()
    );
    actix_web::rt::spawn(run_session(
        id,
        protocol,
        actor,
        session,
        reader,
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

/// How a session ended, for the log, the close frame and the metrics.
enum Ending {
    /// The peer closed or vanished.
    PeerLeft,
    /// The server closes with this code and reason.
    Close(CloseCode, &'static str),
    /// A `[limits]` bound tripped: counted, then closed with this code and reason.
    Hostile(Reason, CloseCode, &'static str),
    /// A write waited `limits.write_timeout_secs`: the peer does not read, so no close frame
    /// would reach it either; counted and dropped.
    Stalled,
}

/// A frame read from the charge point, waiting for its turn to be answered.
enum Inbound {
    /// A text frame, or a binary one that is UTF-8.
    Text(String),
    /// A binary frame that is not UTF-8 (answered with a FormationViolation).
    NotUtf8,
}

/// The answer being worked on: a CALLRESULT/CALLERROR to write, or nothing (an answer to a
/// server call, or a frame that is not answered).
type Answering = Pin<Box<dyn Future<Output = Option<String>>>>;

/// Pings and pongs of one connection in the current minute.
struct ControlFrames {
    /// Start of the current one-minute window.
    since: Instant,
    /// Control frames in it.
    count: u32,
    /// `limits.control_frames_per_minute`.
    max: u32,
}

impl ControlFrames {
    /// Counts one control frame at `now`; `true` when the connection is over its allowance.
    fn over(&mut self, now: Instant) -> bool {
        if now.duration_since(self.since) >= Duration::from_secs(60) {
            self.since = now;
            self.count = 0;
        }
        self.count = self.count.saturating_add(1);
        self.count > self.max
    }
}

/// One write to the session, bounded by `limit`: `Stalled` when the outbound queue stayed full
/// that long (the peer does not read), `PeerLeft` when the connection is gone.
///
/// Boxed: the write and its timer are a few hundred bytes that exist only while a write waits,
/// and unboxed they would be part of every session's future for its whole life, idle or not
/// (issue 13, memory per idle charge point).
fn bounded<'a>(
    write: impl Future<Output = Result<(), Closed>> + 'a,
    limit: Duration,
) -> Pin<Box<dyn Future<Output = Result<(), Ending>> + 'a>> {
    Box::pin(async move {
        match tokio::time::timeout(limit, write).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(Closed)) => Err(Ending::PeerLeft),
            Err(_) => Err(Ending::Stalled),
        }
    })
}

/// The per-connection loop. Frames are read as they arrive and answered one at a time, in order,
/// which is what OCPP-J asks of a charge point anyway (one outstanding CALL per direction);
/// reading ahead is what lets a flood be seen (more than `max_inflight_calls` unanswered) and
/// keeps pings, server calls and the idle check going while the actor works on an answer.
async fn run_session(
    id: ChargePointId,
    protocol: Protocol,
    actor: Addr<ChargePointActor>,
    mut session: Session,
    mut reader: MessageReader,
    mut commands: futures_channel::mpsc::UnboundedReceiver<Box<SessionCommand>>,
    settings: Arc<WsSettings>,
) {
    let mut ping = interval_at(
        Instant::now() + settings.ping_interval,
        settings.ping_interval,
    );
    ping.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let write_timeout = settings.write_timeout;
    let mut last_heard = Instant::now();
    // The server-initiated call on the wire (uniqueId and call), so its answer can be decoded.
    let mut outstanding: Option<(String, ServerCall)> = None;
    // Frames read and waiting for their turn, and the one being answered.
    let mut inbound: VecDeque<Inbound> = VecDeque::new();
    let mut answering: Option<Answering> = None;
    let mut control = ControlFrames {
        since: Instant::now(),
        count: 0,
        max: settings.control_frames_per_minute,
    };
    let ending = loop {
        // Start on the next frame when the last one is answered; answers to server calls are
        // routed at once.
        while answering.is_none() {
            match inbound.pop_front() {
                None => break,
                Some(Inbound::Text(text)) if is_answer(&text) => {
                    route_answer(&id, protocol, &actor, &text, &mut outstanding);
                }
                Some(Inbound::Text(text)) => {
                    answering = Some(Box::pin(answer(
                        id.clone(),
                        protocol,
                        actor.clone(),
                        text,
                        settings.ocpp_messages.clone(),
                    )));
                }
                Some(Inbound::NotUtf8) => {
                    // OCPP-J uses text frames; UTF-8 sent as binary is accepted, the rest refused.
                    let reply = protocol.encode_unreadable("binary frame is not UTF-8 JSON");
                    answering = Some(Box::pin(std::future::ready(Some(reply))));
                }
            }
        }
        tokio::select! {
            message = reader.next() => {
                last_heard = Instant::now();
                let frame = match message {
                    Some(Ok(Message::Text(text))) => Inbound::Text(text),
                    Some(Ok(Message::Binary(bytes))) => match String::from_utf8(bytes.to_vec()) {
                        Ok(text) => Inbound::Text(text),
                        Err(_) => Inbound::NotUtf8,
                    },
                    Some(Ok(Message::Ping(bytes))) => {
                        if control.over(last_heard) {
                            break Ending::Hostile(Reason::PingFlood, CloseCode::Policy, "too many pings");
                        }
                        if let Err(ending) = bounded(session.pong(&bytes), write_timeout).await {
                            break ending;
                        }
                        continue;
                    }
                    Some(Ok(Message::Pong)) => {
                        if control.over(last_heard) {
                            break Ending::Hostile(Reason::PingFlood, CloseCode::Policy, "too many pings");
                        }
                        continue;
                    }
                    Some(Ok(Message::Close)) | None => break Ending::PeerLeft,
                    Some(Err(ReadError::TooBig)) => {
                        log::warn!("{id}: message over limits.max_frame_bytes; closing with 1009.");
                        break Ending::Close(CloseCode::Size, "message too big");
                    }
                    Some(Err(ReadError::Protocol(e))) => {
                        log::warn!("{id}: WebSocket protocol error ({e}); closing.");
                        break Ending::Close(CloseCode::Protocol, "websocket protocol error");
                    }
                };
                crate::memory::note_message();
                inbound.push_back(frame);
                if inbound.len() + usize::from(answering.is_some()) > settings.max_inflight_calls {
                    break Ending::Hostile(Reason::CallFlood, CloseCode::Policy, "too many unanswered calls");
                }
            }
            reply = async {
                match answering.as_mut() {
                    Some(answer) => answer.await,
                    None => std::future::pending().await,
                }
            } => {
                answering = None;
                if let Some(reply) = reply {
                    if let Err(ending) = bounded(session.text(reply), write_timeout).await {
                        break ending;
                    }
                }
            }
            command = commands.next() => match command.map(|command| *command) {
                Some(SessionCommand::Close(CloseReason::Replaced)) => {
                    break Ending::Close(CloseCode::Policy, "replaced by a new connection");
                }
                Some(SessionCommand::Close(CloseReason::Shutdown)) | None => {
                    break Ending::Close(CloseCode::Away, "server shutting down");
                }
                Some(SessionCommand::Call { unique_id, call }) => {
                    if let Some(result) = protocol.answer_without_call(&call) {
                        // Nothing the charge point's version could be asked (a 1.6 key that
                        // reaches no 2.0.1 variable): answered here, nothing goes on the wire.
                        log::debug!("{id}: {} {unique_id} answered without a call.", call.action());
                        actor.do_send(CallAnswered { unique_id, result });
                        continue;
                    }
                    let frame = protocol.encode_server_call(&unique_id, &call);
                    log::debug!("{id}: sending {} as {unique_id}.", call.action());
                    outstanding = Some((unique_id, call));
                    if let Err(ending) = bounded(session.text(frame), write_timeout).await {
                        break ending;
                    }
                }
            },
            _ = ping.tick() => {
                if last_heard.elapsed() >= settings.idle_timeout {
                    log::info!("{id}: silent for {:?}; dropping the connection.", settings.idle_timeout);
                    break Ending::Close(CloseCode::Away, "idle timeout");
                }
                if let Err(ending) = bounded(session.ping(b""), write_timeout).await {
                    break ending;
                }
            }
        }
    };
    let close = match ending {
        Ending::PeerLeft => None,
        Ending::Close(code, description) => Some((code, description)),
        Ending::Hostile(reason, code, description) => {
            log::warn!(
                "{id}: closing with {}: {description} (limits.{}).",
                u16::from(code),
                match reason {
                    Reason::PingFlood => "control_frames_per_minute",
                    _ => "max_inflight_calls",
                }
            );
            settings.hostile.record(reason);
            Some((code, description))
        }
        Ending::Stalled => {
            log::warn!(
                "{id}: does not read what the server sends (a write waited limits.write_timeout_secs); dropping the connection."
            );
            settings.hostile.record(Reason::WriteTimeout);
            None
        }
    };
    if let (Some(_), Some(in_flight)) = (close, answering.take()) {
        // The server closes (shutdown, replacement, idle, a broken frame) while a CALL is being
        // answered: the actor has taken it, so its answer goes out before the close frame, as
        // when the session answered one frame before looking at anything else.
        if let Some(reply) = in_flight.await {
            let _ = bounded(session.text(reply), write_timeout).await;
        }
    }
    if let Some((code, description)) = close {
        let reason = actix_ws::CloseReason {
            code,
            description: Some(description.to_owned()),
        };
        // Bounded like every write: a flooder that does not read gets no close frame.
        let _ = Box::pin(tokio::time::timeout(
            write_timeout,
            session.close(Some(reason)),
        ))
        .await;
    }
    actor.do_send(Disconnected);
}

/// Answers one text frame: a CALLRESULT or CALLERROR for a CALL, nothing for the charge point's
/// own CALLRESULT/CALLERROR (answers to server-initiated calls). Owns its arguments so the
/// session can keep reading while the actor works.
async fn answer(
    id: ChargePointId,
    protocol: Protocol,
    actor: Addr<ChargePointActor>,
    text: String,
    messages: OcppMessages,
) -> Option<String> {
    let (id, text, messages) = (&id, text.as_str(), &messages);
    match ocpp::decode_frame(text) {
        Ok(Frame::Call {
            unique_id,
            action,
            payload,
        }) => match protocol.decode_request(&action, payload) {
            Ok(mut request) => {
                if let Request::Boot(boot) = &mut request {
                    boot.ocpp_version = Some(protocol.subprotocol().to_owned());
                }
                match actor.send(request).await {
                    Ok(reply) => {
                        messages.record_reply(&action, &reply);
                        Some(protocol.encode_reply(&unique_id, &action, &reply))
                    }
                    Err(e) => {
                        log::error!("{id}: the charge point actor is gone ({e}).");
                        messages.record(&action, ErrorCode::InternalError.as_str());
                        Some(protocol.encode_call_error(
                            &unique_id,
                            ErrorCode::InternalError,
                            "the server could not handle the request",
                        ))
                    }
                }
            }
            Err(error) => {
                log::warn!("{id}: {action} refused: {error}.");
                messages.record_refused(&action, protocol.error_code(error.code()), &error);
                Some(protocol.encode_payload_error(&unique_id, &error))
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
            messages.record_malformed(protocol.frame_error_code(&error));
            Some(protocol.encode_frame_error(&error))
        }
    }
}

/// Hands the charge point's CALLRESULT or CALLERROR to the actor as the answer to the
/// outstanding server call. Never answered on the wire (OCPP-J 1.6 section 4.2.3): a malformed
/// answer fails the outstanding call instead, an answer to another uniqueId is dropped.
fn route_answer(
    id: &ChargePointId,
    protocol: Protocol,
    actor: &Addr<ChargePointActor>,
    text: &str,
    outstanding: &mut Option<(String, ServerCall)>,
) {
    let result = match ocpp::decode_frame(text) {
        Ok(frame) => match outstanding
            .as_ref()
            .and_then(|(uid, call)| protocol.read_answer(&frame, uid, call))
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
