//! Masking secrets in URLs before they reach a log, an error or a summary.
//!
//! There used to be two hand-written maskers (one in `app.rs`, one in
//! `config.rs`), and the one that split `scheme://user:pass@host` at the
//! first `@` printed `****@Secret@host` for the password `Sup3r@Secret`.
//! Splitting strings is the wrong tool: where the userinfo ends is a
//! parsing question, and sqlx answers it with the `url` crate (WHATWG
//! rules: the authority ends at the first `/`, `?` or `#`, and the *last*
//! `@` in it ends the userinfo). So this asks the same parser, and rebuilds
//! the URL from its parts with the password replaced.
//!
//! When the text does not parse as a URL, I cannot tell where a password
//! ends, so everything between `://` and the last `@` is masked: too much
//! hidden is a worse error message, too little is a leaked password.

/// What a masked password reads as.
const MASK: &str = "[redacted]";

/// `url` with its password and any `password=` query parameter masked.
/// A URL with neither comes back exactly as given.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(parsed) => redact_parsed(url, &parsed),
        Err(_) => redact_unparsed(url),
    }
}

fn redact_parsed(original: &str, parsed: &url::Url) -> String {
    let has_password = parsed.password().is_some();
    let has_query_password = parsed
        .query_pairs()
        .any(|(k, _)| k.eq_ignore_ascii_case("password"));
    if !has_password && !has_query_password {
        return original.to_string();
    }
    let mut out = format!("{}:", parsed.scheme());
    if parsed.has_authority() {
        out.push_str("//");
        let user = parsed.username();
        if !user.is_empty() || has_password {
            out.push_str(user);
            if has_password {
                out.push(':');
                out.push_str(MASK);
            }
            out.push('@');
        }
        if let Some(host) = parsed.host_str() {
            out.push_str(host);
        }
        if let Some(port) = parsed.port() {
            out.push_str(&format!(":{port}"));
        }
    }
    out.push_str(parsed.path());
    if let Some(query) = parsed.query() {
        out.push('?');
        out.push_str(&mask_query(query));
    }
    if let Some(fragment) = parsed.fragment() {
        out.push('#');
        out.push_str(fragment);
    }
    out
}

/// A query string with the value of every `password` key masked; the
/// other pairs are kept as written (still percent-encoded).
fn mask_query(query: &str) -> String {
    query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((k, _)) if decoded_key_is_password(k) => format!("{k}={MASK}"),
            _ => pair.to_string(),
        })
        .collect::<Vec<_>>()
        .join("&")
}

fn decoded_key_is_password(key: &str) -> bool {
    form_urlencoded::parse(format!("{key}=").as_bytes())
        .next()
        .is_some_and(|(k, _)| k.eq_ignore_ascii_case("password"))
}

/// Text that is not a URL: mask everything before the last `@` after the
/// scheme, and `password=` values.
fn redact_unparsed(text: &str) -> String {
    let Some(scheme_end) = text.find("://") else {
        // No authority to hide a password in; a query still can.
        return match text.split_once('?') {
            Some((head, query)) => format!("{head}?{}", mask_query(query)),
            None => text.to_string(),
        };
    };
    let after = scheme_end + 3;
    let rest = &text[after..];
    let rest = match rest.rfind('@') {
        Some(at) => format!("{MASK}{}", &rest[at..]),
        None => rest.to_string(),
    };
    let rest = match rest.split_once('?') {
        Some((head, query)) => format!("{head}?{}", mask_query(query)),
        None => rest,
    };
    format!("{}{rest}", &text[..after])
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    fn masked(url: &str, secret: &str) -> String {
        let shown = redact_url(url);
        assert!(!shown.contains(secret), "{url} -> {shown}");
        shown
    }

    #[test]
    fn plain_passwords_are_masked() {
        assert_eq!(
            masked("postgres://u:secret@h/db", "secret"),
            "postgres://u:[redacted]@h/db"
        );
        assert_eq!(
            masked("postgres://u:secret@h:5433/db?sslmode=require", "secret"),
            "postgres://u:[redacted]@h:5433/db?sslmode=require"
        );
    }

    #[test]
    fn an_at_sign_in_the_password_is_masked_whole() {
        let shown = masked("postgres://u:Sup3r@Secret@host/db", "Secret");
        assert_eq!(shown, "postgres://u:[redacted]@host/db");
        assert!(!shown.contains("Sup3r"), "{shown}");
    }

    #[test]
    fn a_colon_in_the_password_is_masked_whole() {
        let shown = masked("postgres://u:pa:ss:word@host/db", "ss:word");
        assert_eq!(shown, "postgres://u:[redacted]@host/db");
        assert!(!shown.contains("pa:"), "{shown}");
    }

    #[test]
    fn a_percent_encoded_at_in_the_password_is_masked() {
        let shown = masked("postgres://u:Sup3r%40Secret@host/db", "Secret");
        assert_eq!(shown, "postgres://u:[redacted]@host/db");
        assert!(!shown.contains("%40"), "{shown}");
    }

    #[test]
    fn query_passwords_are_masked() {
        let shown = masked("postgres://u@h/db?sslmode=require&password=qpass", "qpass");
        assert_eq!(
            shown,
            "postgres://u@h/db?sslmode=require&password=[redacted]"
        );
        masked("postgres://h/db?pass%77ord=qpass", "qpass");
    }

    #[test]
    fn urls_without_secrets_are_unchanged() {
        for url in [
            "postgres://u@h/db",
            "sqlite://x.db",
            "sqlite://switchboard.db?mode=rwc",
            "sqlite::memory:",
            "sqlite:///var/lib/switchboard/db.sqlite",
        ] {
            assert_eq!(redact_url(url), url);
        }
    }

    #[test]
    fn text_that_does_not_parse_hides_everything_before_the_last_at() {
        // A `/` in the password ends the authority early: not a URL.
        let shown = masked("postgres://u:pa/ss@host/db", "pa/ss");
        assert_eq!(shown, "postgres://[redacted]@host/db");
        let shown = masked("postgres://u:x@y:bad/z@host/db", "x@y");
        assert!(shown.ends_with("@host/db"), "{shown}");
    }
}
