//! Node tests' "test host": a network namespace per test, which the test thread enters so that
//! everything it starts (`rudder server` with its agent and containerd, kubectl, the registry)
//! lives there; pod IPs and hostPorts exist only inside it. The machine's own network is never
//! touched. Test images are built offline from busybox-static with umoci, once per machine.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use super::{jp, wait_for_within, Backend, Cluster};

/// The test image as the test registry serves it.
pub const IMAGE: &str = "127.0.0.1:5000/test/busybox:1";

/// YAML list items (each line starting with `indent`) for a container's `volumeMounts` that
/// let the test image run the host's python3: `/usr`, and `/lib` and `/lib64`, which live
/// under `/usr` on a merged-/usr Debian, read-only. No image here has a TLS server; with
/// these a pod serves HTTPS as a webhook would.
#[allow(dead_code)] // Not every test binary runs python in a pod.
pub fn host_python_mounts(indent: &str) -> String {
    ["usr:/usr", "lib:/lib", "lib64:/lib64"]
        .iter()
        .map(|m| {
            let (name, path) = m.split_once(':').unwrap_or_default();
            format!("{indent}- {{name: host-{name}, mountPath: {path}, readOnly: true}}\n")
        })
        .collect()
}

/// The pod `volumes` items [`host_python_mounts`] mounts.
#[allow(dead_code)]
pub fn host_python_volumes(indent: &str) -> String {
    ["usr:/usr", "lib:/usr/lib", "lib64:/usr/lib64"]
        .iter()
        .map(|m| {
            let (name, path) = m.split_once(':').unwrap_or_default();
            format!("{indent}- {{name: host-{name}, hostPath: {{path: {path}}}}}\n")
        })
        .collect()
}

/// A python3 HTTPS server for a pod (see [`host_python_mounts`]): `handle` is Python source
/// defining `handle(path, body)`, whose result is the JSON answer to each POST. It listens on
/// 8443 with the certificate and key mounted at `/tls` (a `kubernetes.io/tls` Secret) and
/// prints `serving` once it listens.
#[allow(dead_code)]
pub fn python_json_server(handle: &str) -> String {
    const SERVE: &str = r#"
import http.server, json, ssl

class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        out = json.dumps(handle(self.path, body)).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def log_message(self, *args):
        pass

ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain("/tls/tls.crt", "/tls/tls.key")
srv = http.server.ThreadingHTTPServer(("0.0.0.0", 8443), Handler)
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
print("serving", flush=True)
srv.serve_forever()
"#;
    format!("{handle}\n{SERVE}")
}

/// A test host, entered, with the test registry started.
pub fn host_with_registry() -> TestHost {
    let mut h = TestHost::new();
    h.enter();
    h.start_registry();
    h
}

pub fn apply(c: &Cluster, yaml: &str) {
    c.ok_stdin(&["apply", "-f", "-"], yaml);
}

pub fn phase(c: &Cluster, pod: &str) -> String {
    super::jp(c, &format!("pod/{pod}"), "{.status.phase}")
}

pub fn wait_phase(c: &Cluster, pod: &str, want: &str) {
    wait_for_within(
        &format!("pod {pod} {want}"),
        Duration::from_secs(90),
        || (phase(c, pod) == want).then_some(()),
    );
}

/// Starts a node whose hard eviction threshold `<signal><100%` it always crosses, runs a pod
/// that tolerates the resulting `node.kubernetes.io/<taint>` taint, and waits until the node
/// has evicted it; returns the cluster and the pod's status message.
pub fn evicted_victim(host: &mut TestHost, signal: &str, taint: &str) -> (Cluster, String) {
    let c = host.cluster(&["--eviction-hard", &format!("{signal}<100%")]);
    apply(
        &c,
        &format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: victim}}\nspec:\n  tolerations: [{{key: node.kubernetes.io/{taint}, operator: Exists}}]\n  containers:\n  - name: c\n    image: {IMAGE}\n    command: [sleep, '3600']\n"),
    );
    wait_phase(&c, "victim", "Failed");
    assert_eq!(jp(&c, "pod/victim", "{.status.reason}"), "Evicted");
    let msg = jp(&c, "pod/victim", "{.status.message}");
    (c, msg)
}

