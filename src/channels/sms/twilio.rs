//! Twilio, both ways: verifying and parsing the webhooks Twilio sends us
//! (inbound SMS/MMS and delivery status callbacks) and calling its Messages
//! API to send replies and fetch MMS media.
//!
//! I keep this module free of axum, the store and the domain on purpose: it
//! only translates between Twilio's wire formats and plain Rust values, so
//! the webhook handlers and the outbox worker can stay thin and so every
//! piece here can be tested against a fake Twilio (wiremock) or against
//! vectors produced by Twilio's own SDK.
//!
//! Things I decided, and why:
//!
//! - **Signature checking works on the raw form pairs, not on a map.** A
//!   parser that drops empty values (`FromCity=`) or collapses repeated names
//!   silently breaks validation, so [`parse_form`] keeps every pair in order
//!   and [`compute_signature`] sorts a copy. Names are sorted by code point
//!   (byte order of UTF-8 is the same thing) and a repeated name contributes
//!   its values sorted. Twilio's Python SDK drops a *byte-identical* repeated
//!   pair (it sorts `set(values)`), while a plain reading of the docs keeps
//!   it. I know of no Twilio webhook that repeats a pair, so
//!   [`compute_signature`] follows the Python SDK and [`verify_signature`]
//!   accepts either reading (only when the request really has a duplicate).
//! - **Default ports.** The Python SDK notes that Twilio's signing is
//!   inconsistent about `:443`/`:80`, so, like that SDK, I also accept the
//!   signature computed with the default port added (when the URL has none)
//!   or removed (when it has it). Unlike the Python SDK I do not strip a
//!   *non-default* port: Twilio called that port, so it is part of what it
//!   signed. I edit the URL as text rather than through `url::Url`, because
//!   `Url` normalises (drops default ports, re-encodes) and the signed string
//!   must stay byte-for-byte what Twilio called.
//! - **Constant time and no shortcuts.** Every candidate is compared with
//!   `subtle` and the results are OR-ed without early exit. An empty auth
//!   token or an empty signature never verifies: an HMAC keyed with an empty
//!   token is a signature anyone can forge, and a mis-configured deployment
//!   must fail closed.
//! - **Two kinds of send failure.** The outbox worker only needs to know
//!   whether to try again: [`SendError::Retryable`] (429/20429, 5xx, 408,
//!   network errors, timeouts; carries `Retry-After`) or
//!   [`SendError::Permanent`] (everything else, e.g. 21211 invalid `To`,
//!   21610 opted out). A 2xx whose body I cannot read is *permanent*: Twilio
//!   probably accepted the message and retrying could text the customer
//!   twice; I would rather show a failed delivery than send a duplicate. For
//!   failures that are not Twilio's, `code` is the HTTP status as a string or
//!   one of my own short codes (`media_too_large`, `invalid_response`,
//!   `invalid_request`, `redirect`).
//! - **Bounded everything.** Every request has a timeout (15 s for the
//!   Messages API, 60 s for media, adjustable with
//!   [`TwilioClient::with_timeouts`]); every body I read is capped, error
//!   bodies included, and media is capped both by `Content-Length` and by
//!   counting while streaming, because `Content-Length` can be absent.
//! - **Credentials.** Media URLs come from signed webhooks, but a signature
//!   says who sent the URL, not where it points: a `MediaUrl` naming any
//!   host and port used to be fetched with the account's basic auth. So a
//!   media URL is fetched only when its origin (scheme, host, port) is that
//!   of `twilio.api_base`; any other is refused (`media_host_refused`,
//!   permanent, so the outbox records the media as refused with the
//!   reason) without a request. Twilio redirects media to a CDN; reqwest
//!   follows redirects with the `Client`'s policy (its default follows up to
//!   10) and drops the `Authorization` header when the redirect leaves the
//!   original scheme, host and port, so the CDN never sees the auth token
//!   (`download_media_follows_redirect_without_leaking_auth` holds it to that).
//!   `Debug` for [`TwilioClient`] redacts the token and no span records it.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use reqwest::header::{CONTENT_TYPE, HeaderMap, RETRY_AFTER};
use sha1::Sha1;
use subtle::{Choice, ConstantTimeEq};

/// What we answer an inbound webhook with once the message is durably
/// stored: an empty TwiML document (Twilio shows an empty HTTP body as error
/// 11200).
pub const EMPTY_TWIML: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response></Response>";

/// Timeout for calls to the Messages API. Twilio itself answers in well under
/// a second; 15 s covers a bad day without stalling the outbox.
const API_TIMEOUT: Duration = Duration::from_secs(15);
/// Timeout for one media download (Twilio's MMS limit is 5 MB; a slow CDN
/// fetch must still finish).
const MEDIA_TIMEOUT: Duration = Duration::from_secs(60);
/// Largest JSON body (success or error) I read from the Messages API.
const MAX_API_BODY: u64 = 256 * 1024;
/// Content type reported when the media response does not name one.
const OCTET_STREAM: &str = "application/octet-stream";

// ---------------------------------------------------------------------------
// Webhook side: form parsing and signatures
// ---------------------------------------------------------------------------

/// Parse an x-www-form-urlencoded body into (name, value) pairs in order,
/// keeping empty values and repeated names.
///
/// `+` decodes to a space and `%2B` to `+`; invalid UTF-8 is replaced with
/// U+FFFD rather than rejected (Twilio always sends UTF-8).
pub fn parse_form(body: &[u8]) -> Vec<(String, String)> {
    form_urlencoded::parse(body).into_owned().collect()
}

/// X-Twilio-Signature check: base64(HMAC-SHA1(token, url + sorted name/value
/// concatenation)); names sorted by code point, repeated names contribute
/// their values sorted; also accept the signature computed with the default
/// port added or removed (:443 for https, :80 for http) like the official
/// SDK; constant-time comparison (subtle).
///
/// `url` must be the URL Twilio called, built from configuration
/// (`server.public_url` + path and query), never from the request's `Host`.
/// An empty token or signature never verifies.
pub fn verify_signature(
    auth_token: &str,
    url: &str,
    params: &[(String, String)],
    signature: &str,
) -> bool {
    if auth_token.is_empty() || signature.is_empty() {
        return false;
    }
    let mut tails = vec![signed_params(params, true)];
    if has_duplicate_pairs(params) {
        tails.push(signed_params(params, false));
    }
    let mut urls = vec![url.to_owned()];
    urls.extend(toggle_default_port(url));

    let provided = signature.as_bytes();
    let mut ok = Choice::from(0);
    for u in &urls {
        for tail in &tails {
            let expected = sign(auth_token, u, tail);
            ok |= expected.as_bytes().ct_eq(provided);
        }
    }
    ok.into()
}

/// The signature Twilio would send for this request, computed exactly as the
/// official Python SDK's `RequestValidator.compute_signature` does (used by
/// tests and by tools that replay webhooks).
pub fn compute_signature(auth_token: &str, url: &str, params: &[(String, String)]) -> String {
    sign(auth_token, url, &signed_params(params, true))
}

/// base64(HMAC-SHA1(token, url + tail)).
fn sign(auth_token: &str, url: &str, tail: &str) -> String {
    // HMAC takes keys of any length (long ones are hashed first), so this
    // cannot fail; I still avoid a panic path and return an empty string,
    // which `verify_signature` can never match (it rejects empty input).
    let Ok(mut mac) = Hmac::<Sha1>::new_from_slice(auth_token.as_bytes()) else {
        return String::new();
    };
    mac.update(url.as_bytes());
    mac.update(tail.as_bytes());
    BASE64.encode(mac.finalize().into_bytes())
}

/// The name/value concatenation: pairs sorted by name, then value (byte order
/// of UTF-8 = code-point order). With `dedupe`, a byte-identical repeated pair
/// counts once, as in Twilio's Python SDK.
fn signed_params(params: &[(String, String)], dedupe: bool) -> String {
    let mut pairs: Vec<(&str, &str)> = params
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    pairs.sort_unstable();
    if dedupe {
        pairs.dedup();
    }
    let mut out = String::with_capacity(pairs.iter().map(|(n, v)| n.len() + v.len()).sum());
    for (n, v) in pairs {
        out.push_str(n);
        out.push_str(v);
    }
    out
}

