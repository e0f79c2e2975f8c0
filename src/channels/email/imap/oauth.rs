//! XOAUTH2: the SASL response and the refresh-token exchange.

use super::*;

/// The SASL XOAUTH2 initial response (before base64, which async-imap adds):
/// `user=U ^A auth=Bearer T ^A ^A`.
pub(super) fn xoauth2_initial_response(user: &str, token: &str) -> String {
    format!("user={user}\x01auth=Bearer {token}\x01\x01")
}

/// Answers the first challenge with the initial response and any later one
/// (Gmail's second `+` carrying a base64 JSON error) with an empty line, after
/// which the server sends the tagged NO.
pub(super) struct XOAuth2 {
    pub(super) initial: Option<String>,
}

impl XOAuth2 {
    pub(super) fn new(user: &str, token: &str) -> Self {
        XOAuth2 {
            initial: Some(xoauth2_initial_response(user, token)),
        }
    }
}

impl async_imap::Authenticator for XOAuth2 {
    type Response = Vec<u8>;

    fn process(&mut self, _challenge: &[u8]) -> Vec<u8> {
        self.initial
            .take()
            .map(String::into_bytes)
            .unwrap_or_default()
    }
}

pub(super) struct FreshToken {
    pub(super) token: Secret,
    pub(super) expires_in: Duration,
}

#[derive(Deserialize)]
pub(super) struct TokenResponse {
    pub(super) access_token: String,
    #[serde(default)]
    pub(super) expires_in: Option<u64>,
}

#[derive(Deserialize, Default)]
pub(super) struct TokenError {
    #[serde(default)]
    pub(super) error: Option<String>,
    #[serde(default)]
    pub(super) error_description: Option<String>,
}

/// `POST token_url` with `grant_type=refresh_token` (RFC 6749 §6). A 400 or
/// 401 means the refresh token or client is refused: an authentication
/// failure, backed off long. Anything else is transient.
pub(super) async fn exchange_refresh_token(
    http: &reqwest::Client,
    oauth: &OAuth2Config,
) -> Result<FreshToken, Failure> {
    let Some(refresh_token) = oauth.refresh_token.as_ref() else {
        return Err(Failure::Config("oauth2.refresh_token is not set".into()));
    };
    let mut form: Vec<(&str, &str)> = vec![
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token.expose()),
        ("client_id", &oauth.client_id),
    ];
    if let Some(secret) = &oauth.client_secret {
        form.push(("client_secret", secret.expose()));
    }
    let response = http
        .post(&oauth.token_url)
        .form(&form)
        .send()
        .await
        .map_err(|e| Failure::Transient(format!("token endpoint: {e}")))?;
    let status = response.status();
    let body = response
        .bytes()
        .await
        .map_err(|e| Failure::Transient(format!("token endpoint: {e}")))?;
    if status.is_success() {
        let parsed: TokenResponse = serde_json::from_slice(&body)
            .map_err(|e| Failure::Transient(format!("token endpoint: unexpected answer ({e})")))?;
        if parsed.access_token.is_empty() {
            return Err(Failure::Transient(
                "token endpoint: empty access_token".into(),
            ));
        }
        return Ok(FreshToken {
            token: Secret::new(parsed.access_token),
            expires_in: Duration::from_secs(parsed.expires_in.unwrap_or(3600).max(1)),
        });
    }
    // Only the standard error fields: never echo the body, it may hold tokens.
    let err: TokenError = serde_json::from_slice(&body).unwrap_or_default();
    let detail = match (err.error, err.error_description) {
        (Some(e), Some(d)) => format!("{e}: {d}"),
        (Some(e), None) => e,
        (None, Some(d)) => d,
        (None, None) => String::new(),
    };
    let message = format!("token endpoint answered {status} {detail}");
    if status == reqwest::StatusCode::BAD_REQUEST || status == reqwest::StatusCode::UNAUTHORIZED {
        Err(Failure::Auth(message.trim_end().to_string()))
    } else {
        Err(Failure::Transient(message.trim_end().to_string()))
    }
}
