//! The Argo CD health checks, run under Lua 5.1 semantics (gopher-lua's dialect) with fixtures
//! for every branch; and the argocd-cm snippet carries the .lua files verbatim.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

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
    for reason in [
        "WriteDisabled",
        "Unauthorized",
        "InvalidScope",
        "NotFound",
        "AmbiguousNPI",
        "InvalidSpec",
        "IdentityMismatch",
        "SearchIncomplete",
        "Conflict",
    ] {
        let conditions = json!([
            cond("Ready", "False", reason, "why"),
            cond("Synced", "False", reason, "Epic said no [4118]")
        ]);
        let (status, message) = health(&script, &practitioner(1, Some(1), conditions, false));
        assert_eq!(status, "Degraded", "{reason}");
        assert!(
            message.contains(reason) && message.contains("Epic said no [4118]"),
            "{message}"
        );
    }
    for (reason, expected) in [
        ("EpicUnavailable", "Progressing"),
        ("Throttled", "Progressing"),
        ("Paused", "Suspended"),
    ] {
        let conditions = json!([cond("Synced", "False", reason, "m")]);
        assert_eq!(
            health(&script, &practitioner(1, Some(1), conditions, false)).0,
            expected,
            "{reason}"
        );
    }
    // Observe-only drift: Synced True, InSync False, so not Healthy, not failing.
    let observe = json!([
        cond("Ready", "False", "Drifted", "differs in active"),
        cond("Synced", "True", "ObserveOnly", "m"),
        cond("InSync", "False", "Drifted", "differs in active")
    ]);
    let (status, message) = health(&script, &practitioner(1, Some(1), observe, false));
    assert_eq!(status, "Progressing");
    assert!(message.contains("Drifted"), "{message}");
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
