//! Outbound mail over TLS with `smtp.ca_file` (issue 11, defect 1): a
//! server presenting a default `openssl req -x509` certificate (self-signed,
//! `CA:TRUE`) is trusted when that certificate is in `ca_file`, a proper CA
//! plus leaf still works, and any other certificate is refused before a
//! password is sent. The server is the tests' aiosmtpd sink speaking TLS.

use std::path::{Path, PathBuf};

use lettre::Message;
use switchboard::channels::email::smtp::SmtpSender;
use switchboard::channels::sms::twilio::SendError;
use switchboard::config::{Secret, Security, SmtpConfig};

use crate::dovecot::{ca_and_leaf, self_signed_certificate};
use crate::helpers::install_crypto_provider;
use crate::smtp_sink::{SinkTls, SmtpSink};

const USER: &str = "switchboard-out";

fn sender(sink: &SmtpSink, host: &str, security: Security, ca_file: &Path) -> SmtpSender {
    install_crypto_provider();
    SmtpSender::new(&SmtpConfig {
        host: host.into(),
        port: Some(sink.port),
        security,
        username: Some(USER.into()),
        password: Some(Secret::new("smtp password")),
        from: "Switchboard <noreply@sb.example.test>".into(),
        ca_file: Some(ca_file.to_path_buf()),
        ..SmtpConfig::default()
    })
    .expect("building the SMTP sender")
}

fn mail(subject: &str) -> Message {
    Message::builder()
        .from("Switchboard <noreply@sb.example.test>".parse().unwrap())
        .to("customer@example.com".parse().unwrap())
        .subject(subject)
        .body("Hello over TLS.".to_string())
        .unwrap()
}

/// A default `openssl req -x509` certificate and key, in a temp dir.
fn self_signed() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let (pem, key) = self_signed_certificate(dir.path(), "server");
    (dir, pem, key)
}

async fn sends_through(mode: SinkTls, security: Security, host: &str) {
    let (_dir, pem, key) = self_signed();
    let sink = SmtpSink::start_tls(mode, &pem, &key);
    let smtp = sender(&sink, host, security, &pem);
    smtp.send(mail("pinned 1")).await.expect("first mail");
    smtp.send(mail("pinned 2")).await.expect("second mail");
    let got = sink.wait_for(2, 10).await;
    assert_eq!(got[0].header("Subject").as_deref(), Some("pinned 1"));
    assert_eq!(got[1].header("Subject").as_deref(), Some("pinned 2"));
    // Logged in once: the second mail went on the kept connection.
    assert_eq!(
        sink.auth_log().lines().collect::<Vec<_>>(),
        [format!("PLAIN {USER}")]
    );
}

#[tokio::test]
async fn implicit_tls_with_a_pinned_self_signed_certificate() {
    sends_through(SinkTls::Implicit, Security::Tls, "localhost").await;
}

/// The pin stands for the server under any name: the certificate names only
/// `CN=localhost`, without subjectAltName, and we connect to 127.0.0.1.
#[tokio::test]
async fn starttls_with_a_pinned_self_signed_certificate() {
    sends_through(SinkTls::StartTls, Security::StartTls, "127.0.0.1").await;
}

#[tokio::test]
async fn a_ca_and_leaf_in_ca_file_still_work() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, pem, key) = ca_and_leaf(dir.path());
    for (mode, security) in [
        (SinkTls::Implicit, Security::Tls),
        (SinkTls::StartTls, Security::StartTls),
    ] {
        let sink = SmtpSink::start_tls(mode, &pem, &key);
        let smtp = sender(&sink, "localhost", security, &ca);
        smtp.send(mail("via the CA"))
            .await
            .expect("mail via the CA");
        sink.wait_for(1, 10).await;
    }
}

#[tokio::test]
async fn an_unrelated_self_signed_certificate_is_refused_before_auth() {
    let (_dir, pem, key) = self_signed();
    let (_other_dir, other_pem, _) = self_signed();
    for (mode, security) in [
        (SinkTls::Implicit, Security::Tls),
        (SinkTls::StartTls, Security::StartTls),
    ] {
        let sink = SmtpSink::start_tls(mode, &pem, &key);
        let smtp = sender(&sink, "localhost", security, &other_pem);
        let err = smtp.send(mail("must not leave")).await.unwrap_err();
        match &err {
            SendError::Retryable { code, message, .. } => {
                assert_eq!(code.as_deref(), Some("tls"));
                assert!(
                    message.contains("CA certificate (CA:TRUE")
                        && message.contains("put its own certificate in ca_file"),
                    "{message}"
                );
            }
            other => panic!("expected a retryable TLS refusal, got {other:?}"),
        }
        assert_eq!(
            sink.auth_log(),
            "",
            "credentials went to an untrusted server"
        );
        assert!(sink.received().is_empty());
    }
}
