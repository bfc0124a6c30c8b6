//! Charge point passwords: the OCPP 1.6 security whitepaper's length rule, and argon2id hashing
//! (salted, memory-hard, stored as a PHC string) so a leaked Redis does not leak passwords.
//! Both hashing and verification take tens of milliseconds of CPU: call them from a blocking
//! thread (`actix_web::web::block`), never on the async executor.

use argon2::password_hash::rand_core::{OsRng, RngCore};
use argon2::password_hash::{PasswordHash, SaltString};
use argon2::{Argon2, PasswordHasher, PasswordVerifier};

/// Shortest password accepted (OCPP 1.6 security whitepaper: 16 to 40 characters).
pub const MIN_CHARS: usize = 16;
/// Longest password accepted.
pub const MAX_CHARS: usize = 40;

/// Why a password cannot be set.
#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    /// Outside the whitepaper's 16-40 characters, or with control characters.
    #[error("the password must be {MIN_CHARS} to {MAX_CHARS} printable characters")]
    Invalid,
    /// argon2 refused (should not happen with the default parameters).
    #[error("cannot hash the password: {0}")]
    Hash(argon2::password_hash::Error),
}

/// Checks the whitepaper's rule: 16 to 40 characters, none of them control characters (they
/// could not be typed into a charge point's configuration anyway).
pub fn validate(password: &str) -> Result<(), PasswordError> {
    let chars = password.chars().count();
    if !(MIN_CHARS..=MAX_CHARS).contains(&chars) || password.chars().any(char::is_control) {
        return Err(PasswordError::Invalid);
    }
    Ok(())
}

/// Validates and hashes `password` with argon2id (default parameters: 19 MiB, 2 passes) and a
/// random salt, as a PHC string (`$argon2id$v=19$...`).
pub fn hash(password: &str) -> Result<String, PasswordError> {
    validate(password)?;
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(PasswordError::Hash)
}

/// Whether `password` matches the stored PHC string; a malformed PHC string matches nothing.
pub fn verify(phc: &str, password: &str) -> bool {
    PasswordHash::new(phc)
        .and_then(|parsed| Argon2::default().verify_password(password.as_bytes(), &parsed))
        .is_ok()
}

/// A fresh random token: 32 bytes from the OS, hex encoded (64 characters).
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_and_lengths_are_enforced() {
        assert!(validate("short").is_err());
        assert!(validate(&"x".repeat(41)).is_err());
        assert!(validate("sixteen-chars-ok").is_ok());
        assert!(validate("with\nnewline-and-more").is_err());
        let phc = hash("correct horse battery").unwrap();
        assert!(phc.starts_with("$argon2id$"), "{phc}");
        assert!(!phc.contains("correct horse"));
        assert!(verify(&phc, "correct horse battery"));
        assert!(!verify(&phc, "correct horse batterx"));
        assert!(!verify("not a phc string", "correct horse battery"));
        assert_ne!(hash("correct horse battery").unwrap(), phc, "salted");
        assert_eq!(random_token().len(), 64);
    }
}
