//! A multi-node cluster inside namespaces the test creates: a "switch" namespace holding a
//! bridge, and N node namespaces, each with a veth into the switch and the address
//! `10.253.<k>.<i>/24`. Node 1 runs `rudder server` with its agent (the test thread enters it,
//! so kubectl runs there too); nodes 2..N run `rudder agent --server https://<node 1>:<port>
//! --token <token>`, each with its own data directory, containerd and cgroup root. No registry:
//! the test image archive is put in each agent's `<data-dir>/agent/images/` and imported at
//! start (pods use [`IMAGE`] with `imagePullPolicy: IfNotPresent`).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use super::node::{enter_netns, ip, teardown, test_images};
use super::{wait_for_within, Backend, Cluster};

/// The test image as its archive names it (see `node::test_images`).
pub const IMAGE: &str = "rudder.test/busybox:1";

static NEXT: AtomicU32 = AtomicU32::new(0);

pub struct NodeNs {
    /// Node name (`node-<i>`).
    pub name: String,
    /// Its network namespace.
    pub ns: String,
    /// Its address on the switch.
    pub addr: String,
    /// Its data directory (the server's `data` for node 1).
    pub data: PathBuf,
    pub cgroup_root: String,
    agent: Option<Child>,
}

pub struct MultiNode {
    /// The server, running in node 1 (entered by the test thread).
    pub cluster: Cluster,
    pub nodes: Vec<NodeNs>,
    switch: String,
    dir: tempfile::TempDir,
}

impl MultiNode {
    /// `n` nodes with `extra` flags for every node's agent (and the server), e.g.
    /// `["--flannel-backend", "host-gw"]`; returns once every node is Ready.
    pub fn start(n: usize, extra: &[&str]) -> MultiNode {
        let c = NEXT.fetch_add(1, Ordering::Relaxed);
        let id = format!("{}x{c}", std::process::id());
        let k = (std::process::id() * 7 + c) % 250 + 1;
        let switch = format!("rs{id}");
        let dir = tempfile::Builder::new()
            .prefix("rm")
            .tempdir_in("/tmp")
            .unwrap();
        ip(&["netns", "add", &switch]);
        ip(&["-n", &switch, "link", "set", "lo", "up"]);
        ip(&["-n", &switch, "link", "add", "br0", "type", "bridge"]);
        ip(&["-n", &switch, "link", "set", "br0", "up"]);
        let mut nodes = Vec::new();
        for i in 1..=n {
            let ns = format!("rn{id}n{i}");
            let (a, b) = (format!("mn{id}n{i}"), format!("ms{id}n{i}"));
            let addr = format!("10.253.{k}.{i}");
            ip(&["netns", "add", &ns]);
            ip(&["-n", &ns, "link", "set", "lo", "up"]);
            ip(&[
                "link", "add", &a, "netns", &ns, "type", "veth", "peer", "name", &b, "netns",
                &switch,
            ]);
            ip(&["-n", &switch, "link", "set", &b, "master", "br0", "up"]);
            ip(&["-n", &ns, "addr", "add", &format!("{addr}/24"), "dev", &a]);
            ip(&["-n", &ns, "link", "set", &a, "up"]);
            nodes.push(NodeNs {
                name: format!("node-{i}"),
                ns,
                addr,
                data: dir.path().join(format!("node-{i}")),
                cgroup_root: format!("/rudder-test-{id}-{i}"),
                agent: None,
            });
        }
        let images = test_images().join("busybox.tar");
        let seed_images = |data: &std::path::Path| {
            let d = data.join("agent").join("images");
            std::fs::create_dir_all(&d).unwrap();
            std::fs::copy(&images, d.join("busybox.tar")).unwrap();
        };

        // Node 1: the server and its agent, listening on the switch too.
        let first = &nodes[0];
        enter_netns(&first.ns);
        let mut args = vec![
            "--bind-address",
            "0.0.0.0",
            "--tls-san",
            &first.addr,
            "--token",
            TOKEN,
        ];
        args.extend(node_flags(first));
        args.extend_from_slice(extra);
        let cluster = Cluster::start_node(Backend::Redb, &args, seed_images);
        nodes[0].data = cluster.dir.path().join("data");
        let server = format!("https://{}:{}", nodes[0].addr, cluster.port);

        // Nodes 2..N join with the token, all at once.
        let rudder = env!("CARGO_BIN_EXE_rudder");
        for node in nodes.iter_mut().skip(1) {
            seed_images(&node.data);
            let log = std::fs::File::create(dir.path().join(format!("{}.log", node.name))).unwrap();
            let mut cmd = Command::new("nsenter");
            cmd.arg(format!("--net=/run/netns/{}", node.ns))
                .arg(rudder)
                .args(["agent", "--server", &server, "--token", TOKEN, "--data-dir"])
                .arg(&node.data)
                .args(node_flags(node))
                .args(extra)
                .env("RUST_LOG", "info")
                .stdout(Stdio::null())
                .stderr(log);
            node.agent = Some(cmd.spawn().expect("start rudder agent"));
        }
        let mn = MultiNode {
            cluster,
            nodes,
            switch,
            dir,
        };
        for node in &mn.nodes {
            mn.wait_ready(&node.name);
        }
        mn
    }

