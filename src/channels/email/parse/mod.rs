//! Inbound email parsing: raw RFC 5322 bytes in, one [`ParsedMail`] out.
//!
//! This is the edge where customer email becomes domain input (SPEC §3.3,
//! §3.4). I keep it pure — no I/O, no tokio, no database — so the IMAP task
//! can hand it `BODY.PEEK[]` bytes and the threading code can trust what comes
//! back: ids without angle brackets, a lower-cased sender, a decoded subject,
//! a readable text body, sanitized attachment names, and a verdict on whether
//! the mail was written by a person at all.
//!
//! Why it is shaped like this:
//!
//! * **MIME is mail-parser's job, judgement is mine.** mail-parser (0.11, with
//!   `full_encoding` so ISO-2022-JP, Shift_JIS and friends decode instead of
//!   turning into U+FFFD soup) does transfer encodings, charsets, RFC 2047
//!   words and RFC 2231 parameters. I read the few header fields that decide
//!   behaviour (`Auto-Submitted`, `Precedence`, `List-*`, `Return-Path`, the
//!   reference ids) from their *raw* bytes instead of mail-parser's typed
//!   values, because its typed forms are lossy for broken input and I want
//!   the rules in SPEC §3.3 to be visible in this file, not implied by a
//!   library's header table.
//! * **The parser may panic; the mailbox must not stop.** mail-parser 0.11.9
//!   trips its own `debug_assert!` ("Invalid part ID, could not find
//!   multipart") on some malformed nestings — a fuzz run found about one in
//!   4,000 random MIME-shaped inputs, in debug builds — and it does index
//!   arithmetic on hostile bytes. I call it under `catch_unwind` and turn a
//!   panic into [`ParseError::Unparseable`], so the message lands in the
//!   rejected log instead of killing the IMAP task (this relies on the
//!   default `panic = "unwind"`). Everything after that call is my code,
//!   written without panicking paths and fuzzed by the proptests below.
//! * **`automated` is one reason, not a list.** Staff see "auto-reply received"
//!   or "bounce" on the timeline; one reason is enough. I check the structural
//!   signals first (a `multipart/report` is a bounce, read receipt or abuse
//!   report whatever else its headers say), then the RFC 3834 headers, then
//!   the heuristics (empty `Return-Path`, `MAILER-DAEMON`). A lone
//!   `X-Auto-Response-Suppress` is a *request* Outlook puts on human mail
//!   too, so it is deliberately not a signal.
//! * **Bounces are read, not just recognised.** For a DSN I pull the failed
//!   recipient, action, status and diagnostic from `message/delivery-status`
//!   and the original `Message-ID` from the returned message, so a bounce of
//!   one of our replies can mark that reply `failed`. Old-style bounces
//!   (plain text from `MAILER-DAEMON`, Exim's `X-Failed-Recipients`) get a
//!   best-effort [`Bounce`] when I can find the returned `Message-ID`.
//! * **Quote stripping is conservative.** [`strip_quotes`] follows GitHub's
//!   email_reply_parser: cut at the reply attribution ("On … wrote:", also
//!   wrapped and in a few languages), Outlook header blocks and signature
//!   separators, drop `>` lines but keep interleaved answers. When in doubt it
//!   shows more, never less, and it never returns nothing for a mail that
//!   had text: the original is always kept beside it anyway.
//! * **HTML to text is a small tokenizer, not a DOM.** Mail HTML is tag soup;
//!   a browser-grade parser would be a big dependency for what is needed
//!   here: paragraphs, line breaks, lists, `<blockquote>` rendered as `> `
//!   (so quote stripping works on HTML-only replies), links as
//!   `text (url)`, no scripts, styles or `display:none` preheaders. It is
//!   linear in the input, including on unclosed tags and comments.
//! * **Text is made safe to store.** NUL characters (PostgreSQL refuses them
//!   in `text`), CR/LF and other control characters are removed from the
//!   subject and the display name (lettre panics on them in a name), ids
//!   longer than 998 characters are dropped (a btree index entry has a size
//!   limit and RFC 5322 a line limit), and attachment names lose path
//!   components, control and bidi-override characters.
//!
//! Trade-offs I accepted: text attachments are handed over as mail-parser
//! decoded them (UTF-8), not in their original charset; HTML tables come out
//! as lines, not grids; only the root message's headers decide automation
//! (a forwarded auto-reply inside a human mail is human mail).

use std::borrow::Cow;
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};

use chrono::{DateTime, FixedOffset, NaiveDate, TimeZone, Utc};
use mail_parser::{Encoding, Message, MessageParser, MessagePart, MimeHeaders, PartType};
use sha2::{Digest, Sha256};

/// Longest message id I keep; longer ones are treated as absent.
const MAX_ID_LEN: usize = 998;
/// Longest attachment file name, in bytes.
const MAX_FILENAME_LEN: usize = 200;
/// Most `<a>` elements open at once that I track in HTML.
const MAX_OPEN_ANCHORS: usize = 16;

