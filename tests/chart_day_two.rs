//! The chart for a production cluster: disruption budget and topology spread with replicas,
//! priority class, start-up probe, security contexts as values (OpenShift without a fixed
//! UID), CRDs as templates (install and keep switches), aggregated user roles, `helm test`,
//! and NOTES that say what to do next. Rendered by Helm's own Go SDK; tests/e2e applies the
//! same modes to an API server.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod chart_support;

use chart_support::{helm, render, repo};
use serde_json::{Value, json};

fn numbers_as_f64(v: &Value) -> Value {
    match v {
        Value::Number(n) => json!(n.as_f64().unwrap()),
        Value::Array(a) => Value::Array(a.iter().map(numbers_as_f64).collect()),
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, v)| (k.clone(), numbers_as_f64(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

fn all<'a>(docs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| d["kind"] == kind).collect()
}

fn pod_spec(docs: &[Value]) -> &Value {
    &all(docs, "Deployment")[0]["spec"]["template"]["spec"]
}

#[test]
fn defaults_one_replica_crds_kept_startup_probe_user_roles_and_a_helm_test() {
    let docs = render(&json!({}));
    // One replica: a budget would only block drains, and there is nothing to spread.
    assert!(all(&docs, "PodDisruptionBudget").is_empty());
    let pod = pod_spec(&docs);
    assert!(pod.get("topologySpreadConstraints").is_none(), "{pod}");
    assert!(pod.get("priorityClassName").is_none());
    assert_eq!(pod["securityContext"]["runAsUser"], 65532);
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    let c = &pod["containers"][0];
    assert_eq!(c["startupProbe"]["httpGet"]["path"], "/healthz");
    assert!(c["startupProbe"]["failureThreshold"].as_u64().unwrap() >= 10);
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
    let args: Vec<&str> = c["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert!(args.contains(&"--log-format=json"), "{args:?}");

    // CRDs: templates (upgraded by helm upgrade), kept on uninstall, the generated ones.
    let crds = all(&docs, "CustomResourceDefinition");
    assert_eq!(crds.len(), 2);
    for crd in crds {
        let name = crd["metadata"]["name"].as_str().unwrap();
        assert_eq!(
            crd["metadata"]["annotations"]["helm.sh/resource-policy"], "keep",
            "{name}"
        );
        assert_eq!(
            crd["metadata"]["labels"]["app.kubernetes.io/managed-by"],
            "Helm"
        );
        let generated: Value = serde_saphyr::from_str(
            &std::fs::read_to_string(repo().join("crds").join(format!("{name}.yaml"))).unwrap(),
        )
        .unwrap();
        // Helm's YAML round trip writes 1000.0 as 1000: compare numbers by value.
        assert!(
            numbers_as_f64(&crd["spec"]) == numbers_as_f64(&generated["spec"]),
            "{name}: the rendered spec differs from crds/{name}.yaml"
        );
    }

    // Aggregated roles: view reads, edit and admin also write; none touches Secrets.
    let roles = all(&docs, "ClusterRole");
    let by_suffix = |s: &str| {
        *roles
            .iter()
            .find(|r| r["metadata"]["name"].as_str().unwrap().ends_with(s))
            .unwrap()
    };
    let view = by_suffix("-view");
    let edit = by_suffix("-edit");
    let label = |r: &Value, to: &str| {
        r["metadata"]["labels"][format!("rbac.authorization.k8s.io/aggregate-to-{to}")] == "true"
    };
    assert!(label(view, "view") && label(view, "edit") && label(view, "admin"));
    assert!(!label(edit, "view") && label(edit, "edit") && label(edit, "admin"));
    assert_eq!(view["rules"][0]["verbs"], json!(["get", "list", "watch"]));
    assert!(
        edit["rules"][0]["verbs"]
            .as_array()
            .unwrap()
            .contains(&json!("patch"))
    );
    for r in [view, edit] {
        let text = r["rules"].to_string();
        assert!(!text.contains("secrets"), "{text}");
    }

    // helm test: a hook Pod that asks the metrics Service for /readyz.
    let test = all(&docs, "Pod")[0];
    assert_eq!(test["metadata"]["annotations"]["helm.sh/hook"], "test");
    let cmd = test["spec"]["containers"][0]["command"].to_string();
    assert!(
        cmd.contains("http://epic-epic-operator-metrics:8080/readyz"),
        "{cmd}"
    );
    assert_eq!(test["spec"]["securityContext"]["runAsNonRoot"], true);
}

#[test]
fn replicas_get_a_disruption_budget_and_spread_over_nodes() {
    let docs = render(&json!({"replicaCount": 3, "priorityClassName": "system-cluster-critical"}));
    let pdb = all(&docs, "PodDisruptionBudget");
    assert_eq!(pdb.len(), 1);
    assert_eq!(pdb[0]["spec"]["maxUnavailable"], 1);
    let deploy = all(&docs, "Deployment")[0];
    assert_eq!(
        pdb[0]["spec"]["selector"]["matchLabels"],
        deploy["spec"]["selector"]["matchLabels"]
    );
    let pod = pod_spec(&docs);
    let spread = &pod["topologySpreadConstraints"][0];
    assert_eq!(spread["topologyKey"], "kubernetes.io/hostname");
    assert_eq!(spread["whenUnsatisfiable"], "ScheduleAnyway");
    assert_eq!(
        spread["labelSelector"]["matchLabels"],
        deploy["spec"]["selector"]["matchLabels"]
    );
    assert_eq!(pod["priorityClassName"], "system-cluster-critical");

    // Given constraints replace the default; the budget can be switched off.
    let zones = json!([{"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone", "whenUnsatisfiable": "DoNotSchedule",
        "labelSelector": {"matchLabels": {"app.kubernetes.io/name": "epic-operator"}}}]);
    let docs = render(
        &json!({"replicaCount": 2, "topologySpreadConstraints": zones,
        "podDisruptionBudget": {"enabled": false}}),
    );
    assert_eq!(pod_spec(&docs)["topologySpreadConstraints"], zones);
    assert!(all(&docs, "PodDisruptionBudget").is_empty());
}

#[test]
fn openshift_leaves_the_uid_to_the_platform_and_security_contexts_are_values() {
    let docs = render(&json!({"openshift": true}));
    let ctx = &pod_spec(&docs)["securityContext"];
    assert!(
        ctx.get("runAsUser").is_none() && ctx.get("runAsGroup").is_none(),
        "{ctx}"
    );
    assert_eq!(ctx["runAsNonRoot"], true);
    assert_eq!(ctx["seccompProfile"]["type"], "RuntimeDefault");
    // The helm test Pod follows the same context.
    let test = &all(&docs, "Pod")[0]["spec"]["securityContext"];
    assert!(test.get("runAsUser").is_none(), "{test}");

    let docs = render(&json!({"containerSecurityContext": {
        "allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true,
        "capabilities": {"drop": ["ALL"]}, "runAsNonRoot": true}}));
    assert_eq!(
        pod_spec(&docs)["containers"][0]["securityContext"]["runAsNonRoot"],
        true
    );
}

#[test]
fn crds_can_be_left_out_or_deleted_with_the_release() {
    let docs = render(&json!({"crds": {"install": false}}));
    assert!(all(&docs, "CustomResourceDefinition").is_empty());
    let docs = render(&json!({"crds": {"keep": false}}));
    let crds = all(&docs, "CustomResourceDefinition");
    assert_eq!(crds.len(), 2);
    assert!(
        crds[0]["metadata"]
            .get("annotations")
            .and_then(|a| a.get("helm.sh/resource-policy"))
            .is_none()
    );
    let docs = render(
        &json!({"rbac": {"aggregateToDefaultRoles": false}, "helmTest": {"enabled": false}}),
    );
    assert_eq!(
        all(&docs, "ClusterRole").len(),
        1,
        "the operator's own only"
    );
    assert!(all(&docs, "Pod").is_empty());
    let docs = render(&json!({"logFormat": "text"}));
    let args = pod_spec(&docs)["containers"][0]["args"].to_string();
    assert!(args.contains("--log-format=text"), "{args}");
}

#[test]
fn the_schema_refuses_mistyped_day_two_values() {
    for (values, needle) in [
        (json!({"logFormat": "xml"}), "logFormat"),
        (json!({"crds": {"install": "yes"}}), "install"),
        (json!({"crds": {"upgrade": true}}), "upgrade"),
        (
            json!({"podDisruptionBudget": {"maxUnavailable": 0}}),
            "maxUnavailable",
        ),
        (
            json!({"startupProbe": {"periodSeconds": 0}}),
            "periodSeconds",
        ),
        (json!({"openshift": "true"}), "openshift"),
        (
            json!({"topologySpreadConstraints": [{"maxSkew": 1}]}),
            "topologyKey",
        ),
    ] {
        let out = helm(&values, false);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{values} was accepted");
        assert!(err.contains(needle), "{values}: {err}");
    }
}

#[test]
fn notes_say_what_to_do_next() {
    let out = helm(&json!({}), true);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let notes = String::from_utf8(out.stdout).unwrap();
    for needle in [
        "image.repository",
        "Dockerfile",
        "epic-operator token",
        "helm test epic",
        "JWK Set URL",
        "jwks.publicUrl",
        "epic-operator.dev/requested-at",
        "does not revoke Epic login access",
    ] {
        assert!(notes.contains(needle), "{needle} missing:\n{notes}");
    }
    // With an image and a public JWK Set URL: no image warning, the URL itself.
    let out = helm(
        &json!({"image": {"repository": "registry.example.org/epic-operator"},
                "jwks": {"publicUrl": "https://keys.example.org"}}),
        true,
    );
    let notes = String::from_utf8(out.stdout).unwrap();
    assert!(!notes.contains("IMAGE:"), "{notes}");
    assert!(
        notes.contains("https://keys.example.org/jwks/<namespace>/<connection>"),
        "{notes}"
    );
}
