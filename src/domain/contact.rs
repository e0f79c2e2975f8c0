//! Customer contacts: E.164 phone numbers and lower-cased email addresses.
//!
//! Parse, don't validate: a `Phone` or `EmailAddress` can only be built by
//! the parsers here, so every layer behind the edge can compare contacts
//! with `==` and the database can put a unique index on the string.

use std::fmt;

/// Why a contact could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContactError {
    #[error("not a phone number: {0}")]
    Phone(String),
    #[error("not an email address: {0}")]
    Email(String),
}

/// A phone number in E.164 form, e.g. `+15551234567`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Phone(String);

impl Phone {
    /// Parses a number typed by a person or sent by a provider.
    ///
    /// `default_region` (ISO 3166 code such as `US`) applies to numbers
    /// without a country code. Channel prefixes such as `sms:` or `tel:` are
    /// split off first, because the phonenumber crate silently strips some
    /// of them and a `whatsapp:` sender is not the same contact as an SMS one.
    pub fn parse(raw: &str, default_region: &str) -> Result<Phone, ContactError> {
        let folded = fold_digits(raw);
        let trimmed = folded.trim();
        let number = trimmed
            .strip_prefix("tel:")
            .or_else(|| trimmed.strip_prefix("sms:"))
            .unwrap_or(trimmed);
        if number.is_empty()
            || number.contains(':')
            || !number.chars().any(|c| c.is_ascii_digit())
            || number.chars().any(|c| c.is_alphabetic())
        {
            return Err(ContactError::Phone(raw.to_string()));
        }
        let region = default_region
            .to_ascii_uppercase()
            .parse::<phonenumber::country::Id>()
            .ok();
        let parsed =
            phonenumber::parse(region, number).map_err(|_| ContactError::Phone(raw.to_string()))?;
        let formatted = parsed.format().mode(phonenumber::Mode::E164).to_string();
        if formatted.len() < 4 {
            return Err(ContactError::Phone(raw.to_string()));
        }
        Ok(Phone(formatted))
    }

