use super::*;
use base64::Engine as _;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use wiremock::matchers::{body_string_contains, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

struct NullSink;

impl MailSink for NullSink {
    async fn ingest(&self, _: &str, _: u32, _: Vec<u8>) -> Result<(), String> {
        Ok(())
    }
    async fn cursor(&self, _: &str) -> Result<Option<(u32, u32)>, String> {
        Ok(None)
    }
    async fn set_cursor(&self, _: &str, _: u32, _: u32) -> Result<(), String> {
        Ok(())
    }
}

fn oauth(token_url: &str) -> OAuth2Config {
    OAuth2Config {
        token_url: token_url.to_string(),
        client_id: "client-1".into(),
        client_secret: Some(Secret::new("s3cret")),
        refresh_token: Some(Secret::new("1//refresh+token/x")),
        ..OAuth2Config::default()
    }
}

fn worker(oauth: Option<OAuth2Config>) -> Worker<NullSink> {
    let cfg = ImapConfig {
        name: "support".into(),
        host: "imap.example.com".into(),
        username: "support@example.com".into(),
        oauth2: oauth,
        ..ImapConfig::default()
    };
    let tuning = Tuning {
        command_timeout: Duration::from_secs(5),
        ..Tuning::default()
    };
    Worker {
        cfg,
        sink: Arc::new(NullSink),
        health: ChannelHealth::default(),
        tuning,
        health_name: "imap:support".into(),
        holder: "test".into(),
        shutdown: CancellationToken::new(),
        token: None,
        http: None,
        progressed: false,
    }
}

#[test]
fn xoauth2_initial_response_matches_googles_example() {
    // developers.google.com/gmail/imap/xoauth2-protocol
    let raw = xoauth2_initial_response(
        "someuser@example.com",
        "ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg",
    );
    assert_eq!(
        raw,
        "user=someuser@example.com\x01auth=Bearer ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg\x01\x01"
    );
    assert_eq!(
        base64::engine::general_purpose::STANDARD.encode(raw),
        "dXNlcj1zb21ldXNlckBleGFtcGxlLmNvbQFhdXRoPUJlYXJlciB5YTI5LnZGOWRmdDRxbVRjMk52YjNSbGNrQmhkSFJoZG1semRHRXVZMjl0Q2cBAQ=="
    );
}

#[test]
fn xoauth2_answers_the_error_challenge_with_an_empty_response() {
    use async_imap::Authenticator as _;
    let mut auth = XOAuth2::new("u@example.com", "tok");
    assert_eq!(
        auth.process(b""),
        b"user=u@example.com\x01auth=Bearer tok\x01\x01".to_vec()
    );
    let gmail_error = br#"{"status":"400","schemes":"Bearer","scope":"https://mail.google.com/"}"#;
    assert!(auth.process(gmail_error).is_empty());
}

/// A scripted server: the SASL exchange exactly as Gmail does it on a bad
/// token, over an in-memory stream through async-imap.
#[tokio::test]
async fn xoauth2_failure_on_the_wire_is_an_auth_failure_and_drops_the_token() {
    let (client_io, server_io) = tokio::io::duplex(4096);
    let server = tokio::spawn(async move {
        let (r, mut w) = tokio::io::split(server_io);
        let mut lines = BufReader::new(r).lines();
        let cmd = lines.next_line().await.unwrap().unwrap();
        let (tag, rest) = cmd.split_once(' ').unwrap();
        assert_eq!(rest, "AUTHENTICATE XOAUTH2");
        w.write_all(b"+ \r\n").await.unwrap();
        let answer = lines.next_line().await.unwrap().unwrap();
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(answer)
            .unwrap();
        assert_eq!(
            decoded,
            b"user=support@example.com\x01auth=Bearer expired-token\x01\x01"
        );
        w.write_all(b"+ eyJzdGF0dXMiOiI0MDAiLCJzY2hlbWVzIjoiQmVhcmVyIiwic2NvcGUiOiJodHRwczovL21haWwuZ29vZ2xlLmNvbS8ifQ==\r\n")
            .await
            .unwrap();
        let empty = lines.next_line().await.unwrap().unwrap();
        assert_eq!(
            empty, "",
            "the second challenge is answered with an empty line"
        );
        w.write_all(
            format!("{tag} NO [AUTHENTICATIONFAILED] Invalid credentials (Failure)\r\n").as_bytes(),
        )
        .await
        .unwrap();
    });
    let mut w = worker(Some(oauth("http://127.0.0.1:9/unused")));
    w.token = Some(CachedToken {
        token: Secret::new("expired-token"),
        refresh_at: Instant::now() + Duration::from_secs(600),
    });
    let client = async_imap::Client::new(Box::new(client_io) as Conn);
    match w.authenticate(client).await {
        Err(Stop::Failed(Failure::Auth(m))) => {
            assert!(m.contains("Invalid credentials"), "{m}")
        }
        Err(Stop::Failed(f)) => panic!("expected an auth failure, got {f}"),
        Err(Stop::Shutdown) => panic!("shutdown?"),
        Ok(_) => panic!("authentication should have failed"),
    }
    assert!(w.token.is_none(), "a refused token is not reused");
    server.await.unwrap();
}

#[tokio::test]
async fn the_refresh_token_is_exchanged_once_and_cached() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .and(header("content-type", "application/x-www-form-urlencoded"))
        .and(body_string_contains("grant_type=refresh_token"))
        .and(body_string_contains(
            "refresh_token=1%2F%2Frefresh%2Btoken%2Fx",
        ))
        .and(body_string_contains("client_id=client-1"))
        .and(body_string_contains("client_secret=s3cret"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "access_token": "ya29.access",
            "expires_in": 3599,
            "token_type": "Bearer",
            "scope": "https://mail.google.com/"
        })))
        .expect(1)
        .mount(&server)
        .await;
    let o = oauth(&format!("{}/token", server.uri()));
    let mut w = worker(Some(o.clone()));
    for _ in 0..3 {
        match w.access_token(&o).await {
            Ok(t) => assert_eq!(t.expose(), "ya29.access"),
            Err(_) => panic!("token exchange failed"),
        }
    }
    // MockServer checks `expect(1)` when dropped.
}

