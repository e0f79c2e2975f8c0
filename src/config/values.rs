//! Value types of the configuration: secrets, durations, schedules and the small enums.

use super::*;

/// A secret string (token, password). `Debug` and `Display` print
/// `[redacted]`; call [`Secret::expose`] at the one place that needs it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub(super) String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// A duration written `500ms`, `30s`, `2m`, `1h`, `7d` (parts may be chained:
/// `1h30m`). Named `Dur` so it does not shadow `std::time::Duration`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Dur(pub std::time::Duration);

impl Dur {
    /// A duration of whole seconds.
    pub const fn from_secs(secs: u64) -> Self {
        Dur(std::time::Duration::from_secs(secs))
    }

    /// The `std` duration.
    pub const fn get(self) -> std::time::Duration {
        self.0
    }

    /// Parses `30s`, `2m`, `1h`, `7d`, `500ms`, `1h30m`.
    pub fn parse(input: &str) -> Result<Dur, String> {
        let s = input.trim();
        let bad = || {
            format!(
                "invalid duration {input:?}: expected a whole number and a unit \
                 (ms, s, m, h or d), e.g. \"30s\", \"2m\", \"1h\", \"7d\""
            )
        };
        let too_large = || format!("duration {input:?} is too large");
        if s.is_empty() {
            return Err(bad());
        }
        let mut total = std::time::Duration::ZERO;
        let mut rest = s;
        while !rest.is_empty() {
            let digits = rest
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(rest.len());
            if digits == 0 {
                return Err(bad());
            }
            let n: u64 = rest[..digits].parse().map_err(|_| too_large())?;
            rest = &rest[digits..];
            let unit_len = rest
                .find(|c: char| c.is_ascii_digit())
                .unwrap_or(rest.len());
            let secs = |per: u64| n.checked_mul(per).map(std::time::Duration::from_secs);
            let part = match &rest[..unit_len] {
                "ms" => Some(std::time::Duration::from_millis(n)),
                "s" => secs(1),
                "m" => secs(60),
                "h" => secs(3_600),
                "d" => secs(86_400),
                _ => return Err(bad()),
            }
            .ok_or_else(too_large)?;
            total = total.checked_add(part).ok_or_else(too_large)?;
            rest = &rest[unit_len..];
        }
        Ok(Dur(total))
    }
}

impl FromStr for Dur {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Dur::parse(s)
    }
}

impl From<Dur> for std::time::Duration {
    fn from(d: Dur) -> Self {
        d.0
    }
}

impl fmt::Display for Dur {
    /// The shortest exact spelling: `0s`, `500ms`, `90s`, `2m`, `7d`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.0;
        if !d.subsec_nanos().is_multiple_of(1_000_000) {
            return write!(f, "{d:?}");
        }
        if d.subsec_millis() != 0 {
            return write!(f, "{}ms", d.as_millis());
        }
        let s = d.as_secs();
        if s == 0 {
            return f.write_str("0s");
        }
        for (unit, per) in [("d", 86_400), ("h", 3_600), ("m", 60)] {
            if s.is_multiple_of(per) {
                return write!(f, "{}{unit}", s / per);
            }
        }
        write!(f, "{s}s")
    }
}

impl fmt::Debug for Dur {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Dur({self})")
    }
}

/// A cron schedule, parsed once at load so the scheduler cannot meet a bad
/// one. See the module documentation for the accepted syntax.
#[derive(Clone)]
pub struct Schedule {
    expr: String,
    cron: croner::Cron,
}

impl Schedule {
    /// Parses a 5-field crontab expression (or 6 with leading seconds).
    pub fn parse(expr: &str) -> Result<Schedule, String> {
        let expr = expr.trim();
        let parser = croner::parser::CronParser::builder()
            .seconds(croner::parser::Seconds::Optional)
            .year(croner::parser::Year::Disallowed)
            .build();
        let fields = expr.split_whitespace().count();
        if !expr.starts_with('@') && !(5..=6).contains(&fields) {
            return Err(format!(
                "invalid cron expression {expr:?}: it has {fields} fields, expected 5 \
                 (`minute hour day-of-month month day-of-week`) or 6 with a leading seconds field"
            ));
        }
        let cron = parser
            .parse(expr)
            .map_err(|e| format!("invalid cron expression {expr:?}: {e}"))?;
        Ok(Schedule {
            expr: expr.to_string(),
            cron,
        })
    }

    /// The expression as written (trimmed).
    pub fn as_str(&self) -> &str {
        &self.expr
    }

    /// The parsed schedule, for computing the next run.
    pub fn cron(&self) -> &croner::Cron {
        &self.cron
    }

    /// A built-in default; these constants are covered by a test.
    pub(super) fn builtin(expr: &'static str) -> Schedule {
        Schedule::parse(expr).expect("built-in cron expression is valid")
    }
}

impl PartialEq for Schedule {
    fn eq(&self, other: &Self) -> bool {
        self.expr == other.expr
    }
}

impl fmt::Debug for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Schedule({:?})", self.expr)
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.expr)
    }
}

impl FromStr for Schedule {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Schedule::parse(s)
    }
}

/// Transport security of an IMAP or SMTP connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Security {
    /// Implicit TLS from the first byte (IMAP 993, SMTP 465).
    Tls,
    /// Plain connection upgraded with STARTTLS (IMAP 143, SMTP 587).
    StartTls,
    /// No TLS at all; only when configured explicitly.
    Plain,
}

impl Security {
    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Security::Tls => "tls",
            Security::StartTls => "starttls",
            Security::Plain => "plain",
        }
    }
}

/// What happens to a mail on the server once it is committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AfterIngest {
    /// Set `\Seen`.
    #[default]
    Seen,
    /// Move to `move_to`.
    Move,
    /// Delete (expunge).
    Delete,
}

impl AfterIngest {
    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            AfterIngest::Seen => "seen",
            AfterIngest::Move => "move",
            AfterIngest::Delete => "delete",
        }
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Pretty,
    /// One JSON object per line (journald, log shippers).
    Json,
}

impl LogFormat {
    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            LogFormat::Pretty => "pretty",
            LogFormat::Json => "json",
        }
    }
}
