//! How long to believe a token, and how long to wait after a failed token request. Both come
//! from outside numbers (a server's `expires_in`, a failure count), so nothing here can
//! overflow or panic.

#![deny(clippy::arithmetic_side_effects)]

use std::time::Duration;

/// Longest token lifetime believed: Epic issues hour-long tokens, and a server claiming more
/// (or a number too large for a clock) must not keep a revoked token in use for years.
pub const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 3600);
/// Lifetime assumed when the server gives none (or nonsense).
const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(300);

/// The lifetime of a token from the response's `expires_in` (a number or a numeric string),
/// bounded to [1 s, 24 h].
pub fn token_lifetime(expires_in: Option<&serde_json::Value>) -> Duration {
    expires_in
        .and_then(|v| {
            v.as_u64()
                .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
        })
        .map_or(DEFAULT_TOKEN_LIFETIME, |secs| {
            Duration::from_secs(secs.max(1)).min(MAX_TOKEN_LIFETIME)
        })
}

// Kept, not backon: a pure function of the count the token cache keeps (backon's is an iterator).
/// Waits after a failed token request: 1 s, doubling, at most a minute. A dead or hanging token
/// endpoint then costs one attempt per step for the whole connection, not one per request.
pub(super) fn failure_backoff(failures: u32) -> Duration {
    Duration::from_secs(1u64 << failures.saturating_sub(1).min(6)).min(Duration::from_secs(60))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn failure_backoff_doubles_to_a_minute() {
        assert_eq!(failure_backoff(1), Duration::from_secs(1));
        assert_eq!(failure_backoff(2), Duration::from_secs(2));
        assert_eq!(failure_backoff(7), Duration::from_secs(60));
        assert_eq!(failure_backoff(u32::MAX), Duration::from_secs(60));
    }

    #[test]
    fn hostile_lifetimes_are_bounded_not_panics() {
        for v in [
            json!(10_000_000_000_000u64),
            json!(u64::MAX),
            json!("18446744073709551615"),
        ] {
            assert_eq!(token_lifetime(Some(&v)), MAX_TOKEN_LIFETIME, "{v}");
        }
        assert_eq!(
            token_lifetime(Some(&json!(3600))),
            Duration::from_secs(3600)
        );
        assert_eq!(
            token_lifetime(Some(&json!("3600"))),
            Duration::from_secs(3600)
        );
        assert_eq!(token_lifetime(Some(&json!(0))), Duration::from_secs(1));
        for v in [json!(-5), json!(1.5e300), json!("soon"), json!(null)] {
            assert_eq!(token_lifetime(Some(&v)), DEFAULT_TOKEN_LIFETIME, "{v}");
        }
    }
}
