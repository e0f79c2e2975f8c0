//! The store's side of the staff web page (SPEC §9): passwords, sessions,
//! welcome links and the sign-in throttle.
//!
//! Everything secret is stored hashed: session ids and welcome codes are
//! random and high-entropy, so SHA-256 (as for API tokens) is enough and
//! lets the database find them by hash; passwords are Argon2id, hashed by
//! the caller off the async threads (`crate::password`). Sessions and
//! failures live in the database, not in memory, so several instances
//! behind one load balancer share them.

use std::time::Duration;

use chrono::{DateTime, Duration as ChronoDuration, Utc};

use super::{Backend, Staff, Store, StoreError, now, postgres, sqlite};
use crate::domain::signin;

/// A signed-in browser: who, and the token its forms must carry.
#[derive(Debug, Clone)]
pub struct WebSession {
    pub staff: Staff,
    pub csrf: String,
    pub last_seen: DateTime<Utc>,
}

/// What a sign-in attempt needs to know before the password is checked.
#[derive(Debug, Clone)]
pub struct SignInFacts {
    /// The staff member with that email and their password hash, if any.
    pub staff: Option<(Staff, Option<String>)>,
    pub account_failures: i64,
    pub client_failures: i64,
}

fn window_start(now: DateTime<Utc>) -> DateTime<Utc> {
    now - ChronoDuration::from_std(signin::WINDOW).unwrap_or_default()
}

fn account_key(email: &str) -> String {
    format!("account:{}", email.trim().to_lowercase())
}

fn client_key(client: &str) -> String {
    format!("client:{client}")
}

impl Store {
    /// The person with this email, and the failures that count against the
    /// account and the client address in the current window.
    pub async fn sign_in_facts(
        &self,
        email: &str,
        client: Option<&str>,
    ) -> Result<SignInFacts, StoreError> {
        let email = email.trim().to_lowercase();
        let since = window_start(now());
        let account = account_key(&email);
        let client = client.map(client_key);
        read!(self, |c, q| {
            let staff = q::staff_with_password(c, &email).await?;
            let account_failures = q::count_login_failures(c, &account, since).await?;
            let client_failures = match &client {
                Some(k) => q::count_login_failures(c, k, since).await?,
                None => 0,
            };
            Ok(SignInFacts {
                staff,
                account_failures,
                client_failures,
            })
        })
    }

    /// Counts one failed sign-in against the account and the client.
    pub async fn record_sign_in_failure(
        &self,
        email: &str,
        client: Option<&str>,
    ) -> Result<(), StoreError> {
        let now = now();
        let account = account_key(email);
        let client = client.map(client_key);
        write_tx!(self, |c, q| {
            q::record_login_failure(c, &account, now).await?;
            if let Some(k) = &client {
                q::record_login_failure(c, k, now).await?;
            }
            Ok(())
        })
    }

    /// A successful sign-in: forget the account's failures, open a session.
    /// Returns the session id (for the cookie) and its CSRF token.
    pub async fn create_session(
        &self,
        staff_id: i64,
        email: &str,
    ) -> Result<(String, String), StoreError> {
        let id = crate::token::generate();
        let id_hash = crate::token::hash(&id);
        let csrf = crate::token::generate();
        let now = now();
        let expires = now + signin::session_lifetime();
        let account = account_key(email);
        write_tx!(self, |c, q| {
            q::clear_login_failures(c, &account).await?;
            q::insert_session(c, &id_hash, staff_id, &csrf, now, expires).await
        })?;
        Ok((id, csrf))
    }

    /// The live session for a cookie value: unexpired, of active staff.
    /// Slides the expiry forward when it was last moved over a minute ago.
    pub async fn session(&self, id: &str) -> Result<Option<WebSession>, StoreError> {
        let id_hash = crate::token::hash(id);
        let now = now();
        let found = read!(self, |c, q| q::session(c, &id_hash, now).await)?;
        let Some((staff, csrf, last_seen)) = found else {
            return Ok(None);
        };
        if now - last_seen > ChronoDuration::minutes(1) {
            let expires = now + signin::session_lifetime();
            write_tx!(self, |c, q| q::touch_session(c, &id_hash, now, expires)
                .await)?;
        }
        Ok(Some(WebSession {
            staff,
            csrf,
            last_seen,
        }))
    }