fn has_duplicate_pairs(params: &[(String, String)]) -> bool {
    let mut pairs: Vec<&(String, String)> = params.iter().collect();
    pairs.sort_unstable();
    pairs.windows(2).any(|w| w[0] == w[1])
}

/// The same URL with the scheme's default port removed (if it is there) or
/// added (if no port is there); `None` for other schemes, non-default ports
/// and strings that are not absolute URLs. Pure text surgery, so everything
/// else in the URL stays byte-for-byte as given.
fn toggle_default_port(url: &str) -> Option<String> {
    let sep = url.find("://")?;
    let scheme = &url[..sep];
    let default_port = if scheme.eq_ignore_ascii_case("https") {
        "443"
    } else if scheme.eq_ignore_ascii_case("http") {
        "80"
    } else {
        return None;
    };
    let auth_start = sep + 3;
    let auth_end = url[auth_start..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| auth_start + i);
    let authority = &url[auth_start..auth_end];
    let host_start = authority.rfind('@').map_or(0, |i| i + 1);
    let host_port = &authority[host_start..];
    if host_port.is_empty() {
        return None;
    }
    // In an IPv6 literal (`[::1]:443`) only a colon after `]` starts the port.
    let port_search_from = host_port.rfind(']').map_or(0, |i| i + 1);
    match host_port[port_search_from..].rfind(':') {
        Some(rel) => {
            let colon = auth_start + host_start + port_search_from + rel;
            (&url[colon + 1..auth_end] == default_port)
                .then(|| format!("{}{}", &url[..colon], &url[auth_end..]))
        }
        None => Some(format!(
            "{}:{}{}",
            &url[..auth_end],
            default_port,
            &url[auth_end..]
        )),
    }
}

// ---------------------------------------------------------------------------
// Webhook side: typed payloads
// ---------------------------------------------------------------------------

/// A webhook payload that lacks something we cannot do without.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InboundError {
    /// A required parameter is absent or empty; names the parameter
    /// (`"MessageSid"`, `"From"`, `"MessageStatus"`).
    #[error("missing required Twilio parameter {0}")]
    Missing(&'static str),
}

/// One media item of an inbound MMS, as announced in the webhook. The
/// content type is what Twilio declared; the download reports the real one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaRef {
    pub url: String,
    pub content_type: String,
}

/// An inbound SMS/MMS webhook, reduced to what Switchboard uses. The
/// signature must have been checked on the full parameter list first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundSms {
    /// `MessageSid` (`SM…`/`MM…`), the dedupe key.
    pub message_sid: String,
    /// `AccountSid`; empty if absent (the handler compares it with the
    /// configured account and rejects a mismatch).
    pub account_sid: String,
    pub from: String,
    /// Empty if absent.
    pub to: String,
    /// Empty if absent (an MMS may carry only media).
    pub body: String,
    pub media: Vec<MediaRef>,
}

impl InboundSms {
    /// Read an inbound message from webhook parameters.
    ///
    /// `MessageSid` falls back to the deprecated `SmsMessageSid`, then
    /// `SmsSid`. Media come from `NumMedia` and `MediaUrl{i}` /
    /// `MediaContentType{i}`; if `NumMedia` is absent or unreadable I take
    /// `MediaUrl0`, `MediaUrl1`, … while they are present, so media are not
    /// lost to a sloppy Twilio-compatible provider.
    pub fn from_params(p: &[(String, String)]) -> Result<InboundSms, InboundError> {
        let message_sid = message_sid(p).ok_or(InboundError::Missing("MessageSid"))?;
        let from = non_empty(p, "From").ok_or(InboundError::Missing("From"))?;
        Ok(InboundSms {
            message_sid: message_sid.to_owned(),
            account_sid: param(p, "AccountSid").unwrap_or_default().to_owned(),
            from: from.to_owned(),
            to: param(p, "To").unwrap_or_default().to_owned(),
            body: param(p, "Body").unwrap_or_default().to_owned(),
            media: media_refs(p),
        })
    }
}

/// A delivery status callback for a message we sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusCallback {
    pub message_sid: String,
    /// Twilio's raw status (`queued`, `sent`, `delivered`, `undelivered`, …);
    /// see [`map_status`].
    pub status: String,
    /// `ErrorCode`, `None` when absent or empty.
    pub error_code: Option<String>,
}

impl StatusCallback {
    /// `MessageSid` (fallbacks as for inbound) and `MessageStatus` (fallback
    /// `SmsStatus`) are required; an empty `ErrorCode` means none.
    pub fn from_params(p: &[(String, String)]) -> Result<Self, InboundError> {
        let message_sid = message_sid(p).ok_or(InboundError::Missing("MessageSid"))?;
        let status = non_empty(p, "MessageStatus")
            .or_else(|| non_empty(p, "SmsStatus"))
            .ok_or(InboundError::Missing("MessageStatus"))?;
        Ok(StatusCallback {
            message_sid: message_sid.to_owned(),
            status: status.to_owned(),
            error_code: non_empty(p, "ErrorCode").map(str::to_owned),
        })
    }
}

/// First value of `name`, if present.
fn param<'a>(p: &'a [(String, String)], name: &str) -> Option<&'a str> {
    p.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
}

/// First value of `name`, if present and not blank.
fn non_empty<'a>(p: &'a [(String, String)], name: &str) -> Option<&'a str> {
    param(p, name).filter(|v| !v.trim().is_empty())
}

fn message_sid(p: &[(String, String)]) -> Option<&str> {
    non_empty(p, "MessageSid")
        .or_else(|| non_empty(p, "SmsMessageSid"))
        .or_else(|| non_empty(p, "SmsSid"))
}

fn media_refs(p: &[(String, String)]) -> Vec<MediaRef> {
    let item = |i: usize| {
        non_empty(p, &format!("MediaUrl{i}")).map(|url| MediaRef {
            url: url.to_owned(),
            content_type: non_empty(p, &format!("MediaContentType{i}"))
                .unwrap_or(OCTET_STREAM)
                .to_owned(),
        })
    };
    match param(p, "NumMedia").and_then(|n| n.trim().parse::<usize>().ok()) {
        // Each item needs its own MediaUrl parameter, so there can be no more
        // items than parameters: a huge NumMedia cannot make me loop long.
        Some(n) => (0..n.min(p.len())).filter_map(item).collect(),
        None => (0..).map_while(item).collect(),
    }
}

// ---------------------------------------------------------------------------
// Delivery status
// ---------------------------------------------------------------------------

/// Map Twilio MessageStatus to our delivery status string:
/// accepted/queued/scheduled -> "queued", sending -> "sending", sent ->
/// "sent", delivered/read -> "delivered", undelivered/failed/canceled ->
/// "failed"; unknown (including the inbound `receiving`/`received`) -> None.
pub fn map_status(twilio_status: &str) -> Option<&'static str> {
    match twilio_status.trim().to_ascii_lowercase().as_str() {
        "accepted" | "queued" | "scheduled" => Some("queued"),
        "sending" => Some("sending"),
        "sent" => Some("sent"),
        "delivered" | "read" => Some("delivered"),
        "undelivered" | "failed" | "canceled" => Some("failed"),
        _ => None,
    }
}

/// A generic human text for common Twilio error codes, for when the provider
/// sent none (status callbacks carry only `ErrorCode`).
pub fn error_text(code: &str) -> &'static str {
    match code.trim() {
        "20003" => "Twilio rejected the account credentials",
        "20404" => "Twilio resource not found",
        "20429" => "too many requests to Twilio; will retry",
        "21211" => "invalid 'To' phone number",
        "21408" => "sending to this region is not enabled on the Twilio account",
        "21602" => "message body is required",
        "21606" => "the 'From' number cannot send this message",
        "21608" => "trial accounts can only send to verified numbers",
        "21610" => "recipient has unsubscribed (replied STOP)",
        "21612" => "the 'To' number cannot be reached from the 'From' number",
        "21614" => "'To' number is not a mobile number",
        "21617" => "message body exceeds the 1600 character limit",
        "30001" => "message queue overflow at Twilio",
        "30002" => "Twilio account suspended",
        "30003" => "unreachable destination handset",
        "30004" => "message blocked by the recipient or carrier",
        "30005" => "unknown destination handset",
        "30006" => "landline or unreachable carrier",
        "30007" => "message filtered by the carrier (spam)",
        "30008" => "unknown delivery error",
        "30034" => "message from an unregistered US A2P 10DLC number",
        _ => "message could not be delivered",
    }
}

