//! Whether writes may be attempted: the connection's `writes` setting, the CapabilityStatement,
//! and a refusal Epic gave this record recently.

use super::plan::WriteCapability;
use crate::crd::WriteMode;

/// What the connection's write setting plus the CapabilityStatement say about writes.
/// `lists_update`: whether the CapabilityStatement lists Practitioner update (None: not read).
pub fn write_capability(mode: WriteMode, lists_update: Option<bool>) -> WriteCapability {
    match mode {
        WriteMode::Enabled => WriteCapability::Enabled,
        WriteMode::Disabled => WriteCapability::Disabled,
        WriteMode::Auto => match lists_update {
            Some(true) => WriteCapability::Enabled,
            Some(false) => WriteCapability::Disabled,
            None => WriteCapability::Unknown,
        },
    }
}

/// Whether this practitioner's write may be attempted now, and what to say when it may not.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WritePolicy {
    pub writes: WriteCapability,
    /// The Synced message when a write is held for it (empty when writes are allowed).
    pub held_message: String,
}

/// What a refused or held write means for drift (the conditions and Events say it too).
pub const NOT_FIXED: &str = "drift is reported, not fixed";

/// The write policy of one practitioner: the connection's capability, unless Epic refused this
/// record's last write recently (it is retried no more often than the resync interval).
pub fn write_policy(
    connection: WriteCapability,
    mode: WriteMode,
    refused_recently: bool,
    last_refusal: Option<&str>,
) -> WritePolicy {
    if refused_recently {
        return WritePolicy {
            writes: WriteCapability::Disabled,
            held_message: format!(
                "Epic refused the last write ({}); it is retried after the resync interval",
                last_refusal.unwrap_or("write disabled")
            ),
        };
    }
    let held_message = match (connection, mode) {
        (WriteCapability::Disabled, WriteMode::Disabled) => {
            format!("the EpicConnection sets writes: Disabled; {NOT_FIXED}")
        }
        (WriteCapability::Disabled, _) => format!(
            "this Epic instance does not accept Practitioner writes (CapabilityStatement or an earlier refusal); {NOT_FIXED}"
        ),
        _ => String::new(),
    };
    WritePolicy {
        writes: connection,
        held_message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_policy_table() {
        use WriteCapability::*;
        let cases = [
            (Enabled, WriteMode::Auto, false, Enabled, ""),
            (Unknown, WriteMode::Auto, false, Unknown, ""),
            (
                Disabled,
                WriteMode::Disabled,
                false,
                Disabled,
                "sets writes: Disabled",
            ),
            (
                Disabled,
                WriteMode::Auto,
                false,
                Disabled,
                "does not accept Practitioner writes",
            ),
            (
                Enabled,
                WriteMode::Enabled,
                true,
                Disabled,
                "refused the last write (403 no)",
            ),
        ];
        for (conn, mode, refused, writes, says) in cases {
            let p = write_policy(conn, mode, refused, Some("403 no"));
            assert_eq!(p.writes, writes, "{conn:?} {mode:?} {refused}");
            assert!(p.held_message.contains(says), "{:?}", p.held_message);
            assert_eq!(p.held_message.is_empty(), says.is_empty());
        }
    }
}
