//! `spawn_app`: the real application on port 0, a fresh database and a
//! local Twilio stand-in (wiremock), driven over real HTTP.

use std::net::SocketAddr;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use switchboard::app::{Application, Options};
use switchboard::channels::sms::twilio;
use switchboard::config::{Config, Secret};
use tokio::sync::oneshot;
use wiremock::MockServer;

use crate::helpers::{Backend, TestStore, test_store_with};

pub const ACCOUNT_SID: &str = "AC0123456789abcdef0123456789abcdef";
pub const AUTH_TOKEN: &str = "test-auth-token";
pub const OUR_NUMBER: &str = "+15550100";
/// What Twilio "sees": deliberately not the bound address, as behind a proxy.
pub const PUBLIC_URL: &str = "https://support.example.test";

pub struct TestApp {
    pub addr: SocketAddr,
    pub base: String,
    pub admin_token: String,
    pub db: TestStore,
    pub twilio: MockServer,
    pub http: reqwest::Client,
    /// `attachments.dir`, kept until the test ends.
    #[allow(dead_code)]
    pub files: tempfile::TempDir,
    /// The configuration the app was started with.
    #[allow(dead_code)]
    pub config: Config,
    /// Hands the running app a new configuration, as SIGHUP does.
    #[allow(dead_code)]
    pub reload: switchboard::app::ReloadHandle,
    shutdown: Option<oneshot::Sender<()>>,
    handle: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

/// A response: status and parsed JSON (Null when the body is not JSON).
#[derive(Debug)]
pub struct Resp {
    pub status: StatusCode,
    pub body: Value,
    pub text: String,
    pub headers: reqwest::header::HeaderMap,
}

impl Resp {
    /// The `error.code` of an error response.
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }
}

pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, |_| {}).await
}

pub async fn spawn_app_with(backend: Backend, tweak: impl FnOnce(&mut Config)) -> TestApp {
    spawn_app_tuned(backend, tweak, |_| {}).await
}

/// `spawn_app_with`, also turning the app's `Options` (e.g. HTTP limits).
pub async fn spawn_app_tuned(
    backend: Backend,
    tweak: impl FnOnce(&mut Config),
    tune: impl FnOnce(&mut Options),
) -> TestApp {
    let db = test_store_with(backend, 10).await;
    let twilio = MockServer::start().await;
    let mut config = Config::default();
    config.server.listen = "127.0.0.1:0".parse().expect("addr");
    config.server.public_url = PUBLIC_URL.to_string();
    config.database.url = db.url.clone();
    config.database.max_connections = 10;
    config.twilio.enabled = true;
    config.twilio.account_sid = ACCOUNT_SID.to_string();
    config.twilio.auth_token = Some(Secret::new(AUTH_TOKEN));
    config.twilio.from = Some(OUR_NUMBER.to_string());
    config.twilio.api_base = twilio.uri();
    let files = tempfile::tempdir().expect("attachments dir");
    config.attachments.dir = files.path().to_path_buf();
    tweak(&mut config);
    let options = Options {
        outbox_base_backoff: Duration::from_millis(200),
        outbox_max_backoff: Duration::from_secs(2),
        drain_timeout: Duration::from_secs(10),
        mailbox_lease: Duration::from_secs(6),
        ..Options::default()
    };
    let mut options = options;
    tune(&mut options);
    let app = Application::build(config.clone(), options)
        .await
        .expect("build the app");
    let reload = app.reload_handle();
    // Empty when this app shares another test app's database (several
    // instances): use the first app's token then.
    let admin_token = app.first_admin_token.clone().unwrap_or_default();
    let addr = app.local_addr();
    let (tx, rx) = oneshot::channel::<()>();
    let handle = tokio::spawn(app.run(async move {
        let _ = rx.await;
    }));
    TestApp {
        addr,
        base: format!("http://{addr}"),
        admin_token,
        db,
        twilio,
        http: reqwest::Client::new(),
        files,
        config,
        reload,
        shutdown: Some(tx),
        handle: Some(handle),
    }
}

