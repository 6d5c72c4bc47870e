//! `keygen`: a private key PEM and the public JWK Set to register with Epic.

use std::process::ExitCode;

use super::{KeygenArgs, fail};
use crate::auth::generate_key;
use crate::crd::Algorithm;

pub(super) fn keygen(args: KeygenArgs) -> ExitCode {
    let alg: Algorithm = args.alg.into();
    if crate::auth::kid_of_entry(&crate::auth::entry_of_kid(&args.kid)).is_none() {
        return fail(&format!(
            "--kid {:?}: use 1-64 of A-Z a-z 0-9 . _ - (it names the file <kid>.pem and the Secret entry)",
            args.kid
        ));
    }
    let (key, pem) = match generate_key(alg, &args.kid) {
        Ok(k) => k,
        Err(e) => return fail(&e.to_string()),
    };
    if let Some(dir) = &args.add_to {
        return add_to(dir, key, &pem);
    }
    let Some(out) = &args.out else {
        return fail("say where: --out DIR (a new key directory) or --add-to DIR");
    };
    if let Err(e) = std::fs::create_dir_all(out) {
        return fail(&format!("{}: {e}", out.display()));
    }
    let key_path = out.join("private-key.pem");
    let jwks_path = out.join("jwks.json");
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
        "JWK Set     : {} (the operator publishes it at its JWK Set URL; register that URL with Epic)",
        jwks_path.display()
    );
    println!("kid         : {}   algorithm: {alg:?}", args.kid);
    ExitCode::SUCCESS
}

/// Adds `<kid>.pem` to an existing key directory and rewrites its `jwks.json` with every key
/// in it: the new key is published beside the old ones, ready to sign once Epic has it.
fn add_to(dir: &std::path::Path, key: crate::auth::ClientKey, pem: &str) -> ExitCode {
    if !dir.is_dir() {
        return fail(&format!(
            "{}: no such key directory (create one with keygen --out)",
            dir.display()
        ));
    }
    // Every existing key must be readable before anything is written.
    let mut keys = match crate::gitops::directory_keys(dir, None) {
        Ok(k) => k,
        Err(e) if e.ends_with("no .pem key found") => Vec::new(),
        Err(e) => return fail(&e),
    };
    let kid = key.kid().to_string();
    let alg = key.algorithm();
    if keys.iter().any(|k| k.kid() == kid) {
        return fail(&format!(
            "{}: kid {kid:?} is already there; choose a new kid",
            dir.display()
        ));
    }
    let key_path = dir.join(crate::auth::entry_of_kid(&kid));
    if let Err(e) = write_private(&key_path, pem) {
        return fail(&format!("{}: {e}", key_path.display()));
    }
    keys.push(key);
    let jwks =
        serde_json::to_string_pretty(&crate::auth::public_jwk_set(&keys)).unwrap_or_default();
    let jwks_path = dir.join("jwks.json");
    if let Err(e) = std::fs::write(&jwks_path, format!("{jwks}\n")) {
        return fail(&format!("{}: {e}", jwks_path.display()));
    }
    println!("private key : {} (mode 0600)", key_path.display());
    println!(
        "JWK Set     : {} ({} keys; publish it before the new key signs)",
        jwks_path.display(),
        keys.len()
    );
    println!("kid         : {kid}   algorithm: {alg:?}");
    ExitCode::SUCCESS
}
pub(super) fn write_private(path: &std::path::Path, pem: &str) -> std::io::Result<()> {
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
