//! The command line: parses arguments and hands each command to its driver.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::auth::{TokenSource, generate_key};
use crate::crd::Algorithm;
use crate::gitops::{self, ConnectionInput, PlanMode};
use crate::http::EndpointPolicy;
use crate::operator::{self, DriftDetection, OperatorConfig};
use crate::sandbox::{RegisteredClient, Sandbox, SandboxConfig, Settings, default_scopes};

#[derive(Parser, Debug)]
#[command(
    name = "epic-operator",
    version,
    about = "Keeps Epic Practitioner records in the state declared in Git"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the operator: controllers, leader election, /metrics, /healthz and /readyz.
    Run(RunArgs),
    /// Print both CRDs as multi-document YAML (or write them to a directory).
    Crd {
        /// Write one file per CRD into this directory instead of printing.
        #[arg(long)]
        out_dir: Option<PathBuf>,
    },
    /// Compare manifests with live Epic and print drift and the would-be action.
    /// Exit code: 0 no drift, 2 drift, 1 error.
    Plan(PlanArgs),
    /// Like plan, then write where allowed. Exit code: 0 all in sync, 2 some not, 1 error.
    Apply(PlanArgs),
    /// Write one EpicPractitioner manifest per Practitioner in Epic (adoption).
    Export(ExportArgs),
    /// Obtain a token and probe capabilities: the first thing to run against a new Epic.
    Token(TokenArgs),
    /// Write a private key PEM and the public JWK Set to register with Epic.
    Keygen(KeygenArgs),
    /// Run the Epic-like sandbox server.
    Sandbox(SandboxArgs),
}

#[derive(Args, Debug, Clone)]
pub struct ConnectionArgs {
    /// An EpicConnection manifest describing the Epic instance.
    #[arg(long, value_name = "FILE", conflicts_with = "sandbox")]
    pub connection: Option<PathBuf>,
    /// The private key PEM registered with Epic for that connection.
    #[arg(long, value_name = "PEM", env = "EPIC_OPERATOR_PRIVATE_KEY_FILE")]
    pub private_key: Option<PathBuf>,
    /// Use the built-in Epic sandbox (seeded from examples/), no Epic needed.
    #[arg(long)]
    pub sandbox: bool,
    /// With --sandbox: let the sandbox accept writes (most Epic instances do not).
    #[arg(long, requires = "sandbox")]
    pub sandbox_writes: bool,
    #[command(flatten)]
    pub endpoints: EndpointArgs,
}

/// Where credentials may go (the same flags for the command line and the operator).
#[derive(Args, Debug, Clone, Default)]
pub struct EndpointArgs {
    /// Allow plain http to loopback hosts (a local sandbox or test server). Development only:
    /// without it every Epic URL must be https.
    #[arg(long)]
    pub insecure_allow_loopback_http: bool,
    /// A host, besides the FHIR base URL's own, that may serve tokens (repeatable). The
    /// client assertion is sent to no other host.
    #[arg(long = "allowed-token-host", value_name = "HOST")]
    pub allowed_token_hosts: Vec<String>,
}

impl From<&EndpointArgs> for EndpointPolicy {
    fn from(a: &EndpointArgs) -> Self {
        EndpointPolicy {
            allow_loopback_http: a.insecure_allow_loopback_http,
            allowed_token_hosts: a.allowed_token_hosts.clone(),
        }
    }
}

