//! HTML to text: a small, linear tokenizer that never runs markup.

use super::*;

/// HTML to readable text: paragraphs and line breaks kept, lists as `- `
/// or `1. `, `<blockquote>` as `> ` lines, links as `text (url)`, images as
/// `[image: alt]`; no tags, entities, scripts, styles, comments or
/// `display:none` elements. Linear in the input.
pub fn html_to_text(html: &str) -> String {
    let b = html.as_bytes();
    let mut w = TextWriter::default();
    let mut i = 0;
    // Once an attribute quote runs to the end of the input, quotes cannot be
    // trusted to find tag ends any more: I fall back to the next `>`, which
    // keeps the whole walk linear.
    let mut quotes_reliable = true;
    let mut hidden: Option<(String, usize)> = None;
    let mut anchors: Vec<(Option<String>, usize)> = Vec::new();
    let mut lists: Vec<Option<usize>> = Vec::new();
    let mut first_cell = true;

    while i < b.len() {
        let Some(lt) = memchr(b'<', b, i) else {
            if hidden.is_none() {
                w.text(&decode_entities(&html[i..]));
            }
            break;
        };
        if lt > i && hidden.is_none() {
            w.text(&decode_entities(&html[i..lt]));
        }
        let rest = &b[lt..];
        if rest.starts_with(b"<!--") {
            i = if rest.starts_with(b"<!-->") {
                lt + 5
            } else if rest.starts_with(b"<!--->") {
                lt + 6
            } else {
                find(b, lt + 4, b"-->").map_or(b.len(), |e| e + 3)
            };
            continue;
        }
        let next = rest.get(1).copied().unwrap_or(0);
        let is_end = next == b'/';
        if !(next.is_ascii_alphabetic()
            || next == b'!'
            || next == b'?'
            || (is_end && rest.get(2).is_some_and(u8::is_ascii_alphabetic)))
        {
            if hidden.is_none() {
                w.text("<");
            }
            i = lt + 1;
            continue;
        }
        let Some(gt) = tag_end(b, lt + 1, &mut quotes_reliable) else {
            break; // an unterminated tag at the end is dropped, like browsers do
        };
        i = gt + 1;
        if next == b'!' || next == b'?' {
            continue; // <!DOCTYPE>, <![CDATA[…]]>, <?xml?>
        }
        let inner = &html[lt + 1 + usize::from(is_end)..gt];
        let name_end = inner
            .find(|c: char| c.is_ascii_whitespace() || c == '/' || c == '>')
            .unwrap_or(inner.len());
        let name = inner[..name_end].to_ascii_lowercase();
        let attrs_src = &inner[name_end..];

        if !is_end && matches!(name.as_str(), "script" | "style" | "title" | "template") {
            let mut close = b"</".to_vec();
            close.extend_from_slice(name.as_bytes());
            i = match find_ci(b, i, &close) {
                Some(c) => memchr(b'>', b, c).map_or(b.len(), |e| e + 1),
                None => b.len(),
            };
            continue;
        }

        if let Some((tag, depth)) = hidden.as_mut() {
            if *tag == name && !is_void(&name) {
                if is_end {
                    *depth -= 1;
                    if *depth == 0 {
                        hidden = None;
                    }
                } else if !attrs_src.trim_end().ends_with('/') {
                    *depth += 1;
                }
            }
            continue;
        }

        if is_end {
            match name.as_str() {
                "a" => {
                    if let Some((href, start)) = anchors.pop() {
                        w.link_target(href.as_deref(), start);
                    }
                }
                "p" | "h1" | "h2" | "h3" | "h4" | "h5" | "h6" | "table" | "dl" | "hr" => w.block(2),
                "ul" | "ol" => {
                    lists.pop();
                    w.block(if lists.is_empty() { 2 } else { 1 });
                }
                "blockquote" => {
                    w.block(2);
                    w.quote_depth = w.quote_depth.saturating_sub(1);
                }
                "pre" => {
                    w.block(2);
                    w.pre_depth = w.pre_depth.saturating_sub(1);
                }
                "td" | "th" => w.space(),
                _ if is_line_block(&name) => w.block(1),
                _ => {}
            }
            continue;
        }

        let attrs = parse_attrs(attrs_src);
        let attr = |n: &str| attrs.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
        if attr("style").is_some_and(is_hidden_style) && !is_void(&name) {
            if !attrs_src.trim_end().ends_with('/') {
                hidden = Some((name, 1));
            }
            continue;
        }
        match name.as_str() {
            "br" => w.br(),
            "p" | "h1" | "h2" | "h3" | "h4" | "h5" | "h6" | "table" | "dl" => w.block(2),
            "hr" => w.block(2),
            "ul" | "ol" => {
                w.block(if lists.is_empty() { 2 } else { 1 });
                lists.push((name == "ol").then_some(0));
            }
            "li" => {
                w.block(1);
                let marker = match lists.last_mut() {
                    Some(Some(n)) => {
                        *n += 1;
                        format!("{n}.")
                    }
                    _ => "-".to_string(),
                };
                w.word(&marker);
                w.space();
            }
            "blockquote" => {
                w.block(2);
                w.quote_depth += 1;
            }
            "pre" => {
                w.block(2);
                w.pre_depth += 1;
                w.skip_newline = true;
            }
            "tr" => {
                w.block(1);
                first_cell = true;
            }
            "td" | "th" => {
                if !first_cell {
                    w.space();
                }
                first_cell = false;
            }
            // Nesting is capped so that tag soup full of unclosed anchors
            // cannot make the `</a>` comparisons quadratic.
            "a" if anchors.len() < MAX_OPEN_ANCHORS => {
                let href = attr("href").map(|h| h.trim().to_string());
                w.flush_breaks();
                anchors.push((href, w.out.len()));
            }
            "img" => {
                if let Some(alt) = attr("alt").map(one_line).filter(|a| !a.is_empty()) {
                    w.space();
                    w.word(&format!("[image: {alt}]"));
                    w.space();
                }
            }
            _ if is_line_block(&name) => w.block(1),
            _ => {}
        }
    }
    w.finish()
}

