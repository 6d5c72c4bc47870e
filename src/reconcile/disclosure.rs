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
