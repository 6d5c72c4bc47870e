//! `crd`: print the CustomResourceDefinitions generated from the Rust types.

use std::path::PathBuf;
use std::process::ExitCode;

use super::fail;

pub(super) fn crd(out_dir: Option<PathBuf>) -> ExitCode {
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
