//! Tier 2: the real binary, each command, against the sandbox over HTTP.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cli_support;

use std::path::Path;
use std::process::Command;

use cli_support::{
    connection_manifest, examples, run, sandbox_and_connection, start_sandbox, text,
};

use serde_json::Value;

#[test]
fn plan_exit_codes_and_text() {
    let out = run(&["plan", "-f", examples().to_str().unwrap(), "--sandbox"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let t = text(&out);
    assert!(t.contains("resolved : Practitioner/e"), "{t}");
    assert!(t.contains("telecom: live"), "{t}");
    // A held write says why writes are held, in the words the operator's status uses.
    assert!(
        t.contains("detail   : the CapabilityStatement lists no Practitioner update"),
        "{t}"
    );
    assert!(t.contains("ObserveOnly"), "{t}");
    assert!(t.contains("no record carries this NPI"), "{t}");

    let in_sync = examples().join("practitioners/alice-smith.yaml");
    let out = run(&["plan", "-f", in_sync.to_str().unwrap(), "--sandbox"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

#[test]
fn plan_json_output() {
    let out = run(&[
        "plan",
        "-f",
        examples().to_str().unwrap(),
        "--sandbox",
        "--output",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let report: Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    let ps = report["practitioners"].as_array().unwrap();
    assert_eq!(ps.len(), 5);
    let bob = ps.iter().find(|p| p["name"] == "bob-jones").unwrap();
    assert_eq!(bob["resolution"], "found");
    assert_eq!(bob["reason"], "WriteDisabled");
    let paths: Vec<&str> = bob["drift"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, vec!["telecom", "qualification"]);
    let erin = ps.iter().find(|p| p["name"] == "erin-novak").unwrap();
    assert_eq!(erin["resolution"], "not-found");
    assert_eq!(report["exitCode"], 2);
}

#[test]
fn apply_writes_where_allowed_and_reports_refusals() {
    // Read-only instance: nothing written, exit 2.
    let out = run(&[
        "apply",
        "-f",
        examples().to_str().unwrap(),
        "--sandbox",
        "--output",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        report["practitioners"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["result"] != "updated")
    );

    // Writable instance: updates and creates; everything but the Observe-only record ends in sync.
    let files: Vec<String> = ["alice-smith", "bob-jones", "carol-lee", "erin-new"]
        .iter()
        .map(|n| {
            examples()
                .join(format!("practitioners/{n}.yaml"))
                .display()
                .to_string()
        })
        .collect();
    let mut args = vec![
        "apply",
        "--sandbox",
        "--sandbox-writes",
        "--output",
        "json",
        "-f",
    ];
    args.extend(files.iter().map(String::as_str));
    let out = run(&args);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let result = |n: &str| {
        report["practitioners"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == n)
            .unwrap()["result"]
            .clone()
    };
    assert_eq!(result("alice-smith"), "unchanged");
    assert_eq!(result("bob-jones"), "updated");
    assert_eq!(result("carol-lee"), "updated");
    assert_eq!(result("erin-novak"), "created");
}

#[test]
fn export_of_a_many_page_roster_round_trips_through_plan() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("dev-key.pem");
    let sandbox = start_sandbox(&["--generate", "64", "--dev-key-out", key.to_str().unwrap()]);
    let conn = connection_manifest(
        dir.path(),
        &sandbox.base,
        "epic-operator-dev",
        "dev-key-1",
        "RS384",
        10,
    );
    let out_dir = dir.path().join("exported");
    let out = run(&[
        "export",
        "--insecure-allow-loopback-http",
        "--connection",
        conn.to_str().unwrap(),
        "--private-key",
        key.to_str().unwrap(),
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let t = text(&out);
    // 64 generated + 4 seeded with an NPI; the seeded resident without NPI is listed and skipped.
    assert!(
        t.contains("exported 68 of 69 practitioners (7 pages)"),
        "{t}"
    );
    assert!(
        t.contains("skipped: Practitioner/") && t.contains("has no NPI"),
        "{t}"
    );
    assert!(
        t.contains("export: page 7"),
        "plain progress lines off a terminal: {t}"
    );
    let files = std::fs::read_dir(&out_dir).unwrap().count();
    assert_eq!(files, 68);
    let sample = std::fs::read_to_string(out_dir.join("npi-1234567893.yaml")).unwrap();
    assert!(sample.contains("managementPolicy: Observe"), "{sample}");
    assert!(
        sample.starts_with("apiVersion: epic-operator.dev/v1alpha1\nkind: EpicPractitioner\n"),
        "{sample}"
    );

    let out = run(&[
        "plan",
        "-f",
        out_dir.to_str().unwrap(),
        "--insecure-allow-loopback-http",
        "--connection",
        conn.to_str().unwrap(),
        "--private-key",
        key.to_str().unwrap(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "exported files show no drift: {}",
        text(&out)
    );
    assert!(text(&out).contains("68 in sync"), "{}", text(&out));
}

#[test]
fn keygen_output_is_accepted_by_the_token_endpoint() {
    for alg in ["RS384", "ES384"] {
        let dir = tempfile::tempdir().unwrap();
        let keys = dir.path().join("keys");
        let out = run(&[
            "keygen",
            "--alg",
            alg,
            "--kid",
            "test-kid",
            "--out",
            keys.to_str().unwrap(),
        ]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        let pem = keys.join("private-key.pem");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&pem).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        let jwks: Value =
            serde_json::from_str(&std::fs::read_to_string(keys.join("jwks.json")).unwrap())
                .unwrap();
        assert_eq!(jwks["keys"][0]["kid"], "test-kid");
        assert!(jwks["keys"][0].get("d").is_none(), "no private parts");
        let again = run(&[
            "keygen",
            "--alg",
            alg,
            "--kid",
            "test-kid",
            "--out",
            keys.to_str().unwrap(),
        ]);
        assert_eq!(again.status.code(), Some(1), "never overwrites a key");

        let client = format!("app-{alg}=");
        let client_arg = format!("{client}{}", keys.join("jwks.json").display());
        let sandbox = start_sandbox(&["--client", &client_arg]);
        let conn = connection_manifest(
            dir.path(),
            &sandbox.base,
            &format!("app-{alg}"),
            "test-kid",
            alg,
            50,
        );
        let out = run(&[
            "token",
            "--insecure-allow-loopback-http",
            "--connection",
            conn.to_str().unwrap(),
            "--private-key",
            pem.to_str().unwrap(),
        ]);
        let t = text(&out);
        assert_eq!(out.status.code(), Some(0), "{t}");
        assert!(t.contains("token         : obtained (not shown)"), "{t}");
        assert!(
            t.contains("no Practitioner update in the CapabilityStatement"),
            "{t}"
        );
        assert!(t.contains("identifier search supported"), "{t}");
    }
}

#[test]
fn token_explains_oauth_errors() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    assert!(
        run(&["keygen", "--kid", "k1", "--out", keys.to_str().unwrap()])
            .status
            .success()
    );
    let client_arg = format!("narrow={}", keys.join("jwks.json").display());
    let sandbox = start_sandbox(&[
        "--client",
        &client_arg,
        "--client-scopes",
        "narrow=system/Practitioner.read",
    ]);
    let conn = connection_manifest(dir.path(), &sandbox.base, "narrow", "k1", "RS384", 50);
    let out = run(&[
        "token",
        "--insecure-allow-loopback-http",
        "--connection",
        conn.to_str().unwrap(),
        "--private-key",
        keys.join("private-key.pem").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let t = text(&out);
    assert!(
        t.contains("invalid_scope") && t.contains("not approved when the app was registered"),
        "{t}"
    );
}

#[test]
fn clear_errors_for_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    // Missing file.
    let out = run(&["plan", "-f", "no/such/dir", "--sandbox"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains("no/such/dir: no such file or directory"),
        "{}",
        text(&out)
    );
    // Malformed manifest.
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "apiVersion: epic-operator.dev/v1alpha1\nkind: EpicPractitioner\nmetadata: {name: x\n",
    )
    .unwrap();
    let out = run(&["plan", "-f", bad.to_str().unwrap(), "--sandbox"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains("bad.yaml: not valid YAML"),
        "{}",
        text(&out)
    );
    // Invalid NPI check digit.
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/invalid/bad-npi-check-digit.yaml");
    let out = run(&["plan", "-f", fixture.to_str().unwrap(), "--sandbox"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("Luhn"), "{}", text(&out));
    // Bad key.
    let key = dir.path().join("key.pem");
    std::fs::write(
        &key,
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    let conn = connection_manifest(dir.path(), "http://127.0.0.1:9", "c", "k", "RS384", 50);
    let out = run(&[
        "token",
        "--insecure-allow-loopback-http",
        "--connection",
        conn.to_str().unwrap(),
        "--private-key",
        key.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let t = text(&out);
    assert!(
        t.contains("could not be parsed") && !t.contains("AAAA"),
        "{t}"
    );
    // Unreachable server (nothing listens on port 9).
    let (_, pem) =
        epic_operator::auth::generate_key(epic_operator::crd::Algorithm::RS384, "k").unwrap();
    std::fs::write(&key, pem).unwrap();
    let out = run(&[
        "plan",
        "-f",
        examples().to_str().unwrap(),
        "--insecure-allow-loopback-http",
        "--connection",
        conn.to_str().unwrap(),
        "--private-key",
        key.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let t = text(&out);
    assert!(
        t.contains("connection failed") || t.contains("unreachable"),
        "{t}"
    );
    // No connection at all.
    let out = run(&["plan", "-f", examples().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("--sandbox"), "{}", text(&out));
}

#[test]
fn crd_command_prints_the_checked_in_crds() {
    let out = run(&["crd"]);
    assert!(out.status.success());
    let printed = String::from_utf8(out.stdout).unwrap();
    for f in [
        "epicconnections.epic-operator.dev.yaml",
        "epicpractitioners.epic-operator.dev.yaml",
    ] {
        let on_disk =
            std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("crds").join(f))
                .unwrap();
        assert!(
            printed.contains(&on_disk),
            "{f} differs from `epic-operator crd`"
        );
    }
}

#[test]
fn sandbox_help_documents_every_flag() {
    let out = run(&["sandbox", "--help"]);
    let t = text(&out);
    for flag in [
        "--addr",
        "--seed",
        "--empty",
        "--generate",
        "--writes",
        "--client",
        "--client-scopes",
        "--dev-key-out",
        "--token-ttl",
        "--paging-ttl",
        "--page-size",
        "--max-page-size",
        "--latency-ms",
        "--jitter-ms",
        "--throttle-rate",
        "--error-rate",
        "--token-failure-rate",
        "--rate-limit",
    ] {
        let line = t
            .lines()
            .find(|l| l.trim_start().starts_with(flag))
            .unwrap_or_else(|| panic!("{flag} missing:\n{t}"));
        let _ = line;
    }
    // Every option line is followed by a description (clap puts it on the same line or next).
    assert!(!t.contains("\n\n\n"));
}

#[test]
fn deactivation_shows_the_login_access_note_and_plan_shows_the_if_match() {
    let dir = tempfile::tempdir().unwrap();
    let alice = std::fs::read_to_string(examples().join("practitioners/alice-smith.yaml"))
        .unwrap()
        .replace("active: true", "active: false");
    let file = dir.path().join("alice.yaml");
    std::fs::write(&file, alice).unwrap();
    let f = file.to_str().unwrap();
    let out = run(&["plan", "--sandbox", "--sandbox-writes", "-f", f]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let t = text(&out);
    assert!(t.contains("if-match : W/\"1\""), "{t}");
    assert!(t.contains("does not revoke Epic login access"), "{t}");
    let out = run(&["apply", "--sandbox", "--sandbox-writes", "-f", f]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let t = text(&out);
    assert!(t.contains("result   : updated"), "{t}");
    assert!(t.contains("does not revoke Epic login access"), "{t}");
}

/// GET of a sandbox admin URL, as JSON.
fn get(url: String) -> Value {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let r = epic_operator::http::client()
            .unwrap()
            .get(&url)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "GET {url}: {}", r.status());
        r.json().await.unwrap()
    })
}

/// Identifiers of every record, by id, from the sandbox's admin API.
fn identifiers(base: &str) -> std::collections::BTreeMap<String, String> {
    let list = get(format!("{base}/_sandbox/practitioners"));
    list.as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let id = p["id"].as_str().unwrap().to_string();
            let record = get(format!("{base}/_sandbox/practitioners/{id}"));
            (id, record["identifier"].to_string())
        })
        .collect()
}

#[test]
fn a_realistic_roster_round_trips_export_apply_plan_without_creates_or_identifier_changes() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("dev-key.pem");
    let sandbox = start_sandbox(&[
        "--generate",
        "48",
        "--writes",
        "enabled",
        "--dev-key-out",
        key.to_str().unwrap(),
    ]);
    let conn = connection_manifest(
        dir.path(),
        &sandbox.base,
        "epic-operator-dev",
        "dev-key-1",
        "RS384",
        10,
    );
    let (conn, key) = (conn.to_str().unwrap(), key.to_str().unwrap());
    let out_dir = dir.path().join("exported");
    let out = run(&[
        "export",
        "--insecure-allow-loopback-http",
        "--connection",
        conn,
        "--private-key",
        key,
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    // 48 generated (every shape of the realism mix) + 4 seeded with an NPI.
    assert!(text(&out).contains("exported 52 of 53"), "{}", text(&out));
    let before = identifiers(&sandbox.base);
    // Take ownership and flip `active` on every record: every record gets a full PUT.
    let mut flipped = 0;
    for entry in std::fs::read_dir(&out_dir).unwrap() {
        let path = entry.unwrap().path();
        let yaml = std::fs::read_to_string(&path).unwrap();
        let changed = yaml
            .replace("managementPolicy: Observe", "managementPolicy: Update")
            .replace("active: true", "active: false");
        if changed.contains("active: false") {
            flipped += 1;
        }
        std::fs::write(&path, changed).unwrap();
    }
    assert!(flipped >= 48, "{flipped}");
    let dir_arg = out_dir.to_str().unwrap();
    let args = |cmd: &'static str| {
        vec![
            cmd,
            "-f",
            dir_arg,
            "--insecure-allow-loopback-http",
            "--connection",
            conn,
            "--private-key",
            key,
        ]
    };
    let out = run(&args("apply"));
    assert_eq!(
        out.status.code(),
        Some(0),
        "apply ends in sync: {}",
        text(&out)
    );
    let out = run(&args("plan"));
    assert_eq!(
        out.status.code(),
        Some(0),
        "no drift after apply: {}",
        text(&out)
    );
    assert!(text(&out).contains("52 in sync"), "{}", text(&out));
    let stats = get(format!("{}/_sandbox/stats", sandbox.base));
    assert_eq!(stats["create"], 0, "no POST: {stats}");
    assert!(stats["update"].as_u64().unwrap() >= 48, "{stats}");
    assert_eq!(
        identifiers(&sandbox.base),
        before,
        "every identifier array is byte-identical"
    );
}

#[test]
fn plan_reads_only_regular_files_inside_the_tree_and_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let case = |name: &str, setup: &dyn Fn(&Path)| -> String {
        let d = dir.path().join(name);
        std::fs::create_dir(&d).unwrap();
        setup(&d);
        let started = std::time::Instant::now();
        let out = run(&["plan", "--sandbox", "-f", d.to_str().unwrap()]);
        assert!(
            started.elapsed() < std::time::Duration::from_secs(20),
            "{name}: took {:?}",
            started.elapsed()
        );
        assert_eq!(out.status.code(), Some(1), "{name}: {}", text(&out));
        text(&out)
    };
    let t = case("link-out", &|d| {
        std::os::unix::fs::symlink("/etc/passwd", d.join("users.yaml")).unwrap()
    });
    assert!(t.contains("outside"), "{t}");
    assert!(
        !t.contains("root:"),
        "no line of the linked file is printed: {t}"
    );
    let t = case("dev-zero", &|d| {
        std::os::unix::fs::symlink("/dev/zero", d.join("zero.yaml")).unwrap()
    });
    assert!(t.contains("outside"), "{t}");
    let t = case("fifo", &|d| {
        let st = Command::new("mkfifo")
            .arg(d.join("pipe.yaml"))
            .status()
            .unwrap();
        assert!(st.success());
    });
    assert!(t.contains("not a regular file"), "{t}");
    let t = case("huge", &|d| {
        std::fs::write(d.join("big.yaml"), vec![b'#'; 5 << 20]).unwrap()
    });
    assert!(t.contains("larger than 4 MiB"), "{t}");
    // Given explicitly, a device is refused too.
    let out = run(&["plan", "--sandbox", "-f", "/dev/zero"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("not a regular file"), "{}", text(&out));
    // A link that stays inside the tree is fine.
    let d = dir.path().join("link-in");
    std::fs::create_dir_all(d.join("real")).unwrap();
    std::fs::copy(
        examples().join("practitioners/alice-smith.yaml"),
        d.join("real/alice.yaml"),
    )
    .unwrap();
    std::os::unix::fs::symlink(d.join("real/alice.yaml"), d.join("alice-link.yaml")).unwrap();
    let out = run(&[
        "plan",
        "--sandbox",
        "-f",
        d.join("alice-link.yaml").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

#[test]
fn loopback_http_needs_the_development_flag() {
    let dir = tempfile::tempdir().unwrap();
    let (_sandbox, conn, key) = sandbox_and_connection(dir.path(), "epic-operator-dev");
    let out = run(&[
        "token",
        "--connection",
        conn.to_str().unwrap(),
        "--private-key",
        key.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("--insecure-allow-loopback-http"),
        "{}",
        text(&out)
    );
}

#[test]
fn a_key_directory_grows_with_keygen_add_to_and_jwks_prints_every_key() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    let k = keys.to_str().unwrap();
    assert!(run(&["keygen", "--kid", "k1", "--out", k]).status.success());
    let out = run(&["keygen", "--alg", "RS384", "--kid", "k2", "--add-to", k]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(keys.join("k2.pem").is_file());
    let jwks: Value =
        serde_json::from_str(&std::fs::read_to_string(keys.join("jwks.json")).unwrap()).unwrap();
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert_eq!(kids.len(), 2, "{jwks}");
    assert!(kids.contains(&"k1") && kids.contains(&"k2"), "{kids:?}");
    // A kid that is there already, or that cannot name a file, is refused.
    assert_eq!(
        run(&["keygen", "--kid", "k2", "--add-to", k]).status.code(),
        Some(1)
    );
    let bad = run(&["keygen", "--kid", "a/b", "--add-to", k]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(text(&bad).contains("--kid"), "{}", text(&bad));
    // `jwks` prints the same public set, never a private member.
    let out = run(&["jwks", "--keys", k]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let printed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(printed["keys"].as_array().unwrap().len(), 2);
    for jwk in printed["keys"].as_array().unwrap() {
        for private in ["d", "p", "q", "dp", "dq", "qi"] {
            assert!(jwk.get(private).is_none(), "{jwk}");
        }
    }
    // The sandbox registers the set; the connection signs with the directory's keys (keyId
    // pins k2) and `token` prints the JWK Set URL to register.
    let client_arg = format!("dir-app={}", keys.join("jwks.json").display());
    let sandbox = start_sandbox(&["--client", &client_arg]);
    let conn = connection_manifest(dir.path(), &sandbox.base, "dir-app", "k2", "RS384", 50);
    let out = run(&[
        "token",
        "--insecure-allow-loopback-http",
        "--connection",
        conn.to_str().unwrap(),
        "--private-key",
        k,
        "--jwks-public-url",
        "https://keys.example.org/",
    ]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    assert!(t.contains("token         : obtained (not shown)"), "{t}");
    assert!(
        t.contains("JWK Set URL   : https://keys.example.org/jwks/<namespace>/epic"),
        "{t}"
    );
    // Each key keeps the algorithm it was published with when another one is added.
    let out = run(&["keygen", "--alg", "RS512", "--kid", "k3", "--add-to", k]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let jwks: Value =
        serde_json::from_str(&std::fs::read_to_string(keys.join("jwks.json")).unwrap()).unwrap();
    let algs: std::collections::BTreeMap<&str, &str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| (k["kid"].as_str().unwrap(), k["alg"].as_str().unwrap()))
        .collect();
    assert_eq!(
        algs,
        [("k1", "RS384"), ("k2", "RS384"), ("k3", "RS512")].into()
    );
}

#[test]
fn the_jwks_public_url_must_be_https() {
    for (url, needs) in [
        ("http://keys.example.org", "must be https"),
        ("not a url", "is not a URL"),
        ("http://127.0.0.1:8090", "must be https"),
    ] {
        let out = run(&["run", "--jwks-public-url", url]);
        assert_eq!(out.status.code(), Some(1), "{url}: {}", text(&out));
        assert!(text(&out).contains(needs), "{url}: {}", text(&out));
    }
    let out = run(&["run", "--jwks-addr", "nowhere"]);
    assert_eq!(out.status.code(), Some(1), "a usage error: {}", text(&out));
    assert!(text(&out).contains("nor off"), "{}", text(&out));
}
