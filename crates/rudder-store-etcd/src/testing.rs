//! Throwaway etcd members for tests and benchmarks.
//!
//! It is public (not `cfg(test)`) because `rudder bench store` runs etcd the same way. A
//! member listens on loopback ports picked free at start, so tests can run in parallel and
//! next to a real etcd on 2379; it keeps etcd's default fsync durability, so what a benchmark
//! measures and what a restart test proves hold for a production etcd.
//!
//! The binary is `$RUDDER_ETCD_BIN`, else `/usr/bin/etcd`, else `etcd` on `PATH`.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long etcd gets to elect itself leader and answer `/health`.
const START_TIMEOUT: Duration = Duration::from_secs(30);
const MEMBER_NAME: &str = "rudder-test";

/// A running etcd member; killed (and its temporary directory removed) on drop.
pub struct EtcdProcess {
    bin: PathBuf,
    dir: PathBuf,
    /// Owns `dir` when the process made it; `None` when the caller's directory is used.
    _temp: Option<tempfile::TempDir>,
    client_port: u16,
    peer_port: u16,
    /// This member's name and the whole cluster's `--initial-cluster`.
    name: String,
    initial_cluster: String,
    child: Option<Child>,
}

impl EtcdProcess {
    /// Start etcd in a new temporary directory. Blocks until etcd answers (about a second).
    pub fn start() -> io::Result<EtcdProcess> {
        let temp = tempfile::Builder::new().prefix("rudder-etcd-").tempdir()?;
        let dir = temp.path().to_path_buf();
        Self::launch(dir, Some(temp))
    }

    /// Start etcd with its data and log in `dir` (created if missing, left in place on drop),
    /// so a benchmark can put it on the disk it means to measure.
    pub fn start_in(dir: &Path) -> io::Result<EtcdProcess> {
        fs::create_dir_all(dir)?;
        Self::launch(dir.to_path_buf(), None)
    }

    fn launch(dir: PathBuf, temp: Option<tempfile::TempDir>) -> io::Result<EtcdProcess> {
        let bin = etcd_binary();
        let fresh = !dir.join("data").exists();
        let mut last_err = None;
        // The ports are free when picked but could be taken before etcd binds them; a few
        // attempts with new ports make that race harmless.
        for _ in 0..3 {
            let (client_port, peer_port) = free_ports()?;
            let mut p = EtcdProcess {
                bin: bin.clone(),
                dir: dir.clone(),
                _temp: None,
                client_port,
                peer_port,
                name: MEMBER_NAME.into(),
                initial_cluster: format!("{MEMBER_NAME}=http://127.0.0.1:{peer_port}"),
                child: None,
            };
            match p.spawn_and_wait() {
                Ok(()) => {
                    p._temp = temp;
                    return Ok(p);
                }
                Err(e) => {
                    p.stop();
                    // A failed first start may have left a half-initialised member behind
                    // (data that was there before is the caller's, and stays).
                    if fresh {
                        let _ = fs::remove_dir_all(p.data_dir());
                    }
                    tracing::warn!(error = %e, "etcd did not start; retrying with new ports");
                    last_err = Some(e);
                }
            }
        }
        Err(last_err.unwrap_or_else(|| io::Error::other("etcd did not start")))
    }

    /// Start a cluster of `members` etcd members, each in a temporary directory of its own, for
    /// tests of failover. Blocks until every member answers (which needs a quorum).
    pub fn start_cluster(members: usize) -> io::Result<Vec<EtcdProcess>> {
        let bin = etcd_binary();
        let mut ports = Vec::with_capacity(members);
        // Hold every listener until all ports are known, so that none repeats.
        let listeners = (0..members * 2)
            .map(|_| TcpListener::bind(("127.0.0.1", 0)))
            .collect::<io::Result<Vec<_>>>()?;
        for pair in listeners.chunks(2) {
            ports.push((pair[0].local_addr()?.port(), pair[1].local_addr()?.port()));
        }
        drop(listeners);
        let initial_cluster = ports
            .iter()
            .enumerate()
            .map(|(i, (_, peer))| format!("{MEMBER_NAME}-{i}=http://127.0.0.1:{peer}"))
            .collect::<Vec<_>>()
            .join(",");
        let mut cluster = Vec::with_capacity(members);
        for (i, (client_port, peer_port)) in ports.into_iter().enumerate() {
            let temp = tempfile::Builder::new().prefix("rudder-etcd-").tempdir()?;
            let mut p = EtcdProcess {
                bin: bin.clone(),
                dir: temp.path().to_path_buf(),
                _temp: Some(temp),
                client_port,
                peer_port,
                name: format!("{MEMBER_NAME}-{i}"),
                initial_cluster: initial_cluster.clone(),
                child: None,
            };
            // Start all before waiting on any: a member is healthy only with a quorum.
            p.spawn()?;
            cluster.push(p);
        }
        for p in &mut cluster {
            p.wait_ready()?;
        }
        Ok(cluster)
    }

