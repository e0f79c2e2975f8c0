//! One IMAP mailbox: connect, authenticate, fetch new mail, hand it to a
//! [`MailSink`], acknowledge it on the server, then wait (IDLE or polling)
//! and do it again, forever, until shutdown.
//!
//! # Why it is shaped so
//!
//! The worker knows nothing about the database. Everything durable goes
//! through [`MailSink`]: `ingest` parses, threads and commits one raw
//! message; `cursor`/`set_cursor` keep `(UIDVALIDITY, last UID)`. That keeps
//! this file about IMAP only and lets the tests drive it against a real
//! Dovecot with an in-memory sink.
//!
//! The rules I hold to (SPEC §3.3, PROTOCOL-NOTES "IMAP"):
//!
//! * **Progress is the cursor, never `\Seen`.** A person may have read a mail
//!   in another client before we saw it; it is still ingested. The listing is
//!   `UID FETCH last+1:* (UID RFC822.SIZE)` and I drop every UID `<= last`
//!   myself, because `n:*` always returns the highest UID even when it is
//!   below `n`.
//! * **Commit, then acknowledge, then advance.** For each batch: `ingest`
//!   every message in UID order, stop at the first one the sink could not
//!   store, acknowledge (`after_ingest`) only the stored ones, then move the
//!   cursor past them. A crash after the commit and before the acknowledgement
//!   fetches the mail again, and the sink's dedupe makes that harmless; a
//!   message the sink refused is never acknowledged and never skipped, it is
//!   the first one of the next round. Bodies are fetched with `BODY.PEEK[]`
//!   so fetching alone never sets `\Seen`.
//! * **Every server call has a deadline.** async-imap has none of its own; each
//!   call goes through [`Worker::step`], which races it against
//!   `command_timeout` and the shutdown token. The sink's calls are the one
//!   thing I never cancel, so shutdown never lands in the middle of a commit.
//! * **IDLE has an absolute deadline.** async-imap's `wait_with_timeout` is an
//!   inactivity timeout that Dovecot's `* OK Still here` keepalives reset, so
//!   on such servers it never fires. I put my own `timeout_at` around it and
//!   re-issue IDLE after `idle_reissue` (10 min; RFC 2177 says at most 29).
//!   Each wake-up runs a fetch round, which also refreshes `last_success` in
//!   `/readyz`. Without IDLE (config or server) I poll every `poll_interval`.
//! * **Reconnect forever, never in a tight loop.** Any failure drops the
//!   connection and retries after an exponential backoff with jitter, capped
//!   at `backoff_max`. An authentication failure (or a bad CA file) starts at
//!   `auth_backoff` (a minute) instead: hammering a server with a wrong
//!   password gets the account locked, and the fix is a human's. Either way
//!   `/readyz` shows `ok: false` and the error under `imap:<name>`.
//! * **Unsolicited responses are drained.** async-imap parks them in a bounded
//!   channel (100) and silently drops the overflow; I empty it between rounds
//!   and treat an `EXISTS` found there as "fetch again before idling".
//! * **Secrets stay secret.** Passwords and tokens live in [`Secret`] and are
//!   exposed only at the call that sends them. Note that async-imap itself
//!   `log::trace!`s every command it writes, LOGIN included: the daemon's log
//!   filter must keep `async_imap` below trace (see [`LOG_FILTER_GUARD`]).
//!
//! TLS is rustls with the ring provider (STYLE.md: one provider), trusting
//! Mozilla's roots (webpki-roots, compiled in) plus the PEM certificates in
//! `ca_file`, and accepting a server whose own certificate is one of those
//! (a pin, for self-signed servers: `crate::tls`). I build the rustls config
//! per connection: it is cheap, and a rotated CA file is picked up without a
//! restart.

use std::fmt::{self, Debug, Display};
use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_imap::error::Error as ImapError;
use async_imap::extensions::idle::IdleResponse;
use async_imap::imap_proto::{Response, Status};
use async_imap::types::{Fetch, UnsolicitedResponse};
use futures::TryStreamExt;
use rustls_pki_types::ServerName;
use serde::Deserialize;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, info, info_span, warn};

use crate::channels::health::ChannelHealth;
use crate::config::{AfterIngest, ImapConfig, OAuth2Config, Secret, Security};

/// A `tracing` filter directive the daemon should append to whatever level
/// ops configure: async-imap logs every command it sends at trace level,
/// `LOGIN user password` and the XOAUTH2 token included.
pub const LOG_FILTER_GUARD: &str = "async_imap=info";

/// Where mail goes. Implemented by the store-backed ingest in the daemon and
/// by an in-memory sink in the tests.
pub trait MailSink: Send + Sync + 'static {
    /// Durably stores one raw message (parse, thread, commit). `Ok(())` also
    /// for duplicates and for mail recorded in the rejected log; `Err` only
    /// when it could not be stored at all (then the message must NOT be
    /// acknowledged and will be fetched again).
    fn ingest(
        &self,
        mailbox: &str,
        uid: u32,
        raw: Vec<u8>,
    ) -> impl Future<Output = Result<(), String>> + Send;

    /// The stored cursor for this mailbox: `(uidvalidity, last_uid)` or `None`.
    fn cursor(
        &self,
        mailbox: &str,
    ) -> impl Future<Output = Result<Option<(u32, u32)>, String>> + Send;

    /// Stores the cursor: every UID `<= last_uid` of this `uidvalidity` is done.
    fn set_cursor(
        &self,
        mailbox: &str,
        uidvalidity: u32,
        last_uid: u32,
    ) -> impl Future<Output = Result<(), String>> + Send;

    /// Claims or renews `holder`'s lease on this mailbox for `ttl` (SPEC §7:
    /// one poller per mailbox across instances); `Ok(false)` while another
    /// holder's lease runs. A sink shared by no one may always say yes.
    fn claim(
        &self,
        _mailbox: &str,
        _holder: &str,
        _ttl: Duration,
    ) -> impl Future<Output = Result<bool, String>> + Send {
        async { Ok(true) }
    }

    /// Gives the lease up on a clean stop, so another instance takes over
    /// at once instead of when it runs out.
    fn release(&self, _mailbox: &str, _holder: &str) -> impl Future<Output = ()> + Send {
        async {}
    }
}

