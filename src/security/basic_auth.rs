//! HTTP Basic authentication of charge points on the WebSocket upgrade (OCPP 1.6 security
//! profile 1, and profile 2 when the listener has TLS): user = charge point id, password
//! checked against the argon2 hash stored in Redis.
//!
//! With profile 3 (`tls.client_ca`) the client certificate, whose CN the upgrade has already
//! matched to the id, authenticates the charge point, and this check runs as well: a charge
//! point with a password set must still send it (a stolen certificate alone does not get in
//! where a password was set), and one without a password is let in on its certificate whatever
//! `ocpp.unknown_charge_points` says (that policy is about charge points nothing authenticates).
//!
//! Cost control: argon2 takes tens of milliseconds and 19 MiB per check, so checks run on
//! actix's blocking pool (`web::block`), at most one per CPU core at a time (a semaphore, so a
//! fleet reconnecting after a restart cannot queue hundreds of 19 MiB hashes), and a successful
//! check is remembered for [`VERIFIED_TTL`], keyed by a BLAKE2s digest of id, stored hash and
//! presented password. Because the stored hash is part of the key, changing a password
//! invalidates what was remembered for the old one at once.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use actix_web::http::header::HeaderValue;
use base64::Engine as _;
use blake2::{Blake2s256, Digest};
use tokio::sync::Semaphore;

use actors::counters::IngestCounters;
use actors::id::ChargePointId;
use actors::redis_pool::Pool;
use actors::store::credentials;

use super::passwords;
use super::rate_limit::FailureLimiter;
use crate::config::UnknownChargePoints;

/// How long a successful password check is remembered.
pub const VERIFIED_TTL: Duration = Duration::from_secs(300);

/// Most remembered checks (and last-known hashes); past this the expired ones are swept and,
/// if that is not enough, all are forgotten (bounded memory; the cost is re-hashing).
const MAX_REMEMBERED: usize = 200_000;

/// Why an upgrade is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// 401: wrong, missing or unknown credentials (the reason is for the log only).
    Unauthorized(&'static str),
    /// 429: this address failed too often recently.
    TooManyFailures,
    /// 503: Redis cannot say whether the charge point has a password, and nothing is known.
    Unavailable,
}

/// The charge point authenticator shared by every WebSocket worker.
pub struct ChargePointAuth {
    pool: Pool,
    policy: UnknownChargePoints,
    limiter: FailureLimiter,
    counters: Arc<IngestCounters>,
    /// Last stored hash read per charge point (`None`: no password), used while Redis is away.
    known: Mutex<HashMap<String, Option<Arc<str>>>>,
    /// Digest of (id, stored hash, password) -> when the successful check expires.
    verified: Mutex<HashMap<[u8; 32], Instant>>,
    /// One argon2 check per core at a time.
    verifying: Semaphore,
}

impl ChargePointAuth {
    /// An authenticator reading hashes from `pool`.
    pub fn new(
        pool: Pool,
        policy: UnknownChargePoints,
        limiter: FailureLimiter,
        counters: Arc<IngestCounters>,
    ) -> ChargePointAuth {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        ChargePointAuth {
            pool,
            policy,
            limiter,
            counters,
            known: Mutex::new(HashMap::new()),
            verified: Mutex::new(HashMap::new()),
            verifying: Semaphore::new(cores),
        }
    }

    /// Decides whether charge point `id`, connecting from `peer` with this `Authorization`
    /// header, may upgrade; `certified` says that a verified client certificate already names
    /// it (security profile 3). Failures are counted and feed the per-address limit.
    pub async fn check(
        &self,
        id: &ChargePointId,
        peer: Option<IpAddr>,
        authorization: Option<&HeaderValue>,
        certified: bool,
    ) -> Result<(), Refusal> {
        let now = Instant::now();
        if let Some(ip) = peer {
            if self.limiter.is_blocked(ip, now) {
                self.counters
                    .auth_rate_limited
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                return Err(Refusal::TooManyFailures);
            }
        }
        let outcome = self.decide(id, authorization, certified).await;
        if matches!(outcome, Err(Refusal::Unauthorized(_))) {
            self.counters
                .auth_failures
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if let Some(ip) = peer {
                self.limiter.record_failure(ip, now);
            }
        }
        outcome
    }

