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
//! # Layering: config-rs merges, I type
//!
//! config-rs (`config`, TOML only) does the layering: the `STATE_DIRECTORY`
//! paths as `set_default`s, the file as a TOML source, the environment as its
//! `Environment` source (plain keys) and `set_override`s (`[[imap]]` entries
//! addressed by index, which its environment source cannot express), in that
//! order, so env wins. What it cannot do I keep, in small pieces:
//!
//! * `env.rs`: reading the variable names first, so a malformed one, two
//!   spellings of one key, or an index that skips list entries is an error
//!   naming the variable, and any error about a key set from the
//!   environment says which variable set it;
//! * `value_de.rs`: the deserializer over config-rs's merged tree. config-rs's
//!   own converts between types whatever a value's source (the file's
//!   `max_connections = "8"` would load, so would `from = 15550100`), and it
//!   does not name an unknown key. Mine converts only environment strings
//!   (no `try_parsing`): to a bool, an integer or a comma-separated list
//!   *only when the field being filled asks for one*. The target type
//!   decides, never the look of the string, so `"+15550100"` stays a string
//!   and `"8"` still fills a `u32`; a file value must already have the
//!   field's type. Every error names the full dotted key,
//!   `imap[0].oauth2.token_url` style;
//! * `*_file` secrets and `$CREDENTIALS_DIRECTORY` (below);
//! * unknown keys: `#[serde(deny_unknown_fields)]` on every section.
//!
//! Built-in defaults stay on the section structs (`#[serde(default)]`):
//! every `[[imap]]` entry needs its own, which no config-rs default can give,
//! and [`Config::default`] stays pure.
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

mod env;
mod load;
mod parsers;
mod sections;
mod summary;
#[cfg(test)]
mod tests;
mod validate;
mod value_de;
mod values;

use env::*;
use parsers::*;
pub use sections::*;
use value_de::*;
pub use values::*;
