//! Text rules: issue subjects, `[#N]` tokens, acknowledgement-only bodies
//! and SMS opt-out keywords.

/// Opt-out keywords Twilio honours on its own (Advanced Opt-Out defaults).
const OPT_OUT: &[&str] = &[
    "stop",
    "stopall",
    "unsubscribe",
    "cancel",
    "end",
    "quit",
    "optout",
    "revoke",
];
/// Keywords that opt a number back in. `yes` only counts while opted out,
/// because it is also the most common acknowledgement.
const OPT_IN: &[&str] = &["start", "unstop", "yes"];

/// An SMS keyword that changes a contact's opt-out state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OptKeyword {
    OptOut,
    OptIn,
}

/// Twilio matches the whole message, trimmed, case-insensitively.
pub fn opt_keyword(body: &str) -> Option<OptKeyword> {
    let w = body.trim().trim_end_matches(['.', '!']).to_lowercase();
    if OPT_OUT.contains(&w.as_str()) || w == "stop all" {
        Some(OptKeyword::OptOut)
    } else if OPT_IN.contains(&w.as_str()) {
        Some(OptKeyword::OptIn)
    } else {
        None
    }
}

/// The subject of a new issue opened by email: reply/forward prefixes (any
/// case, repeated, with or without a space) and `[#N]` tokens removed.
pub fn clean_subject(subject: &str) -> String {
    let without_tokens = strip_tokens(subject);
    let mut s = without_tokens.trim();
    loop {
        let lower = s.to_lowercase();
        let mut stripped = false;
        for prefix in ["re", "fwd", "fw", "aw", "sv"] {
            if let Some(rest) = lower.strip_prefix(prefix) {
                let rest_trim = rest.trim_start();
                // Allow "Re:", "RE :", "Re[2]:".
                let rest_trim = if rest_trim.starts_with('[') {
                    match rest_trim.find(']') {
                        Some(end) if rest_trim[1..end].chars().all(|c| c.is_ascii_digit()) => {
                            &rest_trim[end + 1..]
                        }
                        _ => rest_trim,
                    }
                } else {
                    rest_trim
                };
                if let Some(after) = rest_trim.strip_prefix(':') {
                    let consumed = lower.len() - after.len();
                    s = s[consumed..].trim_start();
                    stripped = true;
                    break;
                }
            }
        }
        if !stripped {
            break;
        }
    }
    collapse_ws(s)
}

/// The subject of a new SMS issue: the first 80 characters of the body.
pub fn sms_subject(body: &str) -> String {
    collapse_ws(body.trim()).chars().take(80).collect()
}

/// Every `[#N]` token in a subject, in order.
pub fn subject_tokens(subject: &str) -> Vec<i64> {
    let mut out = Vec::new();
    let mut rest = subject;
    while let Some(start) = rest.find("[#") {
        let after = &rest[start + 2..];
        let digits: String = after.chars().take_while(|c| c.is_ascii_digit()).collect();
        if !digits.is_empty()
            && after[digits.len()..].starts_with(']')
            && let Ok(n) = digits.parse::<i64>()
        {
            out.push(n);
        }
        rest = after;
    }
    out
}

fn strip_tokens(subject: &str) -> String {
    let mut out = String::with_capacity(subject.len());
    let mut rest = subject;
    while let Some(start) = rest.find("[#") {
        let after = &rest[start + 2..];
        let n = after.chars().take_while(|c| c.is_ascii_digit()).count();
        if n > 0 && after[n..].starts_with(']') {
            out.push_str(&rest[..start]);
            rest = &after[n + 1..];
        } else {
            out.push_str(&rest[..start + 2]);
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

fn collapse_ws(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Whether a body says nothing but acknowledgements ("ok", "Thanks!",
/// "ok thank you 👍"): every word, punctuation aside, belongs to one of the
/// configured acknowledgement phrases.
pub fn is_ack_only(body: &str, ack_words: &[String]) -> bool {
    let normalise = |s: &str| -> Vec<String> {
        s.to_lowercase()
            .split(|c: char| c.is_whitespace() || (c.is_ascii_punctuation() && c != '\''))
            .filter(|w| !w.is_empty())
            .map(|w| w.to_string())
            .collect()
    };
    let words = normalise(body);
    if words.is_empty() || words.len() > 12 {
        return false;
    }
    let phrases: Vec<Vec<String>> = ack_words
        .iter()
        .map(|p| normalise(p))
        .filter(|p| !p.is_empty())
        .collect();
    // reachable[i]: the first i words split into whole phrases.
    let mut reachable = vec![false; words.len() + 1];
    reachable[0] = true;
    for i in 0..words.len() {
        if !reachable[i] {
            continue;
        }
        for p in &phrases {
            if words[i..].starts_with(p) {
                reachable[i + p.len()] = true;
            }
        }
    }
    reachable[words.len()]
}