pub(super) fn is_line_block(name: &str) -> bool {
    matches!(
        name,
        "div"
            | "tr"
            | "li"
            | "dt"
            | "dd"
            | "section"
            | "article"
            | "header"
            | "footer"
            | "address"
            | "form"
            | "center"
            | "main"
            | "nav"
            | "aside"
            | "figure"
            | "figcaption"
            | "caption"
            | "fieldset"
            | "legend"
            | "details"
            | "summary"
            | "body"
            | "html"
    )
}

pub(super) fn is_void(name: &str) -> bool {
    matches!(
        name,
        "area"
            | "base"
            | "br"
            | "col"
            | "embed"
            | "hr"
            | "img"
            | "input"
            | "link"
            | "meta"
            | "source"
            | "track"
            | "wbr"
    )
}

pub(super) fn is_hidden_style(style: &str) -> bool {
    let s: String = style
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_ascii_lowercase();
    s.split(';')
        .any(|d| d.starts_with("display:none") || d.starts_with("mso-hide:all"))
}

/// Accumulates text with HTML whitespace rules and pending line breaks.
#[derive(Default)]
pub(super) struct TextWriter {
    out: String,
    /// Newlines owed before the next visible character.
    breaks: usize,
    space: bool,
    line_start: bool,
    quote_depth: usize,
    pre_depth: usize,
    /// The newline right after `<pre>` is not content.
    skip_newline: bool,
}

impl TextWriter {
    fn block(&mut self, n: usize) {
        if !self.out.is_empty() {
            self.breaks = self.breaks.max(n);
        }
        self.space = false;
    }

    fn br(&mut self) {
        if !self.out.is_empty() {
            self.breaks = (self.breaks + 1).min(2);
        }
        self.space = false;
    }

