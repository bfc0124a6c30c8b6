//! Who may talk to the server: charge point passwords (OCPP 1.6 security profiles 1 and 2,
//! HTTP Basic on the WebSocket upgrade), charge point client certificates (profile 3, charge
//! point listener only), the per-address limits on failed attempts and on connects, TLS for
//! both listeners, and bearer tokens for the admin API. See the README's Security section.

pub mod admin_tokens;
pub mod basic_auth;
pub mod client_cert;
pub mod connect_rate;
pub mod passwords;
pub mod rate_limit;
pub mod tls;

pub use admin_tokens::AdminTokens;
pub use basic_auth::{ChargePointAuth, Refusal};
