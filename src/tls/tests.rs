//! The verifier against real handshakes: rustls client and server in
//! memory, with certificates made by rcgen for each case.

use super::*;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, date_time_ymd,
};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{ClientConnection, ServerConfig, ServerConnection};
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

/// What `openssl req -x509 -subj /CN=…` makes by default: self-signed,
/// `CA:TRUE`, a common name and no subjectAltName.
fn self_signed_ca_true(cn: &str) -> (CertificateDer<'static>, KeyPair) {
    self_signed_with(cn, |_| {})
}

fn self_signed_with(
    cn: &str,
    adjust: impl FnOnce(&mut CertificateParams),
) -> (CertificateDer<'static>, KeyPair) {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, cn);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    adjust(&mut params);
    let key = KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    (cert.der().clone(), key)
}

/// A proper CA and a leaf it signed for `localhost` and 127.0.0.1.
struct CaAndLeaf {
    ca: CertificateDer<'static>,
    leaf: CertificateDer<'static>,
    leaf_key: KeyPair,
}

fn ca_and_leaf() -> CaAndLeaf {
    ca_and_leaf_named("Test CA")
}

fn ca_and_leaf_named(ca_name: &str) -> CaAndLeaf {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params
        .distinguished_name
        .push(DnType::CommonName, ca_name);
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let mut leaf_params =
        CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    leaf_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = leaf_params.signed_by(&leaf_key, &ca).unwrap();
    CaAndLeaf {
        ca: ca.der().clone(),
        leaf: leaf.der().clone(),
        leaf_key,
    }
}

/// Serves a fixed chain signed with a fixed key, matching or not: rustls'
/// own `with_single_cert` refuses a key that does not match, and an
/// impostor is exactly that.
#[derive(Debug)]
struct Fixed(Arc<CertifiedKey>);

impl ResolvesServerCert for Fixed {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
}

#[derive(Clone, Copy)]
enum Version {
    Tls12,
    Tls13,
}

fn server_config(
    chain: Vec<CertificateDer<'static>>,
    key: &KeyPair,
    version: Version,
) -> Arc<ServerConfig> {
    let provider = provider();
    let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let signing_key = provider.key_provider.load_private_key(key_der).unwrap();
    let versions: &[&rustls::SupportedProtocolVersion] = match version {
        Version::Tls12 => &[&rustls::version::TLS12],
        Version::Tls13 => &[&rustls::version::TLS13],
    };
    Arc::new(
        ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)
            .unwrap()
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(Fixed(Arc::new(CertifiedKey::new(
                chain,
                signing_key,
            ))))),
    )
}

/// A full handshake in memory: the client trusts `ca_file` through
/// [`client_config`] and connects to `name`. The client's verdict.
fn handshake_as(
    ca_file: &[CertificateDer<'static>],
    server: Arc<ServerConfig>,
    name: &str,
) -> Result<(), rustls::Error> {
    let client_config = Arc::new(client_config(ca_file.to_vec()).unwrap());
    let mut client = ClientConnection::new(
        client_config,
        ServerName::try_from(name.to_string()).unwrap(),
    )
    .unwrap();
    let mut server = ServerConnection::new(server).unwrap();
    for _ in 0..10 {
        let mut to_server = Vec::new();
        while client.wants_write() {
            client.write_tls(&mut to_server).unwrap();
        }
        let mut rd = &to_server[..];
        while !rd.is_empty() {
            server.read_tls(&mut rd).unwrap();
            // A server error here answers a client that already failed.
            if server.process_new_packets().is_err() {
                break;
            }
        }
        let mut to_client = Vec::new();
        while server.wants_write() {
            server.write_tls(&mut to_client).unwrap();
        }
        let mut rd = &to_client[..];
        while !rd.is_empty() {
            client.read_tls(&mut rd).unwrap();
            client.process_new_packets()?;
        }
        if !client.is_handshaking() && !server.is_handshaking() {
            return Ok(());
        }
    }
    panic!("the handshake did not finish");
}

fn handshake(
    ca_file: &[CertificateDer<'static>],
    chain: Vec<CertificateDer<'static>>,
    key: &KeyPair,
    name: &str,
) -> Result<(), rustls::Error> {
    for version in [Version::Tls12, Version::Tls13] {
        handshake_as(ca_file, server_config(chain.clone(), key, version), name)?;
    }
    Ok(())
}

#[test]
fn webpki_alone_refuses_a_ca_true_server_certificate_even_as_a_root() {
    // The defect: the certificate is a trust anchor and still refused.
    let (cert, _) = self_signed_ca_true("localhost");
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.clone()).unwrap();
    let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider())
        .build()
        .unwrap();
    let err = webpki
        .verify_server_cert(
            &cert,
            &[],
            &ServerName::try_from("localhost").unwrap(),
            &[],
            UnixTime::now(),
        )
        .unwrap_err();
    assert!(format!("{err:?}").contains("CaUsedAsEndEntity"), "{err:?}");
}

