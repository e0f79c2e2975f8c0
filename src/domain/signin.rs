//! Sign-in rules of the staff web page (SPEC §9), as plain values and
//! functions: how long sessions and welcome links live, when an account or
//! a client address is locked out, and what a new password must be.
//!
//! The store counts failures; the decision is here so it is tested without
//! a database and is the same on every instance.

use std::time::Duration;

/// Sessions slide: each use pushes expiry this far ahead.
pub const SESSION_DAYS: i64 = 7;
/// A welcome link is valid this long, once.
pub const WELCOME_HOURS: i64 = 24;
/// Failures count over this window, and a lockout lasts as long.
pub const WINDOW: Duration = Duration::from_secs(15 * 60);
/// Failed sign-ins for one account within the window before it is locked.
pub const ACCOUNT_LIMIT: i64 = 10;
/// Failed sign-ins from one client address within the window.
pub const CLIENT_LIMIT: i64 = 50;
/// Shortest password accepted.
pub const MIN_PASSWORD_CHARS: usize = 12;
/// Longest password accepted (Argon2 hashes anything, but a megabyte
/// password is an attack on the CPU, not a password).
pub const MAX_PASSWORD_CHARS: usize = 1024;

pub fn session_lifetime() -> chrono::Duration {
    chrono::Duration::days(SESSION_DAYS)
}

pub fn welcome_lifetime() -> chrono::Duration {
    chrono::Duration::hours(WELCOME_HOURS)
}

/// Whether a sign-in attempt may be checked at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Throttle {
    Allowed,
    /// Too many failures for this account or from this client: 429.
    Locked,
}

/// Decides from the failures already counted in the window.
pub fn throttle(account_failures: i64, client_failures: i64) -> Throttle {
    if account_failures >= ACCOUNT_LIMIT || client_failures >= CLIENT_LIMIT {
        Throttle::Locked
    } else {
        Throttle::Allowed
    }
}

/// Why a new password was refused; the message is shown to the person.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    #[error("The password must be at least 12 characters long.")]
    TooShort,
    #[error("The password is too long.")]
    TooLong,
    #[error("The two passwords do not match.")]
    Mismatch,
}

/// Checks a new password and its repetition.
pub fn check_new_password(password: &str, repeat: &str) -> Result<(), PasswordError> {
    let n = password.chars().count();
    if n < MIN_PASSWORD_CHARS {
        return Err(PasswordError::TooShort);
    }
    if n > MAX_PASSWORD_CHARS {
        return Err(PasswordError::TooLong);
    }
    if password != repeat {
        return Err(PasswordError::Mismatch);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ten_account_failures_lock_the_account() {
        assert_eq!(throttle(9, 0), Throttle::Allowed);
        assert_eq!(throttle(10, 0), Throttle::Locked);
    }

    #[test]
    fn fifty_client_failures_lock_the_client() {
        assert_eq!(throttle(0, 49), Throttle::Allowed);
        assert_eq!(throttle(0, 50), Throttle::Locked);
    }

    #[test]
    fn passwords_need_twelve_characters_and_a_matching_repeat() {
        assert_eq!(
            check_new_password("elevenchars", "elevenchars"),
            Err(PasswordError::TooShort)
        );
        // Characters, not bytes: twelve accented letters are enough.
        assert_eq!(check_new_password("éééééééééééé", "éééééééééééé"), Ok(()));
        assert_eq!(
            check_new_password("twelve chars", "twelve charz"),
            Err(PasswordError::Mismatch)
        );
        assert_eq!(check_new_password("twelve chars", "twelve chars"), Ok(()));
        let long = "x".repeat(MAX_PASSWORD_CHARS + 1);
        assert_eq!(
            check_new_password(&long, &long),
            Err(PasswordError::TooLong)
        );
    }
}