/// Renews the mailbox lease every third of `ttl` for as long as the
/// session runs; returns why it was lost (taken over, or not renewable for
/// two thirds of `ttl`), which ends the session.
async fn keep_lease<S: MailSink>(sink: &S, mailbox: &str, holder: &str, ttl: Duration) -> String {
    let mut renewed = Instant::now();
    loop {
        tokio::time::sleep(ttl / 3).await;
        match sink.claim(mailbox, holder, ttl).await {
            Ok(true) => renewed = Instant::now(),
            Ok(false) => return "another instance took the mailbox over".to_string(),
            Err(e) => {
                warn!(error = %e, "could not renew the mailbox lease");
                if renewed.elapsed() >= ttl * 2 / 3 {
                    return format!("could not renew the mailbox lease: {e}");
                }
            }
        }
    }
}

/// Who holds mailbox leases from this process.
fn holder_id() -> &'static str {
    static ID: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    ID.get_or_init(|| format!("{}-{:08x}", std::process::id(), rand::random::<u32>()))
}

/// Timings and limits. The defaults are for production; tests shrink them.
#[derive(Debug, Clone)]
pub struct Tuning {
    /// Deadline of every single server call (connect, TLS, each command, a
    /// whole FETCH response) and of the OAuth2 token request.
    pub command_timeout: Duration,
    /// IDLE is ended and re-issued after this long even if nothing happened.
    pub idle_reissue: Duration,
    /// First delay after a failure; doubles per consecutive failure.
    pub backoff_min: Duration,
    /// Cap of every backoff.
    pub backoff_max: Duration,
    /// First delay after an authentication or configuration failure.
    pub auth_backoff: Duration,
    /// At most this many messages per `UID FETCH … BODY.PEEK[]`.
    pub batch_size: usize,
    /// And at most about this many bytes (by `RFC822.SIZE`; a single larger
    /// message still goes alone).
    pub batch_bytes: u64,
    /// How long a mailbox lease lasts; it is renewed every third of that,
    /// and an instance that stops renewing loses the mailbox after it.
    pub lease_ttl: Duration,
}

impl Default for Tuning {
    fn default() -> Self {
        Tuning {
            command_timeout: Duration::from_secs(30),
            idle_reissue: Duration::from_secs(10 * 60),
            backoff_min: Duration::from_secs(1),
            backoff_max: Duration::from_secs(5 * 60),
            auth_backoff: Duration::from_secs(60),
            batch_size: 100,
            batch_bytes: 32 * 1024 * 1024,
            lease_ttl: crate::app::MAILBOX_LEASE,
        }
    }
}

/// One configured mailbox, ready to [`run`](Mailbox::run).
pub struct Mailbox<S: MailSink> {
    cfg: ImapConfig,
    sink: Arc<S>,
    health: ChannelHealth,
    tuning: Tuning,
    health_name: String,
    /// Who this worker claims the mailbox lease as: one id per instance.
    holder: String,
}

impl<S: MailSink> Mailbox<S> {
    /// Registers the mailbox in `health` as `imap:<name>`.
    pub fn new(cfg: ImapConfig, sink: Arc<S>, health: ChannelHealth) -> Self {
        let health_name = format!("imap:{}", cfg.name);
        health.register(&health_name);
        Mailbox {
            cfg,
            sink,
            health,
            tuning: Tuning::default(),
            health_name,
            holder: holder_id().to_string(),
        }
    }

    /// Claims the mailbox lease as `holder` (the daemon's instance id; by
    /// default one per process).
    pub fn with_holder(mut self, holder: &str) -> Self {
        self.holder = holder.to_string();
        self
    }

    /// Replaces the default timings (tests).
    pub fn with_tuning(mut self, tuning: Tuning) -> Self {
        self.tuning = tuning;
        self
    }

    /// The key this mailbox reports under in [`ChannelHealth`].
    pub fn health_name(&self) -> &str {
        &self.health_name
    }

    /// Runs until `shutdown` is cancelled: connects, ingests, idles or polls,
    /// reconnects with backoff after any failure. Returns promptly on
    /// shutdown, but never while the sink is committing.
    pub async fn run(self, shutdown: CancellationToken) {
        let span = info_span!("imap", mailbox = %self.cfg.name);
        Worker {
            cfg: self.cfg,
            sink: self.sink,
            health: self.health,
            tuning: self.tuning,
            health_name: self.health_name,
            holder: self.holder,
            shutdown,
            token: None,
            http: None,
            progressed: false,
        }
        .run()
        .instrument(span)
        .await
    }
}

mod helpers;
mod oauth;
#[cfg(test)]
mod tests;
mod worker;

use helpers::*;
use oauth::*;
use worker::*;