/// `rudder ARGS --data-dir DATA` (the binary under test, e.g. `image ls`), which must succeed;
/// its standard output.
pub fn rudder_cli(data: &Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_rudder"))
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "rudder {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A docker-registry process, killed when dropped.
pub struct Registry(Child);

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts Debian's docker-registry on `addr` with its storage under `root` (and `extra`
/// config, such as an `auth:` section), then pushes the test image to it as `repo` with
/// skopeo (`creds` as `user:password` when the registry wants them).
pub fn spawn_registry(
    root: &Path,
    addr: &str,
    extra: &str,
    repo: &str,
    creds: Option<&str>,
) -> Registry {
    let images = test_images();
    std::fs::create_dir_all(root).unwrap();
    let cfg = root.join("config.yml");
    std::fs::write(
        &cfg,
        format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\n{extra}http:\n  addr: {addr}\n",
            root.join("data").display()
        ),
    )
    .unwrap();
    let child = Command::new("docker-registry")
        .arg("serve")
        .arg(&cfg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("docker-registry (Debian's docker-registry package)");
    let registry = Registry(child);
    wait_for_within("the registry to start", Duration::from_secs(20), || {
        std::net::TcpStream::connect(addr).ok()
    });
    let mut copy = Command::new("skopeo");
    copy.args(["copy", "-q", "--dest-tls-verify=false"]);
    if let Some(c) = creds {
        copy.args(["--dest-creds", c]);
    }
    run(copy
        .arg(format!(
            "docker-archive:{}",
            images.join("busybox.tar").display()
        ))
        .arg(format!("docker://{addr}/{repo}")));
    registry
}

static NEXT: AtomicU32 = AtomicU32::new(0);

pub fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn ip(args: &[&str]) {
    run(Command::new("ip").args(args));
}

/// A network namespace with a veth to a peer namespace (so the node has a non-loopback
/// address and a default route that leads nowhere else).
pub struct TestHost {
    pub ns: String,
    peer: String,
    /// The node's address on the veth.
    pub addr: String,
    /// The peer namespace's address (another "machine" on the link).
    pub peer_addr: String,
    /// The data directory of the cluster started on this host.
    pub dir: tempfile::TempDir,
    /// The cgroup under which this host's pods live (one per test, so teardown touches only
    /// its own).
    pub cgroup_root: String,
    registry: Option<Registry>,
    /// Data directories of clusters started here (their mounts go at teardown).
    cluster_dirs: Vec<PathBuf>,
}

impl TestHost {
    pub fn new() -> TestHost {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let id = format!("{}x{n}", std::process::id());
        let ns = format!("rt{id}");
        let peer = format!("rp{id}");
        // A /24 per host from the process id and counter (tests run in parallel processes).
        let subnet = (std::process::id() as u32 * 7 + n) % 250 + 1;
        let addr = format!("10.252.{subnet}.1");
        let peer_addr = format!("10.252.{subnet}.2");
        ip(&["netns", "add", &ns]);
        ip(&["netns", "add", &peer]);
        let host = TestHost {
            ns: ns.clone(),
            peer: peer.clone(),
            addr: addr.clone(),
            peer_addr: peer_addr.clone(),
            dir: tempfile::Builder::new()
                .prefix("rn")
                .tempdir_in("/tmp")
                .unwrap(),
            cgroup_root: format!("/rudder-test-{id}"),
            registry: None,
            cluster_dirs: Vec::new(),
        };
        let (a, b) = (format!("ve{id}"), format!("vp{id}"));
        ip(&["-n", &ns, "link", "set", "lo", "up"]);
        ip(&["-n", &peer, "link", "set", "lo", "up"]);
        ip(&[
            "link", "add", &a, "netns", &ns, "type", "veth", "peer", "name", &b, "netns", &peer,
        ]);
        ip(&["-n", &ns, "addr", "add", &format!("{addr}/24"), "dev", &a]);
        ip(&[
            "-n",
            &peer,
            "addr",
            "add",
            &format!("{peer_addr}/24"),
            "dev",
            &b,
        ]);
        ip(&["-n", &ns, "link", "set", &a, "up"]);
        ip(&["-n", &peer, "link", "set", &b, "up"]);
        ip(&["-n", &ns, "route", "add", "default", "via", &peer_addr]);
        host
    }

    /// Moves the calling thread into the host's network namespace: processes it starts from
    /// now on are inside (mounts stay shared, which containerd needs).
    pub fn enter(&self) {
        enter_netns(&self.ns);
    }

    /// The peer namespace's name (`/run/netns/<name>`).
    pub fn peer_ns(&self) -> &str {
        &self.peer
    }

    /// Runs a command in the peer namespace ("another machine").
    pub fn in_peer(&self, program: &str) -> Command {
        let mut c = Command::new("nsenter");
        c.arg(format!("--net=/run/netns/{}", self.peer))
            .arg(program);
        c
    }

    /// Starts a registry on 127.0.0.1:5000 inside the host holding the test images as
    /// `127.0.0.1:5000/test/busybox:1`.
    pub fn start_registry(&mut self) {
        let root = self.dir.path().join("registry");
        self.registry = Some(spawn_registry(
            &root,
            "127.0.0.1:5000",
            "",
            "test/busybox:1",
            None,
        ));
    }

    /// `rudder server` with its node agent on this host (entered first): node `test-node`,
    /// the registry as an HTTP mirror, lenient eviction thresholds (CI disks run full).
    pub fn cluster(&mut self, extra: &[&str]) -> Cluster {
        self.cluster_with(extra, |_| {})
    }

    /// [`TestHost::cluster`], with `prepare` run on the data directory before the start.
    pub fn cluster_with(&mut self, extra: &[&str], prepare: impl FnOnce(&Path)) -> Cluster {
        self.enter();
        let mut args = vec![
            "--node-name",
            "test-node",
            "--node-ip",
            &self.addr,
            "--cgroup-root",
            &self.cgroup_root,
        ];
        if !extra.contains(&"--eviction-hard") {
            args.extend([
                "--eviction-hard",
                "memory.available<1Mi,nodefs.available<1%,imagefs.available<1%",
            ]);
        }
        args.extend_from_slice(extra);
        let c = Cluster::start_node(Backend::Redb, &args, |data| {
            std::fs::create_dir_all(data.join("agent")).unwrap();
            std::fs::write(
                data.join("agent").join("registries.yaml"),
                "mirrors:\n  \"127.0.0.1:5000\":\n    endpoint:\n      - \"http://127.0.0.1:5000\"\n",
            )
            .unwrap();
            prepare(data);
        });
        self.cluster_dirs.push(c.dir.path().to_path_buf());
        c.wait_until("the node is Ready", "get nodes -o wide", || {
            c.kubectl(&[
                "get",
                "node",
                "test-node",
                "-o",
                "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}",
            ])
            .stdout
                == "True"
        });
        c
    }

    /// The agent's data directory of the cluster started here (CRI logs under
    /// `agent/logs/pods`).
    pub fn agent_dir(&self) -> PathBuf {
        self.cluster_dirs
            .last()
            .map(|d| d.join("data").join("agent"))
            .unwrap_or_default()
    }
}

/// Moves the calling thread into a named network namespace (`/run/netns/<ns>`).
pub fn enter_netns(ns: &str) {
    let f = std::fs::File::open(format!("/run/netns/{ns}")).unwrap();
    use std::os::fd::AsRawFd;
    // SAFETY: a valid namespace fd; only this thread's network namespace changes.
    let rc = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
}

/// What containerd 1.6 keeps outside its root and state for pods it never stopped (their
/// processes were killed): the shims' sockets in `/run/containerd/s` (named in each task
/// bundle's `address` file) and libcni's cached results in `/var/lib/cni/results` (which name
/// the pod's netns file under the data dir).
pub fn runtime_leftovers(prefixes: &[String]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for p in prefixes {
        for agent in [Path::new(p).join("data/agent"), Path::new(p).join("agent")] {
            let tasks = agent.join("containerd/state/io.containerd.runtime.v2.task/k8s.io");
            for bundle in std::fs::read_dir(tasks).into_iter().flatten().flatten() {
                if let Ok(addr) = std::fs::read_to_string(bundle.path().join("address")) {
                    let sock = addr.trim().trim_start_matches("unix://");
                    if sock.starts_with("/run/containerd/s/") && Path::new(sock).exists() {
                        out.push(PathBuf::from(sock));
                    }
                }
            }
        }
    }
    for e in std::fs::read_dir("/var/lib/cni/results")
        .into_iter()
        .flatten()
        .flatten()
    {
        if std::fs::read_to_string(e.path())
            .is_ok_and(|t| prefixes.iter().any(|p| t.contains(&format!("\"{p}/"))))
        {
            out.push(e.path());
        }
    }
    out
}

fn remove_runtime_leftovers(prefixes: &[String]) {
    for f in runtime_leftovers(prefixes) {
        let _ = std::fs::remove_file(f);
    }
}

fn kill_cgroup_tree(dir: &Path) {
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                kill_cgroup_tree(&e.path());
            }
        }
    }
    if let Ok(procs) = std::fs::read_to_string(dir.join("cgroup.procs")) {
        for p in procs
            .split_whitespace()
            .filter_map(|p| p.parse::<i32>().ok())
        {
            // SAFETY: signalling processes of this test's own pod cgroups.
            unsafe { libc::kill(p, libc::SIGKILL) };
        }
    }
}

