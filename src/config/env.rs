//! The `SWITCHBOARD__…` environment variables: which key each one sets, how
//! they reach config-rs, and which variable to name when a key is bad.
//!
//! config-rs does the merging, but it does not remember *which* variable set
//! a key, it silently keeps one of two spellings of the same key, and its
//! path syntax has no way to say "entry 0 of `[[imap]]`" from an environment
//! variable name (`imap.0.host` would turn the list into a table). So I read
//! every variable name here first: a name that is malformed or clashes with
//! another is an error that names it, the plain ones go to config-rs's
//! [`Environment`](::config::Environment) source, and the ones with an index
//! become `set_override("imap[0].host", …)`. The list of names is then what
//! [`EnvLayer::annotate`] uses to add "(set by environment variable X)" to an
//! error about a key.

use super::*;
use ::config::{ConfigBuilder, Value, ValueKind, builder::DefaultState};

/// Prefix of the environment variables that set config keys.
const ENV_PREFIX: &str = "SWITCHBOARD__";

/// The origin config-rs's environment source gives every value it reads; I
/// give the indexed overrides the same one. The deserializer converts a
/// string of this origin to the field's type on demand; a string from the
/// file (or a built-in default) is taken as typed.
pub(super) const ENV_ORIGIN: &str = "the environment";

/// One step of a key path: `server`, `listen`, or `[0]`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Seg {
    Key(String),
    Index(usize),
}