impl From<&ConnectionArgs> for ConnectionInput {
    fn from(a: &ConnectionArgs) -> Self {
        ConnectionInput {
            connection: a.connection.clone(),
            private_key: a.private_key.clone(),
            sandbox: a.sandbox,
            sandbox_writes: a.sandbox_writes,
            endpoints: EndpointPolicy::from(&a.endpoints),
        }
    }
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputFormat {
    Text,
    Json,
}

#[derive(Args, Debug)]
pub struct PlanArgs {
    /// Manifest files or directories (searched recursively for .yaml/.yml).
    #[arg(short = 'f', long = "filename", required = true, num_args = 1..)]
    pub paths: Vec<PathBuf>,
    #[command(flatten)]
    pub connection: ConnectionArgs,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

#[derive(Args, Debug)]
pub struct ExportArgs {
    #[command(flatten)]
    pub connection: ConnectionArgs,
    /// Directory for the manifests (created if missing).
    #[arg(long)]
    pub out: PathBuf,
    /// metadata.namespace to put in the manifests.
    #[arg(long)]
    pub namespace: Option<String>,
}

#[derive(Args, Debug)]
pub struct TokenArgs {
    #[command(flatten)]
    pub connection: ConnectionArgs,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum KeyAlg {
    RS384,
    ES384,
    RS256,
    RS512,
}

impl From<KeyAlg> for Algorithm {
    fn from(a: KeyAlg) -> Self {
        match a {
            KeyAlg::RS384 => Algorithm::RS384,
            KeyAlg::ES384 => Algorithm::ES384,
            KeyAlg::RS256 => Algorithm::RS256,
            KeyAlg::RS512 => Algorithm::RS512,
        }
    }
}

#[derive(Args, Debug)]
pub struct KeygenArgs {
    /// Signing algorithm (Epic accepts ES384 only with a registered JWK Set URL).
    #[arg(long, value_enum, default_value = "RS384", ignore_case = true)]
    pub alg: KeyAlg,
    /// Key id (kid) to register.
    #[arg(long)]
    pub kid: String,
    /// Directory for private-key.pem (mode 0600) and jwks.json.
    #[arg(long)]
    pub out: PathBuf,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum WritesFlag {
    Enabled,
    Disabled,
}

#[derive(Args, Debug)]
pub struct SandboxArgs {
    /// Address to listen on (loopback by default).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub addr: SocketAddr,
    /// Seed file: a FHIR Bundle or JSON array of Practitioner, PractitionerRole and Patient
    /// (repeatable). Without any, the examples/ seed is loaded.
    #[arg(long = "seed", value_name = "FILE")]
    pub seeds: Vec<PathBuf>,
    /// Start empty instead of loading the examples/ seed.
    #[arg(long)]
    pub empty: bool,
    /// Add N synthetic practitioners with valid, unique NPIs. They take the shapes real Epic
    /// data has (NPI under the OID system, ended + current NPI, usual-only names, text with
    /// prefix/suffix, formatted phones, pagers, Epic-coded qualifications) unless
    /// --clean-generated is given.
    #[arg(long, default_value_t = 0)]
    pub generate: usize,
    /// Generate uniform, clean records instead of the realistic mix.
    #[arg(long)]
    pub clean_generated: bool,
    /// Whether Practitioner PUT/POST are accepted (most Epic instances refuse them).
    #[arg(long, value_enum, default_value = "disabled")]
    pub writes: WritesFlag,
    /// Register a client: ID=JWKS_FILE (repeatable). Without any, a development key is
    /// generated and written to --dev-key-out.
    #[arg(long = "client", value_name = "ID=JWKS_FILE")]
    pub clients: Vec<String>,
    /// Narrow a client's pre-approved scopes: ID=scope1,scope2 (repeatable).
    #[arg(long = "client-scopes", value_name = "ID=SCOPES")]
    pub client_scopes: Vec<String>,
    /// Where to write the generated development private key.
    #[arg(long, default_value = "epic-sandbox-dev-key.pem")]
    pub dev_key_out: PathBuf,
    /// Access token lifetime, e.g. 3600s or 1h.
    #[arg(long, default_value = "3600s", value_parser = parse_duration_arg)]
    pub token_ttl: Duration,
    /// Paging sessions expire after this long (then next links answer Epic code 4113).
    #[arg(long, default_value = "300s", value_parser = parse_duration_arg)]
    pub paging_ttl: Duration,
    /// Default page size of searches.
    #[arg(long, default_value_t = 10)]
    pub page_size: usize,
    /// Largest page size a client may ask for with _count.
    #[arg(long, default_value_t = 200)]
    pub max_page_size: usize,
    /// Fault: added latency per FHIR request, in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
    /// Fault: random extra latency up to this many milliseconds.
    #[arg(long, default_value_t = 0)]
    pub jitter_ms: u64,
    /// Fault: fraction (0-1) of FHIR requests answered 429 without Retry-After.
    #[arg(long, default_value_t = 0.0)]
    pub throttle_rate: f64,
    /// Fault: fraction (0-1) of FHIR requests answered 500.
    #[arg(long, default_value_t = 0.0)]
    pub error_rate: f64,
    /// Fault: fraction (0-1) of token requests answered 503.
    #[arg(long, default_value_t = 0.0)]
    pub token_failure_rate: f64,
    /// Fault: server-wide FHIR requests per second; beyond it 429 (0 = unlimited).
    #[arg(long, default_value_t = 0)]
    pub rate_limit: u32,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum DriftDetectionFlag {
    PerObject,
    Roster,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    /// Watch only this namespace (default: all namespaces).
    #[arg(long, env = "EPIC_OPERATOR_NAMESPACE")]
    pub namespace: Option<String>,
    /// Address of /metrics, /healthz and /readyz.
    #[arg(
        long,
        default_value = "0.0.0.0:8080",
        env = "EPIC_OPERATOR_METRICS_ADDR"
    )]
    pub metrics_addr: SocketAddr,
    /// Take a coordination.k8s.io Lease before reconciling (needed with more than one replica).
    #[arg(long, env = "EPIC_OPERATOR_LEADER_ELECTION")]
    pub leader_election: bool,
    /// Name of the Lease.
    #[arg(long, default_value = "epic-operator-leader")]
    pub lease_name: String,
    /// Namespace of the Lease (default: the pod's namespace, or "default").
    #[arg(long, env = "POD_NAMESPACE")]
    pub lease_namespace: Option<String>,
    /// How drift is found: per-object reads, or a paged roster scan per connection.
    #[arg(long, value_enum, default_value = "roster")]
    pub drift_detection: DriftDetectionFlag,
    /// Practitioners reconciled at once.
    #[arg(long, default_value_t = 16)]
    pub concurrency: u16,
    #[command(flatten)]
    pub endpoints: EndpointArgs,
}

fn parse_duration_arg(s: &str) -> Result<Duration, String> {
    crate::util::parse_duration(s)
}

/// Runs the parsed command and returns the process exit code.
pub async fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Run(args) => {
            let config = OperatorConfig {
                namespace: args.namespace,
                metrics_addr: args.metrics_addr,
                leader_election: args.leader_election,
                lease_name: args.lease_name,
                lease_namespace: args.lease_namespace,
                drift_detection: match args.drift_detection {
                    DriftDetectionFlag::PerObject => DriftDetection::PerObject,
                    DriftDetectionFlag::Roster => DriftDetection::Roster,
                },
                concurrency: args.concurrency,
                endpoints: EndpointPolicy::from(&args.endpoints),
            };
            match operator::run(config).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => fail(&format!("operator stopped: {e}")),
            }
        }
        Command::Crd { out_dir } => crd(out_dir),
        Command::Plan(args) => plan(args, PlanMode::Plan).await,
        Command::Apply(args) => plan(args, PlanMode::Apply).await,
        Command::Export(args) => export(args).await,
        Command::Token(args) => token(args).await,
        Command::Keygen(args) => keygen(args),
        Command::Sandbox(args) => sandbox(args).await,
    }
}

