//! A real control plane for the end-to-end tests: etcd + kube-apiserver started on loopback,
//! or an existing cluster named by EPIC_OPERATOR_E2E_KUBECONFIG.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{ObjectMeta, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client};

/// The identity the operator runs as: a ServiceAccount user bound by the shipped RBAC.
pub const OPERATOR_USER: &str = "system:serviceaccount:epic-system:epic-operator";
/// A second operator identity, bound only by the namespaced RBAC (the chart's watchNamespace
/// mode) of one scenario.
pub const TENANT_OPERATOR_USER: &str = "system:serviceaccount:epic-tenant:epic-operator";

pub struct ControlPlane {
    /// Scratch directory (logs, kubeconfigs).
    pub dir: PathBuf,
    /// Owns `dir` when this value started the control plane.
    _tmp: Option<tempfile::TempDir>,
    children: Vec<Child>,
    /// How each child was started (etcd, then kube-apiserver), to restart it after a fault.
    commands: Vec<(std::ffi::OsString, Vec<std::ffi::OsString>, String)>,
    pub admin: Client,
    pub operator_kubeconfig: PathBuf,
    pub admin_kubeconfig: PathBuf,
    /// Kubeconfig of [`TENANT_OPERATOR_USER`] (the admin's on an existing cluster). The scale
    /// benchmark shares this file and does not use it.
    #[allow(dead_code)]
    pub tenant_kubeconfig: PathBuf,
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        for c in self.children.iter_mut().rev() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A port free on 127.0.0.1 a moment ago (the end-to-end tests and the scale benchmark).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The cached kube-apiserver binary, built on first use by scripts/ensure-kube-apiserver.sh.
fn kube_apiserver_binary() -> PathBuf {
    if let Ok(p) = std::env::var("EPIC_OPERATOR_KUBE_APISERVER")
        && Path::new(&p).is_file()
    {
        return PathBuf::from(p);
    }
    let out = Command::new("bash")
        .arg(repo().join("scripts/ensure-kube-apiserver.sh"))
        .stderr(Stdio::inherit())
        .output()
        .expect("run scripts/ensure-kube-apiserver.sh");
    assert!(
        out.status.success(),
        "the end-to-end tests need a kube-apiserver and etcd; scripts/ensure-kube-apiserver.sh failed (see above). \
         Fix that, or point EPIC_OPERATOR_E2E_KUBECONFIG at an existing test cluster."
    );
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

fn kubeconfig(server: &str, token: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: e2e\n  cluster:\n    server: {server}\n    insecure-skip-tls-verify: true\nusers:\n- name: u\n  user:\n    token: {token}\ncontexts:\n- name: e2e\n  context:\n    cluster: e2e\n    user: u\n    namespace: default\ncurrent-context: e2e\n"
    )
}

pub async fn client_from(path: &Path) -> Client {
    let kc = Kubeconfig::read_from(path).expect("kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .expect("config");
    Client::try_from(config).expect("client")
}

/// Kills `pid` once this process has exited: the shared control plane outlives every test
/// but not the test binary.
fn reap_on_exit(pid: u32) {
    let me = std::process::id();
    let _ = Command::new("sh")
        .args([
            "-c",
            &format!(
                "while kill -0 {me} 2>/dev/null; do sleep 0.5; done; kill {pid} 2>/dev/null; sleep 2; kill -9 {pid} 2>/dev/null"
            ),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
}

/// A child's program, arguments and log name, read off its Command before it is spawned.
fn started_as(c: &Command, log: &str) -> (std::ffi::OsString, Vec<std::ffi::OsString>, String) {
    (
        c.get_program().to_os_string(),
        c.get_args().map(|a| a.to_os_string()).collect(),
        log.to_string(),
    )
}

/// The processes of a control plane this test started, by role.
#[allow(dead_code)]
#[derive(Clone, Copy, Debug)]
pub enum Component {
    Etcd = 0,
    ApiServer = 1,
}

impl ControlPlane {
    /// Kills one component (a fault); [`ControlPlane::restart`] brings it back.
    #[allow(dead_code)]
    pub fn kill(&mut self, c: Component) {
        let child = &mut self.children[c as usize];
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Starts a killed component again with its original arguments (same ports, same data).
    #[allow(dead_code)]
    pub fn restart(&mut self, c: Component) {
        let (program, args, log) = self.commands[c as usize].clone();
        let file = |suffix: &str| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(self.dir.join(format!("{log}.{suffix}")))
                .expect("log file")
        };
        self.children[c as usize] = Command::new(program)
            .args(args)
            .stdout(file("log"))
            .stderr(file("err"))
            .spawn()
            .expect("restart");
    }

    /// The control plane shared by every test of this binary: started by the first test that
    /// asks (in its own thread and runtime), kept until the binary exits. Each caller gets its
    /// own API client, bound to its own runtime.
    #[allow(dead_code)]
    pub async fn shared() -> Self {
        static SHARED: std::sync::OnceLock<[PathBuf; 4]> = std::sync::OnceLock::new();
        let paths = tokio::task::spawn_blocking(|| {
            SHARED
                .get_or_init(|| {
                    std::thread::spawn(|| {
                        let rt = tokio::runtime::Builder::new_current_thread()
                            .enable_all()
                            .build()
                            .expect("runtime");
                        let mut cp = rt.block_on(ControlPlane::start());
                        for c in &cp.children {
                            reap_on_exit(c.id());
                        }
                        // The processes and the directory outlive this value.
                        cp.children.clear();
                        if let Some(tmp) = cp._tmp.take() {
                            let _ = tmp.keep();
                        }
                        [
                            cp.dir.clone(),
                            cp.admin_kubeconfig.clone(),
                            cp.operator_kubeconfig.clone(),
                            cp.tenant_kubeconfig.clone(),
                        ]
                    })
                    .join()
                    .expect("the shared control plane could not start (see the panic above)")
                })
                .clone()
        })
        .await
        .expect("control plane thread");
        let _ = rustls::crypto::ring::default_provider().install_default();
        let [
            dir,
            admin_kubeconfig,
            operator_kubeconfig,
            tenant_kubeconfig,
        ] = paths;
        Self {
            dir,
            _tmp: None,
            children: Vec::new(),
            commands: Vec::new(),
            admin: client_from(&admin_kubeconfig).await,
            admin_kubeconfig,
            operator_kubeconfig,
            tenant_kubeconfig,
        }
    }

    /// A control plane of its own, with the CRDs and the shipped RBAC installed.
    pub async fn start() -> Self {
        let cp = Self::start_bare().await;
        cp.install().await;
        cp
    }

    /// A control plane of its own with nothing installed: a newcomer's empty cluster.
    pub async fn start_bare() -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let dir = tempfile::tempdir().expect("tempdir");
        if let Ok(existing) = std::env::var("EPIC_OPERATOR_E2E_KUBECONFIG") {
            let path = PathBuf::from(existing);
            let admin = client_from(&path).await;
            let cp = Self {
                dir: dir.path().to_path_buf(),
                _tmp: Some(dir),
                children: Vec::new(),
                commands: Vec::new(),
                admin,
                operator_kubeconfig: path.clone(),
                tenant_kubeconfig: path.clone(),
                admin_kubeconfig: path,
            };
            return cp;
        }
        let apiserver = kube_apiserver_binary();
        let etcd_bin = which("etcd").expect(
            "etcd is not installed: run scripts/ensure-kube-apiserver.sh (it installs etcd-server)",
        );
        let d = dir.path();
        let (client_port, peer_port, secure_port) = (free_port(), free_port(), free_port());
        let log = |name: &str| std::fs::File::create(d.join(name)).expect("log file");
        let mut etcd = Command::new(etcd_bin);
        etcd.args(["--data-dir", d.join("etcd").to_str().unwrap()])
            .args([
                "--listen-client-urls",
                &format!("http://127.0.0.1:{client_port}"),
            ])
            .args([
                "--advertise-client-urls",
                &format!("http://127.0.0.1:{client_port}"),
            ])
            .args([
                "--listen-peer-urls",
                &format!("http://127.0.0.1:{peer_port}"),
            ])
            .args([
                "--initial-advertise-peer-urls",
                &format!("http://127.0.0.1:{peer_port}"),
            ])
            .args([
                "--initial-cluster",
                &format!("default=http://127.0.0.1:{peer_port}"),
            ]);
        let mut commands = vec![started_as(&etcd, "etcd")];
        let etcd = etcd
            .stdout(log("etcd.log"))
            .stderr(log("etcd.err"))
            .spawn()
            .expect("start etcd");
        let (_, sa_pem) =
            epic_operator::auth::generate_key(epic_operator::crd::Algorithm::RS256, "sa")
                .expect("key");
        std::fs::write(d.join("sa.key"), sa_pem).unwrap();
        std::fs::create_dir_all(d.join("certs")).unwrap();
        let admin_token = "admin-token-e2e";
        let operator_token = "operator-token-e2e";
        let tenant_token = "tenant-operator-token-e2e";
        std::fs::write(
            d.join("tokens.csv"),
            format!(
                "{admin_token},admin,admin-uid,\"system:masters\"\n{operator_token},{OPERATOR_USER},op-uid,\"system:serviceaccounts,system:serviceaccounts:epic-system,system:authenticated\"\n{tenant_token},{TENANT_OPERATOR_USER},tenant-uid,\"system:serviceaccounts,system:serviceaccounts:epic-tenant,system:authenticated\"\n"
            ),
        )
        .unwrap();
        let mut apiserver = Command::new(apiserver);
        apiserver
            .args(["--etcd-servers", &format!("http://127.0.0.1:{client_port}")])
            .args([
                "--secure-port",
                &secure_port.to_string(),
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
            ])
            .args(["--cert-dir", d.join("certs").to_str().unwrap()])
            .args(["--token-auth-file", d.join("tokens.csv").to_str().unwrap()])
            .args(["--authorization-mode=RBAC"])
            .args([
                "--service-account-key-file",
                d.join("sa.key").to_str().unwrap(),
            ])
            .args([
                "--service-account-signing-key-file",
                d.join("sa.key").to_str().unwrap(),
            ])
            .args([
                "--service-account-issuer=https://kubernetes.default.svc",
                "--service-cluster-ip-range=10.96.0.0/16",
            ])
            .args(["--disable-admission-plugins=ServiceAccount"]);
        commands.push(started_as(&apiserver, "apiserver"));
        let apiserver = apiserver
            .stdout(log("apiserver.log"))
            .stderr(log("apiserver.err"))
            .spawn()
            .expect("start kube-apiserver");
        let server = format!("https://127.0.0.1:{secure_port}");
        let admin_kubeconfig = d.join("admin.kubeconfig");
        let operator_kubeconfig = d.join("operator.kubeconfig");
        let tenant_kubeconfig = d.join("tenant.kubeconfig");
        std::fs::write(&admin_kubeconfig, kubeconfig(&server, admin_token)).unwrap();
        std::fs::write(&operator_kubeconfig, kubeconfig(&server, operator_token)).unwrap();
        std::fs::write(&tenant_kubeconfig, kubeconfig(&server, tenant_token)).unwrap();
        let mut cp = Self {
            dir: dir.path().to_path_buf(),
            _tmp: Some(dir),
            children: vec![etcd, apiserver],
            commands,
            admin: Client::try_from(kube::Config::new("http://127.0.0.1:1".parse().unwrap()))
                .unwrap(),
            operator_kubeconfig,
            admin_kubeconfig,
            tenant_kubeconfig,
        };
        cp.wait_ready(&server, admin_token).await;
        cp.admin = client_from(&cp.admin_kubeconfig).await;
        cp
    }

    async fn wait_ready(&mut self, server: &str, token: &str) {
        let http = reqwest::Client::builder()
            .danger_accept_invalid_certs(true)
            .build()
            .unwrap();
        let started = Instant::now();
        loop {
            if let Ok(r) = http
                .get(format!("{server}/readyz"))
                .bearer_auth(token)
                .send()
                .await
                && r.status().is_success()
            {
                return;
            }
            for c in &mut self.children {
                if let Ok(Some(status)) = c.try_wait() {
                    let err =
                        std::fs::read_to_string(self.dir.join("apiserver.err")).unwrap_or_default();
                    let tail: String = err
                        .lines()
                        .rev()
                        .take(30)
                        .collect::<Vec<_>>()
                        .into_iter()
                        .rev()
                        .collect::<Vec<_>>()
                        .join("\n");
                    panic!(
                        "a control-plane process exited ({status}); apiserver log tail:\n{tail}"
                    );
                }
            }
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "kube-apiserver not ready after 120 s"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// CRDs from crds/ and the shipped RBAC bound to the operator's identity.
    async fn install(&self) {
        let crds: Api<CustomResourceDefinition> = Api::all(self.admin.clone());
        for entry in std::fs::read_dir(repo().join("crds")).unwrap() {
            let path = entry.unwrap().path();
            if !path.to_string_lossy().ends_with(".epic-operator.dev.yaml") {
                continue;
            }
            let text = std::fs::read_to_string(path).unwrap();
            let crd: CustomResourceDefinition = serde_saphyr::from_str(&text).expect("CRD YAML");
            let name = crd.metadata.name.clone().unwrap();
            if crds.get_opt(&name).await.unwrap().is_none() {
                crds.create(&PostParams::default(), &crd)
                    .await
                    .expect("create CRD");
            }
            let started = Instant::now();
            loop {
                let c = crds.get(&name).await.unwrap();
                let established = c
                    .status
                    .and_then(|s| s.conditions)
                    .unwrap_or_default()
                    .iter()
                    .any(|c| c.type_ == "Established" && c.status == "True");
                if established {
                    break;
                }
                assert!(
                    started.elapsed() < Duration::from_secs(30),
                    "CRD {name} not established"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        self.namespace("epic-system").await;
        for file in [
            "role.yaml",
            "role_binding.yaml",
            "leader_election_role.yaml",
        ] {
            let text = std::fs::read_to_string(repo().join("config/rbac").join(file)).unwrap();
            apply_yaml(&self.admin, &text).await;
        }
        // Discovery of new CRDs takes a moment to reach the RBAC authorizer and handlers.
        tokio::time::sleep(Duration::from_millis(1500)).await;
    }

    pub async fn namespace(&self, name: &str) -> String {
        let api: Api<Namespace> = Api::all(self.admin.clone());
        let ns = Namespace {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..ObjectMeta::default()
            },
            ..Namespace::default()
        };
        match api.create(&PostParams::default(), &ns).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 409 => {}
            Err(e) => panic!("create namespace {name}: {e}"),
        }
        name.to_string()
    }
}

/// Server-side applies every document of a YAML stream (cluster-scoped or namespaced).
pub async fn apply_yaml(client: &Client, text: &str) {
    use kube::api::{DynamicObject, Patch, PatchParams};
    use kube::discovery::{ApiResource, Scope};
    let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(text).expect("YAML");
    let discovery = kube::Discovery::new(client.clone())
        .run()
        .await
        .expect("discovery");
    for doc in docs.into_iter().filter(|d| !d.is_null()) {
        let obj: DynamicObject = serde_json::from_value(doc.clone()).expect("object");
        let tm = obj.types.clone().expect("apiVersion/kind");
        let (group, version) = tm
            .api_version
            .split_once('/')
            .unwrap_or(("", tm.api_version.as_str()));
        let (ar, caps) = discovery
            .groups()
            .flat_map(|g| g.recommended_resources())
            .find(|(ar, _)| ar.group == group && ar.version == version && ar.kind == tm.kind)
            .unwrap_or_else(|| panic!("unknown kind {}/{}", tm.api_version, tm.kind));
        let ar: ApiResource = ar;
        let api: Api<DynamicObject> = match (caps.scope, obj.metadata.namespace.as_deref()) {
            (Scope::Namespaced, Some(ns)) => Api::namespaced_with(client.clone(), ns, &ar),
            (Scope::Namespaced, None) => Api::default_namespaced_with(client.clone(), &ar),
            (Scope::Cluster, _) => Api::all_with(client.clone(), &ar),
        };
        let name = obj.metadata.name.clone().expect("name");
        api.patch(
            &name,
            &PatchParams::apply("e2e").force(),
            &Patch::Apply(&doc),
        )
        .await
        .unwrap_or_else(|e| panic!("apply {}: {e}", tm.kind));
    }
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
            .find(|p| p.is_file())
    })
}