/// One inbound email, reduced to what ingest and threading need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedMail {
    /// `Message-ID` without angle brackets.
    pub message_id: Option<String>,
    /// `In-Reply-To` ids, without brackets.
    pub in_reply_to: Vec<String>,
    /// `References` ids, without brackets, in header order, duplicates removed.
    pub references: Vec<String>,
    /// The `From` addr-spec, lower-cased. `None` only for automated mail
    /// (a bounce with a broken `From` is still worth recording).
    pub from_address: Option<String>,
    /// Display name, RFC 2047 decoded, control characters stripped, trimmed.
    pub from_name: Option<String>,
    /// Decoded subject on one line; `""` if there is none.
    pub subject: String,
    pub date: Option<DateTime<Utc>>,
    /// Full text body: text/plain preferred, else the HTML turned into text.
    pub text: String,
    /// `text` without quoted history and signature; falls back to `text`.
    pub visible_text: String,
    /// The HTML body, if the mail has one.
    pub html: Option<String>,
    /// Real attachments and inline images, not the body parts.
    pub attachments: Vec<Attachment>,
    /// Why this mail is not from a person, if it is not.
    pub automated: Option<Automated>,
    /// Details of a delivery failure report.
    pub bounce: Option<Bounce>,
    /// `Return-Path: <>` (the null reverse path of notifications).
    pub return_path_empty: bool,
}

/// One attachment or inline image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    /// Sanitized: no path separators, no control characters, never empty.
    pub filename: String,
    /// Lower-case `type/subtype`.
    pub content_type: String,
    pub data: Vec<u8>,
    /// Shown in the body (`Content-Disposition: inline`, or a `Content-ID`
    /// without a disposition) rather than offered as a download.
    pub inline: bool,
    /// `Content-ID` without angle brackets, for `cid:` references.
    pub content_id: Option<String>,
}

/// Why a mail counts as automated (SPEC §3.3 loop and noise protection).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Automated {
    /// `Auto-Submitted` with a value other than `no` (lower-cased value).
    AutoSubmitted(String),
    /// `Precedence: bulk | junk | list` (lower-cased value).
    Precedence(String),
    /// Any `List-*` header.
    ListMail,
    /// `X-Autoreply` or `X-Autorespond`, any value.
    AutoReplyHeader(&'static str),
    /// `Return-Path: <>`.
    EmptyReturnPath,
    /// Sender local part `MAILER-DAEMON` or `postmaster`.
    DaemonSender,
    /// `multipart/report; report-type=delivery-status`.
    Bounce,
    /// `multipart/report; report-type=disposition-notification`.
    ReadReceipt,
    /// `multipart/report; report-type=feedback-report` (abuse report).
    FeedbackReport,
}

impl fmt::Display for Automated {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Automated::AutoSubmitted(v) => write!(f, "Auto-Submitted: {v}"),
            Automated::Precedence(v) => write!(f, "Precedence: {v}"),
            Automated::ListMail => f.write_str("mailing-list mail"),
            Automated::AutoReplyHeader(h) => write!(f, "{h} header"),
            Automated::EmptyReturnPath => f.write_str("empty Return-Path"),
            Automated::DaemonSender => f.write_str("mailer-daemon sender"),
            Automated::Bounce => f.write_str("delivery status notification"),
            Automated::ReadReceipt => f.write_str("read receipt"),
            Automated::FeedbackReport => f.write_str("abuse feedback report"),
        }
    }
}

/// What a delivery failure report says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Bounce {
    /// `Message-ID` of the returned message (ours, if we sent it).
    pub original_message_id: Option<String>,
    /// Enhanced status code, e.g. `5.1.1`.
    pub status: Option<String>,
    /// `failed`, `delayed`, `delivered`, … (lower-cased).
    pub action: Option<String>,
    /// The remote server's answer, e.g. `550 5.1.1 … User unknown`.
    pub diagnostic: Option<String>,
    /// The recipient that failed, without the `rfc822;` type.
    pub final_recipient: Option<String>,
    /// A 5.x.x status (or a failure without a status): retrying will not help.
    pub permanent: bool,
}

/// Why a message could not become a [`ParsedMail`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("unparseable message: {0}")]
    Unparseable(String),
    #[error("message has no usable From address")]
    NoSender,
}

/// [`parse`] on tokio's blocking pool, handing the bytes back. MIME
/// decoding, charset conversion and HTML-to-text of a mail of tens of
/// megabytes take long enough to stall every task sharing an async worker
/// thread (webhooks included); off that thread they stall nothing. A
/// panic in the parser becomes `Unparseable`, so the mail is rejected and
/// logged instead of taking the mailbox worker down with it.
pub async fn parse_off_thread(raw: Vec<u8>) -> (Vec<u8>, Result<ParsedMail, ParseError>) {
    let size = raw.len();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let handle = tokio::task::spawn_blocking(move || {
        let parsed = parse(&raw);
        let _ = tx.send(raw);
        parsed
    });
    match handle.await {
        Ok(parsed) => (rx.await.unwrap_or_default(), parsed),
        Err(e) => {
            tracing::error!(size, error = %e, "the mail parser panicked");
            (
                Vec::new(),
                Err(ParseError::Unparseable(
                    "the parser failed on this mail".into(),
                )),
            )
        }
    }
}

