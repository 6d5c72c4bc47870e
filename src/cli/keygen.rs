//! `keygen`: a private key PEM and the public JWK Set to register with Epic.

use std::process::ExitCode;

use super::{KeygenArgs, fail};
use crate::auth::generate_key;
use crate::crd::Algorithm;

pub(super) fn keygen(args: KeygenArgs) -> ExitCode {
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
