//! The Argo CD health checks, run under Lua 5.1 semantics (gopher-lua's dialect) with fixtures
//! for every branch; and the argocd-cm snippet carries the .lua files verbatim.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use epic_operator::crd::Reason;
use mlua::{Lua, LuaSerdeExt, Table};
use serde_json::{Value, json};

fn argocd(file: &str) -> String {
    std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("examples/argocd")
            .join(file),
    )
    .unwrap()
}

fn health(script: &str, obj: &Value) -> (String, String) {
    let lua = Lua::new();
    lua.globals()
        .set("obj", lua.to_value(obj).unwrap())
        .unwrap();
    let hs: Table = lua.load(script).eval().unwrap();
    (
        hs.get::<String>("status").unwrap(),
        hs.get::<Option<String>>("message")
            .unwrap()
            .unwrap_or_default(),
    )
}

fn practitioner(generation: i64, observed: Option<i64>, conditions: Value, paused: bool) -> Value {
    let mut o = json!({"apiVersion": "epic-operator.dev/v1alpha1", "kind": "EpicPractitioner",
        "metadata": {"name": "p", "generation": generation}, "spec": {"npi": "1234567893"}});
    if paused {
        o["metadata"]["annotations"] = json!({"epic-operator.dev/paused": "true"});
    }
    if let Some(g) = observed {
        o["status"] = json!({"observedGeneration": g, "conditions": conditions});
    }
    o
}

fn cond(t: &str, status: &str, reason: &str, message: &str) -> Value {
    json!({"type": t, "status": status, "reason": reason, "message": message, "lastTransitionTime": "2026-11-28T00:00:00Z"})
}

#[test]
fn practitioner_health_branches() {
    let script = argocd("health-epicpractitioner.lua");
    let ready = json!([
        cond("Ready", "True", "Ready", "Epic matches the spec"),
        cond("Synced", "True", "Synced", "nothing to write"),
        cond("InSync", "True", "NoDrift", "")
    ]);
    assert_eq!(
        health(&script, &practitioner(2, Some(2), ready.clone(), false)).0,
        "Healthy"
    );
    // Ready but for an older generation: the new spec is not reconciled yet.
    assert_eq!(
        health(&script, &practitioner(3, Some(2), ready.clone(), false)).0,
        "Progressing"
    );
    assert_eq!(
        health(&script, &practitioner(1, None, json!([]), false)).0,
        "Progressing"
    );
    assert_eq!(
        health(&script, &practitioner(2, Some(2), ready, true)).0,
        "Suspended"
    );
    // Every reason the operator can set, as the Synced reason: Degraded for lasting ones (and
    // for anything not known to be transient), Progressing for transient ones.
    for reason in Reason::ALL {
        let r = reason.as_str();
        let conditions = json!([
            cond("Ready", "False", r, "why"),
            cond("Synced", "False", r, "Epic said no [4118]")
        ]);
        let (status, message) = health(&script, &practitioner(1, Some(1), conditions, false));
        let expected = if *reason == Reason::Paused {
            "Suspended"
        } else if reason.is_transient() {
            "Progressing"
        } else {
            "Degraded"
        };
        assert_eq!(status, expected, "{r}");
        if reason.is_lasting() {
            assert_eq!(status, "Degraded", "{r} is lasting");
        }
        assert!(
            message.contains(r) && message.contains("Epic said no [4118]"),
            "{message}"
        );
    }
    // Observe-only drift: Synced True, InSync False: Healthy, with the drift named.
    let observe = json!([
        cond("Ready", "False", "Drifted", "differs in active"),
        cond("Synced", "True", "ObserveOnly", "m"),
        cond("InSync", "False", "Drifted", "differs in active")
    ]);
    let (status, message) = health(&script, &practitioner(1, Some(1), observe, false));
    assert_eq!(status, "Healthy");
    assert!(message.contains("differs in active"), "{message}");
    // A blocked deletion (deletionPolicy Deactivate on a read-only instance) is Degraded with
    // the way out in the message.
    let blocked = json!([
        cond(
            "Ready",
            "False",
            "DeletionBlocked",
            "set spec.deletionPolicy to Orphan"
        ),
        cond(
            "Synced",
            "False",
            "DeletionBlocked",
            "set spec.deletionPolicy to Orphan"
        )
    ]);
    let (status, message) = health(&script, &practitioner(1, Some(1), blocked, false));
    assert_eq!(status, "Degraded");
    assert!(message.contains("Orphan"), "{message}");
}