#[tokio::test]
async fn an_expiring_token_is_exchanged_again() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "access_token": "short", "expires_in": 1
        })))
        .expect(2)
        .mount(&server)
        .await;
    let o = oauth(&format!("{}/token", server.uri()));
    let mut w = worker(Some(o.clone()));
    assert!(w.access_token(&o).await.is_ok());
    assert!(w.access_token(&o).await.is_ok()); // cached
    tokio::time::sleep(Duration::from_millis(600)).await; // past expiry minus margin
    assert!(w.access_token(&o).await.is_ok());
}

#[tokio::test]
async fn a_refused_refresh_token_is_an_auth_failure_without_secrets_in_it() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(400).set_body_json(serde_json::json!({
            "error": "invalid_grant",
            "error_description": "Token has been expired or revoked."
        })))
        .mount(&server)
        .await;
    let o = oauth(&format!("{}/token", server.uri()));
    let mut w = worker(Some(o.clone()));
    match w.access_token(&o).await {
        Err(Stop::Failed(Failure::Auth(m))) => {
            assert!(m.contains("invalid_grant"), "{m}");
            assert!(!m.contains("refresh") || !m.contains("1//"), "{m}");
            assert!(!m.contains("s3cret"), "{m}");
        }
        _ => panic!("expected an auth failure"),
    }
}

#[tokio::test]
async fn a_token_endpoint_outage_is_transient() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&server)
        .await;
    let o = oauth(&format!("{}/token", server.uri()));
    let mut w = worker(Some(o.clone()));
    assert!(matches!(
        w.access_token(&o).await,
        Err(Stop::Failed(Failure::Transient(_)))
    ));
}

#[test]
fn uid_sets_are_compact() {
    assert_eq!(uid_set(&[1]), "1");
    assert_eq!(uid_set(&[1, 2, 3, 5, 7, 8]), "1:3,5,7:8");
    assert_eq!(uid_set(&[4294967294, 4294967295]), "4294967294:4294967295");
}

#[test]
fn batches_respect_count_and_bytes() {
    let items: Vec<(u32, u64)> = (1..=5).map(|u| (u, 10)).collect();
    let b = batches(&items, 2, 1000);
    assert_eq!(b.iter().map(|b| b.len()).collect::<Vec<_>>(), vec![2, 2, 1]);
    let b = batches(&items, 100, 25);
    assert_eq!(b.iter().map(|b| b.len()).collect::<Vec<_>>(), vec![2, 2, 1]);
    // A message bigger than the byte budget still goes, alone.
    let big = vec![(1, 10), (2, 5000), (3, 10)];
    let b = batches(&big, 100, 100);
    assert_eq!(b.iter().map(|b| b.len()).collect::<Vec<_>>(), vec![1, 1, 1]);
    assert!(batches(&[], 10, 10).is_empty());
}
