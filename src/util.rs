//! Small helpers shared by several modules.

#![deny(clippy::arithmetic_side_effects)]

use std::time::Duration;

/// Parses durations such as `90s`, `10m`, `1h30m` or `250ms`. The text comes from manifests
/// and flags, so every step is checked: a value too large for a clock is an error, not a panic
/// or a silently saturated number.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let err = || {
        format!(
            "invalid duration {text:?}: use digits followed by ms, s, m or h, e.g. 10m or 1h30m"
        )
    };
    if text.is_empty() {
        return Err(err());
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.chars().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 {
            return Err(err());
        }
        let n: u64 = rest[..digits].parse().map_err(|_| err())?;
        rest = &rest[digits..];
        let unit_len = rest.chars().take_while(|c| c.is_ascii_alphabetic()).count();
        let too_long = || format!("duration {text:?} is too long");
        let part = match &rest[..unit_len] {
            "ms" => Duration::from_millis(n),
            "s" => Duration::from_secs(n),
            "m" => Duration::from_secs(n.checked_mul(60).ok_or_else(too_long)?),
            "h" => Duration::from_secs(n.checked_mul(3600).ok_or_else(too_long)?),
            _ => return Err(err()),
        };
        total = total.checked_add(part).ok_or_else(too_long)?;
        rest = &rest[unit_len..];
    }
    Ok(total)
}

/// How long ago an RFC 3339 time was (zero for a time in the future); None when unparsable.
pub fn age_of(rfc3339: &str) -> Option<Duration> {
    let t = chrono::DateTime::parse_from_rfc3339(rfc3339).ok()?;
    Some(
        chrono::Utc::now()
            .signed_duration_since(t)
            .to_std()
            .unwrap_or_default(),
    )
}

/// Current time as RFC 3339 with second precision (the shape Kubernetes uses).
/// `t + d`, saturating at the far future (durations come from checked manifests).
pub fn later(t: chrono::DateTime<chrono::Utc>, d: Duration) -> chrono::DateTime<chrono::Utc> {
    chrono::TimeDelta::from_std(d)
        .ok()
        .and_then(|d| t.checked_add_signed(d))
        .unwrap_or(chrono::DateTime::<chrono::Utc>::MAX_UTC)
}

pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// `text` cut to at most `max` bytes on a character boundary, and how many bytes were left out.
fn cut(text: &str, max: usize) -> (&str, usize) {
    let mut end = max.min(text.len());
    while !text.is_char_boundary(end) {
        end = end.saturating_sub(1);
    }
    (&text[..end], text.len().saturating_sub(end))
}

/// Cuts `text` to at most `max` bytes on a character boundary, saying how much was left out.
pub fn truncate_with_note(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let (kept, left_out) = cut(text, max);
    format!("{kept}\n... ({left_out} more bytes not shown)\n")
}

/// Cuts a one-line message to at most `max` bytes (on a character boundary), ending it with a
/// marker that says how much was left out.
/// The result is itself at most `max` bytes, so cutting again changes nothing.
pub fn bounded_message(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    // Room for the marker (at most 40 bytes), so the result never exceeds `max`.
    let (kept, left_out) = cut(text, max.saturating_sub(40));
    format!("{kept} [... {left_out} more bytes not shown]")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert!(parse_duration("10").is_err());
        assert!(parse_duration("m").is_err());
        assert!(parse_duration("5d").is_err());
        assert!(parse_duration("99999999999999999999s").is_err());
        assert!(parse_duration("18446744073709551615s1s").is_err());
    }

    #[test]
    fn truncation_on_char_boundary() {
        let s = "ééééé";
        let t = truncate_with_note(s, 3);
        assert!(t.starts_with('é'));
        assert!(t.contains("more bytes"));
        assert_eq!(truncate_with_note("abc", 10), "abc");
    }
}