fn fail(message: &str) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(1)
}

fn crd(out_dir: Option<PathBuf>) -> ExitCode {
    match out_dir {
        None => match crate::crd::crds_yaml() {
            Ok(y) => {
                print!("{y}");
                ExitCode::SUCCESS
            }
            Err(e) => fail(&format!("cannot render the CRDs: {e}")),
        },
        Some(dir) => {
            let files = match crate::crd::crd_files() {
                Ok(f) => f,
                Err(e) => return fail(&format!("cannot render the CRDs: {e}")),
            };
            if let Err(e) = std::fs::create_dir_all(&dir) {
                return fail(&format!("{}: {e}", dir.display()));
            }
            for (name, yaml) in files {
                if let Err(e) = std::fs::write(dir.join(&name), yaml) {
                    return fail(&format!("{}: {e}", dir.join(name).display()));
                }
            }
            ExitCode::SUCCESS
        }
    }
}

async fn plan(args: PlanArgs, mode: PlanMode) -> ExitCode {
    let loaded = match gitops::load_manifests(&args.paths) {
        Ok(l) => l,
        Err(e) => return fail(&e.to_string()),
    };
    if loaded.practitioners.is_empty() {
        for n in &loaded.notes {
            eprintln!("note: {n}");
        }
        return fail("no EpicPractitioner manifests found in the given paths");
    }
    let target = match gitops::open_target(&ConnectionInput::from(&args.connection)).await {
        Ok(t) => t,
        Err(e) => return fail(&e),
    };
    let report = gitops::run_plan(&target, &loaded, mode).await;
    target.stop().await;
    match args.output {
        OutputFormat::Json => match serde_json::to_string_pretty(&report) {
            Ok(s) => println!("{s}"),
            Err(e) => return fail(&e.to_string()),
        },
        OutputFormat::Text => print!("{}", report.to_text(mode)),
    }
    ExitCode::from(report.exit_code as u8)
}

