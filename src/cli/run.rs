//! `run`: the operator's flags, held to their rules, as the operator's configuration.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, ValueEnum};

use super::{EndpointArgs, fail, parse_duration_arg, tls_args};
use crate::http::EndpointPolicy;
use crate::operator::{self, DriftDetection, OperatorConfig};

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
    /// Address of the JWK Set listener (`/jwks/{namespace}/{connection}`, the public keys Epic
    /// fetches), or `off`. Served by every replica, leader or not.
    #[arg(long, default_value = "0.0.0.0:8090", env = "EPIC_OPERATOR_JWKS_ADDR", value_parser = parse_listen_addr)]
    pub jwks_addr: ListenAddr,
    /// External https base URL of the JWK Set listener as Epic reaches it (an Ingress, for
    /// example https://epic-keys.example.org): status.jwksUrl shows {URL}/jwks/{ns}/{name},
    /// the URL to register with Epic.
    #[arg(long, value_name = "URL", env = "EPIC_OPERATOR_JWKS_PUBLIC_URL")]
    pub jwks_public_url: Option<String>,
    #[command(flatten)]
    pub endpoints: EndpointArgs,
    #[command(flatten)]
    pub ceilings: CeilingArgs,
    /// A PEM file of CA certificates every EpicConnection trusts besides the system roots
    /// (an internal CA in front of Epic; chart value caBundle). Repeatable.
    #[arg(
        long = "ca-file",
        value_name = "PEM",
        env = "EPIC_OPERATOR_CA_FILE",
        value_delimiter = ','
    )]
    pub ca_files: Vec<PathBuf>,
}

/// Operator-wide ceilings over every EpicConnection's own limits: whoever may create an
/// EpicConnection chooses its server, so no tenant may ask for more than these.
#[derive(Args, Debug, Clone)]
pub struct CeilingArgs {
    /// Highest requestsPerSecond any EpicConnection gets (its burst: twice this at most).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_requests_per_second: u32,
    /// Highest maxWalkPages any EpicConnection gets (and the value for those that set none).
    #[arg(long, default_value_t = 50_000, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_walk_pages: u32,
    /// Highest maxWalkRecords any EpicConnection gets (and the value for those that set none).
    #[arg(long, default_value_t = 2_000_000, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_walk_records: u32,
    /// Longest maxWalkDuration any EpicConnection gets (and the value for those that set none).
    #[arg(long, default_value = "6h", value_parser = parse_duration_arg)]
    pub max_walk_duration: Duration,
}

/// A listen address, or `off`.
#[derive(Clone, Copy, Debug)]
pub struct ListenAddr(pub Option<SocketAddr>);

fn parse_listen_addr(s: &str) -> Result<ListenAddr, String> {
    if s.eq_ignore_ascii_case("off") {
        return Ok(ListenAddr(None));
    }
    s.parse::<SocketAddr>()
        .map(|a| ListenAddr(Some(a)))
        .map_err(|e| format!("{s:?} is not an address such as 0.0.0.0:8090, nor off: {e}"))
}

/// Runs the operator until it stops, and returns the process exit code.
pub(super) async fn run(args: RunArgs) -> ExitCode {
    let policy = EndpointPolicy::from(&args.endpoints);
    if let Some(url) = &args.jwks_public_url
        && let Err(e) = check_public_url(url, &policy)
    {
        return fail(&e);
    }
    let tls = match tls_args::operator_tls(&args.ca_files) {
        Ok(t) => t,
        Err(e) => return fail(&e),
    };
    let config = OperatorConfig {
        tls,
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
        endpoints: policy,
        jwks_addr: args.jwks_addr.0,
        jwks_public_url: args
            .jwks_public_url
            .map(|u| u.trim_end_matches('/').to_string()),
        ceilings: operator::Ceilings {
            requests_per_second: args.ceilings.max_requests_per_second,
            max_walk_pages: args.ceilings.max_walk_pages,
            max_walk_records: args.ceilings.max_walk_records,
            max_walk_duration: args.ceilings.max_walk_duration,
        },
    };
    match operator::run(config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&format!("operator stopped: {e}")),
    }
}

/// The JWK Set base URL must be https (Epic fetches only https), or plain http to a loopback
/// host when loopback http is allowed (tests and development).
pub(crate) fn check_public_url(url: &str, policy: &EndpointPolicy) -> Result<(), String> {
    let parsed =
        url::Url::parse(url).map_err(|e| format!("--jwks-public-url {url:?} is not a URL: {e}"))?;
    let loopback = parsed.host_str().is_some_and(|h| {
        h == "localhost"
            || h.trim_matches(['[', ']'])
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    });
    match parsed.scheme() {
        "https" => Ok(()),
        "http" if loopback && policy.allow_loopback_http => Ok(()),
        _ => Err(format!(
            "--jwks-public-url {url:?} must be https: Epic fetches JWK Sets over https only (plain http only to loopback with --insecure-allow-loopback-http)"
        )),
    }
}
