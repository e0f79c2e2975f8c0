use super::*;
use std::io::Write;

fn env(vars: &[(&str, &str)]) -> Vec<(String, String)> {
    vars.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn write_file(dir: &Path, name: &str, content: &str) -> PathBuf {
    let path = dir.join(name);
    let mut f = std::fs::File::create(&path).expect("create file");
    f.write_all(content.as_bytes()).expect("write file");
    path
}

/// Loads `toml` (written to a temp file) with the given environment.
fn load(toml: &str, vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write_file(dir.path(), "switchboard.toml", toml);
    Config::load_with_env(Some(&path), env(vars))
}

fn load_ok(toml: &str, vars: &[(&str, &str)]) -> Config {
    match load(toml, vars) {
        Ok(c) => c,
        Err(e) => panic!("expected config to load, got: {e}"),
    }
}

fn load_err(toml: &str, vars: &[(&str, &str)]) -> ConfigError {
    match load(toml, vars) {
        Ok(c) => panic!("expected an error, got {c:#?}"),
        Err(e) => e,
    }
}

fn key(e: &ConfigError) -> &str {
    e.key.as_deref().unwrap_or("<none>")
}

const TWILIO_OK: &str = r#"
[twilio]
account_sid = "AC123"
auth_token = "tok"
from = "+15550100"
"#;

/// The full example of SPEC §8, with a real IMAP password.
const SPEC_EXAMPLE: &str = r##"
[server]
listen = "127.0.0.1:8080"           # API, webhooks, web page
metrics_listen = ""                  # optional separate listener for /metrics
public_url = "http://127.0.0.1:8080" # as the outside world (Twilio, links in emails) sees us

[database]
url = "sqlite://switchboard.db"     # or postgres://user@host/db
max_connections = 8
auto_migrate = true                  # serve applies pending migrations

[twilio]                             # SMS channel; absent or enabled=false: off
enabled = true
account_sid = "AC…"
auth_token = "…"
from = "+15550100"                  # or messaging_service_sid = "MG…"
api_base = "https://api.twilio.com"

[[imap]]                             # one table per mailbox
name = "support"
host = "imap.example.com"
port = 993
security = "tls"                     # tls | starttls | plain
username = "support@example.com"
password = "hunter2-imap"           # or password_file, or the oauth2 table below
address = "support@example.com"     # our address on this mailbox (From of replies); default: username
mailbox = "INBOX"
after_ingest = "seen"                # seen | move | delete
move_to = "Processed"
idle = true
poll_interval = "60s"
ca_file = ""                         # extra trusted CA (PEM), e.g. a self-signed test server
# [imap.oauth2] token_url, client_id, client_secret, refresh_token  → XOAUTH2

[smtp]                               # outbound mail: replies and notifications
host = "smtp.example.com"
port = 587
security = "starttls"                # tls | starttls | plain
username = ""
password = ""
from = "Support <support@example.com>"  # for notifications; replies use the mailbox address
ca_file = ""

[threading]
default_region = "US"
reopen_window = "0s"
auto_resolve_acks = false
ack_words = ["ok", "okay", "thanks", "thank you", "thx", "yes", "👍"]

[notifications]
email_coalesce = "2m"

[escalation]
after = "30m"
schedule = "*/5 * * * *"             # standard 5-field crontab

[auto_close]                         # off unless `after` is set
after = ""
schedule = "0 * * * *"

[digest]
schedule = ""                        # e.g. "0 8 * * 1-5"; empty: off

[retention]
raw_mail = ""                        # e.g. "180d"; empty: keep
schedule = "30 3 * * *"
rejected = "30d"                     # rejected-inbound log rows older than this are deleted

[attachments]
dir = "attachments"
max_bytes = 10485760
max_files = 10
allowed = ["jpg","jpeg","png","gif","webp","pdf","doc","docx","xls","xlsx","ppt","pptx"]

[auto_ack]
enabled = false
max_per_hour = 3
text = "We received your message (reference #{issue}). We'll get back to you soon."

[logging]
format = "pretty"                    # pretty | json
level = "info"                       # any tracing EnvFilter directive
"##;

// --- defaults -------------------------------------------------------

#[test]
fn defaults_with_no_file() {
    let c = Config::load_with_env(None, env(&[])).expect("defaults load");
    assert_eq!(c, Config::default());
    assert_eq!(c.server.listen, "127.0.0.1:8080".parse().expect("addr"));
    assert_eq!(c.server.metrics_listen, None);
    assert_eq!(c.server.public_url, "http://127.0.0.1:8080");
    assert_eq!(c.database.url, "sqlite://switchboard.db");
    assert_eq!(c.database.max_connections, 8);
    assert!(c.database.auto_migrate);
    assert!(!c.twilio.enabled);
    assert_eq!(c.twilio.api_base, "https://api.twilio.com");
    assert!(c.imap.is_empty());
    assert!(!c.smtp.enabled());
    assert_eq!(c.threading.default_region, phonenumber::country::Id::US);
    assert_eq!(c.threading.reopen_window.get(), std::time::Duration::ZERO);
    assert_eq!(c.threading.ack_words.len(), 7);
    assert_eq!(c.threading.ack_words[6], "👍");
    assert_eq!(c.notifications.email_coalesce, Dur::from_secs(120));
    assert_eq!(c.escalation.after, Dur::from_secs(1800));
    assert_eq!(c.escalation.schedule.as_str(), "*/5 * * * *");
    assert_eq!(c.auto_close.after, None);
    assert_eq!(c.auto_close.schedule.as_str(), "0 * * * *");
    assert_eq!(c.digest.schedule, None);
    assert_eq!(c.retention.raw_mail, None);
    assert_eq!(c.retention.schedule.as_str(), "30 3 * * *");
    assert_eq!(c.attachments.dir, PathBuf::from("attachments"));
    assert_eq!(c.attachments.max_bytes, 10_485_760);
    assert_eq!(c.attachments.max_files, 10);
    assert_eq!(c.attachments.allowed.len(), 12);
    assert!(!c.auto_ack.enabled);
    assert_eq!(c.auto_ack.max_per_hour, 3);
    assert_eq!(c.logging.format, LogFormat::Pretty);
    assert_eq!(c.logging.level, "info");
    Config::default().validate().expect("defaults are valid");
}

#[test]
fn default_path_matches_the_filesystem() {
    let exists = Path::new(DEFAULT_CONFIG_PATH).is_file();
    assert_eq!(
        Config::default_path(),
        exists.then(|| PathBuf::from(DEFAULT_CONFIG_PATH))
    );
}

#[test]
fn spec_example_loads() {
    let c = load_ok(SPEC_EXAMPLE, &[]);
    assert!(c.twilio.enabled);
    assert_eq!(c.twilio.from.as_deref(), Some("+15550100"));
    assert_eq!(c.imap.len(), 1);
    let m = &c.imap[0];
    assert_eq!(m.name, "support");
    assert_eq!(m.port(), 993);
    assert_eq!(m.security, Security::Tls);
    assert_eq!(
        m.password.as_ref().map(Secret::expose),
        Some("hunter2-imap")
    );
    assert_eq!(m.move_to.as_deref(), Some("Processed"));
    assert_eq!(m.ca_file, None);
    assert!(c.smtp.enabled());
    assert_eq!(c.smtp.port(), 587);
    assert_eq!(c.smtp.username, None);
    assert_eq!(c.smtp.password, None);
    assert_eq!(c.server.metrics_listen, None);
    assert_eq!(c.digest.schedule, None);
    assert_eq!(c.attachments, AttachmentsConfig::default());
    assert_eq!(c.threading, ThreadingConfig::default());
}

// --- layering -------------------------------------------------------

#[test]
fn file_overrides_defaults() {
    let c = load_ok(
        r#"
[server]
listen = "0.0.0.0:9000"
metrics_listen = "127.0.0.1:9100"
public_url = "https://help.example.com/"

[database]
url = "postgres://sb@db/sb"
max_connections = 20
auto_migrate = false

[escalation]
after = "1h"

[logging]
format = "json"
level = "info,switchboard=debug"
"#,
        &[],
    );
    assert_eq!(c.server.listen, "0.0.0.0:9000".parse().expect("addr"));
    assert_eq!(
        c.server.metrics_listen,
        Some("127.0.0.1:9100".parse().expect("addr"))
    );
    assert_eq!(c.server.public_url, "https://help.example.com");
    assert_eq!(c.database.url, "postgres://sb@db/sb");
    assert_eq!(c.database.max_connections, 20);
    assert!(!c.database.auto_migrate);
    assert_eq!(c.escalation.after, Dur::from_secs(3600));
    assert_eq!(c.logging.format, LogFormat::Json);
    // untouched keys keep their defaults
    assert_eq!(c.escalation.schedule.as_str(), "*/5 * * * *");
}

#[test]
fn env_overrides_file() {
    let c = load_ok(
        "[server]\nlisten = \"0.0.0.0:9000\"\n[database]\nmax_connections = 20\n",
        &[
            ("SWITCHBOARD__SERVER__LISTEN", "127.0.0.1:7000"),
            ("switchboard__database__Max_Connections", "3"),
            ("SWITCHBOARD_SERVER_LISTEN", "not ours, ignored"),
        ],
    );
    assert_eq!(c.server.listen, "127.0.0.1:7000".parse().expect("addr"));
    assert_eq!(c.database.max_connections, 3);
}

#[test]
fn phone_number_and_leading_zero_survive_env() {
    let c = load_ok(
        TWILIO_OK,
        &[
            ("SWITCHBOARD__TWILIO__FROM", "+15550100"),
            ("SWITCHBOARD__TWILIO__AUTH_TOKEN", "0012345"),
            ("SWITCHBOARD__AUTO_ACK__TEXT", "true"),
        ],
    );
    assert_eq!(c.twilio.from.as_deref(), Some("+15550100"));
    assert_eq!(
        c.twilio.auth_token.as_ref().map(Secret::expose),
        Some("0012345")
    );
    assert_eq!(c.auto_ack.text, "true");
}

#[test]
fn bool_and_int_from_env() {
    let c = load_ok(
        "",
        &[
            ("SWITCHBOARD__DATABASE__AUTO_MIGRATE", "false"),
            ("SWITCHBOARD__DATABASE__MAX_CONNECTIONS", "8"),
            ("SWITCHBOARD__AUTO_ACK__ENABLED", "TRUE"),
            ("SWITCHBOARD__AUTO_ACK__MAX_PER_HOUR", "5"),
            ("SWITCHBOARD__ATTACHMENTS__MAX_BYTES", "2048"),
            ("SWITCHBOARD__THREADING__AUTO_RESOLVE_ACKS", "yes"),
        ],
    );
    assert!(!c.database.auto_migrate);
    assert_eq!(c.database.max_connections, 8);
    assert!(c.auto_ack.enabled);
    assert_eq!(c.auto_ack.max_per_hour, 5);
    assert_eq!(c.attachments.max_bytes, 2048);
    assert!(c.threading.auto_resolve_acks);
}

#[test]
fn bad_int_and_bool_from_env_name_key_and_variable() {
    let e = load_err("", &[("SWITCHBOARD__DATABASE__MAX_CONNECTIONS", "eight")]);
    assert_eq!(key(&e), "database.max_connections");
    assert!(
        e.message.contains("SWITCHBOARD__DATABASE__MAX_CONNECTIONS"),
        "{e}"
    );
    let e = load_err("", &[("SWITCHBOARD__DATABASE__AUTO_MIGRATE", "maybe")]);
    assert_eq!(key(&e), "database.auto_migrate");
    let e = load_err("", &[("SWITCHBOARD__DATABASE__MAX_CONNECTIONS", "-1")]);
    assert_eq!(key(&e), "database.max_connections");
}

#[test]
fn file_values_are_typed_strictly() {
    // A number where a string belongs is not silently stringified, and a
    // string where a number belongs is not silently parsed.
    let e = load_err("[twilio]\nfrom = 15550100\n", &[]);
    assert_eq!(key(&e), "twilio.from");
    let e = load_err("[database]\nmax_connections = \"8\"\n", &[]);
    assert_eq!(key(&e), "database.max_connections");
}

#[test]
fn lists_from_env_are_comma_separated() {
    let c = load_ok(
        "",
        &[
            ("SWITCHBOARD__ATTACHMENTS__ALLOWED", "jpg, .PNG,pdf"),
            ("SWITCHBOARD__THREADING__ACK_WORDS", "ok,thank you,👍"),
        ],
    );
    assert_eq!(c.attachments.allowed, vec!["jpg", "png", "pdf"]);
    assert_eq!(c.threading.ack_words, vec!["ok", "thank you", "👍"]);
    let c = load_ok("", &[("SWITCHBOARD__THREADING__ACK_WORDS", "")]);
    assert!(c.threading.ack_words.is_empty());
}

#[test]
fn env_can_address_imap_entries() {
    let file = r#"
[[imap]]
name = "support"
host = "imap.example.com"
username = "support@example.com"
password = "from-file"
"#;
    let c = load_ok(
        file,
        &[
            ("SWITCHBOARD__IMAP__0__PASSWORD", "from-env"),
            ("SWITCHBOARD__IMAP__0__PORT", "1993"),
            ("SWITCHBOARD__IMAP__1__NAME", "sales"),
            ("SWITCHBOARD__IMAP__1__HOST", "imap.example.com"),
            ("SWITCHBOARD__IMAP__1__USERNAME", "sales@example.com"),
            ("SWITCHBOARD__IMAP__1__PASSWORD", "pw"),
            ("SWITCHBOARD__IMAP__1__SECURITY", "starttls"),
        ],
    );
    assert_eq!(c.imap.len(), 2);
    assert_eq!(
        c.imap[0].password.as_ref().map(Secret::expose),
        Some("from-env")
    );
    assert_eq!(c.imap[0].port(), 1993);
    assert_eq!(c.imap[1].name, "sales");
    assert_eq!(c.imap[1].port(), 143);

    let e = load_err(file, &[("SWITCHBOARD__IMAP__5__HOST", "x")]);
    assert_eq!(key(&e), "imap[5]");
    assert!(e.message.contains("skips"), "{e}");
}

#[test]
fn same_key_from_two_env_spellings_is_an_error() {
    let e = load_err(
        "",
        &[
            ("SWITCHBOARD__SERVER__LISTEN", "127.0.0.1:1"),
            ("switchboard__server__listen", "127.0.0.1:2"),
        ],
    );
    assert_eq!(key(&e), "server.listen");
}

#[test]
fn malformed_env_name_is_an_error() {
    let e = load_err("", &[("SWITCHBOARD__SERVER____LISTEN", "x")]);
    assert!(e.message.contains("SWITCHBOARD__SERVER____LISTEN"), "{e}");
    let e = load_err("", &[("SWITCHBOARD__SERVER__LISTEN__PORT", "1")]);
    assert_eq!(key(&e), "server.listen");
}

// --- unknown keys ---------------------------------------------------

#[test]
fn unknown_key_in_file_is_named() {
    let e = load_err("[server]\nlissen = \"127.0.0.1:1\"\n", &[]);
    assert_eq!(key(&e), "server.lissen");
    assert!(e.message.contains("listen"), "suggests valid keys: {e}");
    assert!(
        e.to_string()
            .starts_with("config key `server.lissen`: unknown key")
    );

    let e = load_err("[[imap]]\nname = \"a\"\nhots = \"x\"\n", &[]);
    assert_eq!(key(&e), "imap[0].hots");

    let e = load_err(
        "[[imap]]\nname = \"a\"\n[imap.oauth2]\ntoken_uri = \"x\"\n",
        &[],
    );
    assert_eq!(key(&e), "imap[0].oauth2.token_uri");

    let e = load_err("[imap]\nname = \"a\"\n", &[]);
    assert_eq!(key(&e), "imap");
    assert!(e.message.contains("[[name]]"), "{e}");

    let e = load_err("[sever]\nlisten = \"x\"\n", &[]);
    assert_eq!(key(&e), "sever");
}

#[test]
fn unknown_key_in_env_is_named() {
    let e = load_err("", &[("SWITCHBOARD__SERVER__LISSEN", "127.0.0.1:1")]);
    assert_eq!(key(&e), "server.lissen");
    assert!(e.message.contains("SWITCHBOARD__SERVER__LISSEN"), "{e}");

    let e = load_err("", &[("SWITCHBOARD__NOPE__X", "1")]);
    assert_eq!(key(&e), "nope");
    assert!(e.message.contains("SWITCHBOARD__NOPE__X"), "{e}");
}

// --- secrets --------------------------------------------------------

#[test]
fn every_secret_can_come_from_a_file_trimmed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = |name: &str, content: &str| write_file(dir.path(), name, content).display().to_string();
    let toml = format!(
        r#"
[twilio]
account_sid = "AC1"
auth_token_file = "{}"
from = "+15550100"

[[imap]]
name = "a"
host = "imap.example.com"
username = "a@example.com"
password_file = "{}"

[[imap]]
name = "b"
host = "imap.example.com"
username = "b@example.com"
[imap.oauth2]
token_url = "https://login.example.com/token"
client_id = "cid"
client_secret_file = "{}"
refresh_token_file = "{}"

[smtp]
host = "smtp.example.com"
username = "u"
password_file = "{}"
from = "s@example.com"
"#,
        p("twilio", "  sek-twilio\n"),
        p("imap", "sek-imap\n"),
        p("cs", "\tsek-cs \n"),
        p("rt", "sek-rt\r\n"),
        p("smtp", "sek-smtp\n\n"),
    );
    let c = load_ok(&toml, &[]);
    let exposed = |s: &Option<Secret>| s.as_ref().map(|s| s.expose().to_string());
    assert_eq!(exposed(&c.twilio.auth_token).as_deref(), Some("sek-twilio"));
    assert_eq!(exposed(&c.imap[0].password).as_deref(), Some("sek-imap"));
    let o = c.imap[1].oauth2.as_ref().expect("oauth2 table");
    assert_eq!(exposed(&o.client_secret).as_deref(), Some("sek-cs"));
    assert_eq!(exposed(&o.refresh_token).as_deref(), Some("sek-rt"));
    assert_eq!(exposed(&c.smtp.password).as_deref(), Some("sek-smtp"));

    let summary = c.redacted_summary();
    for secret in ["sek-twilio", "sek-imap", "sek-cs", "sek-rt", "sek-smtp"] {
        assert!(!summary.contains(secret), "{secret} leaked:\n{summary}");
    }
    let debug = format!("{c:?}");
    for secret in ["sek-twilio", "sek-imap", "sek-cs", "sek-rt", "sek-smtp"] {
        assert!(!debug.contains(secret), "{secret} leaked in Debug");
    }
}

