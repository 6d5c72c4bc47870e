//! `plan`, `apply` and `export`: the GitOps driver without a cluster.

use std::process::ExitCode;

use super::{ExportArgs, OutputFormat, PlanArgs, fail};
use crate::gitops::{self, ConnectionInput, PlanMode, PlanOptions};
use crate::reconcile::Disclosure;

pub(super) async fn plan(args: PlanArgs, mode: PlanMode) -> ExitCode {
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
    if args.connection.connection.is_some() && !args.any_connection {
        let foreign: Vec<String> = loaded
            .practitioners
            .iter()
            .filter(|s| s.practitioner.spec.connection_ref.name != target.connection_name)
            .map(|s| {
                format!(
                    "{} (document {}): EpicPractitioner {}: spec.connectionRef.name is {:?}, not {:?}",
                    s.path.display(),
                    s.doc,
                    s.name(),
                    s.practitioner.spec.connection_ref.name,
                    target.connection_name
                )
            })
            .collect();
        if !foreign.is_empty() {
            target.stop().await;
            return fail(&format!(
                "{}\nthese manifests name another EpicConnection than --connection; plan them with their own connection, or pass --any-connection",
                foreign.join("\n")
            ));
        }
    }
    let options = PlanOptions {
        disclosure: if args.show_values {
            Disclosure::Full
        } else {
            Disclosure::Masked
        },
    };
    let report = gitops::run_plan(&target, &loaded, mode, options).await;
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