#[test]
fn connection_health_branches() {
    let script = argocd("health-epicconnection.lua");
    let with = |status: &str, reason: &str| json!({"metadata": {"name": "c"}, "status": {"conditions": [cond("Ready", status, reason, "token request refused: invalid_client")]}});
    assert_eq!(health(&script, &with("True", "Ready")).0, "Healthy");
    let (s, m) = health(&script, &with("False", "Unauthorized"));
    assert_eq!(s, "Degraded");
    assert!(m.contains("invalid_client"));
    assert_eq!(
        health(&script, &with("False", "EpicUnavailable")).0,
        "Progressing"
    );
    assert_eq!(
        health(&script, &json!({"metadata": {"name": "c"}})).0,
        "Progressing"
    );
    // A budget that cannot hold a walk a day degrades a Ready connection; refused roster
    // walks are named but leave it Healthy (practitioners resolve one by one).
    let with_extra = |t: &str, reason: &str| {
        json!({"metadata": {"name": "c"}, "status": {"conditions": [
        cond("Ready", "True", "Ready", "token obtained"),
        cond(t, "False", reason, "one walk costs 200 requests, the budget allows 150 a day")]}})
    };
    let (s, m) = health(&script, &with_extra("RequestBudget", "BudgetTooSmall"));
    assert_eq!(s, "Degraded");
    assert!(
        m.contains("BudgetTooSmall") && m.contains("150 a day"),
        "{m}"
    );
    let (s, m) = health(&script, &with_extra("RosterWalks", "RosterUnavailable"));
    assert_eq!(s, "Healthy");
    assert!(m.contains("RosterUnavailable"), "{m}");
    assert_eq!(
        health(&script, &with("False", "DailyLimitReached")).0,
        "Progressing"
    );
    // Every reason a connection can report: lasting ones are Degraded, never Progressing.
    for reason in Reason::ALL {
        let (s, _) = health(&script, &with("False", reason.as_str()));
        if reason.is_lasting() {
            assert_eq!(s, "Degraded", "{reason}");
        }
        if s == "Progressing" {
            assert!(reason.is_transient(), "{reason} would stay Progressing");
        }
    }
}

#[test]
fn argocd_cm_snippet_embeds_the_scripts_verbatim() {
    let snippet: Value = serde_saphyr::from_str(&argocd("argocd-cm-health.yaml")).unwrap();
    assert_eq!(
        snippet["data"]["resource.customizations.health.epic-operator.dev_EpicPractitioner"]
            .as_str()
            .unwrap(),
        argocd("health-epicpractitioner.lua")
    );
    assert_eq!(
        snippet["data"]["resource.customizations.health.epic-operator.dev_EpicConnection"]
            .as_str()
            .unwrap(),
        argocd("health-epicconnection.lua")
    );
}

/// The sync wave of a manifest (Argo CD's default is 0).
fn wave(doc: &Value) -> i64 {
    doc["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"]
        .as_str()
        .map_or(0, |w| w.parse().unwrap())
}

#[test]
fn the_example_connection_syncs_in_an_earlier_wave_than_the_practitioners_and_is_healthy_when_ready()
 {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples");
    let read = |p: PathBuf| -> Value {
        serde_saphyr::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
    };
    let connection = read(root.join("epic-connection.yaml"));
    let connection_wave = wave(&connection);
    let mut practitioners = 0;
    for entry in std::fs::read_dir(root.join("practitioners")).unwrap() {
        let p = read(entry.unwrap().path());
        assert!(
            wave(&p) > connection_wave,
            "{} syncs no later than the connection",
            p["metadata"]["name"]
        );
        practitioners += 1;
    }
    assert!(practitioners >= 5);
    // Argo CD moves to the next wave once this one is Healthy: a Ready connection is.
    let mut ready = connection.clone();
    ready["metadata"]["generation"] = json!(1);
    ready["status"] = json!({"observedGeneration": 1, "conditions": [
        cond("Ready", "True", "Ready", "token obtained")
    ]});
    assert_eq!(
        health(&argocd("health-epicconnection.lua"), &ready).0,
        "Healthy"
    );
    let app = argocd("application.yaml");
    assert!(app.contains("argocd.argoproj.io/sync-wave"), "{app}");
}
