//! `rudder bench authz`: what RBAC costs a request. GET/s of one ConfigMap by a token-file user
//! whose access comes from a RoleBinding among `--bindings` others (to other users, in the same
//! namespace), with `--authorization-mode=Node,RBAC` against `AlwaysAllow`; and the authorizer's
//! own cost per decision, in process, with the same policy.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::Bytes;
use rudder_auth::rbac::{bootstrap, RbacAuthorizer, RbacIndex, RbacKind};
use rudder_auth::{Attributes, Authorizer, UserInfo};
use serde_json::json;

use super::api::{connect, request, server_command, wait_ready};
use super::machine_summary;

#[derive(clap::Args)]
pub struct AuthzBenchArgs {
    /// RoleBindings besides the measured user's.
    #[arg(long, default_value_t = 1000)]
    bindings: usize,
    /// One-second rounds per server (the two servers alternate).
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Concurrent keep-alive connections.
    #[arg(long, default_value_t = 8)]
    clients: usize,
}

const USER_TOKEN: &str = "bench-user-token";

fn role_binding(name: &str, user: &str) -> serde_json::Value {
    json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": name, "namespace": "default"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "bench-reader"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}]})
}

fn reader_role() -> serde_json::Value {
    json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": "bench-reader"},
        "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]}]})
}

/// Kills the server when the bench ends, however it ends.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A server under one authorization mode, set up with the bench's objects.
struct Server {
    addr: std::net::SocketAddr,
    tls: std::sync::Arc<rustls::ClientConfig>,
    _child: Killed,
    _dir: tempfile::TempDir,
}

const TARGET: &str = "/api/v1/namespaces/default/configmaps/target";