fn rmdir_tree(dir: &Path) {
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                rmdir_tree(&e.path());
            }
        }
    }
    let _ = std::fs::remove_dir(dir);
}

impl Drop for TestHost {
    fn drop(&mut self) {
        drop(self.registry.take());
        let prefixes: Vec<PathBuf> = std::iter::once(self.dir.path().to_path_buf())
            .chain(self.cluster_dirs.iter().cloned())
            .collect();
        teardown(
            &[self.ns.clone(), self.peer.clone()],
            std::slice::from_ref(&self.cgroup_root),
            &prefixes,
            &self.cluster_dirs,
        );
    }
}

/// Removes what node tests leave: every process in `namespaces` (servers, agents, containerd,
/// shims), the pods' processes (in their own namespaces, found through `cgroup_roots`), mounts
/// and runtime files under `data_prefixes` (overlay rootfs, netns files, tmpfs emptyDirs), the
/// cgroups, the `remove` directories and the namespaces themselves.
pub fn teardown(
    namespaces: &[String],
    cgroup_roots: &[String],
    data_prefixes: &[PathBuf],
    remove: &[PathBuf],
) {
    for ns in namespaces {
        if let Ok(out) = Command::new("ip").args(["netns", "pids", ns]).output() {
            for p in String::from_utf8_lossy(&out.stdout)
                .split_whitespace()
                .filter_map(|p| p.parse::<i32>().ok())
            {
                // SAFETY: processes inside this test's own network namespace.
                unsafe { libc::kill(p, libc::SIGKILL) };
            }
        }
    }
    let controllers: Vec<PathBuf> = std::fs::read_dir("/sys/fs/cgroup")
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    for c in &controllers {
        for root in cgroup_roots {
            kill_cgroup_tree(&c.join(root.trim_start_matches('/')));
        }
    }
    std::thread::sleep(Duration::from_millis(300));
    let prefixes: Vec<String> = data_prefixes
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    remove_runtime_leftovers(&prefixes);
    if let Ok(mi) = std::fs::read_to_string("/proc/self/mountinfo") {
        let mut targets: Vec<&str> = mi
            .lines()
            .filter_map(|l| l.split_whitespace().nth(4))
            .filter(|t| prefixes.iter().any(|p| t.starts_with(p.as_str())))
            .collect();
        targets.sort_by_key(|t| std::cmp::Reverse(t.len()));
        for t in targets {
            let _ = Command::new("umount").args(["-l", t]).status();
        }
    }
    for c in &controllers {
        for root in cgroup_roots {
            rmdir_tree(&c.join(root.trim_start_matches('/')));
        }
    }
    for d in remove {
        let _ = std::fs::remove_dir_all(d);
    }
    for ns in namespaces {
        let _ = Command::new("ip").args(["netns", "del", ns]).status();
    }
}