// ---------------------------------------------------------------------------
// API side: sending and media
// ---------------------------------------------------------------------------

/// Who a reply comes from: a phone number / short code, or a Messaging
/// Service that picks the number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sender {
    From(String),
    MessagingService(String),
}

/// Twilio's answer to a successful send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentMessage {
    /// The new message's `sid`, matched later by status callbacks.
    pub sid: String,
    /// Twilio's raw status, usually `queued` or `accepted`.
    pub status: String,
}

/// Why a send or media download failed, split by what the caller should do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// Try again later (429, 5xx, 408, network errors, timeouts, 20429).
    /// `code` is Twilio's code, else the HTTP status, else `None` (no
    /// response at all); `retry_after` comes from the `Retry-After` header.
    #[error("temporary Twilio failure{}: {message}", code.as_ref().map(|c| format!(" ({c})")).unwrap_or_default())]
    Retryable {
        code: Option<String>,
        message: String,
        retry_after: Option<Duration>,
    },
    /// Do not retry (e.g. 21211 invalid `To`, 21610 opted out). `code` is
    /// Twilio's code, else the HTTP status, else one of this module's codes.
    #[error("Twilio refused ({code}): {message}")]
    Permanent { code: String, message: String },
}

/// Client for Twilio's REST API, for one account. Cheap to clone (the
/// reqwest client is shared).
#[derive(Clone)]
pub struct TwilioClient {
    api_base: String,
    /// (account SID, auth token), shared by every clone so a configuration
    /// reload (SIGHUP) reaches the outbox and the webhook check at once.
    credentials: std::sync::Arc<std::sync::RwLock<(String, String)>>,
    http: reqwest::Client,
    api_timeout: Duration,
    media_timeout: Duration,
}

impl std::fmt::Debug for TwilioClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TwilioClient")
            .field("api_base", &self.api_base)
            .field("account_sid", &self.credentials().0)
            .field("auth_token", &"[redacted]")
            .field("api_timeout", &self.api_timeout)
            .field("media_timeout", &self.media_timeout)
            .finish_non_exhaustive()
    }
}

impl TwilioClient {
    /// `api_base` is `https://api.twilio.com` in production, a wiremock
    /// server in tests, or a Twilio-compatible provider; a trailing `/` is
    /// ignored. `http` must have a TLS provider installed and should keep
    /// reqwest's default redirect policy (media downloads need it).
    pub fn new(api_base: &str, account_sid: &str, auth_token: &str, http: reqwest::Client) -> Self {
        TwilioClient {
            api_base: api_base.trim_end_matches('/').to_owned(),
            credentials: std::sync::Arc::new(std::sync::RwLock::new((
                account_sid.to_owned(),
                auth_token.to_owned(),
            ))),
            http,
            api_timeout: API_TIMEOUT,
            media_timeout: MEDIA_TIMEOUT,
        }
    }

    /// Replace the default timeouts (15 s for API calls, 60 s for a media
    /// download).
    pub fn with_timeouts(mut self, api: Duration, media: Duration) -> Self {
        self.api_timeout = api;
        self.media_timeout = media;
        self
    }

    /// The account SID and auth token in use.
    pub fn credentials(&self) -> (String, String) {
        match self.credentials.read() {
            Ok(c) => c.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Replaces the account SID and auth token (configuration reload).
    pub fn set_credentials(&self, account_sid: &str, auth_token: &str) {
        let mut c = match self.credentials.write() {
            Ok(c) => c,
            Err(poisoned) => poisoned.into_inner(),
        };
        *c = (account_sid.to_owned(), auth_token.to_owned());
    }

    /// Refuses a media URL whose scheme, host and port are not those of
    /// `api_base`: the account's credentials go to Twilio only.
    fn check_media_origin(&self, url: &str) -> Result<(), SendError> {
        let refused = |why: String| SendError::Permanent {
            code: "media_host_refused".to_owned(),
            message: why,
        };
        let target = reqwest::Url::parse(url)
            .map_err(|e| refused(format!("the media URL does not parse: {e}")))?;
        let api = reqwest::Url::parse(&self.api_base)
            .map_err(|e| refused(format!("bad Twilio api_base: {e}")))?;
        if target.origin() != api.origin() || !target.origin().is_tuple() {
            return Err(refused(format!(
                "media is fetched only from the Twilio API host ({}), not {}",
                api.origin().ascii_serialization(),
                target.origin().ascii_serialization()
            )));
        }
        Ok(())
    }

    /// The Messages API endpoint of this account.
    fn messages_url(&self, account_sid: &str) -> Result<reqwest::Url, SendError> {
        let invalid = |why: String| SendError::Permanent {
            code: "invalid_request".to_owned(),
            message: format!("bad Twilio api_base {:?}: {why}", self.api_base),
        };
        let mut url = reqwest::Url::parse(&self.api_base).map_err(|e| invalid(e.to_string()))?;
        url.path_segments_mut()
            .map_err(|()| invalid("not a base URL".to_owned()))?
            .pop_if_empty()
            .extend(["2010-04-01", "Accounts", account_sid, "Messages.json"]);
        Ok(url)
    }

    /// POST {api_base}/2010-04-01/Accounts/{sid}/Messages.json form To,
    /// From|MessagingServiceSid, Body, one `MediaUrl` per file (MMS; Twilio
    /// fetches each itself), StatusCallback (if given); basic auth; 15 s
    /// timeout.
    #[tracing::instrument(
        name = "twilio.send",
        skip_all,
        fields(account_sid = tracing::field::Empty, message_sid = tracing::field::Empty)
    )]
    pub async fn send(
        &self,
        to: &str,
        sender: &Sender,
        body: &str,
        media: &[String],
        status_callback: Option<&str>,
    ) -> Result<SentMessage, SendError> {
        let mut form: Vec<(&str, &str)> = vec![("To", to)];
        match sender {
            Sender::From(number) => form.push(("From", number)),
            Sender::MessagingService(sid) => form.push(("MessagingServiceSid", sid)),
        }
        form.push(("Body", body));
        for url in media {
            form.push(("MediaUrl", url));
        }
        if let Some(cb) = status_callback {
            form.push(("StatusCallback", cb));
        }

        let (account_sid, auth_token) = self.credentials();
        tracing::Span::current().record("account_sid", account_sid.as_str());
        let response = self
            .http
            .post(self.messages_url(&account_sid)?)
            .basic_auth(&account_sid, Some(&auth_token))
            .timeout(self.api_timeout)
            .form(&form)
            .send()
            .await
            .map_err(transport_error)?;

        let status = response.status();
        if !status.is_success() {
            let err = error_from_response(response).await;
            tracing::debug!(error = %err, "Twilio send failed");
            return Err(err);
        }
        let bytes = read_capped(response, MAX_API_BODY, "invalid_response").await?;
        let sent = parse_sent(&bytes).ok_or_else(|| SendError::Permanent {
            code: "invalid_response".to_owned(),
            message: format!(
                "Twilio answered {status} but the body has no message sid; \
                 not retrying, the message may have been sent"
            ),
        })?;
        tracing::Span::current().record("message_sid", sent.sid.as_str());
        Ok(sent)
    }

