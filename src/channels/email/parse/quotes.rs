//! Quote and signature stripping: what the customer wrote this time.

use super::*;

/// Quote/signature stripping on plain text, GitHub email_reply_parser style.
///
/// Cuts at the first reply attribution ("On … wrote:", possibly wrapped over
/// up to three lines; also German, French, Spanish, Dutch, Italian,
/// Portuguese, Swedish), Outlook header block ("-----Original Message-----",
/// or `From:` followed within four lines by `Sent:`/`Date:` and
/// `To:`/`Subject:`, or `Date:` followed by `From:` and `To:`/`Subject:`;
/// labels also in German, French, Spanish, Dutch, Italian, Swedish), or signature separator (`-- `, a line of underscores,
/// "Sent from my …", "Get Outlook for …"). Lines quoted with `>` are dropped;
/// text after a quote block (interleaved answers) is kept, and then an
/// attribution line above the quotes is dropped rather than cut at. Never
/// returns an empty string for text with content: it falls back to the
/// whole text.
pub fn strip_quotes(text: &str) -> String {
    let norm = normalize_newlines(text);
    let lines: Vec<&str> = norm.split('\n').collect();
    let mut kept: Vec<&str> = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        if is_quoted(line) {
            i += 1;
            continue;
        }
        if is_cut_line(&lines, i) {
            break;
        }
        if let Some(span) = attribution_span(&lines, i) {
            if interleaved_after(&lines, i + span) {
                i += span;
                continue;
            }
            break;
        }
        kept.push(line);
        i += 1;
    }

    let mut out = String::new();
    let mut blank_run = false;
    for line in kept {
        let line = line.trim_end();
        if line.is_empty() {
            blank_run = !out.is_empty();
            continue;
        }
        if blank_run {
            out.push('\n');
        }
        blank_run = false;
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(line);
    }
    if out.trim().is_empty() {
        return trim_leading_blank_lines(norm.trim_end()).to_string();
    }
    out
}

pub(super) fn is_quoted(line: &str) -> bool {
    line.trim_start().starts_with('>')
}

/// Signature separators and Outlook headers: everything from here on is
/// not the customer's new text.
pub(super) fn is_cut_line(lines: &[&str], i: usize) -> bool {
    let Some(line) = lines.get(i) else {
        return false;
    };
    is_signature_start(line) || is_original_message(line) || is_outlook_header(lines, i)
}

pub(super) fn is_signature_start(line: &str) -> bool {
    if line.trim_end() == "--" {
        return true; // "-- " (RFC 3676) and its trimmed form
    }
    let t = line.trim();
    if t.len() >= 2 && t.chars().all(|c| c == '_') {
        return true;
    }
    if t.len() > 80 {
        return false;
    }
    let l = t.to_lowercase();
    const STARTS: [&str; 12] = [
        "sent from my ",
        "sent from outlook",
        "sent from mail for ",
        "sent from yahoo mail",
        "sent from samsung",
        "sent with proton",
        "get outlook for ",
        "envoyé de mon ",
        "enviado desde mi ",
        "verzonden vanaf mijn ",
        "inviato da ",
        "skickat från min ",
    ];
    STARTS.iter().any(|s| l.starts_with(s))
        || (l.starts_with("von meinem ") && l.ends_with("gesendet"))
}

pub(super) fn is_original_message(line: &str) -> bool {
    let t = line.trim();
    if !t.starts_with("--") {
        return false;
    }
    let core = t
        .trim_matches(|c: char| c == '-' || c.is_whitespace())
        .to_lowercase();
    matches!(
        core.as_str(),
        "original message"
            | "ursprüngliche nachricht"
            | "message d'origine"
            | "mensaje original"
            | "oorspronkelijk bericht"
            | "messaggio originale"
            | "mensagem original"
            | "ursprungligt meddelande"
    )
}

