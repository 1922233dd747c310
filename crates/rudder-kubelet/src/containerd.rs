//! The agent's own containerd (as k3s runs one): a config it writes (root, state and socket
//! under `<data-dir>/agent/containerd`, runc with cgroupfs, `restrict_oom_score_adj`, the CNI
//! directories, registry mirrors from a k3s-style `registries.yaml`), started, waited for and
//! restarted if it dies. Containers outlive it (their shims keep running), as with k3s.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

#[derive(Clone, Debug)]
pub struct ContainerdConfig {
    /// `<data-dir>/agent`.
    pub agent_dir: PathBuf,
    pub sandbox_image: String,
    pub cni_bin_dir: PathBuf,
    /// k3s's registries.yaml (mirrors, auth, TLS), if any.
    pub registries: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum ContainerdError {
    #[error("containerd is not installed (on Debian: apt-get install containerd runc containernetworking-plugins), or use --container-runtime-endpoint")]
    Missing,
    #[error("the containerd socket path {0} is longer than a unix socket allows (108 bytes): use a shorter --data-dir")]
    SocketPath(String),
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("registries file {path}: {message}")]
    Registries { path: String, message: String },
    #[error("containerd did not become ready (see {log}): {source}")]
    NotReady {
        log: String,
        source: crate::cri::CriError,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ContainerdError + '_ {
    move |source| ContainerdError::Io {
        path: path.display().to_string(),
        source,
    }
}

fn toml_str(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

/// The registry part of the CRI plugin's config from k3s's registries.yaml
/// (`mirrors.<host>.endpoint`, `configs.<host>.auth.{username,password}`,
/// `configs.<host>.tls.insecure_skip_verify`).
pub fn registries_toml(yaml: &str) -> Result<String, String> {
    let v: serde_json::Value = if yaml.trim().is_empty() {
        serde_json::Value::Null
    } else {
        serde_saphyr::from_str(yaml).map_err(|e| e.to_string())?
    };
    let mut out = String::new();
    if let Some(mirrors) = v.get("mirrors").and_then(|m| m.as_object()) {
        for (host, m) in mirrors {
            let endpoints: Vec<String> = m
                .get("endpoint")
                .and_then(|e| e.as_array())
                .ok_or_else(|| format!("mirrors.{host}.endpoint: expected a list of URLs"))?
                .iter()
                .filter_map(|e| e.as_str().map(toml_str))
                .collect();
            out.push_str(&format!(
                "  [plugins.\"io.containerd.grpc.v1.cri\".registry.mirrors.{}]\n    endpoint = [{}]\n",
                toml_str(host),
                endpoints.join(", ")
            ));
        }
    }
    if let Some(configs) = v.get("configs").and_then(|m| m.as_object()) {
        for (host, c) in configs {
            if let Some(auth) = c.get("auth").and_then(|a| a.as_object()) {
                out.push_str(&format!(
                    "  [plugins.\"io.containerd.grpc.v1.cri\".registry.configs.{}.auth]\n",
                    toml_str(host)
                ));
                for key in ["username", "password", "auth", "identitytoken"] {
                    if let Some(val) = auth.get(key).and_then(|x| x.as_str()) {
                        out.push_str(&format!("    {key} = {}\n", toml_str(val)));
                    }
                }
            }
            if let Some(tls) = c.get("tls").and_then(|a| a.as_object()) {
                out.push_str(&format!(
                    "  [plugins.\"io.containerd.grpc.v1.cri\".registry.configs.{}.tls]\n",
                    toml_str(host)
                ));
                if let Some(b) = tls.get("insecure_skip_verify").and_then(|x| x.as_bool()) {
                    out.push_str(&format!("    insecure_skip_verify = {b}\n"));
                }
                for (key, toml_key) in [
                    ("ca_file", "ca_file"),
                    ("cert_file", "cert_file"),
                    ("key_file", "key_file"),
                ] {
                    if let Some(val) = tls.get(key).and_then(|x| x.as_str()) {
                        out.push_str(&format!("    {toml_key} = {}\n", toml_str(val)));
                    }
                }
            }
        }
    }
    Ok(out)
}

pub struct Paths {
    pub dir: PathBuf,
    pub socket: PathBuf,
    pub config: PathBuf,
    pub log: PathBuf,
    pub cni_conf_dir: PathBuf,
}

impl Paths {
    pub fn new(agent_dir: &Path) -> Paths {
        let dir = agent_dir.join("containerd");
        Paths {
            socket: dir.join("containerd.sock"),
            config: dir.join("config.toml"),
            log: dir.join("containerd.log"),
            cni_conf_dir: agent_dir.join("etc").join("cni").join("net.d"),
            dir,
        }
    }
}

pub fn config_toml(cfg: &ContainerdConfig, paths: &Paths, registries: &str) -> String {
    let d = &paths.dir;
    let p = |s: &str| toml_str(&d.join(s).display().to_string());
    format!(
        r#"version = 2
root = {root}
state = {state}
[grpc]
  address = {socket}
[ttrpc]
  address = {ttrpc}
[plugins."io.containerd.internal.v1.opt"]
  path = {opt}
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = {sandbox}
  # The agent may lack CAP_SYS_RESOURCE (containers, CI): runc then cannot lower oom_score_adj.
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  disable_apparmor = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        Root = {runc}
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = {cni_bin}
    conf_dir = {cni_conf}
    max_conf_num = 1
{registries}"#,
        root = p("root"),
        state = p("state"),
        socket = toml_str(&paths.socket.display().to_string()),
        ttrpc = toml_str(&format!("{}.ttrpc", paths.socket.display())),
        opt = p("opt"),
        runc = p("runc"),
        sandbox = toml_str(&cfg.sandbox_image),
        cni_bin = toml_str(&cfg.cni_bin_dir.display().to_string()),
        cni_conf = toml_str(&paths.cni_conf_dir.display().to_string()),
    )
}

/// A containerd of an earlier run still running on this config (its agent was killed) holds
/// the metadata database: it is stopped first.
async fn stop_stale(paths: &Paths) {
    let Some(pid) = std::fs::read_to_string(paths.dir.join("containerd.pid"))
        .ok()
        .and_then(|s| s.trim().parse::<i32>().ok())
    else {
        return;
    };
    let ours = std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| String::from_utf8_lossy(&c).contains(&*paths.config.to_string_lossy()))
        .unwrap_or(false);
    if !ours {
        return;
    }
    tracing::warn!(pid, "stopping the containerd of a previous run");
    // SAFETY: plain signals to a process verified to be our containerd.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    for _ in 0..100 {
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    unsafe { libc::kill(pid, libc::SIGKILL) };
    tokio::time::sleep(Duration::from_millis(200)).await;
}

/// A containerd the agent started and supervises.
pub struct Containerd {
    socket: PathBuf,
    stop: Arc<Notify>,
    supervisor: tokio::task::JoinHandle<()>,
}

fn spawn(paths: &Paths) -> Result<tokio::process::Child, ContainerdError> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&paths.log)
        .map_err(io(&paths.log))?;
    let mut cmd = tokio::process::Command::new("containerd");
    cmd.arg("--config")
        .arg(&paths.config)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(log)
        // Its own process group: a Ctrl-C for the agent must not reach containerd before the
        // agent has stopped it.
        .process_group(0);
    // SAFETY: prctl is async-signal-safe; it only sets a flag on the child. If the agent dies
    // without stopping containerd (SIGKILL), containerd gets SIGTERM instead of lingering and
    // holding its database lock against the next start.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            Ok(())
        });
    }
    cmd.spawn().map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => ContainerdError::Missing,
        _ => ContainerdError::Io {
            path: "containerd".into(),
            source: e,
        },
    })
}