#[test]
fn secret_files_are_found_in_credentials_directory() {
    let creds = tempfile::tempdir().expect("tempdir");
    write_file(creds.path(), "twilio-token", "cred-token\n");
    write_file(creds.path(), "imap-pw", "cred-imap\n");
    let toml = r#"
[twilio]
account_sid = "AC1"
auth_token_file = "twilio-token"
from = "+15550100"

[[imap]]
name = "a"
host = "h"
username = "a@example.com"
password_file = "imap-pw"
"#;
    let creds_dir = creds.path().display().to_string();
    let c = load_ok(toml, &[("CREDENTIALS_DIRECTORY", &creds_dir)]);
    assert_eq!(
        c.twilio.auth_token.as_ref().map(Secret::expose),
        Some("cred-token")
    );
    assert_eq!(
        c.imap[0].password.as_ref().map(Secret::expose),
        Some("cred-imap")
    );

    // Without the variable the relative path is taken as-is and is missing.
    let e = load_err(toml, &[]);
    assert_eq!(key(&e), "twilio.auth_token_file");
}

#[test]
fn secret_and_secret_file_together_is_an_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let f = write_file(dir.path(), "tok", "x");
    let toml = format!(
        "{TWILIO_OK}auth_token_file = {:?}\n",
        f.display().to_string()
    );
    let e = load_err(&toml, &[]);
    assert_eq!(key(&e), "twilio.auth_token");
    assert!(e.message.contains("auth_token_file"), "{e}");
}

