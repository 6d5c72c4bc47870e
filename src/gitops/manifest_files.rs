//! Which files a manifest path means, and reading them: regular files and directories only,
//! symbolic links only inside the tree given, standard input for `-`, and at most
//! [`MAX_MANIFEST_BYTES`] of UTF-8 text each.

use std::path::{Path, PathBuf};

use super::load_error::{LoadError, missing_or_unreadable};

/// The path that stands for standard input (`-f -`, e.g. `kubectl kustomize . | plan -f -`).
pub const STDIN: &str = "-";

/// Largest manifest file read (a pull request's YAML is kilobytes; a runaway file must not
/// exhaust memory).
pub const MAX_MANIFEST_BYTES: u64 = 4 << 20;

/// Reads standard input, at most [`MAX_MANIFEST_BYTES`], as UTF-8.
pub(super) fn read_stdin() -> Result<String, LoadError> {
    bounded_text(Path::new(STDIN), std::io::stdin().lock())
}

/// Reads a regular file of at most [`MAX_MANIFEST_BYTES`] as UTF-8.
pub(super) fn read_bounded(path: &Path) -> Result<String, LoadError> {
    let file = std::fs::File::open(path).map_err(|e| missing_or_unreadable(path, e))?;
    bounded_text(path, file)
}

fn bounded_text(path: &Path, source: impl std::io::Read) -> Result<String, LoadError> {
    use std::io::Read;
    let mut bytes = Vec::new();
    source
        .take(MAX_MANIFEST_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| missing_or_unreadable(path, e))?;
    if bytes.len() as u64 > MAX_MANIFEST_BYTES {
        return Err(LoadError::Refused {
            path: path.to_path_buf(),
            detail: format!(
                "larger than {} MiB; manifests are small YAML files",
                MAX_MANIFEST_BYTES >> 20
            ),
        });
    }
    String::from_utf8(bytes).map_err(|_| LoadError::Read {
        path: path.to_path_buf(),
        detail: "not UTF-8 text".into(),
    })
}

/// Collects manifest files. Only regular files and directories are read: a FIFO would hang
/// the command and a device (`/dev/zero`) would never end. Symbolic links are followed only
/// when they stay inside `root` (the directory given on the command line), so a link cannot
/// pull in a file from elsewhere on the machine (and echo its lines in an error).
pub(super) fn collect_files(
    path: &Path,
    root: &Path,
    out: &mut Vec<PathBuf>,
    explicit: bool,
    errors: &mut Vec<LoadError>,
) {
    if let Err(e) = collect_one(path, root, out, explicit, errors) {
        errors.push(e);
    }
}

fn collect_one(
    path: &Path,
    root: &Path,
    out: &mut Vec<PathBuf>,
    explicit: bool,
    errors: &mut Vec<LoadError>,
) -> Result<(), LoadError> {
    let link = std::fs::symlink_metadata(path).map_err(|e| missing_or_unreadable(path, e))?;
    if link.file_type().is_symlink() && !explicit {
        let target = std::fs::canonicalize(path).map_err(|e| missing_or_unreadable(path, e))?;
        if !target.starts_with(root) {
            return Err(LoadError::Refused {
                path: path.to_path_buf(),
                detail: format!(
                    "a symbolic link to {} outside {}; copy the file into the tree instead",
                    target.display(),
                    root.display()
                ),
            });
        }
    }
    let meta = std::fs::metadata(path).map_err(|e| missing_or_unreadable(path, e))?;
    if meta.is_dir() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(|e| LoadError::Read {
                path: path.to_path_buf(),
                detail: e.to_string(),
            })?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        entries.sort();
        for e in entries {
            collect_files(&e, root, out, false, errors);
        }
        return Ok(());
    }
    let wanted = explicit
        || matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml")
        );
    if !wanted {
        return Ok(());
    }
    if !meta.is_file() {
        return Err(LoadError::Refused {
            path: path.to_path_buf(),
            detail: "not a regular file (a device, FIFO or socket); give YAML files or directories"
                .into(),
        });
    }
    out.push(path.to_path_buf());
    Ok(())
}