impl Containerd {
    pub async fn start(cfg: &ContainerdConfig) -> Result<Containerd, ContainerdError> {
        let paths = Paths::new(&cfg.agent_dir);
        if paths.socket.as_os_str().len() >= 108 {
            return Err(ContainerdError::SocketPath(
                paths.socket.display().to_string(),
            ));
        }
        for d in [&paths.dir, &paths.cni_conf_dir] {
            std::fs::create_dir_all(d).map_err(io(d))?;
        }
        let registries = match &cfg.registries {
            Some(f) => {
                let text = std::fs::read_to_string(f).map_err(io(f))?;
                registries_toml(&text).map_err(|message| ContainerdError::Registries {
                    path: f.display().to_string(),
                    message,
                })?
            }
            None => String::new(),
        };
        std::fs::write(&paths.config, config_toml(cfg, &paths, &registries))
            .map_err(io(&paths.config))?;
        // A socket left by a containerd that was killed would make the new one fail to listen.
        for s in [
            paths.socket.clone(),
            PathBuf::from(format!("{}.ttrpc", paths.socket.display())),
        ] {
            let _ = std::fs::remove_file(s);
        }
        stop_stale(&paths).await;
        let mut child = spawn(&paths)?;
        if let Some(pid) = child.id() {
            let _ = std::fs::write(paths.dir.join("containerd.pid"), pid.to_string());
        }
        let cri = crate::cri::Cri::connect(&paths.socket).map_err(|source| {
            ContainerdError::NotReady {
                log: paths.log.display().to_string(),
                source,
            }
        })?;
        if let Err(source) = cri.wait_ready(Duration::from_secs(30)).await {
            let _ = child.kill().await;
            return Err(ContainerdError::NotReady {
                log: paths.log.display().to_string(),
                source,
            });
        }
        tracing::info!(socket = %paths.socket.display(), "containerd is running");
        let socket = paths.socket.clone();
        let stop = Arc::new(Notify::new());
        let stop2 = stop.clone();
        let supervisor = tokio::spawn(async move {
            let mut delay = Duration::from_secs(1);
            loop {
                tokio::select! {
                    status = child.wait() => {
                        tracing::error!(?status, log = %paths.log.display(), "containerd exited; restarting it");
                        tokio::time::sleep(delay).await;
                        delay = (delay * 2).min(Duration::from_secs(30));
                        for s in [paths.socket.clone(), PathBuf::from(format!("{}.ttrpc", paths.socket.display()))] {
                            let _ = std::fs::remove_file(s);
                        }
                        match spawn(&paths) {
                            Ok(c) => child = c,
                            Err(e) => {
                                tracing::error!(error = %e, "restarting containerd failed");
                                continue;
                            }
                        }
                    }
                    _ = stop2.notified() => {
                        if let Some(pid) = child.id() {
                            // SAFETY: signalling our own child.
                            unsafe { libc::kill(pid as i32, libc::SIGTERM) };
                        }
                        let _ = tokio::time::timeout(Duration::from_secs(10), child.wait()).await;
                        let _ = child.kill().await;
                        return;
                    }
                }
            }
        });
        Ok(Containerd {
            socket,
            stop,
            supervisor,
        })
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Stops containerd (SIGTERM, then SIGKILL after 10 s); the pods' shims keep running.
    pub async fn stop(self) {
        self.stop.notify_one();
        let _ = self.supervisor.await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registries_yaml_becomes_cri_config() {
        let t = registries_toml(
            "mirrors:\n  \"127.0.0.1:5000\":\n    endpoint:\n      - \"http://127.0.0.1:5000\"\nconfigs:\n  \"reg.example\":\n    auth: {username: u, password: p}\n    tls: {insecure_skip_verify: true}\n",
        )
        .unwrap();
        assert!(
            t.contains(
                "registry.mirrors.\"127.0.0.1:5000\"]\n    endpoint = [\"http://127.0.0.1:5000\"]"
            ),
            "{t}"
        );
        assert!(t.contains("registry.configs.\"reg.example\".auth]\n    username = \"u\"\n    password = \"p\""), "{t}");
        assert!(t.contains("insecure_skip_verify = true"), "{t}");
        assert!(registries_toml("mirrors:\n  x: {endpoint: 3}\n")
            .unwrap_err()
            .contains("mirrors.x.endpoint"));
        assert_eq!(registries_toml("").unwrap(), "");
    }

    #[test]
    fn config_keeps_everything_under_the_agent_dir() {
        let paths = Paths::new(Path::new("/d/agent"));
        let cfg = ContainerdConfig {
            agent_dir: "/d/agent".into(),
            sandbox_image: "rudder.dev/pause:3.10".into(),
            cni_bin_dir: "/usr/lib/cni".into(),
            registries: None,
        };
        let t = config_toml(&cfg, &paths, "");
        assert!(t.contains("root = \"/d/agent/containerd/root\""));
        assert!(t.contains("address = \"/d/agent/containerd/containerd.sock\""));
        assert!(t.contains("conf_dir = \"/d/agent/etc/cni/net.d\""));
        assert!(t.contains("restrict_oom_score_adj = true"));
        assert!(t.contains("SystemdCgroup = false"));
    }
}