#[test]
fn secret_from_env_replaces_secret_file_from_file() {
    let toml = r#"
[twilio]
account_sid = "AC1"
auth_token_file = "/nonexistent/token"
from = "+15550100"
"#;
    let c = load_ok(toml, &[("SWITCHBOARD__TWILIO__AUTH_TOKEN", "env-token")]);
    assert_eq!(
        c.twilio.auth_token.as_ref().map(Secret::expose),
        Some("env-token")
    );
    assert_eq!(c.twilio.auth_token_file, None);
}

#[test]
fn missing_or_empty_secret_file_names_key_and_path() {
    let toml = "[[imap]]\nname = \"a\"\nhost = \"h\"\nusername = \"a@example.com\"\npassword_file = \"/nonexistent/imap-pw\"\n";
    let e = load_err(toml, &[]);
    assert_eq!(key(&e), "imap[0].password_file");
    assert!(e.message.contains("/nonexistent/imap-pw"), "{e}");

    let dir = tempfile::tempdir().expect("tempdir");
    let f = write_file(dir.path(), "empty", " \n");
    let toml = format!(
        "[smtp]\nhost = \"smtp.example.com\"\nfrom = \"a@example.com\"\nusername = \"u\"\npassword_file = {:?}\n",
        f.display().to_string()
    );
    let e = load_err(&toml, &[]);
    assert_eq!(key(&e), "smtp.password_file");
    assert!(e.message.contains("empty"), "{e}");
}

