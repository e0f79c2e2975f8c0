//! Automated mail and bounces: auto-replies, DSNs and legacy bounce texts.

use super::*;

/// `report-type` of a root `multipart/report`, lower-cased. A report
/// without the parameter but with a delivery-status part is a bounce.
pub(super) fn report_type(msg: &Message<'_>) -> Option<String> {
    let ct = msg.parts.first()?.content_type()?;
    if !ct.ctype().eq_ignore_ascii_case("multipart")
        || !ct
            .subtype()
            .is_some_and(|s| s.eq_ignore_ascii_case("report"))
    {
        return None;
    }
    if let Some(t) = ct.attribute("report-type") {
        return Some(t.trim().to_ascii_lowercase());
    }
    msg.parts
        .iter()
        .any(is_delivery_status)
        .then(|| "delivery-status".to_string())
}

pub(super) fn is_delivery_status(part: &MessagePart<'_>) -> bool {
    part.is_content_type("message", "delivery-status")
        || part.is_content_type("message", "global-delivery-status")
}

pub(super) fn is_null_path(value: &str) -> bool {
    let v: String = strip_comments(value)
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    v == "<>"
}

/// Removes RFC 5322 `(comments)` (not nested-aware beyond depth counting).
pub(super) fn strip_comments(value: &str) -> String {
    let mut depth = 0usize;
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out
}

pub(super) fn detect_automated(
    headers: &[(String, String)],
    report_type: Option<&str>,
    return_path_empty: bool,
    from_local: &str,
) -> Option<Automated> {
    match report_type {
        Some("delivery-status") => return Some(Automated::Bounce),
        Some("disposition-notification") => return Some(Automated::ReadReceipt),
        Some("feedback-report") => return Some(Automated::FeedbackReport),
        _ => {}
    }
    for value in header_values(headers, "auto-submitted") {
        let v = strip_comments(value);
        let v = v
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if v != "no" {
            return Some(Automated::AutoSubmitted(v));
        }
    }
    for value in header_values(headers, "precedence") {
        let v = strip_comments(value).trim().to_ascii_lowercase();
        if matches!(v.as_str(), "bulk" | "junk" | "list") {
            return Some(Automated::Precedence(v));
        }
    }
    if headers.iter().any(|(n, _)| n.starts_with("list-")) {
        return Some(Automated::ListMail);
    }
    for (name, label) in [
        ("x-autoreply", "X-Autoreply"),
        ("x-autorespond", "X-Autorespond"),
    ] {
        if header_values(headers, name).next().is_some() {
            return Some(Automated::AutoReplyHeader(label));
        }
    }
    if return_path_empty {
        return Some(Automated::EmptyReturnPath);
    }
    if is_daemon(from_local) {
        return Some(Automated::DaemonSender);
    }
    None
}

pub(super) fn is_daemon(local_part: &str) -> bool {
    matches!(local_part, "mailer-daemon" | "postmaster")
}

/// Reads a `multipart/report; report-type=delivery-status` (RFC 3464).
pub(super) fn dsn_bounce(msg: &Message<'_>) -> Bounce {
    let mut bounce = Bounce::default();
    if let Some(part) = msg.parts.iter().find(|p| is_delivery_status(p)) {
        let text = String::from_utf8_lossy(part.contents());
        let blocks = field_blocks(&text);
        // The first block is per-message; the others are per-recipient. I
        // report the first recipient that failed, else the first one.
        let recipients: Vec<_> = blocks
            .iter()
            .filter(|b| field(b, "final-recipient").is_some() || field(b, "action").is_some())
            .collect();
        let chosen = recipients
            .iter()
            .find(|b| field(b, "action").is_some_and(|a| a.eq_ignore_ascii_case("failed")))
            .or_else(|| recipients.first());
        if let Some(block) = chosen {
            bounce.final_recipient = field(block, "final-recipient")
                .or_else(|| field(block, "original-recipient"))
                .map(|v| one_line(strip_type(v).trim_matches(['<', '>'])))
                .filter(|v| !v.is_empty());
            bounce.action = field(block, "action")
                .map(|v| one_line(v).to_ascii_lowercase())
                .filter(|v| !v.is_empty());
            bounce.status = field(block, "status").and_then(status_code);
            bounce.diagnostic = field(block, "diagnostic-code")
                .map(|v| one_line(strip_type(v)))
                .filter(|v| !v.is_empty());
        }
    }
    bounce.permanent = match &bounce.status {
        Some(s) => s.starts_with('5'),
        None => bounce.action.as_deref() == Some("failed"),
    };
    bounce.original_message_id = returned_message_id(msg, None);
    bounce
}

