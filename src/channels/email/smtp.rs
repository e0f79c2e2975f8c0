//! Outbound mail over SMTP (lettre): replies to customers and staff
//! notifications.
//!
//! Header hygiene is the point of this module. Every name that came from
//! outside (a customer's display name, an issue subject) is stripped of
//! control characters before it reaches lettre — a CR/LF in a `Mailbox`
//! name panics lettre, and in a subject it would be a header injection —
//! and only fixed header names are used. Our own `Message-ID`s encode the
//! issue (`<i42.m1337.RANDOM@domain>`, PROTOCOL-NOTES) so a customer's
//! answer threads back even when only `In-Reply-To` survives.
//!
//! With `smtp.ca_file`, connections are made by [`Checked`] rather than
//! lettre's pool, so that a self-signed server certificate can be pinned
//! (`crate::tls`) and is judged before AUTH; without it, lettre's pool
//! verifies against Mozilla's roots as it always did.

use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use lettre::address::Envelope;
use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::{Attachment, Mailbox, Message, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::{Credentials, DEFAULT_MECHANISMS};
use lettre::transport::smtp::client::{AsyncSmtpConnection, CertificateStore, Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use crate::channels::sms::twilio::SendError;
use crate::config::{Security, SmtpConfig};

/// Removes control characters (CR, LF, NUL, …) and trims.
pub fn clean_header_text(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// `Re: <subject> [#N]`: one `Re:`, one token, whatever the subject held.
pub fn reply_subject(subject: &str, issue_id: i64) -> String {
    let cleaned = crate::domain::text::clean_subject(&clean_header_text(subject));
    if cleaned.is_empty() {
        format!("Re: [#{issue_id}]")
    } else {
        format!("Re: {cleaned} [#{issue_id}]")
    }
}

/// A new Message-ID (without brackets) that names the issue and message.
pub fn our_message_id(issue_id: i64, message_id: i64, domain: &str) -> String {
    let rand: u64 = rand::random();
    let domain = if domain.is_empty()
        || domain
            .chars()
            .any(|c| c.is_whitespace() || c == '>' || c == '<')
    {
        "switchboard.invalid"
    } else {
        domain
    };
    format!("i{issue_id}.m{message_id}.{rand:016x}@{domain}")
}

/// The domain of an address, for Message-IDs.
pub fn domain_of(address: &str) -> &str {
    address
        .rsplit_once('@')
        .map(|(_, d)| d.trim_end_matches('>'))
        .unwrap_or("switchboard.invalid")
}

fn mailbox(name: Option<&str>, address: &str) -> Result<Mailbox, String> {
    let addr = address
        .trim()
        .parse()
        .map_err(|e| format!("bad address {address:?}: {e}"))?;
    let name = name.map(clean_header_text).filter(|n| !n.is_empty());
    Ok(Mailbox::new(name, addr))
}

fn angle(id: &str) -> String {
    let id = clean_header_text(id);
    let id = id.trim_start_matches('<').trim_end_matches('>');
    format!("<{id}>")
}

/// What a reply to a customer needs.
pub struct ReplyMail<'a> {
    pub from_address: &'a str,
    pub from_name: Option<&'a str>,
    pub to: &'a str,
    pub subject: &'a str,
    pub issue_id: i64,
    pub body: &'a str,
    /// Our Message-ID for this reply, without brackets.
    pub message_id: &'a str,
    /// The message answered (the customer's latest), without brackets.
    pub in_reply_to: Option<&'a str>,
    /// The thread, oldest first, without brackets.
    pub references: &'a [String],
    /// A staff-initiated first message: `<subject> [#N]`, no `Re:`.
    pub first_message: bool,
    /// An auto-acknowledgement: marked `Auto-Submitted: auto-replied` so
    /// the customer's autoresponder does not answer it.
    pub automatic: bool,
    /// Files attached to the reply, in order.
    pub files: &'a [OutFile],
}

/// A file sent with a reply.
#[derive(Debug, Clone)]
pub struct OutFile {
    pub filename: String,
    pub content_type: String,
    pub data: Vec<u8>,
}

/// The reply's body: plain text alone, or `multipart/mixed` with the text
/// first and each file as an attachment part. File names are cleaned of
/// control characters (lettre encodes the rest per RFC 2231); a content
/// type that does not parse is sent as `application/octet-stream`.
fn reply_body(
    b: lettre::message::MessageBuilder,
    body: &str,
    files: &[OutFile],
) -> Result<Message, String> {
    if files.is_empty() {
        return b
            .header(ContentType::TEXT_PLAIN)
            .body(body.to_string())
            .map_err(|e| e.to_string());
    }
    let mut parts = MultiPart::mixed().singlepart(SinglePart::plain(body.to_string()));
    for f in files {
        let content_type = ContentType::parse(&f.content_type)
            .unwrap_or_else(|_| ContentType::parse("application/octet-stream").expect("valid"));
        let mut name = clean_header_text(&f.filename);
        if name.is_empty() {
            name = "attachment".into();
        }
        parts = parts.singlepart(Attachment::new(name).body(f.data.clone(), content_type));
    }
    b.multipart(parts).map_err(|e| e.to_string())
}

/// Builds a customer reply. Human replies never carry `Auto-Submitted`.
pub fn build_reply(r: &ReplyMail<'_>) -> Result<Message, String> {
    let subject = if r.first_message {
        let s = clean_header_text(r.subject);
        if s.is_empty() {
            format!("[#{}]", r.issue_id)
        } else {
            format!("{s} [#{}]", r.issue_id)
        }
    } else {
        reply_subject(r.subject, r.issue_id)
    };
    let mut b = Message::builder()
        .from(mailbox(r.from_name, r.from_address)?)
        .to(mailbox(None, r.to)?)
        .subject(subject)
        .message_id(Some(angle(r.message_id)));
    if let Some(parent) = r.in_reply_to {
        b = b.in_reply_to(angle(parent));
    }
    let mut refs: Vec<String> = r.references.iter().map(|x| angle(x)).collect();
    if let Some(parent) = r.in_reply_to {
        let p = angle(parent);
        if !refs.contains(&p) {
            refs.push(p);
        }
    }
    if !refs.is_empty() {
        // One call with the whole list: a second call would replace it.
        b = b.references(refs.join(" "));
    }
    let mut msg = reply_body(b, r.body, r.files)?;
    if r.automatic {
        let headers = msg.headers_mut();
        headers.insert_raw(HeaderValue::new(
            HeaderName::new_from_ascii_str("Auto-Submitted"),
            "auto-replied".into(),
        ));
        headers.insert_raw(HeaderValue::new(
            HeaderName::new_from_ascii_str("X-Auto-Response-Suppress"),
            "All".into(),
        ));
    }
    Ok(msg)
}

/// A staff notification (SPEC §5): automated, never auto-replied to.
pub struct NotificationMail<'a> {
    pub from: &'a str,
    pub to: &'a str,
    pub to_name: Option<&'a str>,
    pub subject: &'a str,
    pub body: &'a str,
    pub unsubscribe_url: &'a str,
    pub message_id: &'a str,
}

pub fn build_notification(n: &NotificationMail<'_>) -> Result<Message, String> {
    let from: Mailbox = n
        .from
        .trim()
        .parse()
        .map_err(|e| format!("bad smtp.from {:?}: {e}", n.from))?;
    let mut msg = Message::builder()
        .from(from)
        .to(mailbox(n.to_name, n.to)?)
        .subject(clean_header_text(n.subject))
        .message_id(Some(angle(n.message_id)))
        .header(ContentType::TEXT_PLAIN)
        .body(n.body.to_string())
        .map_err(|e| e.to_string())?;
    let headers = msg.headers_mut();
    headers.insert_raw(HeaderValue::new(
        HeaderName::new_from_ascii_str("Auto-Submitted"),
        "auto-generated".into(),
    ));
    headers.insert_raw(HeaderValue::new(
        HeaderName::new_from_ascii_str("X-Auto-Response-Suppress"),
        "All".into(),
    ));
    headers.insert_raw(HeaderValue::new(
        HeaderName::new_from_ascii_str("List-Unsubscribe"),
        format!("<{}>", clean_header_text(n.unsubscribe_url)),
    ));
    Ok(msg)
}

/// How long connecting, the TLS handshake, the certificate check and AUTH
/// may take together on a [`Checked`] connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long one mail transaction (MAIL, RCPT, DATA) may take there.
const TRANSACTION_TIMEOUT: Duration = Duration::from_secs(300);
/// A kept [`Checked`] connection older than this is closed, not reused
/// (lettre's pool keeps idle connections for 60 s).
const IDLE_FOR: Duration = Duration::from_secs(60);

/// The SMTP connection(s). Clones share them, so a configuration reload
/// ([`SmtpSender::reconfigure`]) reaches every worker that sends mail.
#[derive(Clone)]
pub struct SmtpSender {
    transport: Arc<RwLock<Transport>>,
}

impl std::fmt::Debug for SmtpSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SmtpSender")
    }
}