/// Parses one raw message (as fetched with `BODY.PEEK[]`).
///
/// Linear in the size of the input; never panics.
pub fn parse(raw: &[u8]) -> Result<ParsedMail, ParseError> {
    if raw.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(ParseError::Unparseable("empty message".into()));
    }
    let parsed = catch_unwind(AssertUnwindSafe(|| MessageParser::default().parse(raw)));
    let msg = match parsed {
        Ok(Some(msg)) if !msg.parts.is_empty() => msg,
        Ok(_) => return Err(ParseError::Unparseable("no header fields found".into())),
        Err(_) => {
            return Err(ParseError::Unparseable(
                "the MIME parser failed on this input".into(),
            ));
        }
    };
    from_message(&msg)
}

fn from_message(msg: &Message<'_>) -> Result<ParsedMail, ParseError> {
    let headers = raw_headers(msg);

    let message_id = header_values(&headers, "message-id")
        .flat_map(ids_in)
        .next();
    let in_reply_to = dedup(header_values(&headers, "in-reply-to").flat_map(ids_in));
    let references = dedup(header_values(&headers, "references").flat_map(ids_in));

    let from = msg.from().and_then(|a| a.first());
    let raw_from_address = from.and_then(|a| a.address.as_deref()).unwrap_or("");
    let from_address = clean_address(raw_from_address);
    let from_name = from
        .and_then(|a| a.name.as_deref())
        .map(one_line)
        .filter(|n| !n.is_empty());
    let from_local = raw_from_address
        .trim()
        .trim_start_matches('<')
        .split('@')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();

    let subject = msg.subject().map(one_line).unwrap_or_default();
    let date = msg.date().and_then(to_chrono);

    let (text, html) = bodies(msg);
    let visible_text = strip_quotes(&text);
    let attachments = attachments(msg);

    let report_type = report_type(msg);
    let return_path_empty = header_values(&headers, "return-path")
        .next()
        .is_some_and(is_null_path);
    let automated = detect_automated(
        &headers,
        report_type.as_deref(),
        return_path_empty,
        &from_local,
    );

    let bounce = match report_type.as_deref() {
        Some("delivery-status") => Some(dsn_bounce(msg)),
        Some(_) => None,
        None if is_daemon(&from_local)
            || header_values(&headers, "x-failed-recipients")
                .next()
                .is_some() =>
        {
            legacy_bounce(msg, &headers, &text)
        }
        None => None,
    };

    if from_address.is_none() && automated.is_none() {
        return Err(ParseError::NoSender);
    }

    Ok(ParsedMail {
        message_id,
        in_reply_to,
        references,
        from_address,
        from_name,
        subject,
        date,
        text,
        visible_text,
        html,
        attachments,
        automated,
        bounce,
        return_path_empty,
    })
}

/// Hash for dedupe when Message-ID is missing (SPEC §3.1 rule 1): sha256 hex
/// of sender, date, subject and body.
///
/// Each field is length-prefixed so that moving text between fields cannot
/// produce the same hash; the version tag lets a future change of recipe be
/// told apart from a collision.
pub fn content_hash(m: &ParsedMail) -> String {
    let date = m.date.map(|d| d.to_rfc3339()).unwrap_or_default();
    let mut h = Sha256::new();
    h.update(b"switchboard-mail-content-v1");
    for field in [
        m.from_address.as_deref().unwrap_or(""),
        date.as_str(),
        m.subject.as_str(),
        m.text.as_str(),
    ] {
        h.update((field.len() as u64).to_be_bytes());
        h.update(field.as_bytes());
    }
    hex::encode(h.finalize())
}

/// Extracts the issue id from one of our own Message-IDs,
/// `i42.m1337.RANDOM@host` (brackets optional): returns `Some(42)`.
pub fn issue_from_our_message_id(id: &str) -> Option<i64> {
    let id = id.trim();
    let id = id.strip_prefix('<').unwrap_or(id);
    let id = id.strip_suffix('>').unwrap_or(id);
    let (local, host) = id.rsplit_once('@')?;
    if host.is_empty() {
        return None;
    }
    let mut fields = local.split('.');
    let issue = digits(fields.next()?.strip_prefix('i')?)?;
    digits(fields.next()?.strip_prefix('m')?)?;
    let random = fields.next()?;
    if random.is_empty() || fields.next().is_some() || issue <= 0 {
        return None;
    }
    Some(issue)
}

fn digits(s: &str) -> Option<i64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

mod automated;
mod body;
mod headers;
mod html;
mod quotes;
#[cfg(test)]
mod tests;

use automated::*;
use body::*;
use headers::*;
pub use html::html_to_text;
pub use quotes::strip_quotes;
