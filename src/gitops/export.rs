//! `export`: adopt the records that already exist in Epic by writing one EpicPractitioner
//! manifest per Practitioner, walking the whole roster through its paging links.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::Path;

use kube::api::ObjectMeta;
use serde_json::Value;

use super::connection::Target;
use crate::crd::{
    ConnectionRef, ContactPoint, DeletionPolicy, EpicPractitioner, EpicPractitionerSpec,
    ListPolicy, ManagementPolicy, PractitionerName, Qualification, validate_npi,
};
use crate::reconcile::identity::current_npi;
use crate::reconcile::shown_name;

/// What an export did.
#[derive(Debug, Default)]
pub struct ExportSummary {
    pub pages: usize,
    pub records: usize,
    pub written: usize,
    /// Records skipped, with why (no NPI, invalid NPI, duplicate NPI).
    pub skipped: Vec<String>,
}

/// Builds the manifest that describes a live record as it is (Observe policy), or None when it
/// has no valid NPI. Only values the CRD can express are carried, so a `plan` of the exported
/// files against the same instance shows no drift.
pub fn manifest_from_live(
    live: &Value,
    connection: &str,
    namespace: Option<&str>,
) -> Result<EpicPractitioner, String> {
    let id = live.get("id").and_then(Value::as_str).unwrap_or("?");
    // The current NPI (an ended entry is history), under either NPI system.
    let npi =
        current_npi(live).ok_or_else(|| format!("Practitioner/{id} has no NPI identifier"))?;
    validate_npi(&npi).map_err(|e| format!("Practitioner/{id}: {e}"))?;
    // The name Epic shows (official, else usual, else first): the one the spec is compared with.
    let name = shown_name(live).and_then(|n| {
        let strings = |k: &str| -> Vec<String> {
            n.get(k)
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|s| s.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default()
        };
        let declared = |v: Vec<String>| (!v.is_empty()).then_some(v);
        Some(PractitionerName {
            family: n.get("family").and_then(Value::as_str)?.to_string(),
            given: strings("given"),
            prefix: declared(strings("prefix")),
            suffix: declared(strings("suffix")),
        })
    });
    // Telecom is owned per key, so entries the CRD cannot express (an unknown system or use)
    // are simply left out: they stay untouched in Epic.
    let telecom: Vec<ContactPoint> = live
        .get("telecom")
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(|c| serde_json::from_value::<ContactPoint>(c.clone()).ok())
                .collect()
        })
        .unwrap_or_default();
    let qualifications: Vec<Qualification> = live
        .get("qualification")
        .and_then(Value::as_array)
        .map(|qs| {
            qs.iter()
                .filter_map(|q| {
                    let code = q.get("code")?;
                    let text = code.get("text").and_then(Value::as_str).map(str::to_string);
                    let issuer = q
                        .pointer("/issuer/display")
                        .and_then(Value::as_str)
                        .map(str::to_string);
                    let coding = code.get("coding").and_then(Value::as_array).and_then(|c| {
                        c.iter()
                            .find(|c| c.get("code").and_then(Value::as_str).is_some())
                    });
                    match coding {
                        Some(c) => Some(Qualification {
                            system: c.get("system").and_then(Value::as_str).map(str::to_string),
                            code: c.get("code").and_then(Value::as_str).map(str::to_string),
                            display: c
                                .get("display")
                                .and_then(Value::as_str)
                                .map(str::to_string)
                                .or(text),
                            issuer,
                        }),
                        None => text.map(|t| Qualification {
                            system: None,
                            code: None,
                            display: Some(t),
                            issuer,
                        }),
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    let spec = EpicPractitionerSpec {
        connection_ref: ConnectionRef {
            name: connection.to_string(),
        },
        npi: npi.clone(),
        active: live.get("active").and_then(Value::as_bool),
        name,
        telecom: (!telecom.is_empty()).then_some(telecom),
        telecom_policy: ListPolicy::Merge,
        gender: live
            .get("gender")
            .and_then(|g| serde_json::from_value(g.clone()).ok()),
        birth_date: live
            .get("birthDate")
            .and_then(Value::as_str)
            .filter(|b| matches!(b.len(), 4 | 7 | 10))
            .map(str::to_string),
        qualifications: (!qualifications.is_empty()).then_some(qualifications),
        qualification_policy: ListPolicy::Merge,
        management_policy: ManagementPolicy::Observe,
        deletion_policy: DeletionPolicy::Orphan,
    };
    Ok(EpicPractitioner {
        metadata: ObjectMeta {
            name: Some(format!("npi-{npi}")),
            namespace: namespace.map(str::to_string),
            ..ObjectMeta::default()
        },
        spec,
        status: None,
    })
}

/// Walks the roster and writes `DIR/{metadata.name}.yaml` per record; progress goes to stderr
/// (a bar on a terminal, plain lines otherwise). The names are `npi-{NPI}`: object names show
/// up in Events and logs, so they carry no personal name. Nothing is written when a file
/// would be overwritten, unless `force`.
pub async fn export_roster(
    target: &Target,
    out: &Path,
    namespace: Option<&str>,
    force: bool,
) -> Result<ExportSummary, String> {
    std::fs::create_dir_all(out).map_err(|e| format!("{}: cannot create: {e}", out.display()))?;
    let terminal = std::io::stderr().is_terminal();
    let bar = if terminal {
        let b = indicatif::ProgressBar::new_spinner();
        b.set_message("walking the Practitioner roster");
        Some(b)
    } else {
        None
    };
    // Keyed by id: a restarted walk (expired paging session) may deliver records twice.
    let mut by_id: BTreeMap<String, Value> = BTreeMap::new();
    let mut pages_seen = 0usize;
    let page_size = target.client.settings().page_size;
    let pages = target
        .client
        .roster(page_size, |page| {
            pages_seen += 1;
            for r in page {
                if let Some(id) = r.get("id").and_then(Value::as_str) {
                    by_id.insert(id.to_string(), r);
                }
            }
            match &bar {
                Some(b) => {
                    b.set_message(format!("page {pages_seen}: {} records", by_id.len()));
                    b.tick();
                }
                None => eprintln!("export: page {pages_seen}, {} records so far", by_id.len()),
            }
        })
        .await
        .map_err(|e| format!("roster walk failed: {e}"))?;
    if let Some(b) = &bar {
        b.finish_with_message(format!("{} records in {pages} pages", by_id.len()));
    }
    let mut summary = ExportSummary {
        pages,
        records: by_id.len(),
        ..ExportSummary::default()
    };
    let mut npis: BTreeMap<String, String> = BTreeMap::new();
    let mut files: Vec<(std::path::PathBuf, String)> = Vec::new();
    for (id, live) in &by_id {
        match manifest_from_live(live, &target.connection_name, namespace) {
            Err(why) => summary.skipped.push(why),
            Ok(m) => {
                if let Some(first) = npis.get(&m.spec.npi) {
                    summary.skipped.push(format!(
                        "Practitioner/{id} carries NPI {} like Practitioner/{first}: resolve the duplicate in Epic (the operator reports AmbiguousNPI)",
                        m.spec.npi
                    ));
                    continue;
                }
                npis.insert(m.spec.npi.clone(), id.clone());
                let yaml = serde_saphyr::to_string(&m)
                    .map_err(|e| format!("cannot render a manifest: {e}"))?;
                let name = m.metadata.name.clone().unwrap_or_default();
                files.push((
                    out.join(format!("{name}.yaml")),
                    format!(
                        "apiVersion: epic-operator.dev/v1alpha1\nkind: EpicPractitioner\n{}",
                        strip_type_meta(&yaml)
                    ),
                ));
            }
        }
    }
    let existing: Vec<String> = files
        .iter()
        .filter(|(p, _)| p.exists())
        .map(|(p, _)| p.display().to_string())
        .collect();
    if !existing.is_empty() && !force {
        let shown: Vec<&str> = existing.iter().take(5).map(String::as_str).collect();
        return Err(format!(
            "{} manifest(s) already exist ({}{}); nothing was written: pass --force to overwrite them, or export into an empty directory",
            existing.len(),
            shown.join(", "),
            if existing.len() > shown.len() {
                ", ..."
            } else {
                ""
            }
        ));
    }
    for (path, text) in files {
        std::fs::write(&path, text)
            .map_err(|e| format!("{}: cannot write: {e}", path.display()))?;
        summary.written += 1;
    }
    Ok(summary)
}

/// The derive serialises apiVersion/kind first already; drop them so the header we write
/// stays the only copy.
fn strip_type_meta(yaml: &str) -> String {
    yaml.lines()
        .filter(|l| !l.starts_with("apiVersion:") && !l.starts_with("kind:"))
        .map(|l| format!("{l}\n"))
        .collect()
}
