//! `plan`, `apply` and `export`: the GitOps driver without a cluster.

use std::path::PathBuf;
use std::process::ExitCode;

use super::{ExportArgs, OutputFormat, PlanArgs, fail};
use crate::gitops::{
    self, ConnectionInput, Diagnostic, Loaded, MAX_MARKDOWN_CHARS, PlanMode, PlanOptions,
    RunReport, Target,
};
use crate::reconcile::Disclosure;

/// `plan` (optionally saving the plan to `out`) and `apply` (optionally of a saved plan).
/// Problems before planning are diagnostics, printed in the chosen format (on stdout for
/// json and markdown), so CI can report them like a plan.
pub(super) async fn plan(
    args: PlanArgs,
    mode: PlanMode,
    out: Option<PathBuf>,
    saved: Option<PathBuf>,
) -> ExitCode {
    let (loaded, errors) = gitops::load_manifests_all(&args.paths);
    let mut diagnostics: Vec<Diagnostic> = errors
        .iter()
        .flat_map(Diagnostic::from_load_error)
        .collect();
    if errors.is_empty() && loaded.practitioners.is_empty() {
        diagnostics.push(Diagnostic::general(
            "no EpicPractitioner manifests found in the given paths",
        ));
    }
    if let Some(c) = &args.connection.connection
        && let Err(ds) = gitops::check_connection_file(c)
    {
        diagnostics.extend(ds);
    }
    let saved_plan = match saved.as_deref().map(gitops::read_saved_plan) {
        Some(Ok(p)) => Some(p),
        Some(Err(e)) => {
            diagnostics.push(Diagnostic::general(e));
            None
        }
        None => None,
    };
    if !diagnostics.is_empty() {
        return emit(&RunReport::stopped(mode, diagnostics, loaded.notes), &args);
    }
    let target = match gitops::open_target(&ConnectionInput::from(&args.connection)).await {
        Ok(t) => t,
        Err(e) => {
            let d = match &args.connection.connection {
                Some(c) => Diagnostic::in_file(c, e),
                None => Diagnostic::general(e),
            };
            return emit(&RunReport::stopped(mode, vec![d], loaded.notes), &args);
        }
    };
    let foreign = foreign_connections(&args, &loaded, &target);
    if !foreign.is_empty() {
        target.stop().await;
        return emit(&RunReport::stopped(mode, foreign, loaded.notes), &args);
    }
    let options = PlanOptions {
        disclosure: if args.show_values {
            Disclosure::Full
        } else {
            Disclosure::Masked
        },
        exit_code: args.exit_code.into(),
    };
    let mut report = match &saved_plan {
        Some(p) => match gitops::mismatch(p, &target, &loaded) {
            Some(why) => {
                RunReport::stopped(mode, vec![Diagnostic::general(why)], loaded.notes.clone())
            }
            None => gitops::apply_saved(&target, &loaded, p, options).await,
        },
        None => gitops::run_plan(&target, &loaded, mode, options).await,
    };
    if let Some(path) = &out
        && let Err(e) = save_plan(&target, &loaded, &mut report, path).await
    {
        target.stop().await;
        return fail(&e);
    }
    target.stop().await;
    emit(&report, &args)
}

/// With --connection, manifests whose connectionRef names another EpicConnection (unless
/// --any-connection): the plan would run against the wrong instance.
fn foreign_connections(args: &PlanArgs, loaded: &Loaded, target: &Target) -> Vec<Diagnostic> {
    if args.connection.connection.is_none() || args.any_connection {
        return Vec::new();
    }
    loaded
        .practitioners
        .iter()
        .filter(|s| s.practitioner.spec.connection_ref.name != target.connection_name)
        .map(|s| Diagnostic {
            file: Some(s.path.display().to_string()),
            document: Some(s.doc),
            path: Some("spec.connectionRef.name".into()),
            message: format!(
                "EpicPractitioner {}: spec.connectionRef.name is {:?}, not {:?}: this manifest names another EpicConnection than --connection; plan it with its own connection, or pass --any-connection",
                s.name(),
                s.practitioner.spec.connection_ref.name,
                target.connection_name
            ),
        })
        .collect()
}

async fn save_plan(
    target: &Target,
    loaded: &Loaded,
    report: &mut RunReport,
    path: &std::path::Path,
) -> Result<(), String> {
    if report.exit_code == 1 {
        return Err(format!(
            "not saving a plan with errors to {}: fix them and run plan again",
            path.display()
        ));
    }
    let saved = gitops::save(target, loaded, report).await?;
    let text = serde_json::to_string_pretty(&saved).map_err(|e| e.to_string())?;
    std::fs::write(path, text + "\n")
        .map_err(|e| format!("{}: cannot write the saved plan: {e}", path.display()))
}

/// Prints the report in the chosen format and returns its exit code.
fn emit(report: &RunReport, args: &PlanArgs) -> ExitCode {
    match args.output {
        OutputFormat::Json => match serde_json::to_string_pretty(report) {
            Ok(s) => println!("{s}"),
            Err(e) => return fail(&e.to_string()),
        },
        OutputFormat::Markdown => print!("{}", report.to_markdown(MAX_MARKDOWN_CHARS)),
        OutputFormat::Text if report.practitioners.is_empty() && !report.diagnostics.is_empty() => {
            for n in &report.notes {
                eprintln!("note: {n}");
            }
            for d in &report.diagnostics {
                eprintln!("error: {}", d.line());
            }
        }
        OutputFormat::Text => print!("{}", report.to_text(mode_of(report))),
    }
    ExitCode::from(u8::try_from(report.exit_code).unwrap_or(1))
}

fn mode_of(report: &RunReport) -> PlanMode {
    if report.mode == "apply" {
        PlanMode::Apply
    } else {
        PlanMode::Plan
    }
}

pub(super) async fn export(args: ExportArgs) -> ExitCode {
    let target = match gitops::open_target(&ConnectionInput::from(&args.connection)).await {
        Ok(t) => t,
        Err(e) => return fail(&e),
    };
    let result =
        gitops::export_roster(&target, &args.out, args.namespace.as_deref(), args.force).await;
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