    async fn decide(
        &self,
        id: &ChargePointId,
        authorization: Option<&HeaderValue>,
        certified: bool,
    ) -> Result<(), Refusal> {
        let stored = self.stored_hash(id).await?;
        let Some(phc) = stored else {
            return match self.policy {
                _ if certified => Ok(()),
                UnknownChargePoints::Accept => Ok(()),
                UnknownChargePoints::Reject => Err(Refusal::Unauthorized("it has no password set")),
            };
        };
        let Some((user, password)) = authorization.and_then(parse_basic) else {
            return Err(Refusal::Unauthorized("it sent no Basic credentials"));
        };
        if user != id.as_str() {
            return Err(Refusal::Unauthorized(
                "the Basic user is not its charge point id",
            ));
        }
        let digest = digest(id.as_str(), &phc, &password);
        if self.recently_verified(&digest) {
            return Ok(());
        }
        let permit = self
            .verifying
            .acquire()
            .await
            .map_err(|_| Refusal::Unavailable)?;
        let matches = actix_web::web::block(move || passwords::verify(&phc, &password))
            .await
            .unwrap_or(false);
        drop(permit);
        if matches {
            self.remember(digest);
            Ok(())
        } else {
            Err(Refusal::Unauthorized("wrong password"))
        }
    }

    /// The stored hash from Redis, or the last one seen when Redis cannot answer.
    async fn stored_hash(&self, id: &ChargePointId) -> Result<Option<Arc<str>>, Refusal> {
        match credentials::password_hash(&self.pool, id.as_str()).await {
            Ok(stored) => {
                let stored: Option<Arc<str>> = stored.map(Arc::from);
                let mut known = self.known.lock().unwrap_or_else(PoisonError::into_inner);
                if known.len() >= MAX_REMEMBERED && !known.contains_key(id.as_str()) {
                    known.clear();
                }
                known.insert(id.as_str().to_owned(), stored.clone());
                Ok(stored)
            }
            Err(error) => {
                let known = self.known.lock().unwrap_or_else(PoisonError::into_inner);
                match known.get(id.as_str()) {
                    Some(stored) => Ok(stored.clone()),
                    // Never seen and Redis is away: the permissive first-run mode lets it in
                    // (as the server accepts everything else during an outage); the locked-down
                    // mode cannot tell and refuses.
                    None if self.policy == UnknownChargePoints::Accept => {
                        log::warn!("{id}: cannot read its password hash ({error}); letting it in because ocpp.unknown_charge_points = \"accept\".");
                        Ok(None)
                    }
                    None => {
                        log::warn!("{id}: cannot read its password hash ({error}); refusing.");
                        Err(Refusal::Unavailable)
                    }
                }
            }
        }
    }

    fn recently_verified(&self, digest: &[u8; 32]) -> bool {
        let verified = self.verified.lock().unwrap_or_else(PoisonError::into_inner);
        verified
            .get(digest)
            .is_some_and(|expires| Instant::now() < *expires)
    }

    fn remember(&self, digest: [u8; 32]) {
        let now = Instant::now();
        let mut verified = self.verified.lock().unwrap_or_else(PoisonError::into_inner);
        if verified.len() >= MAX_REMEMBERED {
            verified.retain(|_, expires| now < *expires);
            if verified.len() >= MAX_REMEMBERED {
                verified.clear();
            }
        }
        verified.insert(digest, now + VERIFIED_TTL);
    }
}

/// BLAKE2s digest of what a successful check depends on; only this is kept in memory, never
/// the password.
fn digest(id: &str, phc: &str, password: &str) -> [u8; 32] {
    Blake2s256::new()
        .chain_update(id.as_bytes())
        .chain_update([0])
        .chain_update(phc.as_bytes())
        .chain_update([0])
        .chain_update(password.as_bytes())
        .finalize()
        .into()
}

/// `(user, password)` of a `Basic` Authorization header; `None` when it is not one.
pub fn parse_basic(header: &HeaderValue) -> Option<(String, String)> {
    let text = header.to_str().ok()?;
    let (scheme, encoded) = text.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_headers_are_parsed() {
        // "CP1:secret:with:colons"
        let header = HeaderValue::from_static("Basic Q1AxOnNlY3JldDp3aXRoOmNvbG9ucw==");
        assert_eq!(
            parse_basic(&header),
            Some(("CP1".to_owned(), "secret:with:colons".to_owned()))
        );
        assert_eq!(
            parse_basic(&HeaderValue::from_static(
                "basic Q1AxOnNlY3JldDp3aXRoOmNvbG9ucw=="
            )),
            Some(("CP1".to_owned(), "secret:with:colons".to_owned()))
        );
        assert_eq!(parse_basic(&HeaderValue::from_static("Bearer abc")), None);
        assert_eq!(parse_basic(&HeaderValue::from_static("Basic !!!")), None);
        // "nocolon"
        assert_eq!(
            parse_basic(&HeaderValue::from_static("Basic bm9jb2xvbg==")),
            None
        );
    }

    #[test]
    fn digests_depend_on_every_part() {
        let base = digest("CP1", "$argon2id$x", "password-1234567");
        assert_ne!(base, digest("CP2", "$argon2id$x", "password-1234567"));
        assert_ne!(base, digest("CP1", "$argon2id$y", "password-1234567"));
        assert_ne!(base, digest("CP1", "$argon2id$x", "password-1234568"));
        assert_eq!(base, digest("CP1", "$argon2id$x", "password-1234567"));
    }
}