#[test]
fn secrets_are_redacted() {
    let s = Secret::new("hunter2");
    assert_eq!(format!("{s}"), "[redacted]");
    assert_eq!(format!("{s:?}"), "[redacted]");
    assert_eq!(s.expose(), "hunter2");

    let mut c = Config::default();
    c.database.url = "postgres://sb:dbpass@db/sb?sslmode=require&password=qpass".into();
    let debug = format!("{c:?}");
    let summary = c.redacted_summary();
    for text in [&debug, &summary] {
        assert!(!text.contains("dbpass"), "{text}");
        assert!(!text.contains("qpass"), "{text}");
        assert!(text.contains("postgres://sb:[redacted]@db/sb"), "{text}");
    }
    assert!(
        summary.contains("[server]\nlisten = \"127.0.0.1:8080\""),
        "{summary}"
    );
}

// --- validation -----------------------------------------------------

#[test]
fn error_display_format() {
    let e = load_err("[server]\nlisten = \"x\"\n", &[]);
    assert_eq!(
        e.to_string(),
        "config key `server.listen`: invalid socket address \"x\""
    );
    assert_eq!(ConfigError::general("boom").to_string(), "boom");
}

#[test]
fn the_documented_example_config_loads() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/switchboard.example.toml");
    let c = Config::load(Some(&path)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.notifications.retention, Dur::from_secs(30 * 86_400));
    assert_eq!(c.notifications.email_coalesce, Dur::from_secs(120));
    assert_eq!(c.retention.rejected, Dur::from_secs(30 * 86_400));
}

