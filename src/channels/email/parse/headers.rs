//! Headers: raw values, unfolding, Message-IDs, addresses, dates.

use super::*;

/// The root part's header fields as (lower-case name, raw unfolded value).
pub(super) fn raw_headers(msg: &Message<'_>) -> Vec<(String, String)> {
    let Some(root) = msg.parts.first() else {
        return Vec::new();
    };
    root.headers
        .iter()
        .map(|h| {
            let value = msg
                .raw_message
                .get(h.offset_start as usize..h.offset_end as usize)
                .map(String::from_utf8_lossy)
                .unwrap_or_default();
            (h.name.as_str().to_ascii_lowercase(), unfold(&value))
        })
        .collect()
}

pub(super) fn header_values<'a>(
    headers: &'a [(String, String)],
    name: &'a str,
) -> impl Iterator<Item = &'a str> + 'a {
    headers
        .iter()
        .filter(move |(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// Joins folded lines and trims.
pub(super) fn unfold(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for (i, line) in value.split('\n').enumerate() {
        let line = line.trim_end_matches('\r');
        if i > 0 {
            out.push(' ');
        }
        out.push_str(line.trim());
    }
    out.trim().to_string()
}

/// Message ids in a header value, without brackets: the `<…>` tokens, or,
/// for clients that forget the brackets, the words that contain an `@`.
pub(super) fn ids_in(value: &str) -> Vec<String> {
    let mut ids = Vec::new();
    let mut rest = value;
    let mut bracketed = false;
    while let Some(start) = rest.find('<') {
        let after = &rest[start + 1..];
        let Some(end) = after.find('>') else { break };
        bracketed = true;
        push_id(&mut ids, &after[..end]);
        rest = &after[end + 1..];
    }
    if !bracketed {
        for word in value.split(|c: char| c.is_whitespace() || c == ',') {
            if word.contains('@') {
                push_id(&mut ids, word);
            }
        }
    }
    ids
}

pub(super) fn push_id(ids: &mut Vec<String>, raw: &str) {
    let id: String = raw
        .chars()
        .filter(|c| !c.is_whitespace() && !c.is_control() && *c != '<' && *c != '>')
        .collect();
    if !id.is_empty() && id.len() <= MAX_ID_LEN {
        ids.push(id);
    }
}

pub(super) fn dedup(ids: impl Iterator<Item = String>) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    ids.filter(|id| seen.insert(id.clone())).collect()
}

/// A plausible addr-spec, lower-cased; `None` otherwise.
pub(super) fn clean_address(raw: &str) -> Option<String> {
    let a = raw
        .trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .trim();
    let (local, domain) = a.rsplit_once('@')?;
    let ok = !local.is_empty()
        && !domain.is_empty()
        && a.len() <= 320
        && !a.chars().any(|c| c.is_whitespace() || c.is_control());
    ok.then(|| a.to_lowercase())
}

/// One display line: control characters (CR, LF, NUL, …) and bidi
/// overrides become spaces or vanish, whitespace runs collapse, trimmed.
pub(super) fn one_line(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut space = false;
    for c in s.chars() {
        if c.is_whitespace() || c.is_control() {
            space = true;
        } else if is_bidi_control(c) {
            continue;
        } else {
            if space && !out.is_empty() {
                out.push(' ');
            }
            space = false;
            out.push(c);
        }
    }
    out
}

pub(super) fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

pub(super) fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}' | '\u{034F}' | '\u{180E}' | '\u{200B}' | '\u{200C}' | '\u{2060}' | '\u{FEFF}'
    )
}

pub(super) fn to_chrono(d: &mail_parser::DateTime) -> Option<DateTime<Utc>> {
    if !d.is_valid() {
        return None;
    }
    let local = NaiveDate::from_ymd_opt(i32::from(d.year), u32::from(d.month), u32::from(d.day))?
        .and_hms_opt(u32::from(d.hour), u32::from(d.minute), u32::from(d.second))?;
    let secs = i32::from(d.tz_hour) * 3600 + i32::from(d.tz_minute) * 60;
    let offset = FixedOffset::east_opt(if d.tz_before_gmt { -secs } else { secs })?;
    Some(
        offset
            .from_local_datetime(&local)
            .single()?
            .with_timezone(&Utc),
    )
}
