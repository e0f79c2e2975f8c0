//! The serde deserializer over config-rs's merged tree, with key paths and
//! strict file types.
//!
//! Why not `config::Config::try_deserialize`: config-rs converts between
//! types whatever a value's source. It reads the *file's* `max_connections =
//! "8"` as 8 and `from = 15550100` as the string `"15550100"`, so the file
//! stops being typed; and an unknown key is reported at its table
//! (`server`) without its own name. This deserializer walks the same
//! [`Value`] tree but looks at each value's origin: a string that came from
//! the environment becomes a bool, an integer or a comma-separated list *only
//! when the field being filled asks for one* (so `"+15550100"` stays a
//! string), and everything else must already have the field's type. It also
//! records the path as it descends, so every error names the full dotted key,
//! `imap[0].oauth2.token_url` style, unknown keys included.

use super::*;
use ::config::{Value, ValueKind};

/// A value of the merged tree, as a serde `Deserializer`.
pub(super) struct Node(pub(super) Value);

impl Node {
    /// A string that came from a `SWITCHBOARD__…` variable.
    fn env_str(&self) -> Option<&str> {
        match &self.0.kind {
            ValueKind::String(s) if self.0.origin() == Some(ENV_ORIGIN) => Some(s),
            _ => None,
        }
    }

    fn unexpected(&self) -> Unexpected<'_> {
        match &self.0.kind {
            ValueKind::Nil => Unexpected::Unit,
            ValueKind::Boolean(b) => Unexpected::Bool(*b),
            ValueKind::I64(i) => Unexpected::Signed(*i),
            ValueKind::I128(_) | ValueKind::U128(_) => Unexpected::Other("a 128-bit integer"),
            ValueKind::U64(u) => Unexpected::Unsigned(*u),
            ValueKind::Float(f) => Unexpected::Float(*f),
            ValueKind::String(s) => Unexpected::Str(s),
            ValueKind::Table(_) => Unexpected::Map,
            ValueKind::Array(_) => Unexpected::Seq,
        }
    }
}

/// A deserialization error with the path where it happened. Each level
/// prepends its own step as the error travels outwards.
#[derive(Debug)]
pub(super) struct DeError {
    pub(super) path: Vec<Seg>,
    pub(super) message: String,
}

impl DeError {
    pub(super) fn at(mut self, seg: Seg) -> Self {
        self.path.insert(0, seg);
        self
    }
}

impl fmt::Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for DeError {}

impl de::Error for DeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        DeError {
            path: Vec::new(),
            message: msg.to_string(),
        }
    }

    // The key itself is added to the path by `TableAccess::next_key_seed`.
    fn unknown_field(_field: &str, expected: &'static [&'static str]) -> Self {
        let message = if expected.is_empty() {
            "unknown key".to_string()
        } else {
            format!("unknown key (expected one of: {})", expected.join(", "))
        };
        DeError {
            path: Vec::new(),
            message,
        }
    }

    fn missing_field(field: &'static str) -> Self {
        DeError {
            path: vec![Seg::Key(field.to_string())],
            message: "is required".to_string(),
        }
    }
}

impl From<DeError> for ConfigError {
    fn from(e: DeError) -> Self {
        ConfigError {
            key: (!e.path.is_empty()).then(|| render_path(&e.path)),
            message: e.message,
        }
    }
}

/// A table's entries in key order (config-rs keeps them in a `HashMap`), so
/// the first problem reported does not depend on hashing.
struct TableAccess {
    iter: std::collections::btree_map::IntoIter<String, Value>,
    pending: Option<(String, Value)>,
}

