//! The merged tree of file values and the environment layer over it.

use super::*;

/// One step of a key path: `server`, `listen`, or `[0]`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Seg {
    Key(String),
    Index(usize),
}

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

/// The merged configuration before it is typed. File leaves keep their TOML
/// type; environment leaves are strings that the deserializer converts only
/// when the target field asks for a bool, a number or a list.
#[derive(Debug, Clone)]
pub(super) enum Node {
    Table(BTreeMap<String, Node>),
    Array(Vec<Node>),
    /// A scalar from the file (never a table or array).
    File(toml::Value),
    /// A value from the environment.
    Env(String),
}

impl Node {
    pub(super) fn from_toml(v: toml::Value) -> Node {
        match v {
            toml::Value::Table(t) => Node::Table(
                t.into_iter()
                    .map(|(k, v)| (k, Node::from_toml(v)))
                    .collect(),
            ),
            toml::Value::Array(a) => Node::Array(a.into_iter().map(Node::from_toml).collect()),
            other => Node::File(other),
        }
    }

    pub(super) fn unexpected(&self) -> Unexpected<'_> {
        match self {
            Node::Table(_) => Unexpected::Map,
            Node::Array(_) => Unexpected::Seq,
            Node::Env(s) => Unexpected::Str(s),
            Node::File(v) => match v {
                toml::Value::String(s) => Unexpected::Str(s),
                toml::Value::Integer(i) => Unexpected::Signed(*i),
                toml::Value::Float(f) => Unexpected::Float(*f),
                toml::Value::Boolean(b) => Unexpected::Bool(*b),
                toml::Value::Datetime(_) => Unexpected::Other("datetime"),
                toml::Value::Array(_) => Unexpected::Seq,
                toml::Value::Table(_) => Unexpected::Map,
            },
        }
    }
}

/// One `SWITCHBOARD__…` variable.
pub(super) struct EnvOverride {
    pub(super) var: String,
    pub(super) segs: Vec<Seg>,
    pub(super) value: String,
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
            let mut segs = Vec::new();
            for part in var[ENV_PREFIX.len()..].split("__") {
                if part.is_empty() {
                    return Err(ConfigError::general(format!(
                        "environment variable {var}: empty key segment (levels are separated by exactly two underscores)"
                    )));
                }
                if part.chars().all(|c| c.is_ascii_digit()) {
                    if segs.is_empty() {
                        return Err(ConfigError::general(format!(
                            "environment variable {var}: must start with a section name"
                        )));
                    }
                    let i = part.parse().map_err(|_| {
                        ConfigError::general(format!("environment variable {var}: index too large"))
                    })?;
                    segs.push(Seg::Index(i));
                } else {
                    segs.push(Seg::Key(part.to_lowercase()));
                }
            }
            layer.overrides.push(EnvOverride { var, segs, value });
        }
        // Sorted by path (indices numerically) so `[[imap]]` entries are
        // created in order and the result does not depend on env order.
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

/// Lays one environment value onto the tree, creating tables and list
/// entries on the way.
pub(super) fn insert_env(
    node: &mut Node,
    segs: &[Seg],
    walked: &mut Vec<Seg>,
    ov: &EnvOverride,
) -> Result<(), ConfigError> {
    let Some((seg, rest)) = segs.split_first() else {
        *node = Node::Env(ov.value.clone());
        return Ok(());
    };
    let empty_for = |rest: &[Seg]| match rest.first() {
        Some(Seg::Index(_)) => Node::Array(Vec::new()),
        Some(Seg::Key(_)) => Node::Table(BTreeMap::new()),
        None => Node::Env(String::new()),
    };
    match (node, seg) {
        (Node::Table(table), Seg::Key(k)) => {
            if rest.is_empty() {
                // `X` from env replaces the file's `X_file`, and vice versa.
                let twin = match k.strip_suffix("_file") {
                    Some(base) => base.to_string(),
                    None => format!("{k}_file"),
                };
                if matches!(table.get(&twin), Some(Node::File(_))) {
                    table.remove(&twin);
                }
            }
            let child = table.entry(k.clone()).or_insert_with(|| empty_for(rest));
            walked.push(seg.clone());
            insert_env(child, rest, walked, ov)
        }
        (Node::Array(items), Seg::Index(i)) => {
            if *i == items.len() {
                items.push(empty_for(rest));
            }
            let len = items.len();
            let Some(child) = items.get_mut(*i) else {
                walked.push(seg.clone());
                return Err(ConfigError::at(
                    render_path(walked),
                    format!(
                        "environment variable {} skips list entries: the list has {len}, so the next index is {len}",
                        ov.var
                    ),
                ));
            };
            walked.push(seg.clone());
            insert_env(child, rest, walked, ov)
        }
        (existing, _) => {
            let what = match seg {
                Seg::Key(_) => "a table",
                Seg::Index(_) => "a list",
            };
            let kind = match existing {
                Node::Table(_) => "a table",
                Node::Array(_) => "a list",
                Node::File(_) | Node::Env(_) => "a single value",
            };
            Err(ConfigError::at(
                render_path(walked),
                format!(
                    "environment variable {} treats this key as {what}, but it is {kind}",
                    ov.var
                ),
            ))
        }
    }
}

/// Sets `section.key` unless it is already there (the `STATE_DIRECTORY`
/// defaults).
pub(super) fn set_if_absent(root: &mut Node, section: &str, key: &str, value: String) {
    if let Node::Table(top) = root
        && let Node::Table(sec) = top
            .entry(section.to_string())
            .or_insert_with(|| Node::Table(BTreeMap::new()))
    {
        sec.entry(key.to_string())
            .or_insert(Node::File(toml::Value::String(value)));
    }
}