/// `imap[0].oauth2.token_url`: the spelling of our error messages and, as it
/// happens, of config-rs's key paths.
pub(super) fn render_path(segs: &[Seg]) -> String {
    let mut out = String::new();
    for seg in segs {
        match seg {
            Seg::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            Seg::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

/// One `SWITCHBOARD__…` variable.
pub(super) struct EnvOverride {
    pub(super) var: String,
    pub(super) segs: Vec<Seg>,
    pub(super) value: String,
}

impl EnvOverride {
    fn indexed(&self) -> bool {
        self.segs.iter().any(|s| matches!(s, Seg::Index(_)))
    }
}

/// What the environment contributes.
pub(super) struct EnvLayer {
    pub(super) overrides: Vec<EnvOverride>,
    pub(super) state_directory: Option<String>,
    pub(super) credentials_directory: Option<PathBuf>,
}

pub(super) fn is_ours(var: &str) -> bool {
    var.get(..ENV_PREFIX.len())
        .is_some_and(|p| p.eq_ignore_ascii_case(ENV_PREFIX))
}

fn env_value(value: String) -> Value {
    Value::new(Some(&ENV_ORIGIN.to_string()), ValueKind::String(value))
}

impl EnvLayer {
    pub(super) fn collect(
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<EnvLayer, ConfigError> {
        let mut layer = EnvLayer {
            overrides: Vec::new(),
            state_directory: None,
            credentials_directory: None,
        };
        for (var, value) in env {
            if var == "STATE_DIRECTORY" {
                layer.state_directory = value
                    .split(':')
                    .next()
                    .filter(|d| !d.is_empty())
                    .map(String::from);
                continue;
            }
            if var == "CREDENTIALS_DIRECTORY" {
                layer.credentials_directory =
                    Some(PathBuf::from(value)).filter(|p| !p.as_os_str().is_empty());
                continue;
            }
            if !is_ours(&var) {
                continue;
            }
            let segs = parse_name(&var)?;
            layer.overrides.push(EnvOverride { var, segs, value });
        }
        // Sorted by path (indices numerically) so the first variable that
        // skips list entries is reported and the result does not depend on
        // the order of the environment.
        layer
            .overrides
            .sort_by(|a, b| a.segs.cmp(&b.segs).then_with(|| a.var.cmp(&b.var)));
        for pair in layer.overrides.windows(2) {
            if pair[0].segs == pair[1].segs {
                return Err(ConfigError::at(
                    render_path(&pair[0].segs),
                    format!(
                        "set by both environment variables {} and {}",
                        pair[0].var, pair[1].var
                    ),
                ));
            }
        }
        Ok(layer)
    }

    /// Adds the environment to `builder`, after the file so it wins: plain
    /// keys through config-rs's environment source (fed the variables read
    /// above, not the process environment), `[[imap]]` entries through
    /// `set_override`, which config-rs applies last.
    pub(super) fn add_to(
        &self,
        builder: ConfigBuilder<DefaultState>,
    ) -> Result<ConfigBuilder<DefaultState>, ConfigError> {
        let plain: ::config::Map<String, String> = self
            .overrides
            .iter()
            .filter(|ov| !ov.indexed())
            .map(|ov| (ov.var.clone(), ov.value.clone()))
            .collect();
        let mut builder = builder.add_source(
            ::config::Environment::with_prefix(&ENV_PREFIX[..ENV_PREFIX.len() - 2])
                .prefix_separator("__")
                .separator("__")
                .source(Some(plain)),
        );
        for ov in self.overrides.iter().filter(|ov| ov.indexed()) {
            builder = builder
                .set_override(render_path(&ov.segs), env_value(ov.value.clone()))
                .map_err(|e| {
                    ConfigError::general(format!("environment variable {}: {e}", ov.var))
                })?;
        }
        Ok(builder)
    }

    /// Checks the merged tree for what config-rs allows and I do not, and
    /// lets an environment secret replace the file's `X_file` (and vice
    /// versa), so env really wins for secrets.
    pub(super) fn settle(&self, root: &mut Value) -> Result<(), ConfigError> {
        for ov in &self.overrides {
            // config-rs pads a list with empty entries when an index is past
            // its end; I want `imap[5]` on a one-entry list to be an error.
            for (at, seg) in ov.segs.iter().enumerate() {
                let Seg::Index(i) = seg else { continue };
                if let Some(ValueKind::Array(items)) = lookup(root, &ov.segs[..at]).map(|v| &v.kind)
                    && let Some(len) = items.iter().position(|v| matches!(v.kind, ValueKind::Nil))
                    && *i > len
                {
                    return Err(ConfigError::at(
                        render_path(&ov.segs[..=at]),
                        format!(
                            "environment variable {} skips list entries: the list has {len}, so the next index is {len}",
                            ov.var
                        ),
                    ));
                }
            }
        }
        for ov in &self.overrides {
            let Some((Seg::Key(k), parent)) = ov.segs.split_last() else {
                continue;
            };
            let twin = match k.strip_suffix("_file") {
                Some(base) => base.to_string(),
                None => format!("{k}_file"),
            };
            if let Some(Value {
                kind: ValueKind::Table(table),
                ..
            }) = lookup_mut(root, parent)
                && table
                    .get(&twin)
                    .is_some_and(|v| v.origin() != Some(ENV_ORIGIN))
            {
                table.remove(&twin);
            }
        }
        Ok(())
    }

    /// Appends "(set by environment variable X)" when the key came from env.
    pub(super) fn annotate(&self, mut err: ConfigError) -> ConfigError {
        let Some(key) = &err.key else {
            return err;
        };
        let under = |a: &str, b: &str| {
            a == b || a.starts_with(&format!("{b}.")) || a.starts_with(&format!("{b}["))
        };
        let hit = self
            .overrides
            .iter()
            .find(|ov| under(key, &render_path(&ov.segs)))
            .or_else(|| {
                self.overrides
                    .iter()
                    .find(|ov| under(&render_path(&ov.segs), key))
            });
        if let Some(ov) = hit {
            err.message
                .push_str(&format!(" (set by environment variable {})", ov.var));
        }
        err
    }
}

/// `SWITCHBOARD__IMAP__0__PASSWORD` → `imap`, `[0]`, `password`.
fn parse_name(var: &str) -> Result<Vec<Seg>, ConfigError> {
    let bad = |why: &str| ConfigError::general(format!("environment variable {var}: {why}"));
    let mut segs = Vec::new();
    for part in var[ENV_PREFIX.len()..].split("__") {
        if part.is_empty() {
            return Err(bad(
                "empty key segment (levels are separated by exactly two underscores)",
            ));
        }
        if part.chars().all(|c| c.is_ascii_digit()) {
            if segs.is_empty() {
                return Err(bad("must start with a section name"));
            }
            let i = part.parse().map_err(|_| bad("index too large"))?;
            segs.push(Seg::Index(i));
        } else if part
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            segs.push(Seg::Key(part.to_ascii_lowercase()));
        } else {
            return Err(bad(&format!(
                "{part:?} is not a config key (letters, digits, `_` and `-` only)"
            )));
        }
    }
    Ok(segs)
}

fn lookup<'a>(root: &'a Value, segs: &[Seg]) -> Option<&'a Value> {
    segs.iter()
        .try_fold(root, |node, seg| match (&node.kind, seg) {
            (ValueKind::Table(t), Seg::Key(k)) => t.get(k),
            (ValueKind::Array(a), Seg::Index(i)) => a.get(*i),
            _ => None,
        })
}

fn lookup_mut<'a>(root: &'a mut Value, segs: &[Seg]) -> Option<&'a mut Value> {
    segs.iter()
        .try_fold(root, |node, seg| match (&mut node.kind, seg) {
            (ValueKind::Table(t), Seg::Key(k)) => t.get_mut(k),
            (ValueKind::Array(a), Seg::Index(i)) => a.get_mut(*i),
            _ => None,
        })
}
