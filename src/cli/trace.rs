//! `trace`: a connection, its practitioners and their reasons as a tree, read from the
//! cluster (the kubeconfig's context), so one command shows why a practitioner is not Ready
//! and whether its connection is the cause.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::process::ExitCode;

use clap::Args;
use kube::api::ListParams;
use kube::{Api, ResourceExt};

use super::fail;
use crate::crd::{Condition, EpicConnection, EpicPractitioner};

#[derive(Args, Debug)]
pub struct TraceArgs {
    /// Only this EpicConnection (default: every connection of the namespace).
    pub connection: Option<String>,
    /// Namespace (default: the kubeconfig context's).
    #[arg(short = 'n', long, conflicts_with = "all_namespaces")]
    pub namespace: Option<String>,
    /// Every namespace.
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
}

pub(super) async fn trace(args: TraceArgs) -> ExitCode {
    let client = match kube::Client::try_default().await {
        Ok(c) => c,
        Err(e) => {
            return fail(&format!(
                "cannot reach the cluster (KUBECONFIG or the in-cluster account): {e}"
            ));
        }
    };
    let ns = args
        .namespace
        .clone()
        .unwrap_or_else(|| client.default_namespace().to_string());
    let (connections, practitioners): (Api<EpicConnection>, Api<EpicPractitioner>) =
        if args.all_namespaces {
            (Api::all(client.clone()), Api::all(client))
        } else {
            (
                Api::namespaced(client.clone(), &ns),
                Api::namespaced(client, &ns),
            )
        };
    let lp = ListParams::default();
    let (c, p) = futures::join!(connections.list(&lp), practitioners.list(&lp));
    let (c, p) = match (c, p) {
        (Ok(c), Ok(p)) => (c.items, p.items),
        (Err(e), _) | (_, Err(e)) => {
            return fail(&format!(
                "cannot list EpicConnections and EpicPractitioners (CRDs installed? RBAC: get and list on both): {e}"
            ));
        }
    };
    let text = render(&c, &p, args.connection.as_deref());
    if text.is_empty() {
        return fail(&match &args.connection {
            Some(name) => format!(
                "no EpicConnection {name} and no EpicPractitioner referring to it in namespace {ns}"
            ),
            None => format!("no EpicConnection or EpicPractitioner in namespace {ns}"),
        });
    }
    print!("{text}");
    ExitCode::SUCCESS
}

fn condition<'a>(conditions: &'a [Condition], t: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == t)
}

fn summary(conditions: &[Condition]) -> String {
    match condition(conditions, "Ready") {
        Some(c) => format!("Ready={:?} {}", c.status, c.reason),
        None => "Ready=Unknown Pending".into(),
    }
}

