//! Staff passwords: Argon2id hashes in PHC form (SPEC §9).
//!
//! Hashing costs tens of milliseconds of CPU on purpose, so both calls run
//! on tokio's blocking pool: a burst of sign-ins must not stall webhooks.
//! `verify_dummy` spends the same time when there is no hash to check, so
//! the answer time does not tell whether an email belongs to staff.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};

/// A PHC hash of a password that was never anyone's, for timing parity.
static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();

fn hash_now(password: &str) -> Result<String, argon2::password_hash::Error> {
    let salt = SaltString::encode_b64(&rand::random::<[u8; 16]>())?;
    Ok(Argon2::default()
        .hash_password(password.as_bytes(), &salt)?
        .to_string())
}

fn verify_now(password: &str, phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// Hashes a new password (Argon2id, random salt).
pub async fn hash(password: String) -> anyhow::Result<String> {
    tokio::task::spawn_blocking(move || hash_now(&password))
        .await?
        .map_err(|e| anyhow::anyhow!("hashing the password: {e}"))
}

/// Checks a password against a stored hash; with no hash, spends the same
/// time and answers false.
pub async fn verify(password: String, phc: Option<String>) -> bool {
    tokio::task::spawn_blocking(move || match phc {
        Some(phc) => verify_now(&password, &phc),
        None => {
            let dummy = DUMMY.get_or_init(|| hash_now("not a password").unwrap_or_default());
            let _ = verify_now(&password, dummy);
            false
        }
    })
    .await
    .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_argon2id_salted_and_verify() {
        let a = hash_now("correct horse battery").unwrap();
        let b = hash_now("correct horse battery").unwrap();
        assert!(a.starts_with("$argon2id$"));
        assert_ne!(a, b, "salted");
        assert!(verify_now("correct horse battery", &a));
        assert!(!verify_now("correct horse batterY", &a));
        assert!(!verify_now("anything", "not a phc string"));
    }
}
