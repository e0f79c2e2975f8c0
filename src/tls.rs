//! Whom we trust when we connect to a mail server: Mozilla's roots, the
//! certificates in a `ca_file`, and any server whose own certificate *is*
//! one of those (a pin).
//!
//! Why the pin: `ca_file` exists so that a self-signed server works (SPEC
//! §8), and the certificate most such servers present is what a plain
//! `openssl req -x509` makes — Debian's snakeoil, many internal mail hosts.
//! OpenSSL's default configuration marks it `CA:TRUE`, and webpki refuses a
//! CA certificate as the server's own (`CaUsedAsEndEntity`) even when that
//! very certificate is a trust anchor. So I accept a presented end-entity
//! certificate that is byte-identical to one in `ca_file`, and verify every
//! other certificate exactly as before (webpki: chain to a root, validity,
//! name). A pin is deliberately narrow:
//! * only the exact bytes of a certificate the operator put in `ca_file`;
//! * the handshake signature is still verified with the provider's
//!   algorithms, so only the holder of that certificate's private key gets
//!   through — the certificate itself is public;
//! * the validity period is still checked (rustls' own expiry errors);
//! * the host name is *not* checked against a pinned certificate: the pin
//!   is the identity. `req -x509 -subj /CN=mail` carries no subjectAltName,
//!   which webpki would refuse for any name, and a snakeoil certificate
//!   names the machine, not the name clients use.
//!
//! One verifier, two ways in. IMAP builds its rustls config here
//! ([`client_config`]) and the verifier runs inside the handshake. lettre
//! (0.11) takes no rustls config of ours, so outbound SMTP lets lettre's
//! handshake check only the handshake signature and then calls
//! [`PinningVerifier::verify_chain`] on the certificates the server
//! presented, before any credential is sent (see `channels/email/smtp.rs`).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::{CertificateError, DigitallySignedStruct, OtherError, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

/// The one crypto provider (STYLE.md): ring.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The certificates in a PEM `ca_file` (`origin` names it in errors). An
/// empty or certificate-less file is an error: it would silently trust
/// nothing more than the public roots.
pub fn parse_ca_pem(pem: &[u8], origin: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let mut certs = Vec::new();
    for cert in CertificateDer::pem_slice_iter(pem) {
        certs.push(cert.map_err(|e| format!("ca_file {}: {e}", origin.display()))?);
    }
    if certs.is_empty() {
        return Err(format!(
            "ca_file {}: no PEM certificate in it",
            origin.display()
        ));
    }
    Ok(certs)
}

/// Reads and parses a `ca_file` (blocking; it is a small local file read
/// when a connection is configured).
pub fn read_ca_file(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let pem =
        std::fs::read(path).map_err(|e| format!("reading ca_file {}: {e}", path.display()))?;
    parse_ca_pem(&pem, path)
}

/// A rustls client config that trusts Mozilla's roots plus `ca_certs`, and
/// accepts a server presenting one of `ca_certs` itself (a pin).
pub fn client_config(
    ca_certs: Vec<CertificateDer<'static>>,
) -> Result<rustls::ClientConfig, String> {
    let verifier = PinningVerifier::new(ca_certs)?;
    Ok(
        rustls::ClientConfig::builder_with_provider(verifier.provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS: {e}"))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_no_client_auth(),
    )
}

/// Verifies a server certificate: a pin from `ca_file`, else webpki against
/// Mozilla's roots plus `ca_file`.
#[derive(Debug)]
pub struct PinningVerifier {
    pinned: Vec<CertificateDer<'static>>,
    webpki: Arc<WebPkiServerVerifier>,
    provider: Arc<CryptoProvider>,
}

impl PinningVerifier {
    /// Trusts Mozilla's roots plus `ca_certs` (as CAs), and pins `ca_certs`.
    pub fn new(ca_certs: Vec<CertificateDer<'static>>) -> Result<PinningVerifier, String> {
        let provider = provider();
        let mut roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        for cert in &ca_certs {
            roots
                .add(cert.clone())
                .map_err(|e| format!("ca_file: {e}"))?;
        }
        let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .build()
            .map_err(|e| format!("TLS: {e}"))?;
        Ok(PinningVerifier {
            pinned: ca_certs,
            webpki,
            provider,
        })
    }

    /// The check [`ServerCertVerifier::verify_server_cert`] makes, for a
    /// client that only sees the certificates after the handshake (lettre).
    /// `chain` is the server's, its own certificate first. The caller must
    /// have verified the handshake signature against `chain[0]`.
    pub fn verify_chain(&self, chain: &[Vec<u8>], server_name: &str) -> Result<(), rustls::Error> {
        let Some((end_entity, intermediates)) = chain.split_first() else {
            return Err(rustls::Error::NoCertificatesPresented);
        };
        let name = ServerName::try_from(server_name)
            .map_err(|_| rustls::Error::General(format!("invalid server name {server_name:?}")))?;
        let intermediates: Vec<CertificateDer<'_>> = intermediates
            .iter()
            .map(|c| CertificateDer::from(c.as_slice()))
            .collect();
        self.verify_server_cert(
            &CertificateDer::from(end_entity.as_slice()),
            &intermediates,
            &name,
            &[],
            UnixTime::now(),
        )
        .map(|_| ())
    }

    fn is_pinned(&self, end_entity: &CertificateDer<'_>) -> bool {
        self.pinned
            .iter()
            .any(|p| p.as_ref() == end_entity.as_ref())
    }
}

impl ServerCertVerifier for PinningVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if self.is_pinned(end_entity) {
            check_validity(end_entity, now)?;
            return Ok(ServerCertVerified::assertion());
        }
        self.webpki
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
            .map_err(explain)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Why a certificate was refused, in words an operator can act on.
struct Refusal(&'static str);

impl std::fmt::Debug for Refusal {
    // rustls prints `CertificateError::Other` with `{:?}`: make that the text.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for Refusal {}

const CA_AS_SERVER: &str = "the server presented a CA certificate (CA:TRUE, e.g. a default \
    `openssl req -x509` one) that is not in ca_file; to trust this server, put its own \
    certificate in ca_file";
const UNKNOWN_ISSUER: &str = "the server's certificate is not issued by a CA in ca_file or \
    Mozilla's roots, nor is it itself in ca_file";

/// The two refusals a `ca_file` user meets most, made self-explaining;
/// everything else (expired, wrong name, …) already reads well.
fn explain(e: rustls::Error) -> rustls::Error {
    let text = match &e {
        rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer) => UNKNOWN_ISSUER,
        rustls::Error::InvalidCertificate(CertificateError::Other(other))
            if matches!(
                other.0.downcast_ref::<webpki::Error>(),
                Some(webpki::Error::CaUsedAsEndEntity)
            ) =>
        {
            CA_AS_SERVER
        }
        _ => return e,
    };
    rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(Refusal(text)))))
}