#[derive(Clone)]
enum Transport {
    /// lettre's pooled transport, verifying with Mozilla's roots: the
    /// setting without `ca_file` (or without TLS).
    Pooled(AsyncSmtpTransport<Tokio1Executor>),
    /// With `ca_file`: connections whose certificate we judge ourselves.
    Checked(Arc<Checked>),
}

impl SmtpSender {
    pub fn new(cfg: &SmtpConfig) -> Result<SmtpSender, String> {
        Ok(SmtpSender {
            transport: Arc::new(RwLock::new(Self::transport(cfg)?)),
        })
    }

    /// Replaces the connection settings; mail in flight finishes on the
    /// old connection.
    pub fn reconfigure(&self, cfg: &SmtpConfig) -> Result<(), String> {
        let transport = Self::transport(cfg)?;
        match self.transport.write() {
            Ok(mut t) => *t = transport,
            Err(poisoned) => *poisoned.into_inner() = transport,
        }
        Ok(())
    }

    fn transport(cfg: &SmtpConfig) -> Result<Transport, String> {
        let host = cfg.host.as_str();
        let credentials = match (&cfg.username, &cfg.password) {
            (Some(u), Some(p)) if !u.is_empty() => {
                Some(Credentials::new(u.clone(), p.expose().to_string()))
            }
            _ => None,
        };
        let ca_file = cfg.ca_file.as_deref().filter(|p| !p.as_os_str().is_empty());
        if let (Some(ca_file), Security::Tls | Security::StartTls) = (ca_file, cfg.security) {
            let ca_certs = crate::tls::read_ca_file(ca_file).map_err(|e| format!("smtp: {e}"))?;
            return Ok(Transport::Checked(Arc::new(Checked {
                host: host.to_string(),
                port: cfg.port(),
                implicit_tls: cfg.security == Security::Tls,
                tls: Checked::handshake_only(host)?,
                verifier: crate::tls::PinningVerifier::new(ca_certs)
                    .map_err(|e| format!("smtp: {e}"))?,
                credentials,
                hello: ClientId::default(),
                idle: Mutex::new(None),
            })));
        }
        let tls = TlsParameters::builder(host.to_string())
            .build_rustls()
            .map_err(|e| format!("smtp TLS: {e}"))?;
        let builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
            .port(cfg.port())
            .tls(match cfg.security {
                Security::Tls => Tls::Wrapper(tls),
                Security::StartTls => Tls::Required(tls),
                Security::Plain => Tls::None,
            });
        let builder = match credentials {
            Some(c) => builder.credentials(c),
            None => builder,
        };
        Ok(Transport::Pooled(
            builder.timeout(Some(Duration::from_secs(30))).build(),
        ))
    }