    fn space(&mut self) {
        if !self.out.is_empty() && self.breaks == 0 {
            self.space = true;
        }
    }

    fn flush_breaks(&mut self) {
        if self.breaks == 0 {
            return;
        }
        for _ in 0..self.breaks {
            let trimmed = self.out.trim_end_matches(' ').len();
            self.out.truncate(trimmed);
            self.out.push('\n');
        }
        self.breaks = 0;
        self.space = false;
        self.line_start = true;
    }

    fn put(&mut self, c: char) {
        self.flush_breaks();
        if self.out.is_empty() {
            self.line_start = true;
        }
        if self.line_start {
            for _ in 0..self.quote_depth {
                self.out.push_str("> ");
            }
            self.line_start = false;
        } else if self.space {
            self.out.push(' ');
        }
        self.space = false;
        self.out.push(c);
    }

    fn text(&mut self, s: &str) {
        for c in s.chars() {
            if self.pre_depth > 0 {
                if c == '\r' {
                    continue;
                }
                let skip = std::mem::take(&mut self.skip_newline);
                if c == '\n' {
                    if !skip {
                        self.flush_breaks();
                        self.out.push('\n');
                        self.line_start = true;
                    }
                } else if !is_invisible(c) {
                    self.put(c);
                }
                continue;
            }
            if c.is_whitespace() {
                if !self.out.is_empty() && !self.line_start {
                    self.space = true;
                }
            } else if !is_invisible(c) {
                self.put(c);
            }
        }
    }

    /// A run of characters written as one word (no collapsing inside).
    fn word(&mut self, s: &str) {
        for c in s.chars() {
            self.put(c);
        }
    }

    /// At `</a>`: appends ` (url)` unless the link text already says it.
    fn link_target(&mut self, href: Option<&str>, start: usize) {
        let Some(href) = href.filter(|h| !h.is_empty()) else {
            return;
        };
        let lower = href.to_ascii_lowercase();
        if lower.starts_with('#')
            || lower.starts_with("javascript:")
            || lower.starts_with("data:")
            || lower.starts_with("cid:")
        {
            return;
        }
        let shown = if lower.starts_with("mailto:") || lower.starts_with("tel:") {
            let target = href.split_once(':').map_or(href, |(_, t)| t);
            target.split('?').next().unwrap_or(target)
        } else {
            href
        };
        let text = self.out.get(start..).unwrap_or("");
        if text.trim().is_empty() {
            return;
        }
        // Only text of about the URL's length can be the URL itself; the
        // bound also keeps this check cheap for very long link texts.
        if text.len() <= shown.len() * 2 + 64 && normalize_link(text) == normalize_link(shown) {
            return;
        }
        self.space = true;
        self.word(&format!("({shown})"));
    }

    fn finish(self) -> String {
        let mut out = String::with_capacity(self.out.len());
        let mut blank = 0;
        for line in self.out.split('\n') {
            let line = line.trim_end();
            if line.is_empty() {
                blank += 1;
                continue;
            }
            if !out.is_empty() {
                out.push('\n');
                if blank > 0 {
                    out.push('\n');
                }
            }
            blank = 0;
            out.push_str(line);
        }
        out
    }
}

pub(super) fn normalize_link(s: &str) -> String {
    let s: String = s
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '>')
        .collect::<String>()
        .to_lowercase();
    let mut s = s.as_str();
    for prefix in ["mailto:", "tel:", "https://", "http://", "www."] {
        s = s.strip_prefix(prefix).unwrap_or(s);
    }
    s.trim_end_matches('/').to_string()
}

pub(super) fn memchr(needle: u8, hay: &[u8], from: usize) -> Option<usize> {
    hay.get(from..)?
        .iter()
        .position(|&b| b == needle)
        .map(|p| p + from)
}

pub(super) fn find(hay: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    let first = *needle.first()?;
    let mut at = from;
    while let Some(p) = memchr(first, hay, at) {
        if hay.get(p..p + needle.len()) == Some(needle) {
            return Some(p);
        }
        at = p + 1;
    }
    None
}