async fn export(args: ExportArgs) -> ExitCode {
    let target = match gitops::open_target(&ConnectionInput::from(&args.connection)).await {
        Ok(t) => t,
        Err(e) => return fail(&e),
    };
    let result = gitops::export_roster(&target, &args.out, args.namespace.as_deref()).await;
    target.stop().await;
    match result {
        Ok(s) => {
            for why in &s.skipped {
                eprintln!("skipped: {why}");
            }
            println!(
                "exported {} of {} practitioners ({} pages) to {}; {} skipped",
                s.written,
                s.records,
                s.pages,
                args.out.display(),
                s.skipped.len()
            );
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e),
    }
}

async fn token(args: TokenArgs) -> ExitCode {
    let target = match gitops::open_target(&ConnectionInput::from(&args.connection)).await {
        Ok(t) => t,
        Err(e) => return fail(&e),
    };
    let tokens: &TokenSource = target.client.tokens();
    println!("FHIR base URL : {}", target.client.base_url());
    println!("token URL     : {}", tokens.token_url());
    println!("client id     : {}", target.spec.client_id);
    println!(
        "requested     : {}",
        target.spec.effective_scopes().join(" ")
    );
    let code = match tokens.token().await {
        Err(e) => {
            eprintln!("error: no token: {e}");
            ExitCode::from(1)
        }
        Ok(t) => {
            println!(
                "token         : obtained (not shown), expires {}",
                t.expires_at.to_rfc3339()
            );
            println!("granted       : {}", t.scopes.join(" "));
            let missing: Vec<String> = target
                .spec
                .effective_scopes()
                .into_iter()
                .filter(|s| !t.scopes.contains(s))
                .collect();
            if !missing.is_empty() {
                println!(
                    "note          : Epic granted fewer scopes than requested; missing: {}",
                    missing.join(" ")
                );
            }
            match target.client.capability().await {
                Ok(c) => {
                    println!(
                        "writes        : {}",
                        if c.can_update() {
                            "Practitioner update listed in the CapabilityStatement"
                        } else {
                            "no Practitioner update in the CapabilityStatement (read-only instance: drift will be reported, not fixed)"
                        }
                    );
                    println!(
                        "create        : {}",
                        if c.can_create() {
                            "listed"
                        } else {
                            "not listed"
                        }
                    );
                    println!(
                        "NPI search    : {}",
                        if c.npi_search() {
                            "identifier search supported"
                        } else {
                            "identifier search NOT listed: NPI resolution may fail"
                        }
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!(
                        "error: token works but the CapabilityStatement could not be read: {e}"
                    );
                    ExitCode::from(1)
                }
            }
        }
    };
    target.stop().await;
    code
}

fn keygen(args: KeygenArgs) -> ExitCode {
    let alg: Algorithm = args.alg.into();
    let (key, pem) = match generate_key(alg, &args.kid) {
        Ok(k) => k,
        Err(e) => return fail(&e.to_string()),
    };
    if let Err(e) = std::fs::create_dir_all(&args.out) {
        return fail(&format!("{}: {e}", args.out.display()));
    }
    let key_path = args.out.join("private-key.pem");
    let jwks_path = args.out.join("jwks.json");
    if key_path.exists() {
        return fail(&format!(
            "{} exists; refusing to overwrite a private key",
            key_path.display()
        ));
    }
    if let Err(e) = write_private(&key_path, &pem) {
        return fail(&format!("{}: {e}", key_path.display()));
    }
    let jwks = serde_json::to_string_pretty(&key.jwks()).unwrap_or_default();
    if let Err(e) = std::fs::write(&jwks_path, format!("{jwks}\n")) {
        return fail(&format!("{}: {e}", jwks_path.display()));
    }
    println!(
        "private key : {} (mode 0600; keep it secret, store it in a Kubernetes Secret)",
        key_path.display()
    );
    println!(
        "JWK Set     : {} (register it with Epic, or host it at your JWK Set URL)",
        jwks_path.display()
    );
    println!("kid         : {}   algorithm: {alg:?}", args.kid);
    ExitCode::SUCCESS
}

fn write_private(path: &std::path::Path, pem: &str) -> std::io::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)?;
        f.write_all(pem.as_bytes())
    }
    #[cfg(not(unix))]
    {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)?;
        f.write_all(pem.as_bytes())
    }
}

