//! Bodies and attachments: the text and HTML parts, files and their names.

use super::*;

/// (text, html): text/plain preferred, else the HTML as text.
pub(super) fn bodies(msg: &Message<'_>) -> (String, Option<String>) {
    let part = |id: &u32| msg.parts.get(*id as usize);
    let mut text_parts: Vec<Cow<'_, str>> = Vec::new();
    for p in msg.text_body.iter().filter_map(part) {
        match &p.body {
            PartType::Text(t) => text_parts.push(Cow::Borrowed(t.as_ref())),
            PartType::Html(h) => text_parts.push(Cow::Owned(html_to_text(h))),
            _ => {}
        }
    }
    let html_parts: Vec<&str> = msg
        .html_body
        .iter()
        .filter_map(part)
        .filter_map(|p| match &p.body {
            PartType::Html(h) => Some(h.as_ref()),
            _ => None,
        })
        .collect();
    if text_parts.iter().all(|t| t.trim().is_empty()) {
        text_parts = html_parts
            .iter()
            .map(|h| Cow::Owned(html_to_text(h)))
            .collect();
    }
    let joined: Vec<String> = text_parts
        .iter()
        .map(|t| normalize_newlines(t))
        .map(|t| t.trim_end().to_string())
        .filter(|t| !t.trim().is_empty())
        .collect();
    let text = trim_leading_blank_lines(&joined.join("\n\n")).to_string();
    let html = (!html_parts.is_empty()).then(|| html_parts.join("\n").replace('\0', ""));
    (text, html)
}

pub(super) fn trim_leading_blank_lines(s: &str) -> &str {
    let mut start = 0;
    for line in s.split_inclusive('\n') {
        if line.trim().is_empty() {
            start += line.len();
        } else {
            break;
        }
    }
    s.get(start..).unwrap_or("")
}

/// `\r\n` and lone `\r` to `\n`; NUL removed.
pub(super) fn normalize_newlines(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' => {
                if chars.peek() == Some(&'\n') {
                    chars.next();
                }
                out.push('\n');
            }
            '\0' => {}
            _ => out.push(c),
        }
    }
    out
}

pub(super) fn attachments(msg: &Message<'_>) -> Vec<Attachment> {
    let mut out = Vec::new();
    for part in msg
        .attachments
        .iter()
        .filter_map(|id| msg.parts.get(*id as usize))
    {
        let content_type = content_type_of(part);
        let content_id = part
            .content_id()
            .map(|id| id.trim().trim_matches(['<', '>']).trim().to_string())
            .filter(|id| !id.is_empty());
        let disposition = part
            .content_disposition()
            .map(|d| d.ctype().to_ascii_lowercase());
        let inline = match disposition.as_deref() {
            Some("inline") => true,
            Some(_) => false,
            None => content_id.is_some(),
        };
        let (data, fallback_name) = match &part.body {
            PartType::Multipart(_) => continue,
            PartType::Text(t) | PartType::Html(t) => (t.as_bytes().to_vec(), None),
            PartType::Binary(b) | PartType::InlineBinary(b) => (b.to_vec(), None),
            PartType::Message(inner) => {
                // With no transfer encoding, mail-parser parses the nested
                // message in place and its `raw_message` is the *outer*
                // message: slice the part out of it instead.
                let data = if part.encoding == Encoding::None {
                    msg.raw_message
                        .get(part.offset_body as usize..part.offset_end as usize)
                        .map(<[u8]>::to_vec)
                        .unwrap_or_default()
                } else {
                    inner.raw_message.to_vec()
                };
                let name = inner
                    .subject()
                    .map(one_line)
                    .filter(|s| !s.is_empty())
                    .map(|s| format!("{}.eml", truncate_bytes(&s, 100)))
                    .unwrap_or_else(|| "forwarded.eml".to_string());
                (data, Some(name))
            }
        };
        let name = part.attachment_name().map(str::to_string).or(fallback_name);
        out.push(Attachment {
            filename: sanitize_filename(name.as_deref(), &content_type),
            content_type,
            data,
            inline,
            content_id,
        });
    }
    out
}

pub(super) fn content_type_of(part: &MessagePart<'_>) -> String {
    if let Some(ct) = part.content_type() {
        let t = ct.ctype().trim().to_ascii_lowercase();
        if !t.is_empty() {
            let sub = ct
                .subtype()
                .map(|s| s.trim().to_ascii_lowercase())
                .filter(|s| !s.is_empty());
            return match sub {
                Some(sub) => format!("{t}/{sub}"),
                None if t == "text" => "text/plain".into(),
                None => "application/octet-stream".into(),
            };
        }
    }
    match part.body {
        PartType::Text(_) => "text/plain".into(),
        PartType::Html(_) => "text/html".into(),
        PartType::Message(_) => "message/rfc822".into(),
        _ => "application/octet-stream".into(),
    }
}

/// Last path component, no control or bidi characters, no leading dots, at
/// most [`MAX_FILENAME_LEN`] bytes (extension kept); never empty.
pub(super) fn sanitize_filename(name: Option<&str>, content_type: &str) -> String {
    let name = name.unwrap_or("");
    let last = name.rsplit(['/', '\\']).next().unwrap_or("");
    let cleaned: String = last
        .chars()
        .filter(|c| !c.is_control() && !is_bidi_control(*c) && !is_invisible(*c))
        .collect();
    let cleaned = cleaned
        .trim()
        .trim_start_matches('.')
        .trim_end_matches(['.', ' '])
        .trim();
    if cleaned.is_empty() {
        return format!("attachment.{}", extension_for(content_type));
    }
    if cleaned.len() <= MAX_FILENAME_LEN {
        return cleaned.to_string();
    }
    match cleaned.rsplit_once('.') {
        Some((stem, ext)) if !ext.is_empty() && ext.len() <= 16 => {
            format!(
                "{}.{ext}",
                truncate_bytes(stem, MAX_FILENAME_LEN - ext.len() - 1)
            )
        }
        _ => truncate_bytes(cleaned, MAX_FILENAME_LEN).to_string(),
    }
}

pub(super) fn truncate_bytes(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// The extension for a content type when the mail gave no file name: the
/// attachment rules' own (`crate::attachments::extension_for`), then the
/// text-like types a mail carries, else `bin`.
pub(super) fn extension_for(content_type: &str) -> &'static str {
    if let Some(ext) = crate::attachments::extension_for(content_type) {
        return ext;
    }
    match content_type {
        "image/pjpeg" => "jpg",
        "text/html" => "html",
        "text/calendar" => "ics",
        "text/csv" => "csv",
        "message/rfc822" | "message/global" => "eml",
        t if t.starts_with("text/") || t.starts_with("message/") => "txt",
        _ => "bin",
    }
}
