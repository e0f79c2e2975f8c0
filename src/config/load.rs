//! Loading: defaults, the file and the environment layered, secrets read from files.

use super::*;

impl Config {
    /// Defaults → TOML file (if `path` is given) → `SWITCHBOARD__*` variables
    /// of this process (env wins) → `*_file` secrets → [`Config::validate`].
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let mut vars = Vec::new();
        for (key, value) in std::env::vars_os() {
            match (key.into_string(), value.into_string()) {
                (Ok(k), Ok(v)) => vars.push((k, v)),
                (Ok(k), Err(_)) if is_ours(&k) => {
                    return Err(ConfigError::general(format!(
                        "environment variable {k} is not valid UTF-8"
                    )));
                }
                _ => {}
            }
        }
        Config::load_with_env(path, vars)
    }

    /// Like [`Config::load`], with the environment given explicitly (tests).
    /// `STATE_DIRECTORY` and `CREDENTIALS_DIRECTORY` are taken from it too.
    ///
    /// config-rs layers the sources, in the order it applies them: the
    /// `STATE_DIRECTORY` paths as defaults, the file, the environment. Keys
    /// none of them sets take the built-in defaults of the section structs
    /// (`#[serde(default)]`), which is also how each `[[imap]]` entry gets
    /// its own.
    pub fn load_with_env(
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let env = EnvLayer::collect(env)?;
        let mut builder = ::config::Config::builder();
        if let Some(dir) = &env.state_directory {
            let dir = dir.trim_end_matches('/');
            let attachments = Path::new(dir).join("attachments");
            builder = builder
                .set_default("database.url", format!("sqlite://{dir}/switchboard.db"))
                .and_then(|b| {
                    b.set_default("attachments.dir", attachments.to_string_lossy().as_ref())
                })
                .map_err(|e| ConfigError::general(format!("STATE_DIRECTORY: {e}")))?;
        }
        if let Some(path) = path {
            let text = std::fs::read_to_string(path).map_err(|e| {
                ConfigError::general(format!("cannot read config file {}: {e}", path.display()))
            })?;
            builder =
                builder.add_source(::config::File::from_str(&text, ::config::FileFormat::Toml));
        }
        let merged = env.add_to(builder)?.build().map_err(|e| match path {
            Some(path) => {
                ConfigError::general(format!("cannot parse config file {}: {e}", path.display()))
            }
            None => ConfigError::general(e.to_string()),
        })?;
        let mut root = merged.cache;
        env.settle(&mut root)?;
        let mut config = Config::deserialize(Node(root)).map_err(|e| env.annotate(e.into()))?;
        config
            .resolve_secret_files(env.credentials_directory.as_deref())
            .map_err(|e| env.annotate(e))?;
        config.validate().map_err(|e| env.annotate(e))?;
        Ok(config)
    }

    /// `/etc/switchboard/switchboard.toml` if it exists, else `None`
    /// (built-in defaults).
    pub fn default_path() -> Option<PathBuf> {
        let path = PathBuf::from(DEFAULT_CONFIG_PATH);
        path.is_file().then_some(path)
    }

    /// Reads every `X_file` into `X` (see the module docs).
    pub(super) fn resolve_secret_files(&mut self, creds: Option<&Path>) -> Result<(), ConfigError> {
        if self.twilio.enabled {
            let t = &mut self.twilio;
            resolve_secret(
                "twilio.auth_token",
                &mut t.auth_token,
                &t.auth_token_file,
                creds,
            )?;
        }
        for (i, m) in self.imap.iter_mut().enumerate() {
            resolve_secret(
                &format!("imap[{i}].password"),
                &mut m.password,
                &m.password_file,
                creds,
            )?;
            if let Some(o) = &mut m.oauth2 {
                resolve_secret(
                    &format!("imap[{i}].oauth2.client_secret"),
                    &mut o.client_secret,
                    &o.client_secret_file,
                    creds,
                )?;
                resolve_secret(
                    &format!("imap[{i}].oauth2.refresh_token"),
                    &mut o.refresh_token,
                    &o.refresh_token_file,
                    creds,
                )?;
            }
        }
        if self.smtp.enabled() {
            let s = &mut self.smtp;
            resolve_secret("smtp.password", &mut s.password, &s.password_file, creds)?;
        }
        Ok(())
    }
}

pub(super) fn resolve_secret(
    key: &str,
    value: &mut Option<Secret>,
    file: &Option<PathBuf>,
    creds: Option<&Path>,
) -> Result<(), ConfigError> {
    let Some(path) = file else {
        return Ok(());
    };
    let name = key.rsplit('.').next().unwrap_or(key);
    if value.is_some() {
        return Err(ConfigError::at(
            key,
            format!("both `{name}` and `{name}_file` are set; give only one"),
        ));
    }
    let file_key = format!("{key}_file");
    let mut resolved = path.clone();
    let mut looked_in_creds = false;
    if let Some(dir) = creds.filter(|_| path.is_relative()) {
        looked_in_creds = true;
        let candidate = dir.join(path);
        if candidate.exists() {
            resolved = candidate;
        }
    }
    let text = std::fs::read_to_string(&resolved).map_err(|e| {
        let also = if looked_in_creds && resolved == *path {
            " (not found in $CREDENTIALS_DIRECTORY either)"
        } else {
            ""
        };
        ConfigError::at(
            &file_key,
            format!(
                "cannot read secret file {:?}{also}: {e}",
                resolved.display().to_string()
            ),
        )
    })?;
    let secret = text.trim();
    if secret.is_empty() {
        return Err(ConfigError::at(
            &file_key,
            format!("secret file {:?} is empty", resolved.display().to_string()),
        ));
    }
    *value = Some(Secret(secret.to_string()));
    Ok(())
}