/// Starts a server under `mode` with the target ConfigMap and the bindings, and waits until
/// the bench user may read the target.
async fn start(mode: &str, args: &AuthzBenchArgs) -> anyhow::Result<Server> {
    let dir = tempfile::tempdir()?;
    let tokens = dir.path().join("tokens.csv");
    std::fs::write(&tokens, format!("{USER_TOKEN},bench-user,2001,bench\n"))?;
    let (mut cmd, addr, data, _) = server_command("redb", dir.path())?;
    cmd.args(["--disable-controllers", "--disable-scheduler"])
        .arg("--authorization-mode")
        .arg(mode)
        .arg("--token-auth-file")
        .arg(&tokens);
    let mut child = Killed(cmd.spawn().context("starting rudder server")?);
    let (tls, admin) = wait_ready(addr, &data, &mut child.0).await?;
    let mut c = connect(addr, tls.clone()).await?;
    let post = |path: &'static str, body: serde_json::Value| (path, Bytes::from(body.to_string()));
    let mut writes = vec![
        post(
            "/api/v1/namespaces/default/configmaps",
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "target"}, "data": {"k": "v"}}),
        ),
        post(
            "/apis/rbac.authorization.k8s.io/v1/clusterroles",
            reader_role(),
        ),
    ];
    for i in 0..args.bindings {
        writes.push(post(
            "/apis/rbac.authorization.k8s.io/v1/namespaces/default/rolebindings",
            role_binding(&format!("other-{i}"), &format!("user-{i}")),
        ));
    }
    writes.push(post(
        "/apis/rbac.authorization.k8s.io/v1/namespaces/default/rolebindings",
        role_binding("bench-user", "bench-user"),
    ));
    for (path, body) in writes {
        let (code, resp) = request(&mut c, "POST", path, &admin, Some(body)).await?;
        if code >= 300 {
            bail!("POST {path}: {code} {}", String::from_utf8_lossy(&resp));
        }
    }
    // The binding reaches the authorizer through the watch cache.
    let deadline = Instant::now() + Duration::from_secs(30);
    while request(&mut c, "GET", TARGET, USER_TOKEN, None).await?.0 != 200 {
        if Instant::now() > deadline {
            bail!("the bench user never got access");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(Server {
        addr,
        tls,
        _child: child,
        _dir: dir,
    })
}

/// GETs of the target by `clients` keep-alive connections for `window`.
async fn gets(server: &Server, clients: usize, window: Duration) -> anyhow::Result<u64> {
    let mut conns = Vec::new();
    for _ in 0..clients {
        conns.push(connect(server.addr, server.tls.clone()).await?);
    }
    let end = Instant::now() + window;
    let mut tasks = Vec::new();
    for mut c in conns {
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            while Instant::now() < end {
                let (code, _) = request(&mut c, "GET", TARGET, USER_TOKEN, None).await?;
                if code != 200 {
                    bail!("GET answered {code}");
                }
                n += 1;
            }
            anyhow::Ok(n)
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await??;
    }
    Ok(total)
}

/// Nanoseconds per decision of the RBAC authorizer alone over the bootstrap policy plus the
/// bench's bindings.
fn decision_ns(bindings: usize) -> f64 {
    let index = std::sync::Arc::new(RbacIndex::new());
    for o in bootstrap::cluster_roles() {
        index.apply(RbacKind::ClusterRole, &o);
    }
    for o in bootstrap::cluster_role_bindings() {
        index.apply(RbacKind::ClusterRoleBinding, &o);
    }
    index.apply(RbacKind::ClusterRole, &reader_role());
    for i in 0..bindings {
        index.apply(
            RbacKind::RoleBinding,
            &role_binding(&format!("other-{i}"), &format!("user-{i}")),
        );
    }
    index.apply(
        RbacKind::RoleBinding,
        &role_binding("bench-user", "bench-user"),
    );
    let authz = RbacAuthorizer::new(index);
    let user = UserInfo::new("bench-user").with_groups(["bench", "system:authenticated"]);
    let attrs = Attributes {
        verb: "get".into(),
        api_version: "v1".into(),
        resource: "configmaps".into(),
        namespace: "default".into(),
        name: "target".into(),
        resource_request: true,
        ..Default::default()
    };
    let n = 200_000;
    let t0 = Instant::now();
    for _ in 0..n {
        assert!(authz.authorize(&user, &attrs).allowed());
    }
    t0.elapsed().as_nanos() as f64 / n as f64
}

pub async fn run(args: AuthzBenchArgs) -> anyhow::Result<()> {
    println!("{}", machine_summary());
    if cfg!(debug_assertions) {
        println!("(debug build: absolute numbers are not representative)");
    }
    let ns = tokio::task::spawn_blocking({
        let b = args.bindings;
        move || decision_ns(b)
    })
    .await?;
    println!(
        "RBAC decision, in process, {} RoleBindings: {ns:.0} ns",
        args.bindings
    );
    // Both servers run at once and are measured in alternating one-second rounds, so load
    // from elsewhere on the machine falls on both alike.
    let allow = start("AlwaysAllow", &args).await?;
    let rbac = start("Node,RBAC", &args).await?;
    let round = Duration::from_secs(1);
    gets(&allow, args.clients, round).await?;
    gets(&rbac, args.clients, round).await?;
    let (mut n_allow, mut n_rbac) = (0, 0);
    let mut ratios = Vec::new();
    for _ in 0..args.seconds {
        let a = gets(&allow, args.clients, round).await?;
        let r = gets(&rbac, args.clients, round).await?;
        n_allow += a;
        n_rbac += r;
        ratios.push(r as f64 / a.max(1) as f64);
    }
    ratios.sort_by(f64::total_cmp);
    let secs = args.seconds.max(1) as f64;
    let (allow_rate, rbac_rate) = (n_allow as f64 / secs, n_rbac as f64 / secs);
    println!(
        "GET/s, AlwaysAllow, {} clients: {allow_rate:.0}",
        args.clients
    );
    println!(
        "GET/s, Node,RBAC with {} RoleBindings, {} clients: {rbac_rate:.0} ({:+.1} %; per-round ratio min {:.3}, median {:.3}, max {:.3})",
        args.bindings,
        args.clients,
        (rbac_rate / allow_rate - 1.0) * 100.0,
        ratios.first().copied().unwrap_or(0.0),
        ratios.get(ratios.len() / 2).copied().unwrap_or(0.0),
        ratios.last().copied().unwrap_or(0.0),
    );
    Ok(())
}