#[test]
fn bad_duration_is_named() {
    let e = load_err("[escalation]\nafter = \"30 minutes\"\n", &[]);
    assert_eq!(key(&e), "escalation.after");
    assert!(e.message.contains("invalid duration"), "{e}");
    let e = load_err("", &[("SWITCHBOARD__NOTIFICATIONS__EMAIL_COALESCE", "2")]);
    assert_eq!(key(&e), "notifications.email_coalesce");
    let e = load_err("[[imap]]\nname = \"a\"\npoll_interval = \"1x\"\n", &[]);
    assert_eq!(key(&e), "imap[0].poll_interval");
    let e = load_err("[auto_close]\nafter = \"0s\"\n", &[]);
    assert_eq!(key(&e), "auto_close.after");
    let e = load_err("[notifications]\nretention = \"0s\"\n", &[]);
    assert_eq!(key(&e), "notifications.retention");
    let e = load_err("[notifications]\nretention = \"a month\"\n", &[]);
    assert_eq!(key(&e), "notifications.retention");
    let c = load_ok("[notifications]\nretention = \"7d\"\n", &[]);
    assert_eq!(c.notifications.retention, Dur::from_secs(7 * 86_400));
    assert_eq!(
        Config::default().notifications.retention,
        Dur::from_secs(30 * 86_400)
    );
}