/// `Label:` at the start of a line (Outlook may bold it as `*From:*`).
pub(super) fn field_label(line: &str) -> Option<String> {
    let t = line.trim().trim_start_matches('*');
    let (label, _) = t.split_once(':')?;
    let label = label.trim().trim_end_matches('*').trim();
    (!label.is_empty() && label.chars().count() <= 12).then(|| label.to_lowercase())
}

pub(super) fn is_outlook_header(lines: &[&str], i: usize) -> bool {
    const FROM: [&str; 8] = ["from", "von", "de", "van", "da", "fra", "från", "od"];
    const SENT: [&str; 11] = [
        "sent",
        "date",
        "gesendet",
        "datum",
        "envoyé",
        "enviado",
        "fecha",
        "verzonden",
        "inviato",
        "data",
        "skickat",
    ];
    const TO_SUBJECT: [&str; 14] = [
        "to",
        "subject",
        "an",
        "betreff",
        "à",
        "a",
        "objet",
        "para",
        "asunto",
        "aan",
        "onderwerp",
        "oggetto",
        "till",
        "ämne",
    ];
    let is =
        |line: &str, set: &[&str]| field_label(line).is_some_and(|l| set.contains(&l.as_str()));
    // Outlook writes From/Sent/To/Subject; Outlook for Mac and some
    // webmails start with the date (Date/Subject/From/To). Either way the
    // next four lines hold the other labels.
    let window = &lines[i + 1..lines.len().min(i + 5)];
    let block = if is(lines[i], &FROM) {
        window.iter().any(|l| is(l, &SENT)) && window.iter().any(|l| is(l, &TO_SUBJECT))
    } else if is(lines[i], &SENT) {
        window.iter().any(|l| is(l, &FROM)) && window.iter().any(|l| is(l, &TO_SUBJECT))
    } else {
        false
    };
    if !block {
        return false;
    }
    // A forwarded message the customer wants us to read is not history.
    let previous = lines[..i].iter().rev().find(|l| !l.trim().is_empty());
    !previous.is_some_and(|p| {
        let p = p.to_lowercase();
        p.contains("forwarded message")
            || p.contains("weitergeleitete nachricht")
            || p.contains("message transféré")
            || p.contains("mensaje reenviado")
    })
}

/// Number of lines (1–3) of a reply attribution starting at `i`.
pub(super) fn attribution_span(lines: &[&str], i: usize) -> Option<usize> {
    const FORMS: [(&str, &str); 8] = [
        ("On ", "wrote"),
        ("Am ", "schrieb"),
        ("Le ", "a écrit"),
        ("El ", "escribió"),
        ("Op ", "schreef"),
        ("Il ", "ha scritto"),
        ("Em ", "escreveu"),
        ("Den ", "skrev"),
    ];
    let first = lines.get(i)?.trim();
    let forms: Vec<_> = FORMS.iter().filter(|(p, _)| first.starts_with(p)).collect();
    if forms.is_empty() {
        return None;
    }
    let mut joined = String::new();
    for k in 0..3 {
        let Some(line) = lines.get(i + k) else { break };
        let l = line.trim();
        if l.is_empty() || (k > 0 && is_quoted(line)) {
            break;
        }
        if k > 0 {
            joined.push(' ');
        }
        joined.push_str(l);
        if joined.len() > 400 {
            break;
        }
        if joined.ends_with(':')
            && joined.chars().any(|c| c.is_ascii_digit())
            && forms.iter().any(|(_, marker)| joined.contains(marker))
        {
            return Some(k + 1);
        }
    }
    None
}

/// After an attribution: a `>` block followed by more unquoted text that is
/// not itself a cut (interleaved answers), rather than history to the end.
pub(super) fn interleaved_after(lines: &[&str], start: usize) -> bool {
    let mut k = start;
    while k < lines.len() && lines[k].trim().is_empty() {
        k += 1;
    }
    if k >= lines.len() || !is_quoted(lines[k]) {
        return false;
    }
    while k < lines.len() && (is_quoted(lines[k]) || lines[k].trim().is_empty()) {
        k += 1;
    }
    k < lines.len() && !is_cut_line(lines, k)
}
