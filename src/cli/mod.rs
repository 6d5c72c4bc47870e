//! The command line: parses arguments and hands each command to its driver.

mod crd;
mod forecast;
mod jwks;
mod keygen;
mod plan;
mod run;
mod sandbox;
mod tls_args;
mod token;
mod trace;
mod validate;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

pub use run::{CeilingArgs, DriftDetectionFlag, ListenAddr, RunArgs};
pub use sandbox::{SandboxArgs, WritesFlag};

use crate::crd::Algorithm;
use crate::gitops::{ConnectionInput, ExitCodeMode, PlanMode};
use crate::http::EndpointPolicy;
use crate::operator;

#[derive(Parser, Debug)]
#[command(
    name = "epic-operator",
    version,
    about = "Keeps Epic Practitioner records in the state declared in Git"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Log lines as readable text, or as one flat JSON object per line (log pipelines).
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "text",
        env = "EPIC_OPERATOR_LOG_FORMAT"
    )]
    pub log_format: operator::LogFormat,
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
    /// Exit code: 0 no drift, 2 drift, 1 error (usage errors and invalid manifests included).
    Plan(PlanCommand),
    /// Like plan, then write where allowed (or send exactly the requests of a saved plan).
    /// Exit code: 0 all in sync, 2 some not, 1 error (a stale saved plan included).
    Apply(ApplyCommand),
    /// Check manifests (and a connection file) offline, as plan and the API server would:
    /// every problem of every file at once. Exit code: 0 valid, 1 not.
    Validate(ValidateArgs),
    /// Write one EpicPractitioner manifest per Practitioner in Epic (adoption).
    Export(ExportArgs),
    /// Obtain a token and probe capabilities: the first thing to run against a new Epic.
    Token(TokenArgs),
    /// Print the requests a day a connection's settings cost for N practitioners (walk
    /// pages, role walks, reads and writes at an assumed drift rate), against its
    /// requestBudget: the number to agree with the Epic team before go-live. Offline.
    Forecast(forecast::ForecastArgs),
    /// Write a private key PEM and the public JWK Set, or add a key to a key directory.
    Keygen(KeygenArgs),
    /// Print the public JWK Set of a key file or key directory (for static hosting; the
    /// operator serves it itself at its JWK Set URL).
    Jwks(JwksArgs),
    /// Run the Epic-like sandbox server.
    Sandbox(SandboxArgs),
    /// Show connections, their practitioners and the reasons of each as a tree, read from
    /// the cluster (the kubeconfig's context).
    Trace(trace::TraceArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff), for `man -l -`, or write one page per subcommand
    /// (epic-operator.1, epic-operator-plan.1, ...) into a man directory.
    Man {
        /// Write epic-operator.1 and one epic-operator-<command>.1 per subcommand here.
        #[arg(long, value_name = "DIR")]
        out_dir: Option<PathBuf>,
    },
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
    #[command(flatten)]
    pub tls: tls_args::TlsArgs,
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
            tls: crate::gitops::TlsFiles::from(&a.tls),
        }
    }
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputFormat {
    Text,
    Json,
    /// A pull-request comment: summary first, one collapsible section per practitioner.
    Markdown,
}

/// What exit code 2 stands for.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitCodeFlag {
    /// Any drift, held back by policy or not (the default).
    Drift,
    /// Something to write: drift that policy holds back (Observe, write-disabled, paused)
    /// exits 0.
    Writes,
}

#[derive(Args, Debug)]
pub struct PlanArgs {
    /// Manifest files or directories (searched recursively for .yaml/.yml); `-` reads
    /// standard input (e.g. `kubectl kustomize overlays/prod | epic-operator plan -f -`).
    /// Repeatable.
    #[arg(short = 'f', long = "filename", required = true, num_args = 1..)]
    pub paths: Vec<PathBuf>,
    #[command(flatten)]
    pub connection: ConnectionArgs,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
    /// With --connection: accept manifests whose connectionRef names another EpicConnection
    /// (by default that is an error: the plan would run against the wrong instance).
    #[arg(long)]
    pub any_connection: bool,
    /// Show contact values and birth dates in full (default: masked, as in status).
    #[arg(long)]
    pub show_values: bool,
    /// What exit code 2 means: drift (default) or writes (held drift exits 0).
    #[arg(long, value_enum, default_value_t = ExitCodeFlag::Drift)]
    pub exit_code: ExitCodeFlag,
}