    /// Sends one message; 5xx answers are permanent, everything else is
    /// worth retrying (an untrusted certificate included: that is fixed in
    /// the configuration, and the mail should go out once it is).
    pub async fn send(&self, msg: Message) -> Result<(), SendError> {
        let transport = match self.transport.read() {
            Ok(t) => t.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        let result = match transport {
            Transport::Pooled(t) => t.send(msg).await.map(|_| ()).map_err(CheckedError::Smtp),
            Transport::Checked(c) => c.send(msg.envelope(), &msg.formatted()).await,
        };
        match result {
            Ok(_) => Ok(()),
            Err(CheckedError::Smtp(e)) if e.is_permanent() => Err(SendError::Permanent {
                code: e
                    .status()
                    .map(|c| c.to_string())
                    .unwrap_or_else(|| "smtp".into()),
                message: e.to_string(),
            }),
            Err(CheckedError::Smtp(e)) => Err(SendError::Retryable {
                code: e.status().map(|c| c.to_string()),
                message: e.to_string(),
                retry_after: None,
            }),
            Err(CheckedError::Untrusted(message)) => Err(SendError::Retryable {
                code: Some("tls".into()),
                message,
                retry_after: None,
            }),
            Err(CheckedError::TimedOut(what)) => Err(SendError::Retryable {
                code: None,
                message: format!("smtp: {what} timed out"),
                retry_after: None,
            }),
        }
    }
}

/// Why a send failed.
enum CheckedError {
    /// lettre's error: the network, TLS, or the server's answer.
    Smtp(lettre::transport::smtp::Error),
    /// The server's certificate is not one we trust.
    Untrusted(String),
    /// A step took longer than its timeout.
    TimedOut(&'static str),
}

impl From<lettre::transport::smtp::Error> for CheckedError {
    fn from(e: lettre::transport::smtp::Error) -> Self {
        CheckedError::Smtp(e)
    }
}

/// SMTP with `ca_file`: each connection's certificate is checked by
/// [`crate::tls::PinningVerifier`] before the first credential or mail.
///
/// Why not lettre's transport: lettre 0.11 builds its rustls config
/// itself and takes no verifier of ours, and its `ca_file` path
/// (`add_root_certificate`) is plain webpki, which refuses a self-signed
/// `CA:TRUE` server certificate even when it is that very root. So I let
/// lettre's handshake check the handshake signature only (its
/// `dangerous_accept_invalid_certs` verifier still verifies that with the
/// provider's algorithms: the server proves it holds the key of the
/// certificate it presents), then judge the presented chain with the same
/// verifier IMAP uses — while nothing but EHLO has been said. AUTH comes
/// after, so a password never goes to a server we did not trust. lettre's
/// own pool cannot be told to wait for that check, so this keeps one idle
/// connection for the next mail instead; a helpdesk's outbound volume
/// needs no more.
struct Checked {
    host: String,
    port: u16,
    /// TLS from the first byte, else STARTTLS (required).
    implicit_tls: bool,
    tls: TlsParameters,
    verifier: crate::tls::PinningVerifier,
    credentials: Option<Credentials>,
    hello: ClientId,
    /// A connection kept from the last mail, and when it was last used.
    idle: Mutex<Option<(AsyncSmtpConnection, Instant)>>,
}

impl Checked {
    /// lettre's TLS settings that verify the handshake signature and leave
    /// the certificate to [`Checked::connect`].
    fn handshake_only(host: &str) -> Result<TlsParameters, String> {
        TlsParameters::builder(host.to_string())
            .certificate_store(CertificateStore::None)
            .dangerous_accept_invalid_certs(true)
            .dangerous_accept_invalid_hostnames(true)
            .build_rustls()
            .map_err(|e| format!("smtp TLS: {e}"))
    }