/// Case-insensitive search for an ASCII needle that starts with `<`.
pub(super) fn find_ci(hay: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    let mut at = from;
    while let Some(p) = memchr(b'<', hay, at) {
        if hay
            .get(p..p + needle.len())
            .is_some_and(|w| w.eq_ignore_ascii_case(needle))
        {
            return Some(p);
        }
        at = p + 1;
    }
    None
}

/// Index of the `>` closing a tag whose name starts at `from`.
pub(super) fn tag_end(b: &[u8], from: usize, quotes_reliable: &mut bool) -> Option<usize> {
    if *quotes_reliable {
        let mut quote: Option<u8> = None;
        let mut k = from;
        let mut in_value = false;
        while k < b.len() {
            let c = b[k];
            match quote {
                Some(q) if c == q => quote = None,
                Some(_) => {}
                None if c == b'>' => return Some(k),
                // Quotes only open an attribute value (after `=`).
                None if (c == b'"' || c == b'\'') && in_value => quote = Some(c),
                None => {}
            }
            if quote.is_none() {
                in_value = c == b'=' || (in_value && c.is_ascii_whitespace());
            }
            k += 1;
        }
        *quotes_reliable = false;
    }
    memchr(b'>', b, from)
}

/// Attributes of a start tag as (lower-case name, entity-decoded value).
pub(super) fn parse_attrs(src: &str) -> Vec<(String, String)> {
    let b = src.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        while i < b.len() && (b[i].is_ascii_whitespace() || b[i] == b'/') {
            i += 1;
        }
        let start = i;
        while i < b.len() && !b[i].is_ascii_whitespace() && b[i] != b'=' && b[i] != b'/' {
            i += 1;
        }
        if i == start {
            i += 1;
            continue;
        }
        let name = src[start..i].to_ascii_lowercase();
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        let mut value = String::new();
        if b.get(i) == Some(&b'=') {
            i += 1;
            while i < b.len() && b[i].is_ascii_whitespace() {
                i += 1;
            }
            match b.get(i) {
                Some(&q) if q == b'"' || q == b'\'' => {
                    let vstart = i + 1;
                    let vend = memchr(q, b, vstart).unwrap_or(b.len());
                    value = decode_entities(&src[vstart..vend]).into_owned();
                    i = vend + 1;
                }
                Some(_) => {
                    let vstart = i;
                    while i < b.len() && !b[i].is_ascii_whitespace() {
                        i += 1;
                    }
                    value = decode_entities(&src[vstart..i]).into_owned();
                }
                None => {}
            }
        }
        out.push((name, value));
    }
    out
}

