//! Keys from named PEM entries: the data of a Kubernetes Secret, or the files of a key
//! directory. One entry holds one private key; in the several-keys form its name is
//! `<kid>.pem`.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::keyring::{KeyRing, RingKey, SignerChoice};
use super::keys::{ClientKey, KeyError};
use crate::crd::{Algorithm, KeyLayout};

/// The entry name the single-key form used by default before keys could be several.
pub const LEGACY_KEY_ENTRY: &str = "private-key.pem";

/// The key id an entry named `<kid>.pem` holds, when the name is one (a kid is 1-64 of
/// `A-Z a-z 0-9 . _ -`, which every Secret data key and file name can carry).
pub fn kid_of_entry(name: &str) -> Option<&str> {
    let kid = name.strip_suffix(".pem")?;
    let valid = !kid.is_empty()
        && kid.len() <= 64
        && kid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    valid.then_some(kid)
}

/// The entry name that holds key `kid`.
pub fn entry_of_kid(kid: &str) -> String {
    format!("{kid}.pem")
}

/// Loads the keys of `layout` from `entries` (name -> PEM bytes). `since` says when each key
/// id was first published. Errors name the entry and never carry key material.
pub fn load_ring(
    layout: &KeyLayout,
    entries: &BTreeMap<String, Vec<u8>>,
    alg: Algorithm,
    since: impl Fn(&str) -> DateTime<Utc>,
    source: &str,
) -> Result<KeyRing, KeyError> {
    let parse = |entry: &str, kid: &str, bytes: &[u8]| -> Result<ClientKey, KeyError> {
        let pem = std::str::from_utf8(bytes).map_err(|_| {
            KeyError::Layout(format!(
                "{source} entry {entry} is not PEM text (not UTF-8)"
            ))
        })?;
        ClientKey::from_pem(pem, alg, kid)
            .map_err(|e| KeyError::Layout(format!("{source} entry {entry}: {e}")))
    };
    match layout {
        KeyLayout::Single { entry, kid } => {
            let bytes = entries.get(entry).ok_or_else(|| {
                KeyError::Layout(format!(
                    "{source} has no entry {entry:?} holding a PEM private key"
                ))
            })?;
            Ok(KeyRing::single_since(parse(entry, kid, bytes)?, since(kid)))
        }
        // A Secret made for the single-key form (`private-key.pem`) referenced without `key`
        // but with keyId: read exactly as before, that one entry under keyId (other entries,
        // such as a certificate, are not keys there).
        KeyLayout::Several {
            pinned: Some(kid),
            managed: false,
            ..
        } if entries.contains_key(LEGACY_KEY_ENTRY)
            && !entries.contains_key(&entry_of_kid(kid)) =>
        {
            let bytes = &entries[LEGACY_KEY_ENTRY];
            Ok(KeyRing::single_since(
                parse(LEGACY_KEY_ENTRY, kid, bytes)?,
                since(kid),
            ))
        }
        KeyLayout::Several {
            pinned,
            periods,
            managed,
        } => {
            let mut keys = Vec::new();
            for (name, bytes) in entries {
                let Some(kid) = kid_of_entry(name) else {
                    continue;
                };
                if *managed && name == LEGACY_KEY_ENTRY {
                    return Err(KeyError::Layout(format!(
                        "{source} holds {LEGACY_KEY_ENTRY}, whose kid managed rotation cannot know: rename the entry to <kid>.pem with the kid Epic has, or remove it"
                    )));
                }
                keys.push(RingKey {
                    key: parse(name, kid, bytes)?,
                    since: since(kid),
                });
            }
            if keys.is_empty() {
                return Err(KeyError::Layout(format!(
                    "{source} has no <kid>.pem entry: add one per key (for example epic-2026.pem), or set privateKeySecretRef.key"
                )));
            }
            let choice = match pinned {
                Some(kid) => SignerChoice::Pinned(kid.clone()),
                None => SignerChoice::NewestPublished(*periods),
            };
            KeyRing::new(keys, choice).map_err(|e| KeyError::Layout(format!("{source}: {e}")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::generate_key;
    use crate::crd::RotationPeriods;

    fn pem(alg: Algorithm) -> Vec<u8> {
        generate_key(alg, "x").unwrap().1.into_bytes()
    }

    fn several(pinned: Option<&str>) -> KeyLayout {
        KeyLayout::Several {
            pinned: pinned.map(str::to_string),
            periods: RotationPeriods::default(),
            managed: false,
        }
    }

    #[test]
    fn entry_names_give_key_ids() {
        assert_eq!(kid_of_entry("epic-2026.pem"), Some("epic-2026"));
        assert_eq!(kid_of_entry("a.b_c.pem"), Some("a.b_c"));
        assert_eq!(kid_of_entry(".pem"), None);
        assert_eq!(kid_of_entry("jwks.json"), None);
        assert_eq!(kid_of_entry("bad kid.pem"), None);
    }

    #[test]
    fn the_single_key_form_is_unchanged_and_several_keys_are_every_pem_entry() {
        let mut entries = BTreeMap::new();
        entries.insert("private-key.pem".to_string(), pem(Algorithm::RS384));
        let single = KeyLayout::Single {
            entry: "private-key.pem".into(),
            kid: "epic-1".into(),
        };
        let ring = load_ring(
            &single,
            &entries,
            Algorithm::RS384,
            |_| Utc::now(),
            "Secret s",
        )
        .unwrap();
        assert_eq!(ring.keys().len(), 1);
        assert_eq!(ring.signing_at(Utc::now()).key.kid(), "epic-1");
        // The same Secret referenced without `key`, keyId pinned: the same key and kid.
        let ring = load_ring(
            &several(Some("epic-1")),
            &entries,
            Algorithm::RS384,
            |_| Utc::now(),
            "Secret s",
        )
        .unwrap();
        assert_eq!(ring.signing_at(Utc::now()).key.kid(), "epic-1");

        let mut entries = BTreeMap::new();
        entries.insert("k1.pem".to_string(), pem(Algorithm::ES384));
        entries.insert("k2.pem".to_string(), pem(Algorithm::ES384));
        entries.insert("notes.txt".to_string(), b"ignored".to_vec());
        let ring = load_ring(
            &several(None),
            &entries,
            Algorithm::ES384,
            |_| Utc::now(),
            "Secret s",
        )
        .unwrap();
        assert_eq!(ring.jwks()["keys"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn a_legacy_secret_without_key_reads_as_before_and_managed_rotation_refuses_it() {
        let mut entries = BTreeMap::new();
        entries.insert("private-key.pem".to_string(), pem(Algorithm::RS384));
        // Not a key: in the single-key form it was never read.
        entries.insert(
            "ca.pem".to_string(),
            b"-----BEGIN CERTIFICATE-----".to_vec(),
        );
        let ring = load_ring(
            &several(Some("epic-1")),
            &entries,
            Algorithm::RS384,
            |_| Utc::now(),
            "Secret s",
        )
        .unwrap();
        assert_eq!(ring.keys().len(), 1);
        assert_eq!(ring.signing_at(Utc::now()).key.kid(), "epic-1");
        let managed = KeyLayout::Several {
            pinned: None,
            periods: RotationPeriods::default(),
            managed: true,
        };
        let mut entries = BTreeMap::new();
        entries.insert("private-key.pem".to_string(), pem(Algorithm::RS384));
        let err = load_ring(
            &managed,
            &entries,
            Algorithm::RS384,
            |_| Utc::now(),
            "Secret s",
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("rename the entry to <kid>.pem"),
            "{err}"
        );
    }

    #[test]
    fn bad_entries_are_named() {
        let mut entries = BTreeMap::new();
        entries.insert("k1.pem".to_string(), b"hello".to_vec());
        let err = load_ring(
            &several(None),
            &entries,
            Algorithm::RS384,
            |_| Utc::now(),
            "Secret s",
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("Secret s entry k1.pem: the private key is not PEM"),
            "{err}"
        );
        let mut entries = BTreeMap::new();
        entries.insert("k1.pem".to_string(), pem(Algorithm::ES384));
        let err = load_ring(
            &several(None),
            &entries,
            Algorithm::RS384,
            |_| Utc::now(),
            "Secret s",
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("k1.pem") && err.to_string().contains("needs an RSA key"),
            "{err}"
        );
        let err = load_ring(
            &several(None),
            &BTreeMap::new(),
            Algorithm::RS384,
            |_| Utc::now(),
            "Secret s",
        )
        .unwrap_err();
        assert!(err.to_string().contains("no <kid>.pem entry"), "{err}");
        let single = KeyLayout::Single {
            entry: "key.pem".into(),
            kid: "k".into(),
        };
        let err = load_ring(
            &single,
            &BTreeMap::new(),
            Algorithm::RS384,
            |_| Utc::now(),
            "Secret s",
        )
        .unwrap_err();
        assert!(err.to_string().contains("no entry \"key.pem\""), "{err}");
    }
}