    async fn send(&self, envelope: &Envelope, email: &[u8]) -> Result<(), CheckedError> {
        let mut conn = match self.reuse().await {
            Some(conn) => conn,
            None => tokio::time::timeout(CONNECT_TIMEOUT, self.connect())
                .await
                .map_err(|_| CheckedError::TimedOut("connecting"))??,
        };
        match tokio::time::timeout(TRANSACTION_TIMEOUT, conn.send(envelope, email)).await {
            Ok(Ok(_)) => {
                if let Ok(mut idle) = self.idle.lock() {
                    *idle = Some((conn, Instant::now()));
                }
                Ok(())
            }
            Ok(Err(e)) => {
                conn.abort().await;
                Err(e.into())
            }
            Err(_) => Err(CheckedError::TimedOut("sending")),
        }
    }

    /// The kept connection, if it is fresh and still answers NOOP.
    async fn reuse(&self) -> Option<AsyncSmtpConnection> {
        let (mut conn, since) = self.idle.lock().ok()?.take()?;
        let alive = since.elapsed() < IDLE_FOR
            && !conn.has_broken()
            && tokio::time::timeout(Duration::from_secs(5), conn.test_connected())
                .await
                .unwrap_or(false);
        if alive {
            Some(conn)
        } else {
            conn.abort().await;
            None
        }
    }