/// The tree: each connection (or a missing one that practitioners refer to), its
/// practitioners sorted by name, each with its reasons and drifted paths (never values).
pub fn render(
    connections: &[EpicConnection],
    practitioners: &[EpicPractitioner],
    only: Option<&str>,
) -> String {
    // (namespace, connection) -> its practitioners.
    let mut groups: BTreeMap<(String, String), Vec<&EpicPractitioner>> = BTreeMap::new();
    for c in connections {
        groups
            .entry((c.namespace().unwrap_or_default(), c.name_any()))
            .or_default();
    }
    for p in practitioners {
        groups
            .entry((
                p.namespace().unwrap_or_default(),
                p.spec.connection_ref.name.clone(),
            ))
            .or_default()
            .push(p);
    }
    let mut out = String::new();
    for ((ns, name), mut members) in groups {
        if only.is_some_and(|o| o != name) {
            continue;
        }
        members.sort_by_key(|p| p.name_any());
        let conn = connections
            .iter()
            .find(|c| c.name_any() == name && c.namespace().unwrap_or_default() == ns);
        match conn {
            Some(c) => {
                let s = c.status.clone().unwrap_or_default();
                let _ = write!(
                    out,
                    "EpicConnection {ns}/{name}  {}",
                    summary(&s.conditions)
                );
                if let Some(w) = s.writable {
                    let _ = write!(out, "  writable={w}");
                }
                out.push('\n');
                if let Some(e) = &s.last_error {
                    let _ = writeln!(out, "│   error: {}: {}", e.reason, e.message);
                }
                if let Some(w) = &s.walk {
                    let _ = writeln!(
                        out,
                        "│   last walk: {} at {}, {:.1} s, {} records, {} pages, {} expired paging sessions",
                        w.last_result,
                        w.last_start_time,
                        w.last_duration_seconds,
                        w.records,
                        w.pages,
                        w.paging_expired
                    );
                }
            }
            None => {
                let _ = writeln!(
                    out,
                    "EpicConnection {ns}/{name}  MISSING: its practitioners hold with ConnectionNotReady until it exists"
                );
            }
        }
        let last = members.len().saturating_sub(1);
        for (i, p) in members.iter().enumerate() {
            let (branch, stem) = if i == last {
                ("└──", "    ")
            } else {
                ("├──", "│   ")
            };
            let s = p.status.clone().unwrap_or_default();
            let _ = write!(
                out,
                "{branch} EpicPractitioner {}  NPI {}  {}",
                p.name_any(),
                p.spec.npi,
                summary(&s.conditions)
            );
            if !s.drift.is_empty() {
                let paths: Vec<&str> = s.drift.iter().map(|d| d.path.as_str()).collect();
                let _ = write!(out, "  drift: {}", paths.join(", "));
            }
            if p.is_paused() {
                out.push_str("  (paused)");
            }
            out.push('\n');
            for t in ["Synced", "InSync"] {
                if let Some(c) = condition(&s.conditions, t)
                    && c.status != crate::crd::ConditionStatus::True
                {
                    let _ = writeln!(out, "{stem}  {t}: {}: {}", c.reason, c.message);
                }
            }
            if let Some(v) = &s.last_verified_time {
                let _ = writeln!(out, "{stem}  verified against Epic at {v}");
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{ConditionStatus, DriftEntry, EpicPractitionerStatus, WalkStatus};

    fn cond(t: &str, ok: bool, reason: &str) -> Condition {
        Condition {
            type_: t.into(),
            status: if ok {
                ConditionStatus::True
            } else {
                ConditionStatus::False
            },
            reason: reason.into(),
            message: format!("{reason} detail"),
            last_transition_time: "2026-12-01T10:00:00Z".into(),
            observed_generation: Some(1),
        }
    }

    fn practitioner(name: &str, conn: &str, conditions: Vec<Condition>) -> EpicPractitioner {
        let spec = serde_json::from_value(
            serde_json::json!({"connectionRef": {"name": conn}, "npi": "1234567893"}),
        )
        .unwrap();
        let mut p = EpicPractitioner::new(name, spec);
        p.metadata.namespace = Some("team-a".into());
        p.status = Some(EpicPractitionerStatus {
            conditions,
            ..EpicPractitionerStatus::default()
        });
        p
    }

    #[test]
    fn the_tree_shows_each_connection_its_practitioners_and_their_reasons() {
        let mut conn: EpicConnection = serde_json::from_value(serde_json::json!({
            "apiVersion": "epic-operator.dev/v1alpha1", "kind": "EpicConnection",
            "metadata": {"name": "epic", "namespace": "team-a"},
            "spec": {"fhirBaseUrl": "https://epic.example.org/fhir", "clientId": "c",
                     "privateKeySecretRef": {"name": "k"}}
        }))
        .unwrap();
        let mut s = crate::crd::EpicConnectionStatus {
            conditions: vec![cond("Ready", true, "Ready")],
            walk: Some(WalkStatus {
                last_start_time: "2026-12-01T10:00:00Z".into(),
                last_duration_seconds: 3.25,
                last_result: "Succeeded".into(),
                records: 400,
                pages: 42,
                ..WalkStatus::default()
            }),
            ..Default::default()
        };
        s.writable = Some(false);
        conn.status = Some(s);
        let ok = practitioner("alice", "epic", vec![cond("Ready", true, "Ready")]);
        let mut held = practitioner(
            "bob",
            "epic",
            vec![
                cond("Ready", false, "WriteDisabled"),
                cond("Synced", false, "WriteDisabled"),
                cond("InSync", false, "Drifted"),
            ],
        );
        if let Some(st) = held.status.as_mut() {
            st.drift = vec![DriftEntry {
                path: "telecom[phone/work]".into(),
                desired: "\"…1234\"".into(),
                live: "\"…9999\"".into(),
            }];
        }
        let orphan = practitioner("carol", "gone", vec![]);
        let text = render(&[conn], &[held, ok, orphan], None);
        let expected = "\
EpicConnection team-a/epic  Ready=True Ready  writable=false
│   last walk: Succeeded at 2026-12-01T10:00:00Z, 3.2 s, 400 records, 42 pages, 0 expired paging sessions
├── EpicPractitioner alice  NPI 1234567893  Ready=True Ready
└── EpicPractitioner bob  NPI 1234567893  Ready=False WriteDisabled  drift: telecom[phone/work]
      Synced: WriteDisabled: WriteDisabled detail
      InSync: Drifted: Drifted detail
EpicConnection team-a/gone  MISSING: its practitioners hold with ConnectionNotReady until it exists
└── EpicPractitioner carol  NPI 1234567893  Ready=Unknown Pending
";
        assert_eq!(text, expected);
        // Drift values never appear, only paths.
        assert!(!text.contains("9999"));
        assert!(render(&[], &[], Some("epic")).is_empty());
    }
}
