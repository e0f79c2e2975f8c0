//! Text rules: issue subjects, `[#N]` tokens, acknowledgement-only bodies,
//! SMS opt-out keywords, and what text from outside may be stored (no NUL,
//! length caps).

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
    // Removing one token can splice its neighbours into another
    // ("[#[#1]2]" → "[#2]"), so strip until nothing changes; every pass
    // that changes something shortens the string, so this ends.
    let mut without_tokens = strip_tokens(subject);
    loop {
        let again = strip_tokens(&without_tokens);
        if again == without_tokens {
            break;
        }
        without_tokens = again;
    }
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

/// The subject of a new SMS issue: the first 80 characters of the body,
/// without a trailing space when the cut falls just after a word.
pub fn sms_subject(body: &str) -> String {
    let subject: String = collapse_ws(body.trim()).chars().take(80).collect();
    subject.trim_end().to_string()
}

/// The most characters one SMS may carry: Twilio refuses longer bodies
/// (error 21617), for replies and broadcasts alike.
pub const SMS_MAX_CHARS: usize = 1600;

/// `s` without NUL characters. PostgreSQL cannot store U+0000 in text (it
/// answers "invalid byte sequence" to every retry), so every edge that takes
/// text from outside drops it, as the email parser does.
pub fn strip_nul(s: String) -> String {
    if s.contains('\0') {
        s.replace('\0', "")
    } else {
        s
    }
}