#[test]
fn bad_cron_is_named() {
    let e = load_err("[escalation]\nschedule = \"*/5 * * *\"\n", &[]);
    assert_eq!(key(&e), "escalation.schedule");
    assert!(e.message.contains("invalid cron expression"), "{e}");
    let e = load_err("[retention]\nschedule = \"61 3 * * *\"\n", &[]);
    assert_eq!(key(&e), "retention.schedule");
    let e = load_err("[digest]\nschedule = \"0 8 * * 1-5 2030\"\n", &[]);
    assert_eq!(key(&e), "digest.schedule");
    let e = load_err("", &[("SWITCHBOARD__AUTO_CLOSE__SCHEDULE", "every hour")]);
    assert_eq!(key(&e), "auto_close.schedule");
}

#[test]
fn cron_accepts_standard_and_seconds_forms() {
    for ok in [
        "*/5 * * * *",
        "0 8 * * 1-5",
        "0 8 * * mon-fri",
        "30 3 1,15 JAN *",
        "0 0 * * 7",
        "15 */5 * * * *",
        "@daily",
    ] {
        assert!(Schedule::parse(ok).is_ok(), "{ok} should parse");
    }
    for bad in [
        "",
        "* * * *",
        "0/10 * * * *",
        "0 0 0 1 1 * 2030",
        "0 24 * * *",
        "0 0 * * 8",
    ] {
        assert!(Schedule::parse(bad).is_err(), "{bad:?} should be rejected");
    }
    let c = load_ok("[digest]\nschedule = \"0 8 * * 1-5\"\n", &[]);
    assert_eq!(
        c.digest.schedule.as_ref().map(Schedule::as_str),
        Some("0 8 * * 1-5")
    );
}

#[test]
fn bad_listen_is_named() {
    let e = load_err("[server]\nlisten = \"localhost\"\n", &[]);
    assert_eq!(key(&e), "server.listen");
    let e = load_err("", &[("SWITCHBOARD__SERVER__METRICS_LISTEN", "9100")]);
    assert_eq!(key(&e), "server.metrics_listen");
    let e = load_err("[server]\nmetrics_listen = \"127.0.0.1:8080\"\n", &[]);
    assert_eq!(key(&e), "server.metrics_listen");
}

#[test]
fn bad_urls_are_named() {
    let e = load_err("[database]\nurl = \"mysql://u:secretpw@h/db\"\n", &[]);
    assert_eq!(key(&e), "database.url");
    assert!(!e.message.contains("secretpw"), "{e}");
    for ok in [
        "sqlite::memory:",
        "sqlite:///var/lib/sb.db",
        "postgresql://h/db",
    ] {
        let c = load_ok(&format!("[database]\nurl = {ok:?}\n"), &[]);
        assert_eq!(c.database.url, ok);
    }
    let e = load_err("[server]\npublic_url = \"ftp://example.com\"\n", &[]);
    assert_eq!(key(&e), "server.public_url");
    let e = load_err("[server]\npublic_url = \"example.com\"\n", &[]);
    assert_eq!(key(&e), "server.public_url");
    let e = load_err("[database]\nmax_connections = 0\n", &[]);
    assert_eq!(key(&e), "database.max_connections");
}

