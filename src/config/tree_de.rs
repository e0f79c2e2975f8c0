//! The serde deserializer over the merged tree, with key paths in its errors.

use super::*;

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

pub(super) struct TableAccess {
    pub(super) iter: std::collections::btree_map::IntoIter<String, Node>,
    pub(super) pending: Option<(String, Node)>,
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
        seed.deserialize(value).map_err(|e| e.at(Seg::Key(key)))
    }
}

pub(super) struct ArrayAccess {
    pub(super) iter: std::iter::Enumerate<std::vec::IntoIter<Node>>,
}

impl<'de> SeqAccess<'de> for ArrayAccess {
    type Error = DeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DeError> {
        match self.iter.next() {
            None => Ok(None),
            Some((i, node)) => seed
                .deserialize(node)
                .map(Some)
                .map_err(|e| e.at(Seg::Index(i))),
        }
    }
}

pub(super) fn visit_array<'de, V: Visitor<'de>>(
    items: Vec<Node>,
    visitor: V,
) -> Result<V::Value, DeError> {
    visitor.visit_seq(ArrayAccess {
        iter: items.into_iter().enumerate(),
    })
}

/// Integers from the environment: parsed only because the field wants one.
pub(super) fn visit_env_int<'de, V: Visitor<'de>>(
    s: &str,
    visitor: V,
) -> Result<V::Value, DeError> {
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
            match self {
                Node::Env(s) => visit_env_int(&s, visitor),
                other => other.deserialize_any(visitor),
            }
        }
    )*};
}

impl<'de> de::Deserializer<'de> for Node {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self {
            Node::Table(t) => visitor.visit_map(TableAccess {
                iter: t.into_iter(),
                pending: None,
            }),
            Node::Array(a) => visit_array(a, visitor),
            Node::Env(s) => visitor.visit_string(s),
            Node::File(v) => match v {
                toml::Value::String(s) => visitor.visit_string(s),
                toml::Value::Integer(i) => visitor.visit_i64(i),
                toml::Value::Float(f) => visitor.visit_f64(f),
                toml::Value::Boolean(b) => visitor.visit_bool(b),
                toml::Value::Datetime(d) => visitor.visit_string(d.to_string()),
                nested @ (toml::Value::Array(_) | toml::Value::Table(_)) => {
                    Node::from_toml(nested).deserialize_any(visitor)
                }
            },
        }
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self {
            Node::Env(s) => match s.trim().to_ascii_lowercase().as_str() {
                "true" | "yes" | "on" | "1" => visitor.visit_bool(true),
                "false" | "no" | "off" | "0" => visitor.visit_bool(false),
                _ => Err(de::Error::invalid_value(
                    Unexpected::Str(&s),
                    &"true or false",
                )),
            },
            other => other.deserialize_any(visitor),
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
        match self {
            Node::Env(s) => match s.trim().parse::<f64>() {
                Ok(f) => visitor.visit_f64(f),
                Err(_) => Err(de::Error::invalid_value(Unexpected::Str(&s), &"a number")),
            },
            other => other.deserialize_any(visitor),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        // Absence is handled by `#[serde(default)]`; `""` by `de_opt_parsed`.
        visitor.visit_some(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self {
            Node::Env(s) => {
                let items = if s.trim().is_empty() {
                    Vec::new()
                } else {
                    s.split(',')
                        .map(|p| Node::Env(p.trim().to_string()))
                        .collect()
                };
                visit_array(items, visitor)
            }
            Node::Table(_) => Err(de::Error::invalid_type(
                Unexpected::Map,
                &"a list (a list of tables is written [[name]], once per entry)",
            )),
            other => other.deserialize_any(visitor),
        }
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self {
            Node::Table(_) => self.deserialize_any(visitor),
            other => Err(de::Error::invalid_type(other.unexpected(), &"a table")),
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
        match self {
            Node::Env(s) | Node::File(toml::Value::String(s)) => visitor.visit_enum(
                de::value::StringDeserializer::<DeError>::new(s.trim().to_string()),
            ),
            other => Err(de::Error::invalid_type(other.unexpected(), &"a string")),
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