    /// Sign out: the session is gone for good.
    pub async fn end_session(&self, id: &str) -> Result<(), StoreError> {
        let id_hash = crate::token::hash(id);
        write_tx!(self, |c, q| q::delete_session(c, &id_hash).await)
    }

    /// Ends every session of a person but `keep` (a cookie value).
    pub async fn end_sessions_of(
        &self,
        staff_id: i64,
        keep: Option<&str>,
    ) -> Result<u64, StoreError> {
        let keep = keep.map(crate::token::hash);
        write_tx!(self, |c, q| q::delete_sessions_of(
            c,
            staff_id,
            keep.as_deref()
        )
        .await)
    }

    /// A person's stored password hash (None until they chose one).
    pub async fn password_hash(&self, staff_id: i64) -> Result<Option<String>, StoreError> {
        read!(self, |c, q| q::password_hash_of(c, staff_id).await)
    }

    /// Stores a new password hash and ends the person's other sessions.
    pub async fn set_password(
        &self,
        staff_id: i64,
        hash: &str,
        keep_session: Option<&str>,
    ) -> Result<(), StoreError> {
        let keep = keep_session.map(crate::token::hash);
        write_tx!(self, |c, q| {
            if !q::set_password(c, staff_id, hash).await? {
                return Err(StoreError::NotFound("staff member"));
            }
            q::delete_sessions_of(c, staff_id, keep.as_deref()).await?;
            Ok(())
        })
    }

    /// A new one-time welcome link code for a staff member (valid 24 h).
    pub async fn create_welcome_link(&self, staff_id: i64) -> Result<String, StoreError> {
        let code = crate::token::generate();
        let code_hash = crate::token::hash(&code);
        let now = now();
        let expires = now + signin::welcome_lifetime();
        write_tx!(self, |c, q| {
            if q::get_staff(c, staff_id).await?.is_none() {
                return Err(StoreError::NotFound("staff member"));
            }
            q::insert_welcome(c, &code_hash, staff_id, now, expires).await
        })?;
        Ok(code)
    }

    /// Who an unused, unexpired welcome code is for.
    pub async fn welcome_staff(&self, code: &str) -> Result<Option<Staff>, StoreError> {
        let code_hash = crate::token::hash(code);
        let now = now();
        read!(self, |c, q| q::welcome_staff(c, &code_hash, now).await)
    }

    /// Uses a welcome code once: sets the password in the same transaction.
    /// `None` when the code was used, expired or never existed.
    pub async fn redeem_welcome(
        &self,
        code: &str,
        password_hash: &str,
    ) -> Result<Option<Staff>, StoreError> {
        let code_hash = crate::token::hash(code);
        let now = now();
        write_tx!(self, |c, q| {
            let Some(staff_id) = q::use_welcome(c, &code_hash, now).await? else {
                return Ok(None);
            };
            match q::get_staff(c, staff_id).await? {
                Some(s) if s.active => {
                    q::set_password(c, staff_id, password_hash).await?;
                    q::delete_sessions_of(c, staff_id, None).await?;
                    Ok(Some(s))
                }
                _ => Ok(None),
            }
        })
    }

    /// One page of broadcasts, newest first, with their counts but not
    /// their recipients (`broadcast` has those).
    pub async fn list_broadcasts(
        &self,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<super::BroadcastView>, StoreError> {
        read!(self, |c, q| q::list_broadcasts(c, before, limit).await)
    }

    /// Housekeeping of expired sessions, links and old failures.
    pub async fn purge_web(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        let before = window_start(now);
        write_tx!(self, |c, q| q::purge_web(c, now, before).await)
    }
}