#[test]
fn twilio_rules() {
    // Absent table: off. Present without `enabled`: on.
    assert!(!load_ok("", &[]).twilio.enabled);
    assert!(load_ok(TWILIO_OK, &[]).twilio.enabled);
    // Explicitly disabled: nothing else is checked.
    let c = load_ok("[twilio]\nenabled = false\naccount_sid = \"nope\"\n", &[]);
    assert!(!c.twilio.enabled);

    let e = load_err(
        "[twilio]\naccount_sid = \"AC1\"\nfrom = \"+15550100\"\n",
        &[],
    );
    assert_eq!(key(&e), "twilio.auth_token");
    let e = load_err(
        "[twilio]\naccount_sid = \"XX1\"\nauth_token = \"t\"\nfrom = \"+1\"\n",
        &[],
    );
    assert_eq!(key(&e), "twilio.account_sid");
    let e = load_err("[twilio]\naccount_sid = \"AC1\"\nauth_token = \"t\"\n", &[]);
    assert_eq!(key(&e), "twilio.from");
    let e = load_err(
        &format!("{TWILIO_OK}messaging_service_sid = \"MG1\"\n"),
        &[],
    );
    assert_eq!(key(&e), "twilio.messaging_service_sid");
    let c = load_ok(
        "[twilio]\naccount_sid = \"AC1\"\nauth_token = \"t\"\nmessaging_service_sid = \"MG1\"\napi_base = \"http://127.0.0.1:9999/\"\n",
        &[],
    );
    assert_eq!(c.twilio.api_base, "http://127.0.0.1:9999");
    // env alone turns it on and supplies it
    let c = load_ok(
        "",
        &[
            ("SWITCHBOARD__TWILIO__ACCOUNT_SID", "AC9"),
            ("SWITCHBOARD__TWILIO__AUTH_TOKEN", "t"),
            ("SWITCHBOARD__TWILIO__FROM", "+15550100"),
        ],
    );
    assert!(c.twilio.enabled);
}

#[test]
fn imap_rules() {
    let base = "[[imap]]\nname = \"a\"\nhost = \"h\"\nusername = \"a@example.com\"\n";
    let e = load_err(base, &[]);
    assert_eq!(key(&e), "imap[0].password");
    let e = load_err(
        &format!("{base}password = \"p\"\nafter_ingest = \"move\"\n"),
        &[],
    );
    assert_eq!(key(&e), "imap[0].move_to");
    let e = load_err(
        &format!("{base}password = \"p\"\nsecurity = \"ssl\"\n"),
        &[],
    );
    assert_eq!(key(&e), "imap[0].security");
    let e = load_err(
        &format!("{base}password = \"p\"\n{base}password = \"p\"\n"),
        &[],
    );
    assert_eq!(key(&e), "imap[1].name");
    let e = load_err(
        "[[imap]]\nname = \"a\"\nusername = \"a@x\"\npassword = \"p\"\n",
        &[],
    );
    assert_eq!(key(&e), "imap[0].host");
    let e = load_err(
        "[[imap]]\nname = \"a\"\nhost = \"h\"\nusername = \"support\"\npassword = \"p\"\n",
        &[],
    );
    assert_eq!(key(&e), "imap[0].address");
    let e = load_err(
        &format!(
            "{base}password = \"p\"\n[imap.oauth2]\ntoken_url = \"https://t\"\nclient_id = \"c\"\nrefresh_token = \"r\"\n"
        ),
        &[],
    );
    assert_eq!(key(&e), "imap[0].oauth2");
    let c = load_ok(
        &format!(
            "{base}security = \"starttls\"\nafter_ingest = \"delete\"\n[imap.oauth2]\ntoken_url = \"https://t\"\nclient_id = \"c\"\nrefresh_token = \"r\"\n"
        ),
        &[],
    );
    assert_eq!(c.imap[0].security, Security::StartTls);
    assert_eq!(c.imap[0].after_ingest, AfterIngest::Delete);
    assert_eq!(c.imap[0].port(), 143);
    assert_eq!(c.imap[0].address(), "a@example.com");
}

