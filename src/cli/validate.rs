//! `validate` (offline: manifests and a connection file, every problem at once, for a
//! pre-commit hook) and `man` (the manual pages).

use std::path::PathBuf;
use std::process::ExitCode;

use serde::Serialize;

use super::{Cli, OutputFormat, ValidateArgs, fail};
use crate::gitops::{self, Diagnostic, FORMAT_VERSION};
use crate::reconcile::validate_spec;

/// The `validate -o json` document.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ValidateReport {
    format_version: u32,
    valid: bool,
    practitioners: usize,
    diagnostics: Vec<Diagnostic>,
}

pub(super) fn validate(args: ValidateArgs) -> ExitCode {
    let (loaded, errors) = gitops::load_manifests_all(&args.paths);
    let mut diagnostics: Vec<Diagnostic> = errors
        .iter()
        .flat_map(Diagnostic::from_load_error)
        .collect();
    // What plan checks per practitioner before any request (qualification systems, ...).
    for s in &loaded.practitioners {
        if let Err(e) = validate_spec(&s.practitioner.spec) {
            diagnostics.push(Diagnostic {
                file: Some(s.path.display().to_string()),
                document: Some(s.doc),
                path: Some("spec".into()),
                message: format!("EpicPractitioner {}: {e}", s.name()),
            });
        }
    }
    if let Some(path) = &args.connection {
        match gitops::check_connection_file(path) {
            Err(ds) => diagnostics.extend(ds),
            Ok(conn) => {
                let name = conn.metadata.name.clone().unwrap_or_default();
                for s in &loaded.practitioners {
                    let named = &s.practitioner.spec.connection_ref.name;
                    if *named != name {
                        diagnostics.push(Diagnostic {
                            file: Some(s.path.display().to_string()),
                            document: Some(s.doc),
                            path: Some("spec.connectionRef.name".into()),
                            message: format!(
                                "EpicPractitioner {}: spec.connectionRef.name is {named:?}, not {name:?} (the --connection file)",
                                s.name()
                            ),
                        });
                    }
                }
            }
        }
    }
    if errors.is_empty() && loaded.practitioners.is_empty() && args.connection.is_none() {
        diagnostics.push(Diagnostic::general(
            "no EpicPractitioner manifests found in the given paths",
        ));
    }
    let valid = diagnostics.is_empty();
    match args.output {
        OutputFormat::Json => {
            let report = ValidateReport {
                format_version: FORMAT_VERSION,
                valid,
                practitioners: loaded.practitioners.len(),
                diagnostics,
            };
            match serde_json::to_string_pretty(&report) {
                Ok(s) => println!("{s}"),
                Err(e) => return fail(&e.to_string()),
            }
        }
        OutputFormat::Text | OutputFormat::Markdown => {
            for d in &diagnostics {
                eprintln!("error: {}", d.line());
            }
            if valid {
                println!(
                    "valid: {} EpicPractitioner manifest(s){}",
                    loaded.practitioners.len(),
                    if args.connection.is_some() {
                        " and the connection file"
                    } else {
                        ""
                    }
                );
            } else {
                eprintln!("{} problem(s) found", diagnostics.len());
            }
        }
    }
    if valid {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// The manual: the top page on stdout, or one page per subcommand into a directory
/// (`epic-operator-plan.1`, the name the top page's SEE ALSO points to).
pub(super) fn man(out_dir: Option<PathBuf>) -> ExitCode {
    let cmd = <Cli as clap::CommandFactory>::command();
    let Some(dir) = out_dir else {
        return match clap_mangen::Man::new(cmd).render(&mut std::io::stdout()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(&format!("cannot write the manual page: {e}")),
        };
    };
    if let Err(e) = std::fs::create_dir_all(&dir) {
        return fail(&format!(
            "{}: cannot create the directory: {e}",
            dir.display()
        ));
    }
    match clap_mangen::generate_to(cmd, &dir) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&format!(
            "{}: cannot write the manual pages: {e}",
            dir.display()
        )),
    }
}