#[derive(Args, Debug)]
pub struct PlanCommand {
    #[command(flatten)]
    pub common: PlanArgs,
    /// Also save the plan to FILE (JSON): per practitioner the resolved id, the version
    /// planned against and the request; `apply --plan FILE` sends exactly those.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct ApplyCommand {
    #[command(flatten)]
    pub common: PlanArgs,
    /// Send exactly the requests of a plan saved with `plan --out FILE` (same connection and
    /// manifests), each with the If-Match it was planned with; a record changed since is
    /// refused as "stale plan: run plan again" and nothing is written for it.
    #[arg(long = "plan", value_name = "FILE")]
    pub plan_file: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct ValidateArgs {
    /// Manifest files or directories (recursively .yaml/.yml), or `-` for standard input.
    #[arg(short = 'f', long = "filename", required = true, num_args = 1..)]
    pub paths: Vec<PathBuf>,
    /// Also validate this EpicConnection manifest, and that every manifest's connectionRef
    /// names it.
    #[arg(long, value_name = "FILE")]
    pub connection: Option<PathBuf>,
    /// Output format (text or json; json prints the diagnostics list).
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
    /// Overwrite manifests that already exist in --out (by default export stops before
    /// writing anything if one would be overwritten).
    #[arg(long)]
    pub force: bool,
}

#[derive(Args, Debug)]
pub struct TokenArgs {
    #[command(flatten)]
    pub connection: ConnectionArgs,
    /// The operator's public JWK Set base URL (as in `run --jwks-public-url`): prints the
    /// exact JWK Set URL to register with Epic for this connection.
    #[arg(long, value_name = "URL", env = "EPIC_OPERATOR_JWKS_PUBLIC_URL")]
    pub jwks_public_url: Option<String>,
    /// Also print the forecast (as `forecast` does) for this many practitioners.
    #[arg(long, value_name = "N")]
    pub practitioners: Option<u64>,
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
    /// Key id (kid) of the new key.
    #[arg(long)]
    pub kid: String,
    /// New directory for private-key.pem (mode 0600) and jwks.json.
    #[arg(long, required_unless_present = "add_to", conflicts_with = "add_to")]
    pub out: Option<PathBuf>,
    /// Existing key directory: adds <kid>.pem (mode 0600) and rewrites jwks.json with every
    /// key in it (publish the new set, then let the new key sign).
    #[arg(long, value_name = "DIR")]
    pub add_to: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct JwksArgs {
    /// A private key PEM file, or a key directory (every <kid>.pem in it).
    #[arg(long = "keys", value_name = "PATH")]
    pub keys: PathBuf,
    /// An EpicConnection manifest: its algorithm and keyId (otherwise: RS384 for RSA keys,
    /// ES384 for P-384 keys, and the kid from each <kid>.pem name).
    #[arg(long, value_name = "FILE")]
    pub connection: Option<PathBuf>,
    /// Key id of a single key file not named <kid>.pem.
    #[arg(long)]
    pub kid: Option<String>,
}

pub(crate) fn parse_duration_arg(s: &str) -> Result<Duration, String> {
    crate::util::parse_duration(s)
}

/// Runs the parsed command and returns the process exit code.
pub async fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Run(args) => run::run(args).await,
        Command::Crd { out_dir } => crd::crd(out_dir),
        Command::Plan(args) => plan::plan(args.common, PlanMode::Plan, args.out, None).await,
        Command::Apply(args) => {
            plan::plan(args.common, PlanMode::Apply, None, args.plan_file).await
        }
        Command::Validate(args) => validate::validate(args),
        Command::Export(args) => plan::export(args).await,
        Command::Token(args) => token::token(args).await,
        Command::Forecast(args) => forecast::forecast_command(args),
        Command::Keygen(args) => keygen::keygen(args),
        Command::Jwks(args) => jwks::jwks(args),
        Command::Sandbox(args) => sandbox::sandbox(args).await,
        Command::Trace(args) => trace::trace(args).await,
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut cmd, "epic-operator", &mut std::io::stdout());
            ExitCode::SUCCESS
        }
        Command::Man { out_dir } => validate::man(out_dir),
    }
}

impl From<ExitCodeFlag> for ExitCodeMode {
    fn from(f: ExitCodeFlag) -> Self {
        match f {
            ExitCodeFlag::Drift => ExitCodeMode::Drift,
            ExitCodeFlag::Writes => ExitCodeMode::Writes,
        }
    }
}

pub(crate) fn fail(message: &str) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(1)
}