#[test]
fn a_pinned_self_signed_ca_true_certificate_is_accepted() {
    let (cert, key) = self_signed_ca_true("localhost");
    handshake(
        std::slice::from_ref(&cert),
        vec![cert.clone()],
        &key,
        "localhost",
    )
    .unwrap();
}

#[test]
fn a_pin_is_accepted_under_any_name_the_server_is_reached_by() {
    // `CN=mail.internal` only, reached as 127.0.0.1 and as another name.
    let (cert, key) = self_signed_ca_true("mail.internal");
    handshake(
        std::slice::from_ref(&cert),
        vec![cert.clone()],
        &key,
        "127.0.0.1",
    )
    .unwrap();
    handshake(
        std::slice::from_ref(&cert),
        vec![cert.clone()],
        &key,
        "imap.example.com",
    )
    .unwrap();
}

#[test]
fn a_pin_among_other_certificates_in_ca_file_is_found() {
    let (other, _) = self_signed_ca_true("other");
    let ca = ca_and_leaf();
    let (cert, key) = self_signed_ca_true("localhost");
    handshake(&[other, ca.ca, cert.clone()], vec![cert], &key, "localhost").unwrap();
}

#[test]
fn the_pinned_certificate_without_its_private_key_is_refused() {
    // An impostor can copy the certificate, not the key: the handshake
    // signature is still checked against the pinned certificate.
    let (cert, _) = self_signed_ca_true("localhost");
    let impostor_key = KeyPair::generate().unwrap();
    for version in [Version::Tls12, Version::Tls13] {
        let server = server_config(vec![cert.clone()], &impostor_key, version);
        let err = handshake_as(std::slice::from_ref(&cert), server, "localhost").unwrap_err();
        assert!(
            matches!(
                err,
                rustls::Error::InvalidCertificate(CertificateError::BadSignature)
            ),
            "{err:?}"
        );
    }
}

#[test]
fn an_unrelated_self_signed_certificate_is_refused_with_a_clear_error() {
    let (pinned, _) = self_signed_ca_true("localhost");
    let (presented, key) = self_signed_ca_true("localhost");
    let err = handshake(&[pinned], vec![presented], &key, "localhost").unwrap_err();
    let text = err.to_string();
    assert!(text.contains("CA certificate (CA:TRUE"), "{text}");
    assert!(
        text.contains("put its own certificate in ca_file"),
        "{text}"
    );
}

#[test]
fn a_pin_outside_its_validity_period_is_refused() {
    let (expired, key) = self_signed_with("localhost", |p| {
        p.not_before = date_time_ymd(2000, 1, 1);
        p.not_after = date_time_ymd(2001, 1, 1);
    });
    let err = handshake(
        std::slice::from_ref(&expired),
        vec![expired.clone()],
        &key,
        "localhost",
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            rustls::Error::InvalidCertificate(CertificateError::ExpiredContext { .. })
        ),
        "{err:?}"
    );
    let (future, key) = self_signed_with("localhost", |p| {
        p.not_before = date_time_ymd(2090, 1, 1);
        p.not_after = date_time_ymd(2099, 1, 1);
    });
    let err = handshake(
        std::slice::from_ref(&future),
        vec![future.clone()],
        &key,
        "localhost",
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            rustls::Error::InvalidCertificate(CertificateError::NotValidYetContext { .. })
        ),
        "{err:?}"
    );
}