    /// The client URL, e.g. `http://127.0.0.1:40123`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    /// etcd's own data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// Where etcd's output goes (appended across restarts).
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("etcd.log")
    }

    /// Kill etcd (SIGKILL, so only what it had fsynced survives) and start it again on the same
    /// data and ports. Blocks until it answers.
    pub fn restart(&mut self) -> io::Result<()> {
        self.stop();
        self.spawn_and_wait()
    }

    /// Kill etcd and wait for it to exit. Idempotent.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn spawn_and_wait(&mut self) -> io::Result<()> {
        self.spawn()?;
        self.wait_ready()
    }

    fn spawn(&mut self) -> io::Result<()> {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())?;
        let client = self.endpoint();
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let mut cmd = Command::new(&self.bin);
        cmd.arg("--name")
            .arg(&self.name)
            .arg("--data-dir")
            .arg(self.data_dir())
            .arg("--listen-client-urls")
            .arg(&client)
            .arg("--advertise-client-urls")
            .arg(&client)
            .arg("--listen-peer-urls")
            .arg(&peer)
            .arg("--initial-advertise-peer-urls")
            .arg(&peer)
            .arg("--initial-cluster")
            .arg(&self.initial_cluster)
            // Distinct per member set, so that members of different test clusters that meet
            // on a reused port refuse each other.
            .arg("--initial-cluster-token")
            .arg(cluster_token(&self.initial_cluster))
            .arg("--initial-cluster-state")
            .arg("new")
            // etcd 3.4 warns that its default logger is deprecated; zap is the future default.
            .arg("--logger")
            .arg("zap")
            .arg("--log-outputs")
            .arg("stderr")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        // etcd refuses to start when an ETCD_* variable repeats a flag given here, and would
        // otherwise let the environment change the member under test.
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("ETCD_") {
                cmd.env_remove(name);
            }
        }
        if cfg!(target_arch = "aarch64") {
            // etcd 3.4 runs on arm64 only when told that it is fine.
            cmd.env("ETCD_UNSUPPORTED_ARCH", "arm64");
        }
        let child = cmd.spawn().map_err(|e| {
            io::Error::new(
                e.kind(),
                format!(
                    "cannot run {} ({e}); install etcd-server",
                    self.bin.display()
                ),
            )
        })?;
        self.child = Some(child);
        Ok(())
    }

    fn wait_ready(&mut self) -> io::Result<()> {
        let deadline = Instant::now() + START_TIMEOUT;
        let addr = SocketAddr::from(([127, 0, 0, 1], self.client_port));
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Some(status) = child.try_wait()? {
                    self.child = None;
                    return Err(io::Error::other(format!(
                        "etcd exited with {status}; log tail:\n{}",
                        self.log_tail()
                    )));
                }
            }
            if healthy(addr) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "etcd did not become healthy within {START_TIMEOUT:?}; log tail:\n{}",
                        self.log_tail()
                    ),
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn log_tail(&self) -> String {
        let mut text = String::new();
        if let Ok(mut f) = File::open(self.log_path()) {
            let _ = f.read_to_string(&mut text);
        }
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for EtcdProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The etcd binary the helpers run: `$RUDDER_ETCD_BIN`, else `/usr/bin/etcd` (Debian's
/// etcd-server), else `etcd` on `PATH`. Public for tests that need an etcd configured
/// differently (TLS, for one).
pub fn etcd_binary() -> PathBuf {
    if let Some(bin) = std::env::var_os("RUDDER_ETCD_BIN") {
        return PathBuf::from(bin);
    }
    let debian = Path::new("/usr/bin/etcd");
    if debian.exists() {
        return debian.to_path_buf();
    }
    PathBuf::from("etcd")
}

/// A cluster token derived from the member list: equal for all members of one cluster.
fn cluster_token(initial_cluster: &str) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    initial_cluster.hash(&mut h);
    format!("rudder-{:016x}", h.finish())
}

/// Two distinct loopback ports that were free a moment ago.
fn free_ports() -> io::Result<(u16, u16)> {
    // Both listeners are held until both ports are known, so they cannot coincide.
    let a = TcpListener::bind(("127.0.0.1", 0))?;
    let b = TcpListener::bind(("127.0.0.1", 0))?;
    Ok((a.local_addr()?.port(), b.local_addr()?.port()))
}

/// Whether etcd's `/health` says it has a leader and serves requests.
fn healthy(addr: SocketAddr) -> bool {
    let Ok(mut conn) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = conn.set_write_timeout(Some(Duration::from_secs(2)));
    if conn
        .write_all(b"GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut response = String::new();
    let _ = conn.read_to_string(&mut response);
    response.starts_with("HTTP/1.") && response.contains("\"health\":\"true\"")
}
