//! Field parsers used through `deserialize_with`.

use super::*;

/// Types that are written as one string in the config.
pub(super) trait ParseValue: Sized {
    fn parse_value(s: &str) -> Result<Self, String>;
}

impl ParseValue for SocketAddr {
    fn parse_value(s: &str) -> Result<Self, String> {
        s.trim()
            .parse()
            .map_err(|_| format!("invalid socket address {s:?}"))
    }
}

impl ParseValue for String {
    fn parse_value(s: &str) -> Result<Self, String> {
        Ok(s.to_string())
    }
}

impl ParseValue for PathBuf {
    fn parse_value(s: &str) -> Result<Self, String> {
        Ok(PathBuf::from(s))
    }
}

impl ParseValue for Secret {
    fn parse_value(s: &str) -> Result<Self, String> {
        Ok(Secret(s.to_string()))
    }
}

impl ParseValue for Dur {
    fn parse_value(s: &str) -> Result<Self, String> {
        Dur::parse(s)
    }
}

impl ParseValue for Schedule {
    fn parse_value(s: &str) -> Result<Self, String> {
        Schedule::parse(s)
    }
}

impl ParseValue for phonenumber::country::Id {
    fn parse_value(s: &str) -> Result<Self, String> {
        let code = s.trim().to_ascii_uppercase();
        let bad =
            || format!("unknown region code {s:?}: expected a two-letter code such as US or GB");
        if code.len() != 2 || !code.chars().all(|c| c.is_ascii_alphabetic()) {
            return Err(bad());
        }
        code.parse().map_err(|_| bad())
    }
}

macro_rules! deserialize_via_parse_value {
    ($($t:ty),*) => {$(
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                de_parsed(d)
            }
        }
    )*};
}
deserialize_via_parse_value!(Secret, Dur, Schedule);

pub(super) fn de_parsed<'de, D: de::Deserializer<'de>, T: ParseValue>(d: D) -> Result<T, D::Error> {
    let s = String::deserialize(d)?;
    T::parse_value(&s).map_err(de::Error::custom)
}

/// `""` (or only whitespace) is `None`.
pub(super) fn de_opt_parsed<'de, D: de::Deserializer<'de>, T: ParseValue>(
    d: D,
) -> Result<Option<T>, D::Error> {
    let s = String::deserialize(d)?;
    if s.trim().is_empty() {
        Ok(None)
    } else {
        T::parse_value(&s).map(Some).map_err(de::Error::custom)
    }
}

pub(super) fn de_url<'de, D: de::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let s = String::deserialize(d)?;
    Ok(s.trim().trim_end_matches('/').to_string())
}

pub(super) fn de_extensions<'de, D: de::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let list = Vec::<String>::deserialize(d)?;
    Ok(list
        .into_iter()
        .map(|e| e.trim().trim_start_matches('.').to_lowercase())
        .collect())
}