/// Refuses a pinned certificate outside its validity period, with rustls'
/// own errors. webpki keeps the period to itself, so it is read here.
fn check_validity(cert: &CertificateDer<'_>, now: UnixTime) -> Result<(), rustls::Error> {
    let (not_before, not_after) = validity(cert.as_ref()).ok_or(CertificateError::BadEncoding)?;
    let (not_before, not_after) = (
        UnixTime::since_unix_epoch(Duration::from_secs(not_before)),
        UnixTime::since_unix_epoch(Duration::from_secs(not_after)),
    );
    if now < not_before {
        return Err(CertificateError::NotValidYetContext {
            time: now,
            not_before,
        }
        .into());
    }
    if now > not_after {
        return Err(CertificateError::ExpiredContext {
            time: now,
            not_after,
        }
        .into());
    }
    Ok(())
}

/// `(notBefore, notAfter)` of an X.509 certificate in seconds since the
/// epoch (earlier dates count as 0), or `None` if the DER does not have
/// the shape RFC 5280 §4.1 gives it:
/// `Certificate ::= SEQUENCE { tbsCertificate SEQUENCE { [0] version
/// OPTIONAL, serialNumber INTEGER, signature SEQUENCE, issuer SEQUENCE,
/// validity SEQUENCE { notBefore Time, notAfter Time }, … }, … }`.
fn validity(der: &[u8]) -> Option<(u64, u64)> {
    const SEQUENCE: u8 = 0x30;
    const INTEGER: u8 = 0x02;
    const VERSION: u8 = 0xa0;
    let (tag, cert, _) = tlv(der)?;
    if tag != SEQUENCE {
        return None;
    }
    let (tag, tbs, _) = tlv(cert)?;
    if tag != SEQUENCE {
        return None;
    }
    let (mut tag, _, mut rest) = tlv(tbs)?;
    if tag == VERSION {
        (tag, _, rest) = tlv(rest)?;
    }
    if tag != INTEGER {
        return None;
    }
    for _ in ["signature", "issuer"] {
        let (tag, _, after) = tlv(rest)?;
        if tag != SEQUENCE {
            return None;
        }
        rest = after;
    }
    let (tag, validity, _) = tlv(rest)?;
    if tag != SEQUENCE {
        return None;
    }
    let (tag, not_before, rest) = tlv(validity)?;
    let not_before = time(tag, not_before)?;
    let (tag, not_after, _) = tlv(rest)?;
    let not_after = time(tag, not_after)?;
    Some((not_before, not_after))
}

/// One DER tag-length-value: `(tag, value, what follows)`.
fn tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, input) = input.split_first()?;
    let (&first, mut input) = input.split_first()?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || input.len() < n {
            return None;
        }
        let (bytes, after) = input.split_at(n);
        input = after;
        bytes
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b))
    };
    if input.len() < len {
        return None;
    }
    let (value, rest) = input.split_at(len);
    Some((tag, value, rest))
}

/// An X.509 `Time`: UTCTime `YYMMDDHHMMSSZ` (years 1950–2049) or
/// GeneralizedTime `YYYYMMDDHHMMSSZ`, as seconds since the epoch.
fn time(tag: u8, value: &[u8]) -> Option<u64> {
    const UTC_TIME: u8 = 0x17;
    const GENERALIZED_TIME: u8 = 0x18;
    let text = std::str::from_utf8(value).ok()?;
    let digits = text.strip_suffix('Z')?;
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (year, rest) = match (tag, digits.len()) {
        (UTC_TIME, 12) => {
            let yy: i32 = digits[..2].parse().ok()?;
            (if yy < 50 { 2000 + yy } else { 1900 + yy }, &digits[2..])
        }
        (GENERALIZED_TIME, 14) => (digits[..4].parse().ok()?, &digits[4..]),
        _ => return None,
    };
    let field = |i: usize| rest[i..i + 2].parse::<u32>().ok();
    let at = chrono::NaiveDate::from_ymd_opt(year, field(0)?, field(2)?)?.and_hms_opt(
        field(4)?,
        field(6)?,
        field(8)?,
    )?;
    Some(u64::try_from(at.and_utc().timestamp()).unwrap_or(0))
}

#[cfg(test)]
mod tests;