/// A bounce that is not a DSN: plain text from `MAILER-DAEMON`, or Exim's
/// `X-Failed-Recipients`. Only worth reporting when I can tell which message
/// bounced.
pub(super) fn legacy_bounce(
    msg: &Message<'_>,
    headers: &[(String, String)],
    text: &str,
) -> Option<Bounce> {
    let original_message_id = returned_message_id(msg, Some(text))?;
    let status = find_status_code(text);
    let failed_recipient = header_values(headers, "x-failed-recipients")
        .flat_map(|v| v.split(','))
        .map(one_line)
        .find(|v| !v.is_empty());
    let permanent = match &status {
        Some(s) => s.starts_with('5'),
        None => failed_recipient.is_some(),
    };
    Some(Bounce {
        original_message_id: Some(original_message_id),
        status,
        action: failed_recipient.as_ref().map(|_| "failed".to_string()),
        diagnostic: None,
        final_recipient: failed_recipient,
        permanent,
    })
}

/// `Message-ID` of the returned message: from a `message/rfc822` part, a
/// `text/rfc822-headers` part, or (for non-DSN bounces) the body text.
pub(super) fn returned_message_id(msg: &Message<'_>, body: Option<&str>) -> Option<String> {
    for part in msg.parts.iter().skip(1) {
        match &part.body {
            PartType::Message(inner) => {
                let id = raw_headers(inner)
                    .iter()
                    .filter(|(n, _)| n == "message-id")
                    .flat_map(|(_, v)| ids_in(v))
                    .next();
                if id.is_some() {
                    return id;
                }
            }
            PartType::Text(t)
                if part.is_content_type("text", "rfc822-headers")
                    || part.is_content_type("message", "rfc822")
                    || part.is_content_type("message", "rfc822-headers") =>
            {
                if let Some(id) = message_id_in_text(t) {
                    return Some(id);
                }
            }
            _ => {}
        }
    }
    body.and_then(message_id_in_text)
}

/// The first `Message-ID:` header line found in free text (unfolded).
pub(super) fn message_id_in_text(text: &str) -> Option<String> {
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let t = line.trim_start_matches(['>', ' ', '\t']);
        let Some((name, value)) = t.split_once(':') else {
            continue;
        };
        if !name.trim().eq_ignore_ascii_case("message-id") {
            continue;
        }
        let mut value = value.to_string();
        // Folded onto the next line(s) when the id is long; a few at most.
        for _ in 0..3 {
            match lines.peek() {
                Some(next) if next.starts_with([' ', '\t']) && !value.contains('>') => {
                    value.push_str(next);
                    lines.next();
                }
                _ => break,
            }
        }
        if let Some(id) = ids_in(&value).into_iter().next() {
            return Some(id);
        }
    }
    None
}

/// Splits `message/delivery-status` content into blocks of (lower-case
/// name, unfolded value) fields.
pub(super) fn field_blocks(text: &str) -> Vec<Vec<(String, String)>> {
    let mut blocks: Vec<Vec<(String, String)>> = Vec::new();
    let mut current: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            if !current.is_empty() {
                blocks.push(std::mem::take(&mut current));
            }
        } else if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = current.last_mut() {
                value.push(' ');
                value.push_str(line.trim());
            }
        } else if let Some((name, value)) = line.split_once(':') {
            current.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
        }
    }
    if !current.is_empty() {
        blocks.push(current);
    }
    blocks
}

pub(super) fn field<'a>(block: &'a [(String, String)], name: &str) -> Option<&'a str> {
    block
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// `rfc822; bob@example.com` → `bob@example.com`, `smtp; 550 …` → `550 …`.
pub(super) fn strip_type(value: &str) -> &str {
    match value.split_once(';') {
        Some((kind, rest))
            if !kind.trim().is_empty()
                && kind
                    .trim()
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-') =>
        {
            rest.trim()
        }
        _ => value.trim(),
    }
}

/// `5.1.1 (bad mailbox)` → `5.1.1`.
pub(super) fn status_code(value: &str) -> Option<String> {
    let code: String = value
        .trim()
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    is_status_code(&code).then_some(code)
}

pub(super) fn is_status_code(s: &str) -> bool {
    let mut parts = s.split('.');
    let class = parts.next().unwrap_or("");
    let subject = parts.next().unwrap_or("");
    let detail = parts.next().unwrap_or("");
    matches!(class, "2" | "4" | "5")
        && (1..=3).contains(&subject.len())
        && (1..=3).contains(&detail.len())
        && subject
            .bytes()
            .chain(detail.bytes())
            .all(|b| b.is_ascii_digit())
        && parts.next().is_none()
}

/// The first enhanced status code (`4.4.1`, `5.1.1`) in free text.
pub(super) fn find_status_code(text: &str) -> Option<String> {
    text.split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .map(|w| w.trim_matches('.'))
        .find(|w| is_status_code(w))
        .map(str::to_string)
}