async fn sandbox(args: SandboxArgs) -> ExitCode {
    let mut seeds = Vec::new();
    if args.seeds.is_empty() && !args.empty {
        seeds.push(gitops::EXAMPLES_SEED.to_string());
    }
    for path in &args.seeds {
        match std::fs::read_to_string(path) {
            Ok(s) => seeds.push(s),
            Err(e) => return fail(&format!("{}: cannot read the seed: {e}", path.display())),
        }
    }
    let mut clients = Vec::new();
    for spec in &args.clients {
        let Some((id, file)) = spec.split_once('=') else {
            return fail(&format!("--client {spec:?}: use ID=JWKS_FILE"));
        };
        let jwks = match std::fs::read_to_string(file)
            .map_err(|e| e.to_string())
            .and_then(|t| serde_json::from_str(&t).map_err(|e| e.to_string()))
        {
            Ok(v) => v,
            Err(e) => return fail(&format!("{file}: cannot read the JWK Set: {e}")),
        };
        match RegisteredClient::new(id, &jwks, default_scopes()) {
            Ok(c) => clients.push(c),
            Err(e) => return fail(&e.to_string()),
        }
    }
    for spec in &args.client_scopes {
        let Some((id, scopes)) = spec.split_once('=') else {
            return fail(&format!("--client-scopes {spec:?}: use ID=scope1,scope2"));
        };
        match clients.iter_mut().find(|c| c.client_id == id) {
            Some(c) => {
                c.approved_scopes = scopes
                    .split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect()
            }
            None => {
                return fail(&format!(
                    "--client-scopes names {id:?}, which no --client registers"
                ));
            }
        }
    }
    let config = SandboxConfig {
        addr: args.addr,
        settings: Settings {
            writes_enabled: args.writes == WritesFlag::Enabled,
            latency_ms: args.latency_ms,
            jitter_ms: args.jitter_ms,
            throttle_rate: args.throttle_rate,
            error_rate: args.error_rate,
            token_failure_rate: args.token_failure_rate,
            rate_limit_rps: args.rate_limit,
            ..Settings::default()
        },
        token_ttl: args.token_ttl,
        paging_ttl: args.paging_ttl,
        default_page_size: args.page_size,
        max_page_size: args.max_page_size,
        clients,
        seeds,
        generate: args.generate,
        realistic: !args.clean_generated,
    };
    let sandbox = match Sandbox::start(config).await {
        Ok(s) => s,
        Err(e) => return fail(&e.to_string()),
    };
    println!("Epic sandbox listening on http://{}", sandbox.addr);
    println!("  FHIR base URL : {}", sandbox.fhir_base_url());
    println!("  token URL     : {}", sandbox.token_url());
    println!("  admin         : {}/stats", sandbox.admin_url());
    println!(
        "  writes        : {}",
        if args.writes == WritesFlag::Enabled {
            "enabled"
        } else {
            "disabled (403, Epic code 4118)"
        }
    );
    if let Some(pem) = &sandbox.dev_key_pem {
        if let Err(e) = write_private_overwrite(&args.dev_key_out, pem) {
            return fail(&format!(
                "{}: cannot write the development key: {e}",
                args.dev_key_out.display()
            ));
        }
        println!(
            "  client id     : {}   kid: {}   alg: RS384",
            crate::sandbox::DEV_CLIENT_ID,
            crate::sandbox::DEV_KEY_ID
        );
        println!(
            "  private key   : {} (development key generated for this run)",
            args.dev_key_out.display()
        );
    }
    // Serves until interrupted.
    let _ = tokio::signal::ctrl_c().await;
    sandbox.stop().await;
    ExitCode::SUCCESS
}

fn write_private_overwrite(path: &std::path::Path, pem: &str) -> std::io::Result<()> {
    if path.exists() {
        std::fs::remove_file(path)?;
    }
    write_private(path, pem)
}
