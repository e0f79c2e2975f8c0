//! Typed configuration: built-in defaults, then the TOML file, then
//! `SWITCHBOARD__SECTION__KEY` environment variables (env wins), then secrets
//! read from `*_file` paths, then [`Config::validate`].
//!
//! Everything the daemon reads from the outside world about *how to run* goes
//! through this module, and I want a bad value to die here, with the dotted
//! key in the message (`config key `imap[0].host`: is required`), rather
//! than as a confusing failure minutes later in an IMAP worker. So the shape
//! is "parse, don't validate" where a type can carry the rule (socket
//! addresses, durations, cron schedules, the phone region, enums), and one
//! `validate()` pass for the rules that span several keys (twilio needs a
//! token *and* exactly one sender, `after_ingest = "move"` needs `move_to`).
//!
//! # Why I layer the sources myself instead of using config-rs
//!
//! config-rs is in the dependency list and I tried to make it fit, but its
//! environment source only splits lists (`attachments.allowed=jpg,png`) when
//! `try_parsing(true)` is on, and `try_parsing` guesses a type from the
//! *string*: `SWITCHBOARD__TWILIO__FROM=+15550100` becomes the integer
//! 15550100 and the `+` is gone; an IMAP username `0123` would lose its
//! zero. It also cannot address an entry of `[[imap]]` from the environment.
//! The layering itself is small, so I do it here:
//!
//! * the file is parsed with `toml` into a tree whose leaves keep their TOML
//!   types (a file is typed; `max_connections = "8"` is an error there);
//! * each environment variable is laid onto that tree as a leaf that is only
//!   a string, replacing whatever the file had at that key;
//! * a small serde `Deserializer` over the tree turns an environment string
//!   into a bool, an integer or a comma-separated list *only when the field
//!   being filled asks for one*. The target type decides, never the look of
//!   the string, so `"+15550100"` stays a string and `"8"` still fills a
//!   `u32`. Because the deserializer is mine, it also records the path as it
//!   descends, so every error (unknown key, wrong type, bad duration) names
//!   the full dotted key, `imap[0].oauth2.token_url` style. That is what
//!   `serde_path_to_error` would give; doing it inline saves a dependency and
//!   lets me say *which environment variable* set a bad key.
//!
//! The cost is about 500 lines of tree and deserializer glue, paid once and
//! tested below.
//!
//! # Environment variables
//!
//! `SWITCHBOARD__<SECTION>__<KEY>`, case-insensitive, `__` between levels,
//! single `_` inside a key (`SWITCHBOARD__TWILIO__AUTH_TOKEN`). A purely
//! numeric level indexes a list: `SWITCHBOARD__IMAP__0__PASSWORD` sets the
//! password of the first `[[imap]]` table (index == length appends a new
//! one). Lists are written comma-separated (`jpg,png`; items are trimmed, so
//! an ack word containing a comma can only be set in the file). Booleans
//! accept `true/false/yes/no/on/off/1/0`. Setting `X` in the environment
//! removes a file's `X_file` and vice versa, so env really wins for secrets.
//! Variables named `SWITCHBOARD_…` with a single underscore are not ours.
//!
//! # Secrets
//!
//! `twilio.auth_token`, `imap[].password`, `smtp.password`,
//! `imap[].oauth2.client_secret` and `imap[].oauth2.refresh_token` may each be
//! given as `X_file`: a path whose content, trimmed, is the secret. A relative
//! path is first looked up in `$CREDENTIALS_DIRECTORY` (systemd
//! `LoadCredential=`), then taken as-is. Giving both `X` and `X_file`, an
//! unreadable file or an empty one is an error naming the key. Secrets of a
//! channel that is off (twilio disabled, smtp without host) are not read.
//! After loading, `X` holds the secret and `X_file` still tells where it came
//! from. [`Secret`] prints as `[redacted]` in `Debug` and `Display`, and so
//! does the password of a `database.url` in `Debug` and in
//! [`Config::redacted_summary`]. The secret string itself is not zeroised on
//! drop; `secrecy` would do that but adds little against a process dump.
//!
//! # Values
//!
//! * Durations ([`Dur`]): a whole number and a unit, `ms`, `s`, `m`, `h`, `d`
//!   (`500ms`, `30s`, `2m`, `1h`, `7d`, `0s`); parts may be chained (`1h30m`).
//!   `auto_close.after` and `retention.raw_mail` are `Option<Dur>`, `""` = off.
//! * Cron schedules ([`Schedule`], parsed by `croner`): the standard 5-field
//!   crontab `minute hour day-of-month month day-of-week`, or 6 fields with a
//!   leading seconds field. Ranges, lists and steps (`1-5`, `1,15`, `*/5`,
//!   `10-50/10`), month and weekday names (`JAN`, `mon-fri`), weekday 0 or 7
//!   = Sunday, day-of-month OR day-of-week as in Vixie cron, the nicknames
//!   `@hourly @daily @weekly @monthly @yearly`, and croner's extensions `?`,
//!   `L`, `W`, `#` and a `+` prefix on the weekday field for AND. Rejected:
//!   4 or 7 fields (no year field), out-of-range values, and `0/10`-style
//!   steps. I use `croner` rather than `cron` because `cron` demands a
//!   seconds field and numbers weekdays from 1 = Sunday, so an operator's
//!   `0 8 * * 1-5` would silently run Sunday to Thursday.
//!   Times are evaluated by the scheduler, not here.
//! * `server.public_url` and `twilio.api_base` are stored without trailing
//!   `/` so callers can append `/webhooks/...` without doubling slashes.
//! * `attachments.allowed` is stored lower-case without a leading dot.
//! * `threading.default_region` is a `phonenumber` region id (`US`, `gb`…).
//!
//! # Defaults and systemd
//!
//! [`Config::default`] is pure: it reads nothing. Loading adds two systemd
//! touches: with `$STATE_DIRECTORY` set (its first entry if `:`-separated),
//! an unconfigured `database.url` becomes `sqlite://$STATE_DIRECTORY/switchboard.db`
//! and an unconfigured `attachments.dir` becomes `$STATE_DIRECTORY/attachments`.
//! A `[twilio]` table that is present without `enabled` counts as enabled (a
//! user who writes the table means to use it); an absent table is off. SMTP
//! is off while `smtp.host` is empty. Validation stops at the first problem:
//! `check-config` reports one key at a time, which keeps [`ConfigError`] a
//! plain value.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::redact::redact_url;
use serde::Deserialize;
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Unexpected, Visitor};

/// Where `serve` looks for a config file when no `--config` is given.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/switchboard/switchboard.toml";

/// Prefix of the environment variables that set config keys.
const ENV_PREFIX: &str = "SWITCHBOARD__";

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

/// A configuration problem, naming the dotted key when there is one.
///
/// Displays as ``config key `server.listen`: invalid socket address "x"``, or
/// just the message when no single key is at fault (unreadable file, TOML
/// syntax error).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Dotted key such as `server.listen` or `imap[0].host`.
    pub key: Option<String>,
    /// What is wrong with it.
    pub message: String,
}

impl ConfigError {
    /// An error about one key.
    pub fn at(key: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError {
            key: Some(key.into()),
            message: message.into(),
        }
    }

    /// An error that is not about one key.
    pub fn general(message: impl Into<String>) -> Self {
        ConfigError {
            key: None,
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.key {
            Some(key) => write!(f, "config key `{key}`: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for ConfigError {}

mod load;
mod parsers;
mod sections;
mod summary;
#[cfg(test)]
mod tests;
mod tree;
mod tree_de;
mod validate;
mod values;

use parsers::*;
pub use sections::*;
use tree::*;
pub use values::*;