impl<'de> MapAccess<'de> for TableAccess {
    type Error = DeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DeError> {
        let Some((key, value)) = self.iter.next() else {
            return Ok(None);
        };
        let k = seed
            .deserialize(de::value::StringDeserializer::<DeError>::new(key.clone()))
            .map_err(|e| e.at(Seg::Key(key.clone())))?;
        self.pending = Some((key, value));
        Ok(Some(k))
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, DeError> {
        let (key, value) = self
            .pending
            .take()
            .ok_or_else(|| <DeError as de::Error>::custom("value requested before its key"))?;
        seed.deserialize(Node(value))
            .map_err(|e| e.at(Seg::Key(key)))
    }
}

struct ArrayAccess {
    iter: std::iter::Enumerate<std::vec::IntoIter<Value>>,
}

impl<'de> SeqAccess<'de> for ArrayAccess {
    type Error = DeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DeError> {
        match self.iter.next() {
            None => Ok(None),
            Some((i, value)) => seed
                .deserialize(Node(value))
                .map(Some)
                .map_err(|e| e.at(Seg::Index(i))),
        }
    }
}

fn visit_array<'de, V: Visitor<'de>>(items: Vec<Value>, visitor: V) -> Result<V::Value, DeError> {
    visitor.visit_seq(ArrayAccess {
        iter: items.into_iter().enumerate(),
    })
}

/// Integers from the environment: parsed only because the field wants one.
fn visit_env_int<'de, V: Visitor<'de>>(s: &str, visitor: V) -> Result<V::Value, DeError> {
    let t = s.trim();
    if t.starts_with('-') {
        match t.parse::<i64>() {
            Ok(n) => visitor.visit_i64(n),
            Err(_) => Err(de::Error::invalid_value(Unexpected::Str(s), &"an integer")),
        }
    } else {
        match t.parse::<u64>() {
            Ok(n) => visitor.visit_u64(n),
            Err(_) => Err(de::Error::invalid_value(Unexpected::Str(s), &"an integer")),
        }
    }
}

macro_rules! env_coercing_ints {
    ($($method:ident)*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
            match self.env_str() {
                Some(s) => visit_env_int(s, visitor),
                None => self.deserialize_any(visitor),
            }
        }
    )*};
}

impl<'de> de::Deserializer<'de> for Node {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.0.kind {
            ValueKind::Table(t) => visitor.visit_map(TableAccess {
                iter: t.into_iter().collect::<BTreeMap<_, _>>().into_iter(),
                pending: None,
            }),
            ValueKind::Array(a) => visit_array(a, visitor),
            ValueKind::String(s) => visitor.visit_string(s),
            ValueKind::I64(i) => visitor.visit_i64(i),
            ValueKind::I128(i) => visitor.visit_i128(i),
            ValueKind::U64(u) => visitor.visit_u64(u),
            ValueKind::U128(u) => visitor.visit_u128(u),
            ValueKind::Float(f) => visitor.visit_f64(f),
            ValueKind::Boolean(b) => visitor.visit_bool(b),
            ValueKind::Nil => visitor.visit_unit(),
        }
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let Some(s) = self.env_str() else {
            return self.deserialize_any(visitor);
        };
        match s.trim().to_ascii_lowercase().as_str() {
            "true" | "yes" | "on" | "1" => visitor.visit_bool(true),
            "false" | "no" | "off" | "0" => visitor.visit_bool(false),
            _ => Err(de::Error::invalid_value(
                Unexpected::Str(s),
                &"true or false",
            )),
        }
    }

    env_coercing_ints!(
        deserialize_i8 deserialize_i16 deserialize_i32 deserialize_i64 deserialize_i128
        deserialize_u8 deserialize_u16 deserialize_u32 deserialize_u64 deserialize_u128
    );

    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_f64(visitor)
    }

    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let Some(s) = self.env_str() else {
            return self.deserialize_any(visitor);
        };
        match s.trim().parse::<f64>() {
            Ok(f) => visitor.visit_f64(f),
            Err(_) => Err(de::Error::invalid_value(Unexpected::Str(s), &"a number")),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        // Absence is handled by `#[serde(default)]`; `""` by `de_opt_parsed`.
        visitor.visit_some(self)
    }

    /// The string-or-list rule for list keys: an environment string is a
    /// comma-separated list (items trimmed, `""` is empty).
    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        if let Some(s) = self.env_str() {
            let items = if s.trim().is_empty() {
                Vec::new()
            } else {
                s.split(',')
                    .map(|p| Value::new(Some(&ENV_ORIGIN.to_string()), p.trim()))
                    .collect()
            };
            return visit_array(items, visitor);
        }
        match self.0.kind {
            ValueKind::Table(_) => Err(de::Error::invalid_type(
                Unexpected::Map,
                &"a list (a list of tables is written [[name]], once per entry)",
            )),
            _ => self.deserialize_any(visitor),
        }
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.0.kind {
            ValueKind::Table(_) => self.deserialize_any(visitor),
            _ => Err(de::Error::invalid_type(self.unexpected(), &"a table")),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_map(visitor)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        match self.0.kind {
            ValueKind::String(s) => visitor.visit_enum(
                de::value::StringDeserializer::<DeError>::new(s.trim().to_string()),
            ),
            _ => Err(de::Error::invalid_type(self.unexpected(), &"a string")),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_unit()
    }

    serde::forward_to_deserialize_any! {
        char str string bytes byte_buf unit unit_struct tuple tuple_struct identifier
    }
}