/// Builds the test images (a static busybox with its applets, `/www/index.html` and an
/// `/etc/passwd`) once per machine as docker-archive tarballs, under a file lock shared by
/// the test processes.
pub fn test_images() -> PathBuf {
    let dir = std::env::temp_dir().join("rudder-test-images-v1");
    std::fs::create_dir_all(&dir).unwrap();
    let lock = std::fs::File::create(dir.join(".lock")).unwrap();
    use std::os::fd::AsRawFd;
    // SAFETY: a valid fd; the lock is released when the file closes.
    unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) };
    let out = dir.join("busybox.tar");
    if !out.exists() {
        let work = tempfile::tempdir().unwrap();
        let oci = work.path().join("oci");
        let bundle = work.path().join("bundle");
        run(Command::new("umoci").args(["init", "--layout"]).arg(&oci));
        run(Command::new("umoci")
            .args(["new", "--image"])
            .arg(format!("{}:1", oci.display())));
        run(Command::new("umoci")
            .args(["unpack", "--rootless", "--image"])
            .arg(format!("{}:1", oci.display()))
            .arg(&bundle));
        let rootfs = bundle.join("rootfs");
        for d in ["bin", "www", "etc", "tmp", "data"] {
            std::fs::create_dir_all(rootfs.join(d)).unwrap();
        }
        std::fs::copy("/bin/busybox", rootfs.join("bin/busybox")).unwrap();
        run(Command::new("chroot")
            .arg(&rootfs)
            .args(["/bin/busybox", "--install", "-s", "/bin"]));
        std::fs::write(rootfs.join("www/index.html"), "hello-from-busybox\n").unwrap();
        std::fs::write(
            rootfs.join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
        )
        .unwrap();
        std::fs::write(rootfs.join("etc/group"), "root:x:0:\nnobody:x:65534:\n").unwrap();
        run(Command::new("umoci")
            .args(["repack", "--image"])
            .arg(format!("{}:1", oci.display()))
            .arg(&bundle));
        run(Command::new("umoci")
            .args(["config", "--image"])
            .arg(format!("{}:1", oci.display()))
            .args(["--config.cmd", "sh"]));
        let tmp = dir.join("busybox.tar.tmp");
        let _ = std::fs::remove_file(&tmp);
        run(Command::new("skopeo")
            .args(["copy", "-q"])
            .arg(format!("oci:{}:1", oci.display()))
            .arg(format!(
                "docker-archive:{}:rudder.test/busybox:1",
                tmp.display()
            )));
        std::fs::rename(&tmp, &out).unwrap();
    }
    dir
}