    /// GET a media URL with the account's basic auth, following redirects
    /// (Twilio media URLs redirect to a CDN), with a size cap: Err if larger
    /// than max_bytes (check Content-Length and also count while streaming).
    /// Returns (bytes, content-type).
    ///
    /// Too large is `Permanent { code: "media_too_large" }`; the content type
    /// is the final response's, `application/octet-stream` if it has none.
    #[tracing::instrument(name = "twilio.download_media", skip_all, fields(url = %url, max_bytes = max_bytes))]
    pub async fn download_media(
        &self,
        url: &str,
        max_bytes: u64,
    ) -> Result<(Vec<u8>, String), SendError> {
        self.check_media_origin(url)?;
        let (account_sid, auth_token) = self.credentials();
        let response = self
            .http
            .get(url)
            .basic_auth(&account_sid, Some(&auth_token))
            .timeout(self.media_timeout)
            .send()
            .await
            .map_err(transport_error)?;
        if !response.status().is_success() {
            return Err(error_from_response(response).await);
        }
        let content_type = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .unwrap_or(OCTET_STREAM)
            .to_owned();
        let bytes = read_capped(response, max_bytes, "media_too_large").await?;
        Ok((bytes, content_type))
    }
}

/// Read a body, refusing more than `max` bytes (as `Permanent` with
/// `too_large_code`): first by `Content-Length`, then by counting, since
/// chunked responses have none.
async fn read_capped(
    mut response: reqwest::Response,
    max: u64,
    too_large_code: &str,
) -> Result<Vec<u8>, SendError> {
    let too_large = |len: String| SendError::Permanent {
        code: too_large_code.to_owned(),
        message: format!("response body of {len} bytes exceeds the limit of {max} bytes"),
    };
    if let Some(len) = response.content_length()
        && len > max
    {
        return Err(too_large(len.to_string()));
    }
    let mut buf = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(transport_error)? {
        if buf.len() as u64 + chunk.len() as u64 > max {
            return Err(too_large("more than that".to_owned()));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf)
}

fn parse_sent(bytes: &[u8]) -> Option<SentMessage> {
    let v: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    let sid = v.get("sid")?.as_str()?.trim();
    if sid.is_empty() {
        return None;
    }
    let status = v.get("status").and_then(|s| s.as_str()).unwrap_or("queued");
    Some(SentMessage {
        sid: sid.to_owned(),
        status: status.to_owned(),
    })
}

/// A reqwest error with no usable HTTP response. Bad requests we built
/// (unparseable URL) and redirect loops will fail the same way again, so
/// they are permanent; everything else (connect, timeout, reset, body) is
/// worth retrying.
fn transport_error(e: reqwest::Error) -> SendError {
    let mut message = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        message.push_str(": ");
        message.push_str(&s.to_string());
        source = s.source();
    }
    if e.is_builder() {
        SendError::Permanent {
            code: "invalid_request".to_owned(),
            message,
        }
    } else if e.is_redirect() {
        SendError::Permanent {
            code: "redirect".to_owned(),
            message,
        }
    } else {
        SendError::Retryable {
            code: None,
            message,
            retry_after: None,
        }
    }
}

/// Classify a non-2xx answer, reading Twilio's JSON error if there is one.
async fn error_from_response(response: reqwest::Response) -> SendError {
    let status = response.status();
    let retry_after = parse_retry_after(response.headers(), chrono::Utc::now());
    // An unreadable or oversized error body just means "no JSON".
    let body = read_capped(response, MAX_API_BODY, "invalid_response")
        .await
        .unwrap_or_default();
    let json: Option<serde_json::Value> = serde_json::from_slice(&body).ok();
    let twilio_code = json.as_ref().and_then(|v| match v.get("code")? {
        serde_json::Value::Number(n) => Some(n.to_string()),
        serde_json::Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        _ => None,
    });
    let twilio_message = json
        .as_ref()
        .and_then(|v| v.get("message")?.as_str())
        .map(str::trim)
        .filter(|m| !m.is_empty())
        .map(str::to_owned);
    let message = match (&twilio_message, &twilio_code) {
        (Some(m), _) => m.clone(),
        (None, Some(c)) => error_text(c).to_owned(),
        (None, None) => format!("Twilio answered HTTP {status} without an error body"),
    };
    let retryable = status.as_u16() == 429
        || status.as_u16() == 408
        || status.is_server_error()
        || twilio_code.as_deref() == Some("20429");
    let code = twilio_code.unwrap_or_else(|| status.as_u16().to_string());
    if retryable {
        SendError::Retryable {
            code: Some(code),
            message,
            retry_after,
        }
    } else {
        SendError::Permanent { code, message }
    }
}

