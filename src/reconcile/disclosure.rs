//! What drift output may show. Contact values and birth dates are personal data: in status
//! (which anyone who may read the object sees), in Events and by default in the CLI they are
//! masked; `plan --show-values` shows them in full on the operator's own terminal.

use serde_json::Value;

/// How much of a personal value drift output shows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Disclosure {
    /// Phone numbers and other contact values: the last four characters; e-mail addresses:
    /// the domain; birth dates: the year.
    #[default]
    Masked,
    /// Every value as it is (the CLI with `--show-values`).
    Full,
}

/// The value of one owned field (by its path key) as `disclosure` allows.
pub fn disclose(field: &str, value: Value, disclosure: Disclosure) -> Value {
    if disclosure == Disclosure::Full {
        return value;
    }
    match field {
        "telecom" => mask_contacts(value),
        "birthDate" => match value {
            Value::String(s) => Value::String(mask_birth_date(&s)),
            other => other,
        },
        _ => value,
    }
}

/// Masks every contact value in a telecom projection (entries with a `value`, or bare strings).
fn mask_contacts(v: Value) -> Value {
    match v {
        Value::String(s) => Value::String(mask_contact(&s)),
        Value::Array(items) => Value::Array(items.into_iter().map(mask_contacts).collect()),
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| {
                    let v = match (k.as_str(), v) {
                        ("value", Value::String(s)) => Value::String(mask_contact(&s)),
                        (_, v @ (Value::Array(_) | Value::Object(_))) => mask_contacts(v),
                        (_, v) => v,
                    };
                    (k, v)
                })
                .collect(),
        ),
        other => other,
    }
}

/// `alice@hospital.example.org` -> `***@hospital.example.org`; `+1 (608) 555-0123` ->
/// `***0123`. Short values are hidden whole.
pub fn mask_contact(s: &str) -> String {
    if let Some((_, domain)) = s.rsplit_once('@') {
        return format!("***@{domain}");
    }
    let chars: Vec<char> = s.chars().collect();
    if chars.len() <= 6 {
        return "***".into();
    }
    let tail: String = chars[chars.len().saturating_sub(4)..].iter().collect();
    format!("***{tail}")
}

/// `1980-04-15` -> `1980-**-**`.
fn mask_birth_date(s: &str) -> String {
    match s.get(..4) {
        Some(year) if s.len() > 4 => format!("{year}{}", "-**".repeat(s[4..].matches('-').count())),
        _ => s.to_string(),
    }
}

/// `text` with what looks like personal data masked, for text that comes from outside (Epic's
/// diagnostics, an OAuth `error_description`): e-mail addresses keep only their domain
/// (`***@example.org`), phone numbers (a `+`, or digits grouped by separators, 10 digits or
/// more) become `[phone]`, and plain dates (`1980-04-12`, `04/12/1980`; not RFC 3339 times)
/// keep only the year. Bare digit runs such as an NPI, and FHIR ids, stay.
pub fn mask_personal_text(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        if let Some((end, masked)) = email_at(&chars, i)
            .or_else(|| date_at(&chars, i))
            .or_else(|| phone_at(&chars, i))
        {
            out.push_str(&masked);
            i = end;
        } else {
            out.push(chars[i]);
            i += 1;
        }
    }
    out
}

fn is_word(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '%' | '+' | '-')
}

/// An e-mail address whose local part starts at `i` (the start of a word).
fn email_at(c: &[char], i: usize) -> Option<(usize, String)> {
    if i > 0 && is_word(c[i - 1]) {
        return None;
    }
    let mut at = i;
    while at < c.len() && is_word(c[at]) {
        at += 1;
    }
    if at == i || at >= c.len() || c[at] != '@' {
        return None;
    }
    let mut end = at + 1;
    while end < c.len() && (c[end].is_ascii_alphanumeric() || matches!(c[end], '.' | '-')) {
        end += 1;
    }
    // Not a trailing full stop of the sentence.
    while end > at + 1 && c[end - 1] == '.' {
        end -= 1;
    }
    let domain: String = c[at + 1..end].iter().collect();
    let tld_ok = domain.rsplit_once('.').is_some_and(|(host, tld)| {
        !host.is_empty() && tld.len() >= 2 && tld.chars().all(|ch| ch.is_ascii_alphabetic())
    });
    tld_ok.then(|| (end, format!("***@{domain}")))
}

fn digits(c: &[char], i: usize, n: usize) -> bool {
    i + n <= c.len() && c[i..i + n].iter().all(char::is_ascii_digit)
}