#[test]
fn other_rules_are_named() {
    let e = load_err("[attachments]\nmax_files = 0\n", &[]);
    assert_eq!(key(&e), "attachments.max_files");
    let e = load_err("[threading]\ndefault_region = \"USA\"\n", &[]);
    assert_eq!(key(&e), "threading.default_region");
    let e = load_err("[threading]\ndefault_region = \"QQ\"\n", &[]);
    assert_eq!(key(&e), "threading.default_region");
    let c = load_ok("[threading]\ndefault_region = \"gb\"\n", &[]);
    assert_eq!(c.threading.default_region, phonenumber::country::Id::GB);
    let e = load_err("[logging]\nlevel = \"infoo\"\n", &[]);
    assert_eq!(key(&e), "logging.level");
    let e = load_err("[logging]\nlevel = \"info,sqlx=loud\"\n", &[]);
    assert_eq!(key(&e), "logging.level");
    let e = load_err("[logging]\nformat = \"xml\"\n", &[]);
    assert_eq!(key(&e), "logging.format");
    let e = load_err("[smtp]\nhost = \"smtp.example.com\"\n", &[]);
    assert_eq!(key(&e), "smtp.from");
    let e = load_err(
        "[smtp]\nhost = \"h\"\nfrom = \"a@b\"\nusername = \"u\"\n",
        &[],
    );
    assert_eq!(key(&e), "smtp.password");
    let e = load_err("[auto_ack]\nenabled = true\nmax_per_hour = 0\n", &[]);
    assert_eq!(key(&e), "auto_ack.max_per_hour");
    let e = load_err("[retention]\nraw_mail = \"0d\"\n", &[]);
    assert_eq!(key(&e), "retention.raw_mail");
    let e = load_err("[retention]\nrejected = \"0s\"\n", &[]);
    assert_eq!(key(&e), "retention.rejected");
    let e = load_err("[retention]\nrejected = \"a while\"\n", &[]);
    assert_eq!(key(&e), "retention.rejected");
    let c = load_ok("[retention]\nrejected = \"7d\"\n", &[]);
    assert_eq!(c.retention.rejected, Dur::from_secs(7 * 86_400));
    assert_eq!(
        Config::default().retention.rejected,
        Dur::from_secs(30 * 86_400)
    );
}

#[test]
fn toml_syntax_error_and_missing_file() {
    let e = load_err("[server\nlisten = 1", &[]);
    assert_eq!(e.key, None);
    assert!(e.message.contains("cannot parse config file"), "{e}");
    let e = Config::load_with_env(Some(Path::new("/nonexistent/sb.toml")), env(&[]))
        .expect_err("missing file");
    assert!(e.message.contains("/nonexistent/sb.toml"), "{e}");
}

// --- systemd STATE_DIRECTORY ---------------------------------------

#[test]
fn state_directory_moves_default_paths() {
    let c = Config::load_with_env(
        None,
        env(&[("STATE_DIRECTORY", "/var/lib/switchboard:/var/lib/other")]),
    )
    .expect("loads");
    assert_eq!(
        c.database.url,
        "sqlite:///var/lib/switchboard/switchboard.db"
    );
    assert_eq!(
        c.attachments.dir,
        PathBuf::from("/var/lib/switchboard/attachments")
    );

    // Configured values are left alone.
    let c = load_ok(
        "[database]\nurl = \"postgres://h/db\"\n",
        &[
            ("STATE_DIRECTORY", "/var/lib/switchboard"),
            ("SWITCHBOARD__ATTACHMENTS__DIR", "/srv/att"),
        ],
    );
    assert_eq!(c.database.url, "postgres://h/db");
    assert_eq!(c.attachments.dir, PathBuf::from("/srv/att"));
}

// --- value types ----------------------------------------------------

#[test]
fn durations_parse_and_print() {
    let cases = [
        ("0s", 0),
        ("500ms", 500),
        ("30s", 30_000),
        ("2m", 120_000),
        ("1h", 3_600_000),
        ("7d", 604_800_000),
        ("1h30m", 5_400_000),
    ];
    for (text, ms) in cases {
        let d = Dur::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(d.get().as_millis(), ms, "{text}");
        assert_eq!(d.to_string(), text.replace("1h30m", "90m"));
    }
    for bad in [
        "",
        "5",
        "m",
        "1.5h",
        "-1s",
        "5 m",
        "3w",
        "99999999999999999999d",
    ] {
        assert!(Dur::parse(bad).is_err(), "{bad:?} should be rejected");
    }
}

#[test]
fn env_name_that_is_no_key_is_named() {
    let e = load_err("", &[("SWITCHBOARD__SERVER__LIS TEN", "x")]);
    assert_eq!(e.key, None);
    assert!(e.message.contains("SWITCHBOARD__SERVER__LIS TEN"), "{e}");
}

#[test]
fn indexed_env_errors_name_key_and_variable() {
    let file =
        "[[imap]]\nname = \"a\"\nhost = \"h\"\nusername = \"a@example.com\"\npassword = \"p\"\n";
    let e = load_err(file, &[("SWITCHBOARD__IMAP__0__PORT", "imaps")]);
    assert_eq!(key(&e), "imap[0].port");
    assert!(e.message.contains("SWITCHBOARD__IMAP__0__PORT"), "{e}");
    // The file's `password_file` gives way to a password from the environment.
    let file = file.replace("password = \"p\"", "password_file = \"/nonexistent/pw\"");
    let c = load_ok(&file, &[("SWITCHBOARD__IMAP__0__PASSWORD", "env-pw")]);
    assert_eq!(c.imap[0].password_file, None);
}
