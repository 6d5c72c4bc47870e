//! Where the command line connects: an EpicConnection manifest plus a private key, or the
//! built-in sandbox started in-process.

use std::path::PathBuf;

use super::diagnostics::Diagnostic;
use super::manifests::yaml_detail;
use super::schema::SchemaSet;
use crate::crd::{EpicConnection, EpicConnectionSpec};
use crate::fhir::{Capability, FhirClient};
use crate::http::EndpointPolicy;
use crate::http::client as http_client;
use crate::pipeline::connect;
use crate::sandbox::{Sandbox, SandboxConfig, Settings};

/// The seed the `--sandbox` option loads: the records behind the manifests in `examples/`.
pub const EXAMPLES_SEED: &str = include_str!("../../examples/sandbox/seed.json");

/// How the user told the command line to connect.
#[derive(Clone, Debug, Default)]
pub struct ConnectionInput {
    /// An EpicConnection manifest.
    pub connection: Option<PathBuf>,
    /// The private key PEM file, or a key directory (one `<kid>.pem` per key).
    pub private_key: Option<PathBuf>,
    /// Use the built-in sandbox instead of a real Epic.
    pub sandbox: bool,
    /// Let the sandbox accept writes.
    pub sandbox_writes: bool,
    /// Where credentials may go (the built-in sandbox flow always allows its loopback http).
    pub endpoints: EndpointPolicy,
    /// CA and client certificate files (with a connection manifest).
    pub tls: super::trust::TlsFiles,
}

/// A connected instance.
pub struct Target {
    pub client: FhirClient,
    pub spec: EpicConnectionSpec,
    /// The EpicConnection name exported manifests refer to.
    pub connection_name: String,
    pub namespace: Option<String>,
    /// Kept alive while the command runs.
    pub sandbox: Option<Sandbox>,
}

impl Target {
    /// Reads the CapabilityStatement (None with a warning when it cannot be read).
    pub async fn capability(&self) -> Result<Capability, crate::fhir::FhirError> {
        self.client.capability().await
    }

    /// How contact values of this connection are compared (the region was checked on connect).
    pub fn normalizer(&self) -> crate::reconcile::Normalizer {
        crate::reconcile::Normalizer::for_connection(&self.spec).unwrap_or_default()
    }

    pub async fn stop(self) {
        if let Some(s) = self.sandbox {
            s.stop().await;
        }
    }
}

/// Opens the connection the user asked for; errors are sentences for the terminal.
pub async fn open_target(input: &ConnectionInput) -> Result<Target, String> {
    if input.sandbox {
        let http = http_client()?;
        let sandbox = Sandbox::start(SandboxConfig {
            settings: Settings {
                writes_enabled: input.sandbox_writes,
                ..Settings::default()
            },
            seeds: vec![EXAMPLES_SEED.to_string()],
            ..SandboxConfig::default()
        })
        .await
        .map_err(|e| format!("cannot start the built-in sandbox: {e}"))?;
        let pem = sandbox
            .dev_key_pem
            .clone()
            .ok_or("the sandbox generated no development key")?;
        let spec = sandbox.connection_spec("sandbox");
        let key =
            crate::auth::ClientKey::from_pem(&pem, spec.algorithm, crate::sandbox::DEV_KEY_ID)
                .map_err(|e| e.to_string())?;
        let keys = crate::auth::KeyRing::single(key);
        let client = connect(
            &http,
            &spec,
            keys,
            None,
            None,
            &EndpointPolicy::development(),
        )
        .await
        .map_err(|e| e.to_string())?;
        return Ok(Target {
            client,
            spec,
            connection_name: "epic-sandbox".into(),
            namespace: None,
            sandbox: Some(sandbox),
        });
    }
    let Some(path) = &input.connection else {
        return Err("say where to connect: --connection FILE --private-key PEM, or --sandbox for the built-in sandbox".into());
    };
    let conn = load_connection_manifest(path)?;
    let http = crate::http::client_with(&super::trust::tls_for(path, &conn.spec, &input.tls)?)?;
    let key_path = input.private_key.as_ref().ok_or(
        "--private-key PEM (or EPIC_OPERATOR_PRIVATE_KEY_FILE) is required with --connection: the key whose public half is registered with Epic",
    )?;
    let keys = super::key_dir::ring_from_path(key_path, &conn.spec)?;
    let client = connect(&http, &conn.spec, keys, None, None, &input.endpoints)
        .await
        .map_err(|e| format!("cannot connect: {e}"))?;
    Ok(Target {
        client,
        connection_name: conn.metadata.name.clone().unwrap_or_else(|| "epic".into()),
        namespace: conn.metadata.namespace.clone(),
        spec: conn.spec,
        sandbox: None,
    })
}