/// A plain date starting at `i`: YYYY-MM-DD (not followed by `T`, which makes it a time) or
/// MM/DD/YYYY. Keeps the year.
fn date_at(c: &[char], i: usize) -> Option<(usize, String)> {
    if i > 0 && c[i - 1].is_ascii_alphanumeric() {
        return None;
    }
    let boundary = |end: usize| end >= c.len() || !c[end].is_ascii_alphanumeric();
    if digits(c, i, 4)
        && c.get(i + 4) == Some(&'-')
        && digits(c, i + 5, 2)
        && c.get(i + 7) == Some(&'-')
        && digits(c, i + 8, 2)
        && boundary(i + 10)
    {
        let year: String = c[i..i + 4].iter().collect();
        return Some((i + 10, format!("{year}-**-**")));
    }
    if digits(c, i, 2)
        && c.get(i + 2) == Some(&'/')
        && digits(c, i + 3, 2)
        && c.get(i + 5) == Some(&'/')
        && digits(c, i + 6, 4)
        && boundary(i + 10)
    {
        let year: String = c[i + 6..i + 10].iter().collect();
        return Some((i + 10, format!("**/**/{year}")));
    }
    None
}

/// A phone number starting at `i`: `+` or `(` or a digit, then digits and separators
/// (space, `-`, `.`, `(`, `)`), 10 to 15 digits in all, with a `+` in front or a separator
/// between digits (a bare digit run is an NPI or an id, not masked).
fn phone_at(c: &[char], i: usize) -> Option<(usize, String)> {
    if i > 0 && (c[i - 1].is_ascii_alphanumeric() || c[i - 1] == '+') {
        return None;
    }
    let plus = c[i] == '+';
    if !(plus || c[i] == '(' || c[i].is_ascii_digit()) {
        return None;
    }
    let mut end = i + usize::from(plus);
    let mut count = 0;
    let mut separated = false;
    let mut pending = false;
    let mut last_digit = end;
    while end < c.len() {
        let ch = c[end];
        if ch.is_ascii_digit() {
            // A separator counts only between digits.
            separated |= pending;
            pending = false;
            count += 1;
            last_digit = end + 1;
        } else if matches!(ch, ' ' | '-' | '.' | '(' | ')') {
            pending |= count > 0;
        } else {
            break;
        }
        end += 1;
    }
    let end = last_digit;
    let word_ends = end >= c.len() || !c[end].is_ascii_alphanumeric();
    ((10..=15).contains(&count) && (plus || separated) && word_ends)
        .then(|| (end, "[phone]".to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn personal_values_are_masked_unless_asked() {
        let telecom = json!([{"system": "phone", "use": "work", "value": "+1 (608) 555-0123"},
            {"system": "email", "value": "alice.smith@hospital.example.org"}]);
        let masked = disclose("telecom", telecom.clone(), Disclosure::Masked).to_string();
        assert!(
            !masked.contains("555-0123") && !masked.contains("alice"),
            "{masked}"
        );
        assert!(masked.contains("***0123") && masked.contains("***@hospital.example.org"));
        assert!(masked.contains("\"work\""), "keys and uses stay: {masked}");
        assert_eq!(
            disclose("telecom", telecom.clone(), Disclosure::Full),
            telecom
        );
        assert_eq!(
            disclose("birthDate", json!("1980-04-15"), Disclosure::Masked),
            json!("1980-**-**")
        );
        assert_eq!(
            disclose("birthDate", json!("1980"), Disclosure::Masked),
            json!("1980")
        );
        assert_eq!(
            disclose("active", json!(true), Disclosure::Masked),
            json!(true)
        );
        assert_eq!(mask_contact("12345"), "***");
    }
}

#[cfg(test)]
mod personal_text_tests {
    use super::mask_personal_text as mask;

    #[test]
    fn personal_data_in_outside_text_is_masked_and_identifiers_stay() {
        assert_eq!(
            mask("duplicate of jane.doe@hospital.example.org."),
            "duplicate of ***@hospital.example.org."
        );
        assert_eq!(mask("call (555) 123-4567 now"), "call [phone] now");
        assert_eq!(mask("call +1 555 123 4567"), "call [phone]");
        assert_eq!(mask("phone 555.123.4567, fax"), "phone [phone], fax");
        assert_eq!(mask("born 1980-04-12"), "born 1980-**-**");
        assert_eq!(mask("born 04/12/1980."), "born **/**/1980.");
        // Identifiers and our own times stay.
        for kept in [
            "NPI 1234567893 not found",
            "Practitioner/eNVpBnMrJegVDQ7gVzmKAhUY",
            "id e-12.3-4",
            "retry at 2026-12-01T21:00:00Z",
            "HTTP 404 [4101] no results",
            "user@localhost",
        ] {
            assert_eq!(mask(kept), kept);
        }
        assert_eq!(mask(""), "");
        assert_eq!(mask("ünïcode @ x"), "ünïcode @ x");
    }
}