    /// Connects, secures the connection, judges the certificate, then
    /// authenticates.
    async fn connect(&self) -> Result<AsyncSmtpConnection, CheckedError> {
        let wrapper = self.implicit_tls.then(|| self.tls.clone());
        let mut conn = AsyncSmtpConnection::connect_tokio1(
            (self.host.as_str(), self.port),
            Some(CONNECT_TIMEOUT),
            &self.hello,
            wrapper,
            None,
        )
        .await?;
        if !self.implicit_tls {
            conn.starttls(self.tls.clone(), &self.hello).await?;
        }
        // Nothing but EHLO has been sent: judge the server now.
        let chain = conn.certificate_chain()?;
        if let Err(e) = self.verifier.verify_chain(&chain, &self.host) {
            conn.abort().await;
            return Err(CheckedError::Untrusted(format!(
                "smtp TLS: {}:{}: {e}",
                self.host, self.port
            )));
        }
        if let Some(credentials) = &self.credentials {
            conn.auth(DEFAULT_MECHANISMS, credentials).await?;
        }
        Ok(conn)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn formatted(m: &Message) -> String {
        String::from_utf8(m.formatted()).unwrap()
    }

    #[test]
    fn reply_subjects_have_one_re_and_one_token() {
        assert_eq!(reply_subject("Printer", 42), "Re: Printer [#42]");
        assert_eq!(
            reply_subject("Re: RE: Printer [#42]", 42),
            "Re: Printer [#42]"
        );
        assert_eq!(reply_subject("Fwd: Printer", 7), "Re: Printer [#7]");
        assert_eq!(reply_subject("", 7), "Re: [#7]");
        assert_eq!(reply_subject("a\r\nBcc: x@y.z", 7), "Re: a Bcc: x@y.z [#7]");
    }

    #[test]
    fn replies_thread_and_never_claim_to_be_automatic() {
        let refs = vec!["root@example.com".to_string()];
        let m = build_reply(&ReplyMail {
            from_address: "support@example.com",
            from_name: Some("Support\r\nBcc: evil@example.com"),
            to: "jane@example.com",
            subject: "Re: My printer",
            issue_id: 42,
            body: "Try turning it off and on.",
            message_id: "i42.m9.abc@example.com",
            in_reply_to: Some("cust2@example.com"),
            references: &refs,
            first_message: false,
            automatic: false,
            files: &[],
        })
        .unwrap();
        let text = formatted(&m);
        assert!(text.contains("Subject: Re: My printer [#42]\r\n"), "{text}");
        assert!(text.contains("Content-Type: text/plain"), "{text}");
        assert!(
            text.contains("In-Reply-To: <cust2@example.com>\r\n"),
            "{text}"
        );
        assert!(
            text.contains("References: <root@example.com> <cust2@example.com>\r\n"),
            "{text}"
        );
        assert!(
            text.contains("Message-ID: <i42.m9.abc@example.com>\r\n"),
            "{text}"
        );
        assert!(!text.contains("Auto-Submitted"));
        assert!(
            !text.contains("\r\nBcc:"),
            "a CR/LF in a name must not become a header: {text}"
        );
    }

    #[test]
    fn files_go_as_attachment_parts_after_the_text() {
        let files = vec![
            OutFile {
                filename: "invoice.pdf".into(),
                content_type: "application/pdf".into(),
                data: b"%PDF-1.4 fake".to_vec(),
            },
            OutFile {
                filename: "a\r\nBcc: x@y.z.png".into(),
                content_type: "not a type".into(),
                data: vec![0x89, b'P', b'N', b'G'],
            },
        ];
        let m = build_reply(&ReplyMail {
            from_address: "support@example.com",
            from_name: None,
            to: "jane@example.com",
            subject: "Invoice",
            issue_id: 7,
            body: "Here it is.",
            message_id: "i7.m2.abc@example.com",
            in_reply_to: None,
            references: &[],
            first_message: false,
            automatic: false,
            files: &files,
        })
        .unwrap();
        let text = formatted(&m);
        assert!(text.contains("Content-Type: multipart/mixed"), "{text}");
        let body_at = text.find("Here it is.").expect("the text part");
        let pdf_at = text.find("filename=\"invoice.pdf\"").expect("the pdf part");
        assert!(body_at < pdf_at, "{text}");
        assert!(text.contains("Content-Type: application/pdf"), "{text}");
        assert!(
            text.contains("Content-Type: application/octet-stream"),
            "{text}"
        );
        assert!(!text.contains("\r\nBcc:"), "{text}");
        // The parser we ingest with reads back both files.
        let wire = m.formatted();
        let parsed = mail_parser::MessageParser::default().parse(&wire).unwrap();
        assert_eq!(parsed.attachment_count(), 2);
        assert_eq!(
            parsed.attachment(0).unwrap().contents(),
            b"%PDF-1.4 fake".as_slice()
        );
    }

    #[test]
    fn notifications_are_marked_automatic() {
        let m = build_notification(&NotificationMail {
            from: "Switchboard <noreply@example.com>",
            to: "agent@example.com",
            to_name: Some("Agent"),
            subject: "[#42] New SMS from Jane Doe",
            body: "Jane Doe wrote: hello",
            unsubscribe_url: "https://sb.example.com/api/me/preferences",
            message_id: "n1.abc@example.com",
        })
        .unwrap();
        let text = formatted(&m);
        assert!(text.contains("Auto-Submitted: auto-generated\r\n"));
        assert!(text.contains("X-Auto-Response-Suppress: All\r\n"));
        assert!(text.contains("List-Unsubscribe: <https://sb.example.com/api/me/preferences>\r\n"));
        assert!(text.contains("Subject: [#42] New SMS from Jane Doe\r\n"));
    }

    #[test]
    fn our_message_ids_encode_the_issue() {
        let id = our_message_id(42, 1337, "example.com");
        assert!(id.starts_with("i42.m1337.") && id.ends_with("@example.com"));
        assert_ne!(id, our_message_id(42, 1337, "example.com"));
        assert_eq!(domain_of("Support <support@example.com>"), "example.com");
    }
}
