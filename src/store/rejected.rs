//! The rejected log: what was refused at the door, capped and grouped.

use super::*;

/// How many characters of a caller-supplied value the rejected log keeps.
pub const REJECTED_FIELD_CHARS: usize = 64;

/// How many characters of `key` the rejected log keeps: our own texts
/// (`error`, `expected_url`) and a signed poison message's `body` get
/// more than a caller-supplied identifier does.
fn rejected_field_cap(key: &str) -> usize {
    match key {
        "body" => domain::text::SMS_MAX_CHARS,
        "error" => 512,
        "expected_url" => 256,
        _ => REJECTED_FIELD_CHARS,
    }
}

/// `detail` with every string cut to its cap (see `record_rejected`);
/// nested values are capped too, and an array keeps its first 16 items.
fn cap_detail(detail: &serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    fn cap(key: &str, v: &Value) -> (Value, Option<usize>) {
        match v {
            Value::String(s) => {
                let (kept, len) = domain::text::capped(s, rejected_field_cap(key));
                (Value::String(kept), len)
            }
            Value::Array(items) => (
                Value::Array(items.iter().take(16).map(|i| cap(key, i).0).collect()),
                (items.len() > 16).then_some(items.len()),
            ),
            Value::Object(map) => {
                let mut out = serde_json::Map::new();
                for (k, v) in map.iter().take(32) {
                    let (kept, len) = cap(k, v);
                    let (k, _) = domain::text::capped(k, REJECTED_FIELD_CHARS);
                    if let Some(len) = len {
                        out.insert(format!("{k}_length"), Value::from(len));
                    }
                    out.insert(k, kept);
                }
                (Value::Object(out), None)
            }
            other => (other.clone(), None),
        }
    }
    cap("", detail).0
}

/// Repeats of one rejection from one source within this long share a row.
pub const REJECTED_GROUPING: Duration = Duration::from_secs(3600);
impl Store {
    /// Keeps an inbound that could not be ingested, with the reason.
    ///
    /// Anyone can make a rejection (an unsigned POST is one), so what is
    /// kept is bounded here, once for every caller: each string in `detail`
    /// is cut to [`REJECTED_FIELD_CHARS`] characters (a few fields of ours
    /// get more, see [`rejected_field_cap`]) and its original length is
    /// kept beside it as `<field>_length`. Old rows are purged by the
    /// housekeeping job (`retention.rejected`).
    pub async fn record_rejected(
        &self,
        kind: &str,
        reason: &str,
        detail: &serde_json::Value,
    ) -> Result<i64, StoreError> {
        self.record_rejected_from(kind, reason, None, detail).await
    }

    /// Records a rejection from `source` (a client address): a repeat of
    /// the same kind and reason from the same source within
    /// [`REJECTED_GROUPING`] adds one to the newest such row instead of
    /// writing another, so a flood costs a counter, not disk.
    pub async fn record_rejected_from(
        &self,
        kind: &str,
        reason: &str,
        source: Option<&str>,
        detail: &serde_json::Value,
    ) -> Result<i64, StoreError> {
        let now = now();
        let since = now - chrono::Duration::from_std(REJECTED_GROUPING).unwrap_or_default();
        let detail = cap_detail(detail);
        let source = source.map(|s| domain::text::capped(s, REJECTED_FIELD_CHARS).0);
        write_tx!(self, |c, q| {
            let grouped = match source.as_deref() {
                Some(src) => q::repeat_rejected(c, kind, reason, src, since, now).await,
                None => Ok(None),
            };
            match grouped {
                Ok(Some(id)) => Ok(id),
                Ok(None) => {
                    q::insert_rejected(c, kind, reason, source.as_deref(), &detail, now).await
                }
                Err(e) => Err(e),
            }
        })
    }

    /// Retention: deletes rejected-log rows received before `before`.
    pub async fn purge_rejected(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        write_tx!(self, |c, q| q::purge_rejected(c, before).await)
    }

    pub async fn list_rejected(
        &self,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<Rejected>, StoreError> {
        read!(self, |c, q| q::list_rejected(c, before, limit).await)
    }
}

#[cfg(test)]
mod cap_tests {
    use serde_json::json;

    #[test]
    fn rejected_details_are_capped_with_their_length() {
        let sid = "S".repeat(60_000);
        let capped = super::cap_detail(&json!({
            "message_sid": sid,
            "path": "/webhooks/twilio/sms",
            "size": 12,
            "error": "e".repeat(600),
        }));
        assert_eq!(capped["message_sid"].as_str().unwrap().len(), 64);
        assert_eq!(capped["message_sid_length"], 60_000);
        assert_eq!(capped["path"], "/webhooks/twilio/sms");
        assert!(capped.get("path_length").is_none());
        assert_eq!(capped["size"], 12);
        assert_eq!(capped["error"].as_str().unwrap().len(), 512);
        assert!(capped.to_string().len() < 1_000);
    }
}
