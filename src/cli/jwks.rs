//! `jwks`: the public JWK Set of a key file or key directory, for teams that host it
//! statically instead of registering the operator's JWK Set URL.

use std::process::ExitCode;

use super::{JwksArgs, fail};
use crate::auth::public_jwk_set;
use crate::gitops::{directory_keys, load_connection_manifest, ring_from_path};

pub(super) fn jwks(args: JwksArgs) -> ExitCode {
    let set = match &args.connection {
        Some(file) => load_connection_manifest(file)
            .and_then(|conn| ring_from_path(&args.keys, &conn.spec))
            .map(|ring| ring.jwks()),
        None => directory_keys(&args.keys, args.kid.as_deref()).map(|keys| public_jwk_set(&keys)),
    };
    match set {
        Ok(set) => {
            println!("{}", serde_json::to_string_pretty(&set).unwrap_or_default());
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e),
    }
}