/// `Retry-After` as delay-seconds or an HTTP date (a date in the past means
/// "now"). The caller bounds it.
fn parse_retry_after(headers: &HeaderMap, now: chrono::DateTime<chrono::Utc>) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    Some(
        at.with_timezone(&chrono::Utc)
            .signed_duration_since(now)
            .to_std()
            .unwrap_or(Duration::ZERO),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use wiremock::matchers::{header, method, path};
    use wiremock::{Mock, MockServer, Request, ResponseTemplate};

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    // ---- signatures -------------------------------------------------------

    fn public_vector_params() -> Vec<(String, String)> {
        pairs(&[
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+14158675309"),
            ("Digits", "1234"),
            ("From", "+14158675309"),
            ("To", "+18005551212"),
        ])
    }
    const PUBLIC_URL: &str = "https://mycompany.com/myapp.php?foo=1&bar=2";
    const PUBLIC_SIG: &str = "RSOYDt4T1cUTdK1PDd93/VVr8B8=";

    #[test]
    fn public_sdk_vector() {
        let p = public_vector_params();
        assert_eq!(compute_signature("12345", PUBLIC_URL, &p), PUBLIC_SIG);
        assert!(verify_signature("12345", PUBLIC_URL, &p, PUBLIC_SIG));
        // Order of the pairs as received must not matter.
        let mut reversed = p.clone();
        reversed.reverse();
        assert!(verify_signature("12345", PUBLIC_URL, &reversed, PUBLIC_SIG));
    }

    const TOKEN: &str = "f2f1c3e5d9a04b7e8c6d5e4f3a2b1c0d";

    struct Vector {
        name: &'static str,
        url: &'static str,
        token: &'static str,
        params: &'static [(&'static str, &'static str)],
        signature: &'static str,
    }

    /// Produced by `gen_twilio_vectors.py` (beside this module in
    /// tests/fixtures/) with the official Twilio Python SDK 9.13.0,
    /// `RequestValidator(token).compute_signature(url, params)`; params
    /// passed as a multi-dict so repeated names reach the SDK.
    const SDK_VECTORS: &[Vector] = &[
        Vector {
            name: "empty_values",
            url: "https://support.example.com/webhooks/twilio/sms",
            token: TOKEN,
            params: &[
                ("ToCountry", "US"),
                ("ToState", "CA"),
                ("SmsMessageSid", "SM0123456789abcdef0123456789abcdef"),
                ("NumMedia", "0"),
                ("ToCity", ""),
                ("FromZip", ""),
                ("SmsSid", "SM0123456789abcdef0123456789abcdef"),
                ("FromState", ""),
                ("SmsStatus", "received"),
                ("FromCity", ""),
                ("Body", "Hello, my printer is on fire"),
                ("FromCountry", "US"),
                ("To", "+15550100001"),
                ("ToZip", ""),
                ("NumSegments", "1"),
                ("MessageSid", "SM0123456789abcdef0123456789abcdef"),
                ("AccountSid", "AC00000000000000000000000000000000"),
                ("From", "+15550100002"),
                ("ApiVersion", "2010-04-01"),
            ],
            signature: "VjBij4DVU7j+aH5flUrVwRPkauE=",
        },
        Vector {
            name: "repeated_names",
            url: "https://support.example.com/webhooks/twilio/sms",
            token: TOKEN,
            params: &[
                ("MessageSid", "SMrep"),
                ("Tag", "zulu"),
                ("From", "+15550100002"),
                ("Tag", "alpha"),
                ("Tag", "Mike"),
                ("Body", "x"),
            ],
            signature: "u8O8NkRKBShltkPMUimexM4H5GE=",
        },
        Vector {
            name: "duplicate_pair",
            url: "https://support.example.com/webhooks/twilio/sms",
            token: TOKEN,
            params: &[
                ("MessageSid", "SMdup"),
                ("Tag", "b"),
                ("Tag", "a"),
                ("Tag", "b"),
            ],
            signature: "zShX9s2ZcdC6V2O2Zn6TL0nbnbk=",
        },
        Vector {
            name: "unicode_body",
            url: "https://support.example.com/webhooks/twilio/sms",
            token: TOKEN,
            params: &[
                ("MessageSid", "SMuni"),
                ("From", "+15550100002"),
                (
                    "Body",
                    "Ça marche pas 😡 — 日本語 ñ\nsecond line & more=stuff+plus",
                ),
                ("Émoji", "é"),
                ("Zeta", "z"),
            ],
            signature: "DU/BV/QNbQM3jIVyN0aER945kD8=",
        },
        Vector {
            name: "query_string",
            url: "https://support.example.com/webhooks/twilio/sms?tenant=acme&x=a%20b",
            token: TOKEN,
            params: &[
                ("MessageSid", "SMq"),
                ("From", "+15550100002"),
                ("Body", "hi"),
            ],
            signature: "4VnIWs01ZtVHzb4b5vAqcsD2Tkg=",
        },
        Vector {
            name: "explicit_443",
            url: "https://support.example.com:443/webhooks/twilio/status",
            token: TOKEN,
            params: &[
                ("MessageSid", "SMp"),
                ("MessageStatus", "delivered"),
                ("ErrorCode", ""),
            ],
            signature: "hDTT/s78/kV3V0U5fRe4Hut02iI=",
        },
        Vector {
            name: "without_443",
            url: "https://support.example.com/webhooks/twilio/status",
            token: TOKEN,
            params: &[
                ("MessageSid", "SMp"),
                ("MessageStatus", "delivered"),
                ("ErrorCode", ""),
            ],
            signature: "3fyRPlk5FzBGsHMMA2PJY92Qxxo=",
        },
        Vector {
            name: "explicit_80",
            url: "http://helpdesk.internal:80/webhooks/twilio/sms?a=1",
            token: "12345",
            params: &[
                ("MessageSid", "SMh"),
                ("From", "+15550100002"),
                ("Body", ""),
            ],
            signature: "nbSjDpFqPQK5gQhxFgIk3Uua7jU=",
        },
    ];

    #[test]
    fn sdk_vectors_compute_and_verify() {
        for v in SDK_VECTORS {
            let p = pairs(v.params);
            assert_eq!(
                compute_signature(v.token, v.url, &p),
                v.signature,
                "vector {}",
                v.name
            );
            assert!(
                verify_signature(v.token, v.url, &p, v.signature),
                "vector {}",
                v.name
            );
        }
    }

    fn vector(name: &str) -> &'static Vector {
        SDK_VECTORS
            .iter()
            .find(|v| v.name == name)
            .expect("vector exists")
    }

    #[test]
    fn sdk_vectors_fail_when_anything_changes() {
        for v in SDK_VECTORS {
            let p = pairs(v.params);
            assert!(
                !verify_signature("wrong-token", v.url, &p, v.signature),
                "{}",
                v.name
            );
            assert!(
                !verify_signature(v.token, &format!("{}x", v.url), &p, v.signature),
                "{}",
                v.name
            );
            // Tamper with each value in turn, and drop each pair in turn.
            for i in 0..p.len() {
                let mut tampered = p.clone();
                tampered[i].1.push('!');
                assert!(
                    !verify_signature(v.token, v.url, &tampered, v.signature),
                    "{} tampered {}",
                    v.name,
                    p[i].0
                );
                if p.iter().filter(|q| **q == p[i]).count() > 1 {
                    // Dropping one of two identical pairs is the SDK's own
                    // reading of the request, so it still verifies.
                    continue;
                }
                let mut dropped = p.clone();
                dropped.remove(i);
                assert!(
                    !verify_signature(v.token, v.url, &dropped, v.signature),
                    "{} dropped {}",
                    v.name,
                    p[i].0
                );
            }
        }
    }

    #[test]
    fn empty_values_are_signed() {
        // A parser that dropped FromCity="" would compute another signature.
        let v = vector("empty_values");
        let without_empty: Vec<_> = pairs(v.params)
            .into_iter()
            .filter(|(_, val)| !val.is_empty())
            .collect();
        assert!(!verify_signature(
            v.token,
            v.url,
            &without_empty,
            v.signature
        ));
    }

    #[test]
    fn repeated_names_keep_every_value() {
        let v = vector("repeated_names");
        let mut only_first: Vec<(String, String)> = Vec::new();
        for (n, val) in pairs(v.params) {
            if !only_first.iter().any(|(m, _)| *m == n) {
                only_first.push((n, val));
            }
        }
        assert!(!verify_signature(v.token, v.url, &only_first, v.signature));
    }

    #[test]
    fn duplicate_pair_both_readings_verify() {
        let v = vector("duplicate_pair");
        let p = pairs(v.params);
        // The Python SDK's reading (identical pair once) is v.signature; the
        // reading that keeps the duplicate must verify too.
        let keep_all = sign(v.token, v.url, &signed_params(&p, false));
        assert_ne!(keep_all, v.signature);
        assert!(verify_signature(v.token, v.url, &p, &keep_all));
        // ...but only when the duplicate is really in the request.
        let mut once = p.clone();
        once.pop();
        assert!(verify_signature(v.token, v.url, &once, v.signature));
        assert!(!verify_signature(v.token, v.url, &once, &keep_all));
    }

    #[test]
    fn default_port_variants_are_accepted() {
        let with = vector("explicit_443");
        let without = vector("without_443");
        let p = pairs(with.params);
        // Signed with :443, called without (and the reverse).
        assert!(verify_signature(TOKEN, without.url, &p, with.signature));
        assert!(verify_signature(TOKEN, with.url, &p, without.signature));
        // http :80 removed.
        let v80 = vector("explicit_80");
        let p80 = pairs(v80.params);
        let no_port = "http://helpdesk.internal/webhooks/twilio/sms?a=1";
        assert!(verify_signature(v80.token, no_port, &p80, v80.signature));
        // The wrong default port for the scheme is not a variant.
        let https_80 = "https://support.example.com:80/webhooks/twilio/status";
        let sig = compute_signature(TOKEN, https_80, &p);
        assert!(!verify_signature(TOKEN, without.url, &p, &sig));
        // A non-default port is part of what Twilio signed.
        let custom = "https://support.example.com:8443/webhooks/twilio/status";
        assert!(!verify_signature(TOKEN, custom, &p, without.signature));
    }

    #[test]
    fn toggle_default_port_cases() {
        let cases = [
            ("https://a.example/x", Some("https://a.example:443/x")),
            (
                "https://a.example:443/x?q=1",
                Some("https://a.example/x?q=1"),
            ),
            ("https://a.example", Some("https://a.example:443")),
            ("https://a.example?q=1", Some("https://a.example:443?q=1")),
            ("http://a.example:80/x", Some("http://a.example/x")),
            ("http://a.example/x:443", Some("http://a.example:80/x:443")),
            (
                "https://u:p@a.example/x",
                Some("https://u:p@a.example:443/x"),
            ),
            (
                "https://u:p@a.example:443/x",
                Some("https://u:p@a.example/x"),
            ),
            ("https://[::1]/x", Some("https://[::1]:443/x")),
            ("https://[::1]:443/x", Some("https://[::1]/x")),
            ("https://a.example:8443/x", None),
            ("http://a.example:443/x", None),
            ("ftp://a.example/x", None),
            ("/relative/path", None),
            ("https:///x", None),
        ];
        for (input, want) in cases {
            assert_eq!(toggle_default_port(input).as_deref(), want, "{input}");
        }
    }

    #[test]
    fn rejects_bad_signatures() {
        let p = public_vector_params();
        assert!(!verify_signature("12345", PUBLIC_URL, &p, ""));
        assert!(!verify_signature(
            "12345",
            PUBLIC_URL,
            &p,
            "RSOYDt4T1cUTdK1PDd93/VVr8B8"
        ));
        assert!(!verify_signature(
            "12345",
            PUBLIC_URL,
            &p,
            "RSOYDt4T1cUTdK1PDd93/VVr8B9="
        ));
        assert!(!verify_signature("12346", PUBLIC_URL, &p, PUBLIC_SIG));
        let mut extra = p.clone();
        extra.push(("Injected".into(), "1".into()));
        assert!(!verify_signature("12345", PUBLIC_URL, &extra, PUBLIC_SIG));
        let mut tampered = p.clone();
        tampered[4].1 = "+18005551213".into();
        assert!(!verify_signature(
            "12345", PUBLIC_URL, &tampered, PUBLIC_SIG
        ));
        // A renamed parameter with the same value concatenation differs too.
        let mut renamed = p.clone();
        renamed[2].0 = "digits".into();
        assert!(!verify_signature("12345", PUBLIC_URL, &renamed, PUBLIC_SIG));
    }

    #[test]
    fn empty_token_never_verifies() {
        // Anyone can compute an HMAC keyed with "": it must not pass.
        let p = public_vector_params();
        let forged = compute_signature("", PUBLIC_URL, &p);
        assert!(!forged.is_empty());
        assert!(!verify_signature("", PUBLIC_URL, &p, &forged));
    }

    #[test]
    fn parse_form_keeps_everything() {
        let body = b"From=%2B15550100002&FromCity=&Body=hello+world+%2B+more&Tag=a&Tag=b&Flag&Emoji=%F0%9F%91%8D";
        assert_eq!(
            parse_form(body),
            pairs(&[
                ("From", "+15550100002"),
                ("FromCity", ""),
                ("Body", "hello world + more"),
                ("Tag", "a"),
                ("Tag", "b"),
                ("Flag", ""),
                ("Emoji", "👍"),
            ])
        );
        assert!(parse_form(b"").is_empty());
    }

    #[test]
    fn parse_form_then_verify_round_trip() {
        // The realistic path: raw body -> pairs -> signature.
        let v = vector("empty_values");
        let body: String = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(v.params.iter())
            .finish();
        let parsed = parse_form(body.as_bytes());
        assert_eq!(parsed, pairs(v.params));
        assert!(verify_signature(v.token, v.url, &parsed, v.signature));
    }

    // ---- payloads ---------------------------------------------------------

    #[test]
    fn inbound_sms_basic() {
        let p = pairs(&[
            ("MessageSid", "SM1"),
            ("AccountSid", "AC1"),
            ("From", "+15550100002"),
            ("To", "+15550100001"),
            ("Body", "hi there"),
            ("NumMedia", "0"),
        ]);
        assert_eq!(
            InboundSms::from_params(&p),
            Ok(InboundSms {
                message_sid: "SM1".into(),
                account_sid: "AC1".into(),
                from: "+15550100002".into(),
                to: "+15550100001".into(),
                body: "hi there".into(),
                media: vec![],
            })
        );
    }

    #[test]
    fn inbound_sms_missing_fields() {
        let no_sid = pairs(&[("From", "+15550100002"), ("Body", "x")]);
        assert_eq!(
            InboundSms::from_params(&no_sid),
            Err(InboundError::Missing("MessageSid"))
        );
        let empty_sid = pairs(&[("MessageSid", ""), ("From", "+15550100002")]);
        assert_eq!(
            InboundSms::from_params(&empty_sid),
            Err(InboundError::Missing("MessageSid"))
        );
        let no_from = pairs(&[("MessageSid", "SM1"), ("Body", "x")]);
        assert_eq!(
            InboundSms::from_params(&no_from),
            Err(InboundError::Missing("From"))
        );
        let empty_from = pairs(&[("MessageSid", "SM1"), ("From", "")]);
        assert_eq!(
            InboundSms::from_params(&empty_from),
            Err(InboundError::Missing("From"))
        );
    }

    #[test]
    fn inbound_sms_sid_fallbacks_and_defaults() {
        let p = pairs(&[("SmsMessageSid", "SM2"), ("SmsSid", "SM3"), ("From", "+1")]);
        let sms = InboundSms::from_params(&p).expect("valid");
        assert_eq!(sms.message_sid, "SM2");
        assert_eq!(sms.body, "");
        assert_eq!(sms.to, "");
        assert_eq!(sms.account_sid, "");
        let p = pairs(&[("SmsSid", "SM3"), ("From", "+1")]);
        assert_eq!(
            InboundSms::from_params(&p).expect("valid").message_sid,
            "SM3"
        );
        let p = pairs(&[("MessageSid", "MM1"), ("SmsSid", "SM3"), ("From", "+1")]);
        assert_eq!(
            InboundSms::from_params(&p).expect("valid").message_sid,
            "MM1"
        );
    }

    #[test]
    fn inbound_mms_media() {
        let p = pairs(&[
            ("MessageSid", "MM1"),
            ("From", "+15550100002"),
            ("NumMedia", "2"),
            ("MediaUrl1", "https://api.twilio.com/m/1"),
            ("MediaContentType1", "application/pdf"),
            ("MediaUrl0", "https://api.twilio.com/m/0"),
            ("MediaContentType0", "image/jpeg"),
            ("MediaUrl2", "https://api.twilio.com/m/2-not-announced"),
        ]);
        let sms = InboundSms::from_params(&p).expect("valid");
        assert_eq!(
            sms.media,
            vec![
                MediaRef {
                    url: "https://api.twilio.com/m/0".into(),
                    content_type: "image/jpeg".into()
                },
                MediaRef {
                    url: "https://api.twilio.com/m/1".into(),
                    content_type: "application/pdf".into()
                },
            ]
        );
    }

    #[test]
    fn inbound_mms_media_without_or_with_bad_num_media() {
        for num in [None, Some("two"), Some("")] {
            let mut p = pairs(&[
                ("MessageSid", "MM1"),
                ("From", "+1"),
                ("MediaUrl0", "https://x/0"),
                ("MediaUrl1", "https://x/1"),
                ("MediaContentType1", "image/png"),
                ("MediaUrl3", "https://x/3-after-a-gap"),
            ]);
            if let Some(n) = num {
                p.push(("NumMedia".into(), n.into()));
            }
            let media = InboundSms::from_params(&p).expect("valid").media;
            assert_eq!(
                media,
                vec![
                    MediaRef {
                        url: "https://x/0".into(),
                        content_type: OCTET_STREAM.into()
                    },
                    MediaRef {
                        url: "https://x/1".into(),
                        content_type: "image/png".into()
                    },
                ],
                "NumMedia {num:?}"
            );
        }
        // An absurd NumMedia finishes quickly and finds what is there.
        let p = pairs(&[
            ("MessageSid", "MM1"),
            ("From", "+1"),
            ("NumMedia", "18446744073709551615"),
            ("MediaUrl0", "https://x/0"),
        ]);
        assert_eq!(InboundSms::from_params(&p).expect("valid").media.len(), 1);
    }

    #[test]
    fn status_callback_parsing() {
        let p = pairs(&[
            ("MessageSid", "SM9"),
            ("MessageStatus", "undelivered"),
            ("ErrorCode", "30003"),
        ]);
        assert_eq!(
            StatusCallback::from_params(&p),
            Ok(StatusCallback {
                message_sid: "SM9".into(),
                status: "undelivered".into(),
                error_code: Some("30003".into()),
            })
        );
        let p = pairs(&[("SmsSid", "SM9"), ("SmsStatus", "sent"), ("ErrorCode", "")]);
        assert_eq!(
            StatusCallback::from_params(&p),
            Ok(StatusCallback {
                message_sid: "SM9".into(),
                status: "sent".into(),
                error_code: None,
            })
        );
        assert_eq!(
            StatusCallback::from_params(&pairs(&[("MessageStatus", "sent")])),
            Err(InboundError::Missing("MessageSid"))
        );
        assert_eq!(
            StatusCallback::from_params(&pairs(&[("MessageSid", "SM9")])),
            Err(InboundError::Missing("MessageStatus"))
        );
    }

    // ---- status mapping ---------------------------------------------------

    #[test]
    fn map_status_table() {
        let table = [
            ("accepted", Some("queued")),
            ("queued", Some("queued")),
            ("scheduled", Some("queued")),
            ("sending", Some("sending")),
            ("sent", Some("sent")),
            ("delivered", Some("delivered")),
            ("read", Some("delivered")),
            ("undelivered", Some("failed")),
            ("failed", Some("failed")),
            ("canceled", Some("failed")),
            ("Delivered", Some("delivered")),
            ("received", None),
            ("receiving", None),
            ("", None),
            ("bogus", None),
        ];
        for (input, want) in table {
            assert_eq!(map_status(input), want, "{input}");
        }
    }

    #[test]
    fn error_text_known_and_unknown() {
        assert_eq!(error_text("21211"), "invalid 'To' phone number");
        assert!(error_text("21610").contains("STOP"));
        let fallback = error_text("99999");
        for code in [
            "21211", "21610", "21614", "30003", "30004", "30005", "30006", "30007", "30008",
        ] {
            assert_ne!(error_text(code), fallback, "{code}");
        }
        assert_ne!(error_text("30003"), error_text("30005"));
    }

    // ---- HTTP: send -------------------------------------------------------

    const SID: &str = "AC0123";
    const SECRET: &str = "s3cret-token";

    fn http() -> reqwest::Client {
        let _ = rustls::crypto::ring::default_provider().install_default();
        reqwest::Client::builder().build().expect("client")
    }

    fn client(server: &MockServer) -> TwilioClient {
        TwilioClient::new(&server.uri(), SID, SECRET, http())
    }

    fn basic_auth_value() -> String {
        format!("Basic {}", BASE64.encode(format!("{SID}:{SECRET}")))
    }

    const MESSAGES_PATH: &str = "/2010-04-01/Accounts/AC0123/Messages.json";

    /// Matches a form body whose pairs, in any order, are exactly these.
    struct FormIs(Vec<(String, String)>);
    impl wiremock::Match for FormIs {
        fn matches(&self, request: &Request) -> bool {
            let mut got = parse_form(&request.body);
            let mut want = self.0.clone();
            got.sort();
            want.sort();
            got == want
        }
    }

    #[tokio::test]
    async fn send_success_posts_form_with_basic_auth() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path(MESSAGES_PATH))
            .and(header("authorization", basic_auth_value().as_str()))
            .and(header("content-type", "application/x-www-form-urlencoded"))
            .and(FormIs(pairs(&[
                ("To", "+15550100002"),
                ("From", "+15550100001"),
                ("Body", "Hi & welcome +1 ✓"),
                (
                    "StatusCallback",
                    "https://sb.example/webhooks/twilio/status",
                ),
            ])))
            .respond_with(ResponseTemplate::new(201).set_body_json(serde_json::json!({
                "sid": "SMabc", "status": "queued", "body": "Hi & welcome +1 ✓"
            })))
            .expect(1)
            .mount(&server)
            .await;
        let sent = client(&server)
            .send(
                "+15550100002",
                &Sender::From("+15550100001".into()),
                "Hi & welcome +1 ✓",
                &[],
                Some("https://sb.example/webhooks/twilio/status"),
            )
            .await;
        assert_eq!(
            sent,
            Ok(SentMessage {
                sid: "SMabc".into(),
                status: "queued".into()
            })
        );
    }

    #[tokio::test]
    async fn send_with_messaging_service_media_and_no_callback() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path(MESSAGES_PATH))
            .and(FormIs(pairs(&[
                ("To", "+15550100002"),
                ("MessagingServiceSid", "MG42"),
                ("Body", "hello"),
                ("MediaUrl", "https://sb.example/media/a"),
                ("MediaUrl", "https://sb.example/media/b"),
            ])))
            .respond_with(
                ResponseTemplate::new(201)
                    .set_body_json(serde_json::json!({"sid": "SMdef", "status": "accepted"})),
            )
            .expect(1)
            .mount(&server)
            .await;
        // A trailing slash on api_base must not produce "//2010-04-01".
        let c = TwilioClient::new(&format!("{}/", server.uri()), SID, SECRET, http());
        let sent = c
            .send(
                "+15550100002",
                &Sender::MessagingService("MG42".into()),
                "hello",
                &[
                    "https://sb.example/media/a".to_string(),
                    "https://sb.example/media/b".to_string(),
                ],
                None,
            )
            .await
            .expect("sent");
        assert_eq!(sent.sid, "SMdef");
        assert_eq!(sent.status, "accepted");
    }

    async fn send_against(response: ResponseTemplate) -> Result<SentMessage, SendError> {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path(MESSAGES_PATH))
            .respond_with(response)
            .expect(1)
            .mount(&server)
            .await;
        client(&server)
            .send("+15550100002", &Sender::From("+1".into()), "x", &[], None)
            .await
    }

    #[tokio::test]
    async fn send_429_is_retryable_with_retry_after() {
        let result = send_against(
            ResponseTemplate::new(429)
                .insert_header("Retry-After", "7")
                .set_body_json(serde_json::json!({
                    "code": 20429, "message": "Too Many Requests",
                    "more_info": "https://www.twilio.com/docs/errors/20429", "status": 429
                })),
        )
        .await;
        assert_eq!(
            result,
            Err(SendError::Retryable {
                code: Some("20429".into()),
                message: "Too Many Requests".into(),
                retry_after: Some(Duration::from_secs(7)),
            })
        );
    }

    #[tokio::test]
    async fn send_500_is_retryable() {
        let result = send_against(ResponseTemplate::new(500).set_body_string("oops")).await;
        match result {
            Err(SendError::Retryable {
                code, retry_after, ..
            }) => {
                assert_eq!(code.as_deref(), Some("500"));
                assert_eq!(retry_after, None);
            }
            other => panic!("expected Retryable, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn send_20429_under_another_status_is_retryable() {
        let result = send_against(
            ResponseTemplate::new(400).set_body_json(serde_json::json!({"code": 20429})),
        )
        .await;
        assert!(
            matches!(result, Err(SendError::Retryable { ref code, .. }) if code.as_deref() == Some("20429")),
            "{result:?}"
        );
    }

    #[tokio::test]
    async fn send_400_21211_is_permanent() {
        let result = send_against(ResponseTemplate::new(400).set_body_json(serde_json::json!({
            "code": 21211,
            "message": "The 'To' number +1555 is not a valid phone number.",
            "more_info": "https://www.twilio.com/docs/errors/21211",
            "status": 400
        })))
        .await;
        assert_eq!(
            result,
            Err(SendError::Permanent {
                code: "21211".into(),
                message: "The 'To' number +1555 is not a valid phone number.".into(),
            })
        );
    }

    #[tokio::test]
    async fn send_21610_is_permanent_with_fallback_text() {
        // No message in the JSON: the generic text stands in.
        let result = send_against(
            ResponseTemplate::new(400)
                .set_body_json(serde_json::json!({"code": "21610", "status": 400})),
        )
        .await;
        assert_eq!(
            result,
            Err(SendError::Permanent {
                code: "21610".into(),
                message: error_text("21610").into(),
            })
        );
    }

    #[tokio::test]
    async fn send_4xx_without_json_uses_http_status() {
        let result = send_against(ResponseTemplate::new(404).set_body_string("<html>")).await;
        match result {
            Err(SendError::Permanent { code, message }) => {
                assert_eq!(code, "404");
                assert!(message.contains("404"), "{message}");
            }
            other => panic!("expected Permanent, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn send_2xx_without_sid_is_permanent_not_retried() {
        let result = send_against(ResponseTemplate::new(201).set_body_string("not json")).await;
        assert!(
            matches!(result, Err(SendError::Permanent { ref code, .. }) if code == "invalid_response"),
            "{result:?}"
        );
    }

    #[tokio::test]
    async fn send_connection_refused_is_retryable() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        drop(listener);
        let c = TwilioClient::new(&format!("http://{addr}"), SID, SECRET, http());
        let result = c
            .send("+1", &Sender::From("+1".into()), "x", &[], None)
            .await;
        assert!(
            matches!(
                result,
                Err(SendError::Retryable {
                    code: None,
                    retry_after: None,
                    ..
                })
            ),
            "{result:?}"
        );
    }

    #[tokio::test]
    async fn send_timeout_is_retryable() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(
                ResponseTemplate::new(201)
                    .set_body_json(serde_json::json!({"sid": "SMlate", "status": "queued"}))
                    .set_delay(Duration::from_secs(5)),
            )
            .mount(&server)
            .await;
        let c = client(&server).with_timeouts(Duration::from_millis(200), Duration::from_secs(1));
        let result = c
            .send("+1", &Sender::From("+1".into()), "x", &[], None)
            .await;
        assert!(
            matches!(result, Err(SendError::Retryable { code: None, .. })),
            "{result:?}"
        );
    }

    #[tokio::test]
    async fn send_with_unusable_api_base_is_permanent() {
        let c = TwilioClient::new("not a url", SID, SECRET, http());
        let result = c
            .send("+1", &Sender::From("+1".into()), "x", &[], None)
            .await;
        assert!(
            matches!(result, Err(SendError::Permanent { ref code, .. }) if code == "invalid_request"),
            "{result:?}"
        );
    }

    #[test]
    fn retry_after_forms() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .expect("date")
            .with_timezone(&chrono::Utc);
        let h = |v: &str| {
            let mut m = HeaderMap::new();
            m.insert(RETRY_AFTER, v.parse().expect("header value"));
            m
        };
        assert_eq!(
            parse_retry_after(&h(" 120 "), now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after(&h("Thu, 01 Jan 2026 00:00:30 GMT"), now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after(&h("Wed, 31 Dec 2025 23:00:00 GMT"), now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after(&h("soon"), now), None);
        assert_eq!(parse_retry_after(&HeaderMap::new(), now), None);
    }

    #[test]
    fn debug_redacts_the_token() {
        let c = TwilioClient::new("https://api.twilio.com", SID, SECRET, http());
        let shown = format!("{c:?} {c:#?}");
        assert!(!shown.contains(SECRET), "{shown}");
        assert!(shown.contains(SID));
        assert!(shown.contains("[redacted]"));
    }

    // ---- HTTP: media ------------------------------------------------------

    #[tokio::test]
    async fn download_media_success_with_auth_and_type() {
        let server = MockServer::start().await;
        let jpeg = vec![0xFF, 0xD8, 0xFF, 0xE0, 1, 2, 3, 4];
        Mock::given(method("GET"))
            .and(path("/2010-04-01/Accounts/AC0123/Messages/MM1/Media/ME1"))
            .and(header("authorization", basic_auth_value().as_str()))
            .respond_with(ResponseTemplate::new(200).set_body_raw(jpeg.clone(), "image/jpeg"))
            .expect(1)
            .mount(&server)
            .await;
        let url = format!(
            "{}/2010-04-01/Accounts/AC0123/Messages/MM1/Media/ME1",
            server.uri()
        );
        let got = client(&server).download_media(&url, 1024).await;
        assert_eq!(got, Ok((jpeg, "image/jpeg".to_owned())));
    }

    #[tokio::test]
    async fn download_media_exact_limit_is_allowed() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(200).set_body_bytes(vec![7u8; 16]))
            .mount(&server)
            .await;
        let url = format!("{}/m", server.uri());
        let (bytes, ct) = client(&server)
            .download_media(&url, 16)
            .await
            .expect("exactly at the limit");
        assert_eq!(bytes.len(), 16);
        assert_eq!(ct, OCTET_STREAM);
    }

    #[tokio::test]
    async fn download_media_rejects_oversize_by_content_length() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(200).set_body_raw(vec![0u8; 100], "image/png"))
            .expect(1)
            .mount(&server)
            .await;
        let url = format!("{}/big", server.uri());
        let result = client(&server).download_media(&url, 99).await;
        assert!(
            matches!(result, Err(SendError::Permanent { ref code, .. }) if code == "media_too_large"),
            "{result:?}"
        );
    }

    /// A one-shot HTTP/1.1 server that answers with a chunked body (no
    /// Content-Length), so only counting while streaming can catch it.
    async fn chunked_server(chunks: usize, chunk_len: usize) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let mut req = Vec::new();
            let mut buf = [0u8; 1024];
            while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                match sock.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => req.extend_from_slice(&buf[..n]),
                }
            }
            let mut out = b"HTTP/1.1 200 OK\r\nContent-Type: image/gif\r\n\
                Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                .to_vec();
            for _ in 0..chunks {
                out.extend_from_slice(format!("{chunk_len:x}\r\n").as_bytes());
                out.extend(std::iter::repeat_n(b'G', chunk_len));
                out.extend_from_slice(b"\r\n");
            }
            out.extend_from_slice(b"0\r\n\r\n");
            let _ = sock.write_all(&out).await;
            let _ = sock.shutdown().await;
        });
        format!("http://{addr}/chunked")
    }

    #[tokio::test]
    async fn download_media_rejects_oversize_while_streaming() {
        let url = chunked_server(8, 1000).await;
        let base = url.trim_end_matches("/chunked");
        let c = TwilioClient::new(base, SID, SECRET, http());
        let result = c.download_media(&url, 5000).await;
        assert!(
            matches!(result, Err(SendError::Permanent { ref code, .. }) if code == "media_too_large"),
            "{result:?}"
        );
    }

    #[tokio::test]
    async fn download_media_chunked_within_limit() {
        // Same server shape as above, under the limit: proves the streaming
        // path works, so the rejection above is the cap and not an error.
        let url = chunked_server(3, 1000).await;
        let base = url.trim_end_matches("/chunked");
        let c = TwilioClient::new(base, SID, SECRET, http());
        let (bytes, ct) = c.download_media(&url, 5000).await.expect("downloaded");
        assert_eq!(bytes.len(), 3000);
        assert_eq!(ct, "image/gif");
    }

    #[tokio::test]
    async fn download_media_follows_redirect_without_leaking_auth() {
        let api = MockServer::start().await;
        let cdn = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/media/ME1"))
            .and(header("authorization", basic_auth_value().as_str()))
            .respond_with(
                ResponseTemplate::new(307)
                    .insert_header("Location", format!("{}/cdn/blob?sig=abc", cdn.uri())),
            )
            .expect(1)
            .mount(&api)
            .await;
        Mock::given(method("GET"))
            .and(path("/cdn/blob"))
            .respond_with(
                ResponseTemplate::new(200).set_body_raw(b"%PDF-1.7".to_vec(), "application/pdf"),
            )
            .expect(1)
            .mount(&cdn)
            .await;
        let url = format!("{}/media/ME1", api.uri());
        let got = client(&api).download_media(&url, 1024).await;
        assert_eq!(
            got,
            Ok((b"%PDF-1.7".to_vec(), "application/pdf".to_owned()))
        );
        let seen = cdn.received_requests().await.expect("recording on");
        assert_eq!(seen.len(), 1);
        assert!(
            !seen[0].headers.contains_key("authorization"),
            "the CDN must not receive the account credentials"
        );
    }

    #[tokio::test]
    async fn download_media_from_another_host_is_refused_without_a_request() {
        let api = MockServer::start().await;
        let elsewhere = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(200).set_body_bytes(b"x".to_vec()))
            .expect(0)
            .mount(&elsewhere)
            .await;
        let c = client(&api);
        for url in [
            format!("{}/media/ME1", elsewhere.uri()),
            "https://evil.example/media/ME1".to_owned(),
            "file:///etc/passwd".to_owned(),
            "not a url".to_owned(),
        ] {
            let got = c.download_media(&url, 1024).await;
            assert!(
                matches!(got, Err(SendError::Permanent { ref code, .. }) if code == "media_host_refused"),
                "{url}: {got:?}"
            );
        }
        elsewhere.verify().await;
    }

    #[tokio::test]
    async fn download_media_errors_are_classified() {
        let server = MockServer::start().await;
        Mock::given(path("/gone"))
            .respond_with(ResponseTemplate::new(404))
            .mount(&server)
            .await;
        Mock::given(path("/busy"))
            .respond_with(ResponseTemplate::new(503).insert_header("Retry-After", "3"))
            .mount(&server)
            .await;
        let c = client(&server);
        let gone = c
            .download_media(&format!("{}/gone", server.uri()), 10)
            .await;
        assert!(
            matches!(gone, Err(SendError::Permanent { ref code, .. }) if code == "404"),
            "{gone:?}"
        );
        let busy = c
            .download_media(&format!("{}/busy", server.uri()), 10)
            .await;
        assert_eq!(
            busy.map_err(|e| match e {
                SendError::Retryable { retry_after, .. } => retry_after,
                SendError::Permanent { .. } => None,
            }),
            Err(Some(Duration::from_secs(3)))
        );
    }
}