/// Decodes `&name;`, `&#nnn;` and `&#xhh;`; anything else stays as it is.
pub(super) fn decode_entities(s: &str) -> Cow<'_, str> {
    if !s.contains('&') {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let after = &rest[amp + 1..];
        let semi = after
            .char_indices()
            .take(33)
            .find(|(_, c)| !(c.is_ascii_alphanumeric() || *c == '#'))
            .filter(|(_, c)| *c == ';')
            .map(|(p, _)| p);
        match semi {
            Some(p) if entity(&after[..p], &mut out) => rest = &after[p + 1..],
            _ => {
                out.push('&');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    Cow::Owned(out)
}

/// Appends the character(s) an entity name (without `&` and `;`) stands
/// for; `false` when it is not one I know.
pub(super) fn entity(name: &str, out: &mut String) -> bool {
    if let Some(num) = name.strip_prefix('#') {
        let code = match num.strip_prefix(['x', 'X']) {
            Some(hex) => u32::from_str_radix(hex, 16).ok(),
            None => num.parse::<u32>().ok(),
        };
        let Some(code) = code else { return false };
        if let Some(c) = numeric_entity(code) {
            out.push(c);
        }
        return true;
    }
    out.push_str(match name {
        "amp" => "&",
        "lt" => "<",
        "gt" => ">",
        "quot" => "\"",
        "apos" => "'",
        "nbsp" | "ensp" | "emsp" | "thinsp" => " ",
        "shy" | "zwnj" | "lrm" | "rlm" => "",
        "zwj" => "\u{200D}",
        "copy" => "©",
        "reg" => "®",
        "trade" => "™",
        "hellip" => "…",
        "mdash" => "—",
        "ndash" => "–",
        "lsquo" => "‘",
        "rsquo" => "’",
        "sbquo" => "‚",
        "ldquo" => "“",
        "rdquo" => "”",
        "bdquo" => "„",
        "laquo" => "«",
        "raquo" => "»",
        "lsaquo" => "‹",
        "rsaquo" => "›",
        "bull" => "•",
        "middot" => "·",
        "euro" => "€",
        "pound" => "£",
        "yen" => "¥",
        "cent" => "¢",
        "sect" => "§",
        "para" => "¶",
        "deg" => "°",
        "plusmn" => "±",
        "times" => "×",
        "divide" => "÷",
        "frac12" => "½",
        "frac14" => "¼",
        "frac34" => "¾",
        "iexcl" => "¡",
        "iquest" => "¿",
        "dagger" => "†",
        "larr" => "←",
        "rarr" => "→",
        "uarr" => "↑",
        "darr" => "↓",
        "check" => "✓",
        "Auml" => "Ä",
        "Ouml" => "Ö",
        "Uuml" => "Ü",
        "auml" => "ä",
        "ouml" => "ö",
        "uuml" => "ü",
        "szlig" => "ß",
        "Aacute" => "Á",
        "Agrave" => "À",
        "Acirc" => "Â",
        "Atilde" => "Ã",
        "Aring" => "Å",
        "AElig" => "Æ",
        "Ccedil" => "Ç",
        "Eacute" => "É",
        "Egrave" => "È",
        "Ecirc" => "Ê",
        "Euml" => "Ë",
        "Iacute" => "Í",
        "Igrave" => "Ì",
        "Icirc" => "Î",
        "Iuml" => "Ï",
        "Ntilde" => "Ñ",
        "Oacute" => "Ó",
        "Ograve" => "Ò",
        "Ocirc" => "Ô",
        "Otilde" => "Õ",
        "Oslash" => "Ø",
        "Uacute" => "Ú",
        "Ugrave" => "Ù",
        "Ucirc" => "Û",
        "Yacute" => "Ý",
        "aacute" => "á",
        "agrave" => "à",
        "acirc" => "â",
        "atilde" => "ã",
        "aring" => "å",
        "aelig" => "æ",
        "ccedil" => "ç",
        "eacute" => "é",
        "egrave" => "è",
        "ecirc" => "ê",
        "euml" => "ë",
        "iacute" => "í",
        "igrave" => "ì",
        "icirc" => "î",
        "iuml" => "ï",
        "ntilde" => "ñ",
        "oacute" => "ó",
        "ograve" => "ò",
        "ocirc" => "ô",
        "otilde" => "õ",
        "oslash" => "ø",
        "uacute" => "ú",
        "ugrave" => "ù",
        "ucirc" => "û",
        "yacute" => "ý",
        "yuml" => "ÿ",
        _ => return false,
    });
    true
}

/// Numeric references, with the Windows-1252 reading HTML gives to 128–159.
pub(super) fn numeric_entity(code: u32) -> Option<char> {
    let c = match code {
        0x80 => '€',
        0x82 => '‚',
        0x84 => '„',
        0x85 => '…',
        0x91 => '‘',
        0x92 => '’',
        0x93 => '“',
        0x94 => '”',
        0x95 => '•',
        0x96 => '–',
        0x97 => '—',
        0x99 => '™',
        0 => '\u{FFFD}',
        _ => char::from_u32(code).unwrap_or('\u{FFFD}'),
    };
    (!c.is_control() || matches!(c, '\n' | '\t')).then_some(c)
}