    /// For senders a provider hands us: never lose a message because its
    /// sender is a short code or an alphanumeric sender id. What parses is
    /// normalised; anything else is kept verbatim (trimmed).
    pub fn parse_lenient(raw: &str, default_region: &str) -> Option<Phone> {
        match Phone::parse(raw, default_region) {
            Ok(p) => Some(p),
            Err(_) => {
                let t = raw.trim();
                (!t.is_empty() && t.len() <= 64 && !t.chars().any(char::is_control))
                    .then(|| Phone(t.to_string()))
            }
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The first code point (zero) of each block of ten decimal digits a phone
/// keyboard or a provider may send: Arabic-Indic, Extended Arabic-Indic
/// (Persian, Urdu), NKo, Devanagari, Bengali, Gurmukhi, Gujarati, Oriya,
/// Tamil, Telugu, Kannada, Malayalam, Thai, Lao, Tibetan, Myanmar, Khmer,
/// Mongolian, and the full-width forms of East Asian input methods.
const DIGIT_ZEROS: [u32; 19] = [
    0x0660, 0x06F0, 0x07C0, 0x0966, 0x09E6, 0x0A66, 0x0AE6, 0x0B66, 0x0BE6, 0x0C66, 0x0CE6, 0x0D66,
    0x0E50, 0x0ED0, 0x0F20, 0x1040, 0x17E0, 0x1810, 0xFF10,
];

/// `+１ ５５５…` and `+١٥٥٥…` are the same number as `+1 555…`: other
/// scripts' digits and the full-width `＋－（）` and space become ASCII, so
/// one person never becomes two customers by the keyboard they used.
fn fold_digits(raw: &str) -> String {
    raw.chars()
        .map(|c| {
            let cp = c as u32;
            if let Some(zero) = DIGIT_ZEROS.iter().find(|z| (**z..**z + 10).contains(&cp)) {
                return char::from(b'0' + (cp - zero) as u8);
            }
            match c {
                '＋' => '+',
                '－' | '‐' | '‑' | '‒' | '–' => '-',
                '（' => '(',
                '）' => ')',
                '\u{3000}' | '\u{00A0}' | '\u{202F}' => ' ',
                _ => c,
            }
        })
        .collect()
}

impl fmt::Display for Phone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An email addr-spec, lower-cased (SPEC §1: compared case-insensitively).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EmailAddress(String);

impl EmailAddress {
    /// Accepts a bare addr-spec (`a@b.c`), optionally in angle brackets.
    /// Deliberately simple: one `@`, a non-empty local part, a domain with a
    /// dot or `localhost`, no white space or control characters.
    pub fn parse(raw: &str) -> Result<EmailAddress, ContactError> {
        let t = raw.trim();
        let t = t
            .strip_prefix('<')
            .and_then(|s| s.strip_suffix('>'))
            .unwrap_or(t);
        let err = || ContactError::Email(raw.to_string());
        let (local, domain) = t.rsplit_once('@').ok_or_else(err)?;
        let bad = |s: &str| {
            s.is_empty()
                || s.chars().any(|c| {
                    c.is_whitespace() || c.is_control() || c == '<' || c == '>' || c == ','
                })
        };
        if bad(local)
            || bad(domain)
            || domain.contains('@')
            || local.contains('@') && !local.starts_with('"')
        {
            return Err(err());
        }
        if !(domain.contains('.') || domain.eq_ignore_ascii_case("localhost"))
            || domain.starts_with('.')
            || domain.ends_with('.')
        {
            return Err(err());
        }
        if t.len() > 254 {
            return Err(err());
        }
        Ok(EmailAddress(t.to_lowercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One way to reach a customer.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Contact {
    Phone(Phone),
    Email(EmailAddress),
}

impl Contact {
    /// Parses what staff type into "New Ticket": an address if it has an
    /// `@`, else a phone number.
    pub fn parse(raw: &str, default_region: &str) -> Result<Contact, ContactError> {
        if raw.contains('@') {
            EmailAddress::parse(raw).map(Contact::Email)
        } else {
            Phone::parse(raw, default_region).map(Contact::Phone)
        }
    }

    pub fn kind(&self) -> super::ContactKind {
        match self {
            Contact::Phone(_) => super::ContactKind::Phone,
            Contact::Email(_) => super::ContactKind::Email,
        }
    }

    pub fn value(&self) -> &str {
        match self {
            Contact::Phone(p) => p.as_str(),
            Contact::Email(e) => e.as_str(),
        }
    }

    /// The channel that reaches this contact.
    pub fn channel(&self) -> super::Channel {
        match self {
            Contact::Phone(_) => super::Channel::Sms,
            Contact::Email(_) => super::Channel::Email,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phones_normalise_to_e164() {
        assert_eq!(
            Phone::parse("+1 (555) 010-0123", "US").unwrap().as_str(),
            "+15550100123"
        );
        assert_eq!(
            Phone::parse("555-010-0123", "US").unwrap().as_str(),
            "+15550100123"
        );
        assert_eq!(
            Phone::parse("+15551234567", "GB").unwrap().as_str(),
            "+15551234567"
        );
        assert_eq!(
            Phone::parse("tel:+15551234567", "US").unwrap().as_str(),
            "+15551234567"
        );
        assert_eq!(
            Phone::parse("020 7946 0018", "GB").unwrap().as_str(),
            "+442079460018"
        );
    }

    #[test]
    fn other_scripts_digits_are_the_same_number() {
        for raw in [
            "＋１ ５５５ ０１０ ０１２３",
            "+١٥٥٥٠١٠٠١٢٣",
            "+۱۵۵۵۰۱۰۰۱۲۳",
            "+१५५५०१००१२३",
            "（５５５）０１０－０１２３",
            "+1\u{00A0}555\u{202F}010\u{2011}0123",
        ] {
            assert_eq!(
                Phone::parse(raw, "US").map(|p| p.0),
                Ok("+15550100123".to_string()),
                "{raw}"
            );
            assert_eq!(
                Phone::parse_lenient(raw, "US").unwrap().as_str(),
                "+15550100123",
                "{raw}"
            );
        }
        // A channel prefix still keeps a different channel's sender apart.
        assert!(Phone::parse("whatsapp:＋１５５５０１００１２３", "US").is_err());
    }

    #[test]
    fn phones_reject_garbage() {
        assert!(Phone::parse("", "US").is_err());
        assert!(Phone::parse("hello", "US").is_err());
        assert!(Phone::parse("whatsapp:+15551234567", "US").is_err());
        assert!(Phone::parse("a@b.c", "US").is_err());
    }

    #[test]
    fn lenient_keeps_short_codes_and_sender_ids() {
        assert_eq!(Phone::parse_lenient("ACME", "US").unwrap().as_str(), "ACME");
        assert_eq!(
            Phone::parse_lenient("+15551234567", "US").unwrap().as_str(),
            "+15551234567"
        );
        assert!(Phone::parse_lenient("  ", "US").is_none());
        assert!(Phone::parse_lenient("a\r\nb", "US").is_none());
    }

    #[test]
    fn emails_lower_case_and_validate() {
        assert_eq!(
            EmailAddress::parse(" Jane.Doe@Example.COM ")
                .unwrap()
                .as_str(),
            "jane.doe@example.com"
        );
        assert_eq!(EmailAddress::parse("<a@b.co>").unwrap().as_str(), "a@b.co");
        for bad in [
            "",
            "a",
            "a@",
            "@b.c",
            "a@b",
            "a b@c.d",
            "a@b.c\r\nBcc: x@y.z",
            "a@.c",
            "a@c.",
        ] {
            assert!(
                EmailAddress::parse(bad).is_err(),
                "{bad:?} should be rejected"
            );
        }
    }

    #[test]
    fn contact_picks_kind() {
        assert_eq!(
            Contact::parse("a@b.c", "US").unwrap().kind(),
            crate::domain::ContactKind::Email
        );
        assert_eq!(
            Contact::parse("+15551234567", "US").unwrap().channel(),
            crate::domain::Channel::Sms
        );
    }
}
