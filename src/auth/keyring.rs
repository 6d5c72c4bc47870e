//! The keys of one connection: which are published, which one signs now, and which one to fall
//! back to while Epic still caches an older JWK Set.
//!
//! Rotation without a window of refused tokens (SMART asymmetric client authentication): a new
//! key is published `publishAhead` before it signs, so every cache of the JWK Set has it by the
//! time it is used, and the previous key stays published `retireAfter` after the switch, so an
//! assertion it signed, or a fallback to it, still verifies.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::keys::{ClientKey, KeyError, public_jwk_set};
use crate::crd::RotationPeriods;
use crate::util::later as add;

/// A key and when it was first published.
pub struct RingKey {
    pub key: ClientKey,
    pub since: DateTime<Utc>,
}

impl std::fmt::Debug for RingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RingKey")
            .field("kid", &self.key.kid())
            .field("since", &self.since)
            .finish()
    }
}

/// How the signing key is chosen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SignerChoice {
    /// Always this key id.
    Pinned(String),
    /// The newest key published for at least `publish_ahead`.
    NewestPublished(RotationPeriods),
}

/// Every key of a connection, oldest first.
#[derive(Debug)]
pub struct KeyRing {
    keys: Vec<RingKey>,
    choice: SignerChoice,
}

impl KeyRing {
    /// One key that always signs (the single-key form), published since now.
    pub fn single(key: ClientKey) -> Self {
        Self::single_since(key, Utc::now())
    }

    /// One key that always signs, published since `since`.
    pub fn single_since(key: ClientKey, since: DateTime<Utc>) -> Self {
        let kid = key.kid().to_string();
        Self {
            keys: vec![RingKey { key, since }],
            choice: SignerChoice::Pinned(kid),
        }
    }

    /// Several keys; a pinned key id must be among them.
    pub fn new(mut keys: Vec<RingKey>, choice: SignerChoice) -> Result<Self, KeyError> {
        if keys.is_empty() {
            return Err(KeyError::Layout(
                "no key found: add a <kid>.pem entry holding a PEM private key".into(),
            ));
        }
        keys.sort_by(|a, b| (a.since, a.key.kid()).cmp(&(b.since, b.key.kid())));
        if let SignerChoice::Pinned(kid) = &choice
            && !keys.iter().any(|k| k.key.kid() == kid)
        {
            return Err(KeyError::Layout(format!(
                "keyId {kid:?} is not among the keys ({}): add {kid}.pem or correct keyId",
                kids(&keys).join(", ")
            )));
        }
        Ok(Self { keys, choice })
    }

    /// Oldest first.
    pub fn keys(&self) -> &[RingKey] {
        &self.keys
    }

    pub fn choice(&self) -> &SignerChoice {
        &self.choice
    }

    /// The public JWK Set of every key.
    pub fn jwks(&self) -> Value {
        public_jwk_set(self.keys.iter().map(|k| &k.key))
    }

    fn index_of(&self, kid: &str) -> Option<usize> {
        self.keys.iter().position(|k| k.key.kid() == kid)
    }

    /// The key that signs at `now`. With no key published long enough (a first key, or
    /// keys all seen at once), the oldest signs: there is nothing older to prefer.
    pub fn signing_at(&self, now: DateTime<Utc>) -> &RingKey {
        let index = match &self.choice {
            SignerChoice::Pinned(kid) => self.index_of(kid).unwrap_or(0),
            SignerChoice::NewestPublished(p) => self
                .keys
                .iter()
                .rposition(|k| add(k.since, p.publish_ahead) <= now)
                .unwrap_or(0),
        };
        &self.keys[index.min(self.keys.len().saturating_sub(1))]
    }

    /// The key to sign with instead of `kid` when Epic refuses `kid` as `invalid_client`: the
    /// key Epic last accepted when it is still published, else the key published just before
    /// `kid`. Managed rotation keeps both published until Epic has accepted a newer one. Never
    /// for a pinned key.
    pub fn fallback_for(&self, kid: &str, last_accepted: Option<&str>) -> Option<&RingKey> {
        if matches!(self.choice, SignerChoice::Pinned(_)) {
            return None;
        }
        if let Some(accepted) = last_accepted.filter(|a| *a != kid)
            && let Some(i) = self.index_of(accepted)
        {
            return Some(&self.keys[i]);
        }
        let i = self.index_of(kid)?;
        i.checked_sub(1).map(|p| &self.keys[p])
    }

    /// When a key that is published but not yet signing begins to sign (the next switch).
    pub fn next_switch_after(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let SignerChoice::NewestPublished(p) = &self.choice else {
            return None;
        };
        self.keys
            .iter()
            .skip(1)
            .map(|k| add(k.since, p.publish_ahead))
            .find(|t| *t > now)
    }
}