    fn wait_ready(&self, node: &str) {
        wait_for_within(&format!("{node} Ready"), Duration::from_secs(120), || {
            let ready = self
                .cluster
                .kubectl(&[
                    "get",
                    "node",
                    node,
                    "-o",
                    "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}",
                ])
                .stdout;
            (ready == "True").then_some(())
        });
    }

    /// The log of node `i`'s agent (1-based; node 1's is the server's).
    pub fn log(&self, i: usize) -> String {
        if i == 1 {
            return self.cluster.server_log();
        }
        std::fs::read_to_string(self.dir.path().join(format!("node-{i}.log"))).unwrap_or_default()
    }

    /// Runs a command in node `i`'s network namespace.
    pub fn in_node(&self, i: usize, program: &str) -> Command {
        let mut c = Command::new("nsenter");
        c.arg(format!("--net=/run/netns/{}", self.nodes[i - 1].ns))
            .arg(program);
        c
    }

    /// `<program> <args>` in node `i`: its output.
    pub fn run_in(&self, i: usize, program: &str, args: &[&str]) -> String {
        let out = self.in_node(i, program).args(args).output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `ip <args>` in node `i` (the test's view of its routes and devices).
    pub fn ip(&self, i: usize, args: &[&str]) -> String {
        self.run_in(i, "ip", args)
    }

    /// Stops node `i`'s agent (SIGTERM, so it stops its containerd; its pods' processes stay
    /// until the teardown, as a machine that went away would leave them).
    pub fn stop_agent(&mut self, i: usize) {
        assert!(i > 1, "node 1 is the server");
        if let Some(mut child) = self.nodes[i - 1].agent.take() {
            if let Ok(pid) = i32::try_from(child.id()) {
                // SAFETY: signals a child this test spawned and has not reaped.
                unsafe { libc::kill(pid, libc::SIGTERM) };
            }
            let deadline = std::time::Instant::now() + Duration::from_secs(20);
            while matches!(child.try_wait(), Ok(None)) && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The join token: a bare bootstrap token the server is started with.
const TOKEN: &str = "mnode1.0123456789abcdef";

fn node_flags(n: &NodeNs) -> Vec<&str> {
    vec![
        "--node-name",
        &n.name,
        "--node-ip",
        &n.addr,
        "--cgroup-root",
        &n.cgroup_root,
        // CI disks run full: lenient eviction thresholds.
        "--eviction-hard",
        "memory.available<1Mi,nodefs.available<1%,imagefs.available<1%",
    ]
}

impl Drop for MultiNode {
    fn drop(&mut self) {
        for i in 2..=self.nodes.len() {
            if let Some(mut c) = self.nodes[i - 1].agent.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
        let namespaces: Vec<String> = self
            .nodes
            .iter()
            .map(|n| n.ns.clone())
            .chain(std::iter::once(self.switch.clone()))
            .collect();
        let roots: Vec<String> = self.nodes.iter().map(|n| n.cgroup_root.clone()).collect();
        let prefixes = vec![
            self.dir.path().to_path_buf(),
            self.cluster.dir.path().to_path_buf(),
        ];
        teardown(&namespaces, &roots, &prefixes, &[]);
    }
}