impl TestApp {
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Resp {
        let mut req = self.http.request(method, format!("{}{}", self.base, path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = resp.text().await.expect("body");
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Resp {
            status,
            body,
            text,
            headers,
        }
    }

    pub async fn get(&self, path: &str, token: &str) -> Resp {
        self.request(Method::GET, path, Some(token), None).await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> Resp {
        self.request(Method::POST, path, Some(token), Some(body))
            .await
    }

    /// Creates a staff member through the API; returns (id, token).
    pub async fn add_staff(&self, name: &str, role: &str) -> (i64, String) {
        let email = format!("{}@example.test", name.to_lowercase().replace(' ', "."));
        let r = self
            .post(
                "/api/staff",
                &self.admin_token.clone(),
                json!({ "email": email, "name": name, "role": role }),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "create staff: {}", r.text);
        (
            r.body["staff"]["id"].as_i64().expect("id"),
            r.body["token"].as_str().expect("token").to_string(),
        )
    }

    /// Posts a form to a webhook path, signed as Twilio would sign it.
    pub async fn signed_webhook(&self, path: &str, params: &[(&str, &str)]) -> Resp {
        let owned: Vec<(String, String)> = params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let sig = twilio::compute_signature(AUTH_TOKEN, &format!("{PUBLIC_URL}{path}"), &owned);
        self.webhook_with_signature(path, params, Some(&sig)).await
    }

    pub async fn webhook_with_signature(
        &self,
        path: &str,
        params: &[(&str, &str)],
        sig: Option<&str>,
    ) -> Resp {
        let body: String = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(params.iter())
            .finish();
        let mut req = self
            .http
            .post(format!("{}{}", self.base, path))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        if let Some(s) = sig {
            req = req.header("x-twilio-signature", s);
        }
        let resp = req.send().await.expect("webhook request");
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = resp.text().await.expect("body");
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Resp {
            status,
            body,
            text,
            headers,
        }
    }

    /// An inbound SMS, signed.
    pub async fn sms(&self, sid: &str, from: &str, body: &str) -> Resp {
        self.signed_webhook(
            "/webhooks/twilio/sms",
            &[
                ("MessageSid", sid),
                ("SmsSid", sid),
                ("AccountSid", ACCOUNT_SID),
                ("From", from),
                ("To", OUR_NUMBER),
                ("Body", body),
                ("NumMedia", "0"),
                ("FromCity", ""),
                ("FromState", ""),
            ],
        )
        .await
    }

    /// Sends an SMS and returns the issue id it landed on.
    pub async fn sms_issue(&self, sid: &str, from: &str, body: &str) -> i64 {
        let r = self.sms(sid, from, body).await;
        assert_eq!(r.status, StatusCode::OK, "webhook: {}", r.text);
        let list = self
            .get(
                "/api/issues?status=open&limit=100",
                &self.admin_token.clone(),
            )
            .await;
        let phone = switchboard::domain::Phone::parse(from, "US").expect("test phone");
        list.body["issues"]
            .as_array()
            .expect("issues")
            .iter()
            .find(|i| i["customer"]["phone"] == phone.as_str())
            .and_then(|i| i["id"].as_i64())
            .expect("the sender's open issue")
    }

    /// Waits until `f` holds (polling), or panics after `secs`.
    pub async fn eventually<F, Fut>(&self, secs: u64, what: &str, mut f: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            if f().await {
                return;
            }
            if tokio::time::Instant::now() > deadline {
                panic!("timed out waiting for: {what}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops the app the way SIGTERM does and waits for it.
    pub async fn stop(mut self) {
        self.halt().await;
        let TestApp { db, .. } = self;
        db.cleanup().await;
    }

    /// Shuts the app down cleanly but keeps its database (another app may
    /// share it); `stop` later only cleans up.
    pub async fn halt(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            let res = tokio::time::timeout(Duration::from_secs(15), h).await;
            assert!(
                matches!(res, Ok(Ok(Ok(())))),
                "app did not shut down cleanly: {res:?}"
            );
        }
    }
}