fn kids(keys: &[RingKey]) -> Vec<&str> {
    keys.iter().map(|k| k.key.kid()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::generate_key;
    use crate::crd::Algorithm;
    use std::time::Duration;

    fn periods(ahead: u64, retire: u64) -> RotationPeriods {
        RotationPeriods {
            rotate_every: Duration::from_secs(100),
            publish_ahead: Duration::from_secs(ahead),
            retire_after: Duration::from_secs(retire),
        }
    }

    fn key(kid: &str, since: i64) -> RingKey {
        RingKey {
            key: generate_key(Algorithm::ES384, kid).unwrap().0,
            since: DateTime::from_timestamp(since, 0).unwrap(),
        }
    }

    fn at(t: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(t, 0).unwrap()
    }

    #[test]
    fn the_newest_key_signs_once_published_long_enough_and_falls_back_to_the_previous() {
        let ring = KeyRing::new(
            vec![key("new", 1000), key("old", 0)],
            SignerChoice::NewestPublished(periods(10, 20)),
        )
        .unwrap();
        assert_eq!(ring.keys()[0].key.kid(), "old", "oldest first");
        assert_eq!(ring.signing_at(at(1009)).key.kid(), "old");
        assert_eq!(ring.signing_at(at(1010)).key.kid(), "new");
        assert_eq!(ring.next_switch_after(at(1005)), Some(at(1010)));
        assert_eq!(ring.next_switch_after(at(1010)), None);
        assert_eq!(
            ring.fallback_for("new", None).map(|k| k.key.kid()),
            Some("old")
        );
        assert!(ring.fallback_for("old", None).is_none(), "nothing older");
    }

    #[test]
    fn the_fallback_is_the_key_epic_last_accepted_while_it_is_published() {
        let ring = KeyRing::new(
            vec![key("a", 0), key("b", 100), key("c", 200)],
            SignerChoice::NewestPublished(periods(10, 20)),
        )
        .unwrap();
        // Epic accepted a, refused b, and now c signs: a is the way back, not b.
        assert_eq!(
            ring.fallback_for("c", Some("a")).map(|k| k.key.kid()),
            Some("a")
        );
        assert_eq!(
            ring.fallback_for("c", Some("c")).map(|k| k.key.kid()),
            Some("b")
        );
        assert_eq!(
            ring.fallback_for("c", Some("gone")).map(|k| k.key.kid()),
            Some("b")
        );
    }

    #[test]
    fn a_first_key_signs_at_once_and_a_pinned_key_never_falls_back() {
        let ring = KeyRing::new(
            vec![key("only", 1000)],
            SignerChoice::NewestPublished(periods(10, 20)),
        )
        .unwrap();
        assert_eq!(ring.signing_at(at(1000)).key.kid(), "only");
        let pinned = KeyRing::new(
            vec![key("a", 0), key("b", 10)],
            SignerChoice::Pinned("a".into()),
        )
        .unwrap();
        assert_eq!(pinned.signing_at(at(1_000_000)).key.kid(), "a");
        assert!(pinned.fallback_for("b", Some("a")).is_none());
        let err = KeyRing::new(vec![key("a", 0)], SignerChoice::Pinned("z".into())).unwrap_err();
        assert!(
            err.to_string().contains("\"z\" is not among the keys (a)"),
            "{err}"
        );
        let err = KeyRing::new(vec![], SignerChoice::Pinned("z".into())).unwrap_err();
        assert!(err.to_string().contains("no key"), "{err}");
    }

    #[test]
    fn the_jwk_set_carries_every_public_key_and_no_private_member() {
        for alg in [
            Algorithm::RS256,
            Algorithm::RS384,
            Algorithm::RS512,
            Algorithm::ES384,
        ] {
            let keys = vec![
                RingKey {
                    key: generate_key(alg, "k1").unwrap().0,
                    since: at(0),
                },
                RingKey {
                    key: generate_key(alg, "k2").unwrap().0,
                    since: at(1),
                },
            ];
            let ring = KeyRing::new(keys, SignerChoice::NewestPublished(periods(1, 1))).unwrap();
            let set = ring.jwks();
            let entries = set["keys"].as_array().unwrap();
            assert_eq!(entries.len(), 2);
            for jwk in entries {
                for private in ["d", "p", "q", "dp", "dq", "qi", "k"] {
                    assert!(jwk.get(private).is_none(), "{alg:?}: {private} in {jwk}");
                }
                assert_eq!(jwk["use"], "sig");
                assert_eq!(jwk["alg"], format!("{alg:?}"));
                match alg {
                    Algorithm::ES384 => {
                        assert_eq!(jwk["kty"], "EC");
                        assert_eq!(jwk["crv"], "P-384");
                        assert!(jwk["x"].is_string() && jwk["y"].is_string());
                    }
                    _ => {
                        assert_eq!(jwk["kty"], "RSA");
                        assert!(jwk["n"].is_string() && jwk["e"].is_string());
                    }
                }
            }
            assert_eq!(entries[0]["kid"], "k1");
            assert_eq!(entries[1]["kid"], "k2");
        }
    }
}