#[test]
fn a_leaf_of_a_ca_in_ca_file_is_verified_normally() {
    let ca = ca_and_leaf();
    handshake(
        std::slice::from_ref(&ca.ca),
        vec![ca.leaf.clone()],
        &ca.leaf_key,
        "localhost",
    )
    .unwrap();
    handshake(
        std::slice::from_ref(&ca.ca),
        vec![ca.leaf.clone()],
        &ca.leaf_key,
        "127.0.0.1",
    )
    .unwrap();
    // Not a pin, so the name still counts.
    let err = handshake(&[ca.ca], vec![ca.leaf], &ca.leaf_key, "mail.example.com").unwrap_err();
    assert!(
        matches!(
            err,
            rustls::Error::InvalidCertificate(CertificateError::NotValidForNameContext { .. })
        ),
        "{err:?}"
    );
}

#[test]
fn a_leaf_of_an_unknown_ca_is_refused_with_a_clear_error() {
    let ours = ca_and_leaf();
    let theirs = ca_and_leaf_named("Another CA");
    let err = handshake(&[ours.ca], vec![theirs.leaf], &theirs.leaf_key, "localhost").unwrap_err();
    assert!(
        err.to_string()
            .contains("not issued by a CA in ca_file or Mozilla's roots"),
        "{err}"
    );
}

#[test]
fn verify_chain_makes_the_same_decisions_after_the_handshake() {
    let (pinned, _) = self_signed_ca_true("localhost");
    let ca = ca_and_leaf();
    let verifier = PinningVerifier::new(vec![pinned.clone(), ca.ca.clone()]).unwrap();
    verifier
        .verify_chain(&[pinned.to_vec()], "127.0.0.1")
        .unwrap();
    verifier
        .verify_chain(&[ca.leaf.to_vec()], "localhost")
        .unwrap();
    assert!(
        verifier
            .verify_chain(&[ca.leaf.to_vec()], "mail.example.com")
            .is_err()
    );
    let (unrelated, _) = self_signed_ca_true("localhost");
    let err = verifier
        .verify_chain(&[unrelated.to_vec()], "localhost")
        .unwrap_err();
    assert!(err.to_string().contains("ca_file"), "{err}");
    assert!(matches!(
        verifier.verify_chain(&[], "localhost"),
        Err(rustls::Error::NoCertificatesPresented)
    ));
}

#[test]
fn validity_reads_utc_and_generalized_times() {
    // rcgen, like RFC 5280, writes UTCTime before 2050 and GeneralizedTime
    // from 2050 on.
    let (cert, _) = self_signed_with("x", |p| {
        p.not_before = date_time_ymd(2020, 2, 29);
        p.not_after = date_time_ymd(2070, 12, 31);
    });
    assert_eq!(
        validity(cert.as_ref()),
        Some((1_582_934_400, 3_187_209_600))
    );
    let (cert, _) = self_signed_with("x", |p| {
        p.not_before = date_time_ymd(1960, 1, 1);
        p.not_after = date_time_ymd(2049, 12, 31);
    });
    assert_eq!(validity(cert.as_ref()), Some((0, 2_524_521_600)));
}

#[test]
fn validity_of_damaged_der_is_none_and_never_panics() {
    let (cert, _) = self_signed_ca_true("localhost");
    let der = cert.as_ref();
    for len in 0..der.len() {
        let _ = validity(&der[..len]);
    }
    let mut flipped = der.to_vec();
    for i in 0..flipped.len().min(64) {
        flipped[i] ^= 0xff;
        let _ = validity(&flipped);
        flipped[i] ^= 0xff;
    }
    assert_eq!(validity(b""), None);
    assert_eq!(validity(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]), None);
    assert_eq!(time(0x17, b"991231235960Z"), None);
    assert_eq!(time(0x17, b"9912312359Z"), None);
    assert_eq!(time(0x18, b"2000010100000+Z"), None);
}

#[test]
fn ca_files_without_certificates_are_refused() {
    let err = parse_ca_pem(b"", Path::new("/etc/ca.pem")).unwrap_err();
    assert!(err.contains("no PEM certificate"), "{err}");
    let (cert, _) = self_signed_ca_true("localhost");
    let pem = format!(
        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, cert.as_ref())
    );
    assert_eq!(
        parse_ca_pem(pem.as_bytes(), Path::new("x")).unwrap(),
        vec![cert]
    );
}