/// The EpicConnection in a manifest file (the first document of that kind), checked as
/// [`check_connection_file`] checks it; every problem in one message.
pub fn load_connection_manifest(path: &std::path::Path) -> Result<EpicConnection, String> {
    check_connection_file(path).map_err(|ds| {
        ds.iter()
            .map(Diagnostic::line)
            .collect::<Vec<_>>()
            .join("\n")
    })
}

/// The EpicConnection of a `--connection` file, validated like a manifest: against the CRD
/// schema (unknown fields with the nearest declared name, types, patterns, enums, required
/// fields), then the rules the API server checks with CEL or the operator checks on use
/// (resyncInterval within 10s..24h, the key layout, durations, the base URL). Every problem
/// is returned, each naming its field.
pub fn check_connection_file(path: &std::path::Path) -> Result<EpicConnection, Vec<Diagnostic>> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        vec![Diagnostic::in_file(
            path,
            format!("cannot read the connection manifest: {e}"),
        )]
    })?;
    let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(&text).map_err(|e| {
        vec![Diagnostic::in_file(
            path,
            format!("not valid YAML: {}", yaml_detail(&e)),
        )]
    })?;
    let Some((i, doc)) = docs
        .into_iter()
        .enumerate()
        .find(|(_, d)| d.get("kind").and_then(|k| k.as_str()) == Some("EpicConnection"))
    else {
        return Err(vec![Diagnostic::in_file(
            path,
            "no EpicConnection document in this file",
        )]);
    };
    let at = |field: Option<&str>, message: String| Diagnostic {
        file: Some(path.display().to_string()),
        document: Some(i + 1),
        path: field.filter(|f| !f.is_empty()).map(str::to_string),
        message,
    };
    let schemas = SchemaSet::shared().map_err(|e| vec![Diagnostic::in_file(path, e)])?;
    let problems = schemas.problems(&doc);
    if !problems.is_empty() {
        return Err(problems
            .into_iter()
            .map(|p| {
                at(
                    Some(&p.path),
                    format!("EpicConnection does not match the CRD schema: {}", p.text),
                )
            })
            .collect());
    }
    let conn: EpicConnection = serde_json::from_value(doc)
        .map_err(|e| vec![at(None, format!("invalid EpicConnection: {e}"))])?;
    let spec = &conn.spec;
    let mut errors = Vec::new();
    if let Err(e) = spec.resync_interval() {
        errors.push(at(Some("spec.resyncInterval"), e));
    }
    if let Err(e) = spec.paging_session_ttl() {
        errors.push(at(Some("spec.pagingSessionTTL"), e));
    }
    if let Err(e) = spec.key_layout() {
        errors.push(at(Some("spec.privateKeySecretRef"), e));
    }
    match url::Url::parse(&spec.fhir_base_url) {
        Ok(u) if matches!(u.scheme(), "https" | "http") => {}
        _ => errors.push(at(
            Some("spec.fhirBaseUrl"),
            format!(
                "fhirBaseUrl {:?} is not an http(s) URL: give the instance's FHIR R4 base, e.g. https://epic.example.org/interconnect-fhir-oauth/api/FHIR/R4",
                spec.fhir_base_url
            ),
        )),
    }
    if errors.is_empty() {
        Ok(conn)
    } else {
        Err(errors)
    }
}