/// At most `max` characters of `s`, and its length in characters when it
/// was cut (`None` when it fits).
pub fn capped(s: &str, max: usize) -> (String, Option<usize>) {
    match s.char_indices().nth(max) {
        None => (s.to_string(), None),
        Some((cut, _)) => (s[..cut].to_string(), Some(s.chars().count())),
    }
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

#[cfg(test)]
mod tests {
    #[test]
    fn nul_is_stripped_and_caps_count_characters() {
        assert_eq!(super::strip_nul("a\0b\0".into()), "ab");
        assert_eq!(super::strip_nul("plain".into()), "plain");
        assert_eq!(super::capped("héllo", 10), ("héllo".to_string(), None));
        assert_eq!(super::capped("héllo", 2), ("hé".to_string(), Some(5)));
        assert_eq!(super::capped("", 0), (String::new(), None));
    }

    use super::*;

    /// `threading.ack_words` as shipped in the example configuration
    /// (SPEC §8).
    fn default_ack_words() -> Vec<String> {
        ["ok", "okay", "thanks", "thank you", "thx", "yes", "👍"]
            .iter()
            .map(|w| w.to_string())
            .collect()
    }

    // --- clean_subject -------------------------------------------------

    #[test]
    fn clean_subject_strips_repeated_prefixes_in_any_case() {
        assert_eq!(clean_subject("Re: RE: Fwd: Hello"), "Hello");
        assert_eq!(clean_subject("AW: SV: Fw: x"), "x");
        assert_eq!(clean_subject("re:fwd:FW:  x"), "x");
        assert_eq!(clean_subject("RE : x"), "x");
    }

    #[test]
    fn clean_subject_strips_counted_prefixes() {
        assert_eq!(clean_subject("Re[2]: x"), "x");
        assert_eq!(clean_subject("RE[12]: Fwd: x"), "x");
        // Not a count: left alone.
        assert_eq!(clean_subject("Re[a]: x"), "Re[a]: x");
    }

    #[test]
    fn clean_subject_strips_tokens_anywhere() {
        assert_eq!(clean_subject("[#42] Re: Printer"), "Printer");
        assert_eq!(clean_subject("Re: Help [#7]"), "Help");
        assert_eq!(clean_subject("Re: Paper [#7] jam"), "Paper jam");
        // Not tokens: kept.
        assert_eq!(
            clean_subject("Ticket [#] and [#x1]"),
            "Ticket [#] and [#x1]"
        );
    }

    #[test]
    fn clean_subject_of_a_bare_prefix_is_empty() {
        assert_eq!(clean_subject("Re:"), "");
        assert_eq!(clean_subject("  Re: [#3] "), "");
        assert_eq!(clean_subject(""), "");
    }

    #[test]
    fn clean_subject_keeps_words_that_only_start_like_a_prefix() {
        assert_eq!(clean_subject("Regarding: x"), "Regarding: x");
        assert_eq!(clean_subject("Fwdx"), "Fwdx");
        assert_eq!(clean_subject("Svelte: build fails"), "Svelte: build fails");
        assert_eq!(clean_subject("Rent due"), "Rent due");
    }

    #[test]
    fn clean_subject_never_leaves_a_token_behind() {
        // Removing the inner token must not splice a new one together.
        assert_eq!(clean_subject("Re: [#[#1]2] x"), "x");
        assert!(subject_tokens(&clean_subject("[#[#[#1]2]3]")).is_empty());
    }

    #[test]
    fn clean_subject_keeps_non_ascii_text_intact() {
        assert_eq!(clean_subject("AW: Größe İstanbul"), "Größe İstanbul");
        assert_eq!(clean_subject("Re: Ünïcødé   spaces"), "Ünïcødé spaces");
    }

    // --- sms_subject ---------------------------------------------------

    #[test]
    fn sms_subject_takes_80_characters() {
        let body = "a".repeat(100);
        assert_eq!(sms_subject(&body), "a".repeat(80));
        assert_eq!(sms_subject("short"), "short");
    }

    #[test]
    fn sms_subject_counts_characters_not_bytes() {
        let body = "é".repeat(79) + "👍👍";
        let s = sms_subject(&body);
        assert_eq!(s.chars().count(), 80);
        assert_eq!(s, "é".repeat(79) + "👍");
    }

    #[test]
    fn sms_subject_collapses_whitespace() {
        assert_eq!(
            sms_subject("  my\n\nprinter \t is   broken  "),
            "my printer is broken"
        );
        // Collapsing happens before counting: 80 visible characters.
        let body = format!("{}\n\n\n{}", "a".repeat(40), "b".repeat(60));
        assert_eq!(
            sms_subject(&body),
            format!("{} {}", "a".repeat(40), "b".repeat(39))
        );
    }

    #[test]
    fn sms_subject_does_not_end_in_a_space() {
        // The 80th character is the space between two words.
        let body = format!("{} {}", "a".repeat(79), "b".repeat(10));
        assert_eq!(sms_subject(&body), "a".repeat(79));
    }

    // --- subject_tokens ------------------------------------------------

    #[test]
    fn subject_tokens_finds_every_token_in_order() {
        assert_eq!(subject_tokens("Re: Printer [#42]"), vec![42]);
        assert_eq!(subject_tokens("[#7] Re: x [#42]"), vec![7, 42]);
        assert_eq!(subject_tokens("[#[#3]"), vec![3]);
        assert!(subject_tokens("no token").is_empty());
    }

    #[test]
    fn subject_tokens_ignores_near_misses() {
        for s in ["[#]", "[#x]", "[# 42]", "[#42", "#42", "[42]", "[#-4]"] {
            assert!(subject_tokens(s).is_empty(), "{s}");
        }
        // Too large for an id: not a token rather than a wrapped number.
        assert!(subject_tokens("[#99999999999999999999]").is_empty());
    }

    // --- is_ack_only ---------------------------------------------------

    #[test]
    fn acknowledgements_are_ack_only() {
        let words = default_ack_words();
        for body in [
            "ok",
            "OK!",
            "Thanks",
            "thank you!",
            "👍",
            "ok thanks",
            "yes",
            "Okay, thank you.",
            "  thx  ",
        ] {
            assert!(is_ack_only(body, &words), "{body:?}");
        }
    }

    #[test]
    fn real_content_is_not_ack_only() {
        let words = default_ack_words();
        for body in [
            "ok but my printer is broken",
            "",
            "  !!! ",
            "thanks for nothing",
            "thank",
            "you",
            "okthanks",
        ] {
            assert!(!is_ack_only(body, &words), "{body:?}");
        }
    }

    #[test]
    fn ack_words_are_configurable() {
        let words = vec!["merci".to_string(), "danke schön".to_string()];
        assert!(is_ack_only("Merci!", &words));
        assert!(is_ack_only("Danke schön", &words));
        assert!(!is_ack_only("thanks", &words));
        assert!(!is_ack_only("ok", &[]));
    }

    // --- opt_keyword ---------------------------------------------------

    #[test]
    fn opt_out_keywords() {
        for body in [
            "STOP",
            "stop",
            " Stop. ",
            "UNSUBSCRIBE",
            "StopAll",
            "stop all",
            "quit!",
        ] {
            assert_eq!(opt_keyword(body), Some(OptKeyword::OptOut), "{body:?}");
        }
    }

    #[test]
    fn opt_in_keywords() {
        for body in ["START", "start", "UNSTOP", "YES", " yes. "] {
            assert_eq!(opt_keyword(body), Some(OptKeyword::OptIn), "{body:?}");
        }
    }

    #[test]
    fn keywords_must_be_the_whole_message() {
        for body in ["stop sending me ads", "please stop", "", "ok", "started"] {
            assert_eq!(opt_keyword(body), None, "{body:?}");
        }
    }
}
