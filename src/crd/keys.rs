//! An EpicConnection's keys: where the Secret is, the signing algorithm, managed rotation and
//! its periods, how the Secret holds the keys, and `status.keys`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Where the private key is.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SecretKeyRef {
    /// Secret name.
    pub name: String,
    /// Entry of the Secret's data holding the one PEM private key (for example
    /// private-key.pem). Absent: every `<kid>.pem` entry is a key (several keys, rotation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

/// How the keys of a connection rotate.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KeyRotation {
    /// The operator generates the keys (per `algorithm`) into the Secret, creating it when
    /// absent, and rotates them on schedule. It never modifies a Secret without the label
    /// `epic-operator.dev/managed-keys: "true"`.
    #[serde(default)]
    pub managed: bool,
    /// How long a managed key signs before the next one is generated, for example 2160h
    /// (90 days, the default). At least 1s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([0-9]{1,6}(ms|s|m|h)){1,4}$"))]
    pub rotate_every: Option<String>,
    /// How long a new key is published before it signs: longer than Epic may cache the JWK
    /// Set. Default 48h. At least 1s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([0-9]{1,6}(ms|s|m|h)){1,4}$"))]
    pub publish_ahead: Option<String>,
    /// How long the previous key stays published after the switch (tokens it signed, and
    /// the fallback when Epic still refuses the new key). Default 48h. At least 1s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([0-9]{1,6}(ms|s|m|h)){1,4}$"))]
    pub retire_after: Option<String>,
}

/// The checked durations of a key rotation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RotationPeriods {
    pub rotate_every: std::time::Duration,
    pub publish_ahead: std::time::Duration,
    pub retire_after: std::time::Duration,
}

impl Default for RotationPeriods {
    fn default() -> Self {
        const HOUR: u64 = 3600;
        Self {
            rotate_every: std::time::Duration::from_secs(2160 * HOUR),
            publish_ahead: std::time::Duration::from_secs(48 * HOUR),
            retire_after: std::time::Duration::from_secs(48 * HOUR),
        }
    }
}

impl KeyRotation {
    /// The periods, defaulted and checked (each at least 1s).
    pub fn periods(&self) -> Result<RotationPeriods, String> {
        let d = RotationPeriods::default();
        let parse = |field: &str, v: &Option<String>, default| -> Result<_, String> {
            let Some(text) = v else { return Ok(default) };
            let parsed = crate::util::parse_duration(text)
                .map_err(|e| format!("keyRotation.{field}: {e}"))?;
            if parsed < std::time::Duration::from_secs(1) {
                return Err(format!(
                    "keyRotation.{field} {text:?} is shorter than 1s: give a duration such as 48h"
                ));
            }
            Ok(parsed)
        };
        Ok(RotationPeriods {
            rotate_every: parse("rotateEvery", &self.rotate_every, d.rotate_every)?,
            publish_ahead: parse("publishAhead", &self.publish_ahead, d.publish_ahead)?,
            retire_after: parse("retireAfter", &self.retire_after, d.retire_after)?,
        })
    }
}

/// JWT signing algorithm of the client assertion (Epic accepts the RSA ones for every client).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum Algorithm {
    #[default]
    RS384,
    ES384,
    RS256,
    RS512,
}

/// The keys of a connection, as the operator uses and publishes them.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KeysStatus {
    /// The key that signs client assertions now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing_key_id: Option<String>,
    /// The key of the last client assertion Epic accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_accepted_key_id: Option<String>,
    /// Every key published at the JWK Set URL.
    #[serde(default)]
    pub published: Vec<PublishedKey>,
    /// When managed rotation generates the next key (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_rotation_time: Option<String>,
    /// A new key Epic refused (invalid_client, its JWK Set cache is older than the key):
    /// the previous key signs until the new one is tried again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused_key_id: Option<String>,
}

/// One published public key.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PublishedKey {
    /// The key id (`kid`) in the JWK Set.
    pub key_id: String,
    /// The key's signing algorithm.
    pub algorithm: Algorithm,
    /// Published since (RFC 3339): when the operator generated it or first saw it.
    pub since: String,
    /// When managed rotation removes it (RFC 3339); absent while it is current.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retires_at: Option<String>,
}

/// How a connection's Secret holds its keys, checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyLayout {
    /// One PEM entry, signed with as `kid` (the form from before several keys).
    Single { entry: String, kid: String },
    /// Every `<kid>.pem` entry is a key; `pinned` signs when given.
    Several {
        pinned: Option<String>,
        periods: RotationPeriods,
        managed: bool,
    },
}

/// The label a Secret needs before the operator writes keys into it.
pub const MANAGED_KEYS_LABEL: &str = "epic-operator.dev/managed-keys";
/// Set to a new value on an EpicConnection, rotates its managed keys now.
pub const ROTATE_KEYS_ANNOTATION: &str = "epic-operator.dev/rotate-keys";
