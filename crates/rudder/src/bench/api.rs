//! `rudder bench api`: the API server end to end over HTTPS, on the embedded store and on etcd
//! side by side. It starts `rudder server` (this binary) for each backend, then drives it with
//! keep-alive HTTPS connections the way a load tool such as wrk does.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;

use super::{machine_summary, percentile};

#[derive(clap::Args)]
pub struct ApiBenchArgs {
    /// Backends to measure, in order.
    #[arg(long, value_delimiter = ',', default_value = "redb,etcd")]
    backends: Vec<String>,
    /// Seconds each create and get workload runs.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// ConfigMaps in the list workload.
    #[arg(long, default_value_t = 10_000)]
    list_size: usize,
    /// Watchers in the watch-latency workload.
    #[arg(long, default_value_t = 100)]
    watchers: usize,
}

#[derive(Default)]
struct Results {
    ready: Duration,
    idle_rss_mb: f64,
    creates_1: f64,
    creates_32: f64,
    gets_32: f64,
    cr_creates_32: f64,
    cr_gets_32: f64,
    list: Duration,
    watch_p50: Duration,
    watch_p99: Duration,
}

pub(super) struct Server {
    child: Child,
    _dir: tempfile::TempDir,
    pub(super) addr: std::net::SocketAddr,
    pub(super) token: String,
    pub(super) tls: Arc<rustls::ClientConfig>,
    _etcd: Option<rudder_store_etcd::testing::EtcdProcess>,
}

impl Server {
    /// The server's data directory (its CA and serving certificate are under `server/tls`).
    pub(super) fn data_dir(&self) -> std::path::PathBuf {
        self._dir.path().join("data")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// The command that runs `rudder server` (this binary) on a fresh data directory in `dir`,
/// with a private etcd when `backend` is `etcd`: (command, address, data directory, etcd).
pub(super) fn server_command(
    backend: &str,
    dir: &Path,
) -> anyhow::Result<(
    Command,
    std::net::SocketAddr,
    std::path::PathBuf,
    Option<rudder_store_etcd::testing::EtcdProcess>,
)> {
    let port = free_port()?;
    let data = dir.join("data");
    let mut cmd = Command::new(std::env::current_exe()?);
    // Benchmarks measure the control plane on simulated nodes: no node agent.
    cmd.args(["server", "--disable-agent", "--bind-address", "127.0.0.1"])
        .arg("--https-listen-port")
        .arg(port.to_string())
        .arg("--data-dir")
        .arg(&data)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let etcd = match backend {
        "redb" => None,
        "etcd" => {
            let e = rudder_store_etcd::testing::EtcdProcess::start_in(&dir.join("etcd"))
                .context("starting etcd")?;
            cmd.arg("--datastore-endpoint").arg(e.endpoint());
            Some(e)
        }
        other => bail!("unknown backend {other:?}"),
    };
    Ok((cmd, format!("127.0.0.1:{port}").parse()?, data, etcd))
}

pub(super) async fn start(backend: &str) -> anyhow::Result<(Server, Duration)> {
    let dir = tempfile::tempdir()?;
    let (mut cmd, addr, data, etcd) = server_command(backend, dir.path())?;
    // First start creates the CA, keys and the store; the time that matters to users is a
    // restart, so measure the second start on the same data directory.
    let mut first = cmd.spawn().context("starting rudder server")?;
    wait_ready(addr, &data, &mut first).await?;
    // Stopped as an operator would (SIGTERM): it releases its controller manager's and
    // scheduler's leases, so the restarted server's components start at once. Killed, the
    // leases would hold for 15 s and the controllers would start (and list everything the
    // benchmark created) in the middle of a later measurement.
    stop_gracefully(&mut first, Duration::from_secs(10)).await;
    let t0 = Instant::now();
    let mut child = cmd.spawn()?;
    let (tls, token) = wait_ready(addr, &data, &mut child).await?;
    let ready = t0.elapsed();
    Ok((
        Server {
            child,
            _dir: dir,
            addr,
            token,
            tls,
            _etcd: etcd,
        },
        ready,
    ))
}

/// SIGTERM, then SIGKILL if the process has not exited within `grace`.
pub(super) async fn stop_gracefully(child: &mut std::process::Child, grace: Duration) {
    if let Ok(pid) = i32::try_from(child.id()) {
        // SAFETY: signalling our own child by its pid.
        unsafe { libc::kill(pid, libc::SIGTERM) };
    }
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
}

fn client_tls(data: &Path) -> anyhow::Result<Arc<rustls::ClientConfig>> {
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pki_types::CertificateDer::pem_file_iter(data.join("server/tls/ca.crt"))? {
        roots.add(cert?)?;
    }
    let mut cfg = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

fn admin_token(data: &Path) -> anyhow::Result<String> {
    let csv = std::fs::read_to_string(data.join("server/tokens.csv"))?;
    csv.lines()
        .find_map(|l| l.split(',').next().map(str::to_string))
        .context("no token in tokens.csv")
}

/// Poll `/readyz` every millisecond until it answers `ok`.
pub(super) async fn wait_ready(
    addr: std::net::SocketAddr,
    data: &Path,
    child: &mut Child,
) -> anyhow::Result<(Arc<rustls::ClientConfig>, String)> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait()? {
            bail!("rudder server exited with {status}");
        }
        if data.join("server/tls/ca.crt").exists() {
            if let (Ok(tls), Ok(token)) = (client_tls(data), admin_token(data)) {
                if let Ok(mut c) = connect(addr, tls.clone()).await {
                    if let Ok((200, body)) = request(&mut c, "GET", "/readyz", &token, None).await {
                        if body.as_ref() == b"ok" {
                            return Ok((tls, token));
                        }
                    }
                }
            }
        }
        if Instant::now() > deadline {
            bail!("server not ready in 60 s");
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

pub(super) type Conn = SendRequest<Full<Bytes>>;

pub(super) async fn connect(
    addr: std::net::SocketAddr,
    tls: Arc<rustls::ClientConfig>,
) -> anyhow::Result<Conn> {
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let name = rustls_pki_types::ServerName::try_from("127.0.0.1")?.to_owned();
    let stream = tokio_rustls::TlsConnector::from(tls)
        .connect(name, tcp)
        .await?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    Ok(sender)
}

pub(super) async fn request(
    c: &mut Conn,
    method: &str,
    path: &str,
    token: &str,
    body: Option<Bytes>,
) -> anyhow::Result<(u16, Bytes)> {
    let req = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "127.0.0.1")
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .body(Full::new(body.unwrap_or_default()))?;
    c.ready().await?;
    let resp = c.send_request(req).await?;
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await?.to_bytes();
    Ok((status, body))
}

const CM_PATH: &str = "/api/v1/namespaces/default/configmaps";

const CR_PATH: &str = "/apis/bench.rudder.dev/v1/namespaces/default/widgets";

/// A CRD of the usual operator shape: a structural schema with a default, an enum, a bound
/// and a CEL rule, so creates pay for pruning, defaulting and validation.
const CRD: &str = r#"{"apiVersion":"apiextensions.k8s.io/v1","kind":"CustomResourceDefinition",
"metadata":{"name":"widgets.bench.rudder.dev"},
"spec":{"group":"bench.rudder.dev","scope":"Namespaced",
"names":{"plural":"widgets","singular":"widget","kind":"Widget"},
"versions":[{"name":"v1","served":true,"storage":true,"subresources":{"status":{}},
"schema":{"openAPIV3Schema":{"type":"object","properties":{"spec":{"type":"object",
"x-kubernetes-validations":[{"rule":"self.replicas <= 100","message":"too many"}],
"properties":{"replicas":{"type":"integer","minimum":0,"default":1},
"mode":{"type":"string","enum":["fast","safe"],"default":"safe"},
"key":{"type":"string","maxLength":64}}},
"status":{"type":"object","x-kubernetes-preserve-unknown-fields":true}}}}}]}}"#;

fn widget(prefix: &str) -> Bytes {
    Bytes::from(format!(
        r#"{{"apiVersion":"bench.rudder.dev/v1","kind":"Widget","metadata":{{"generateName":"{prefix}-"}},"spec":{{"key":"value","replicas":3}}}}"#
    ))
}

/// Creates the benchmark's CRD and waits until its resource is served.
async fn install_crd(s: &Server, c: &mut Conn) -> anyhow::Result<()> {
    let path = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions";
    let (code, body) = request(c, "POST", path, &s.token, Some(Bytes::from(CRD))).await?;
    if code >= 300 {
        bail!(
            "creating the CRD failed with {code}: {}",
            String::from_utf8_lossy(&body)
        );
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if request(c, "GET", CR_PATH, &s.token, None).await?.0 == 200 {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("the CRD's resource was not served within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn configmap(prefix: &str) -> Bytes {
    Bytes::from(format!(
        r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"generateName":"{prefix}-"}},"data":{{"key":"value"}}}}"#
    ))
}

/// Creates (or gets) per second from `clients` keep-alive connections for `dur`.
pub(super) async fn rate(
    s: &Server,
    clients: usize,
    dur: Duration,
    get: Option<String>,
) -> anyhow::Result<f64> {
    rate_of(s, clients, dur, get, CM_PATH, configmap).await
}

/// `rate` for creates of `body(prefix)` at `path`.
async fn rate_of(
    s: &Server,
    clients: usize,
    dur: Duration,
    get: Option<String>,
    path: &'static str,
    body: fn(&str) -> Bytes,
) -> anyhow::Result<f64> {
    let start = Instant::now();
    let deadline = start + dur;
    let mut tasks = Vec::new();
    for i in 0..clients {
        let mut c = connect(s.addr, s.tls.clone()).await?;
        let token = s.token.clone();
        let get = get.clone();
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            while Instant::now() < deadline {
                let (code, _) = match &get {
                    Some(path) => request(&mut c, "GET", path, &token, None).await?,
                    None => {
                        request(&mut c, "POST", path, &token, Some(body(&format!("c{i}")))).await?
                    }
                };
                if code >= 300 {
                    bail!("request failed with {code}");
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
    Ok(total as f64 / start.elapsed().as_secs_f64())
}

pub(super) fn rss_mb(pid: u32) -> f64 {
    status_mb(pid, "VmRSS:")
}

/// A memory figure (`VmRSS:`, `VmHWM:` …) of a process, in MB.
pub(super) fn status_mb(pid: u32, field: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

async fn measure(backend: &str, args: &ApiBenchArgs) -> anyhow::Result<Results> {
    let (s, ready) = start(backend).await?;
    let mut r = Results {
        ready,
        ..Default::default()
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    r.idle_rss_mb = rss_mb(s.child.id());
    eprintln!("  ready in {ready:?}, idle RSS {:.1} MB", r.idle_rss_mb);
    let dur = Duration::from_secs(args.seconds);
    r.creates_1 = rate(&s, 1, dur, None).await?;
    eprintln!("  creates/s, 1 client: {:.0}", r.creates_1);
    r.creates_32 = rate(&s, 32, dur, None).await?;
    eprintln!("  creates/s, 32 clients: {:.0}", r.creates_32);
    // One known object to GET.
    let mut c = connect(s.addr, s.tls.clone()).await?;
    let body = Bytes::from(
        r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"bench-get"},"data":{"k":"v"}}"#,
    );
    request(&mut c, "POST", CM_PATH, &s.token, Some(body)).await?;
    r.gets_32 = rate(&s, 32, dur, Some(format!("{CM_PATH}/bench-get"))).await?;
    eprintln!("  gets/s, 32 clients: {:.0}", r.gets_32);
    install_crd(&s, &mut c).await?;
    r.cr_creates_32 = rate_of(&s, 32, dur, None, CR_PATH, widget).await?;
    eprintln!(
        "  custom resource creates/s, 32 clients: {:.0}",
        r.cr_creates_32
    );
    let body = Bytes::from(
        r#"{"apiVersion":"bench.rudder.dev/v1","kind":"Widget","metadata":{"name":"bench-get"},"spec":{"key":"v"}}"#,
    );
    request(&mut c, "POST", CR_PATH, &s.token, Some(body)).await?;
    r.cr_gets_32 = rate_of(
        &s,
        32,
        dur,
        Some(format!("{CR_PATH}/bench-get")),
        CR_PATH,
        widget,
    )
    .await?;
    eprintln!("  custom resource gets/s, 32 clients: {:.0}", r.cr_gets_32);
    // The list: a namespace holding exactly `list_size` ConfigMaps.
    let ns =
        Bytes::from(r#"{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"bench-list"}}"#);
    request(&mut c, "POST", "/api/v1/namespaces", &s.token, Some(ns)).await?;
    let per = args.list_size.div_ceil(32);
    let mut fills = Vec::new();
    for w in 0..32 {
        let mut c = connect(s.addr, s.tls.clone()).await?;
        let token = s.token.clone();
        let n = per.min(args.list_size.saturating_sub(w * per));
        fills.push(tokio::spawn(async move {
            for _ in 0..n {
                let (code, _) = request(
                    &mut c,
                    "POST",
                    "/api/v1/namespaces/bench-list/configmaps",
                    &token,
                    Some(configmap("l")),
                )
                .await?;
                if code >= 300 {
                    bail!("create failed with {code}");
                }
            }
            anyhow::Ok(())
        }));
    }
    for f in fills {
        f.await??;
    }
    let mut times = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let (code, body) = request(
            &mut c,
            "GET",
            "/api/v1/namespaces/bench-list/configmaps",
            &s.token,
            None,
        )
        .await?;
        times.push(t.elapsed());
        let v: serde_json::Value = serde_json::from_slice(&body)?;
        // The root-CA publisher's `kube-root-ca.crt` lives in every namespace.
        let n = v["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|i| i["metadata"]["name"] != "kube-root-ca.crt")
            .count();
        if code != 200 || n != args.list_size {
            bail!("list returned {code} with {n} items");
        }
    }
    times.sort();
    r.list = times[times.len() / 2];
    eprintln!("  list of {}: {:?}", args.list_size, r.list);
    let (p50, p99) = watch_latency(&s, args.watchers, 200).await?;
    r.watch_p50 = p50;
    r.watch_p99 = p99;
    eprintln!("  watch p50 {p50:?} p99 {p99:?}");
    Ok(r)
}

/// From issuing a create to its ADDED event arriving on each of `watchers` watch streams.
async fn watch_latency(
    s: &Server,
    watchers: usize,
    writes: usize,
) -> anyhow::Result<(Duration, Duration)> {
    use futures::StreamExt;
    let mut c = connect(s.addr, s.tls.clone()).await?;
    let ns =
        Bytes::from(r#"{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"bench-watch"}}"#);
    request(&mut c, "POST", "/api/v1/namespaces", &s.token, Some(ns)).await?;
    let (_, list) = request(
        &mut c,
        "GET",
        "/api/v1/namespaces/bench-watch/configmaps",
        &s.token,
        None,
    )
    .await?;
    let rv = serde_json::from_slice::<serde_json::Value>(&list)?["metadata"]["resourceVersion"]
        .as_str()
        .unwrap_or("0")
        .to_string();
    let mut tasks = Vec::new();
    for _ in 0..watchers {
        let mut w = connect(s.addr, s.tls.clone()).await?;
        let req = hyper::Request::builder()
            .uri(format!(
                "/api/v1/namespaces/bench-watch/configmaps?watch=true&resourceVersion={rv}"
            ))
            .header("host", "127.0.0.1")
            .header("authorization", format!("Bearer {}", s.token))
            .body(Full::new(Bytes::new()))?;
        w.ready().await?;
        let resp = w.send_request(req).await?;
        let mut body = resp.into_body().into_data_stream();
        tasks.push(tokio::spawn(async move {
            let _keep = w;
            let mut seen = Vec::with_capacity(writes);
            let mut buf = Vec::new();
            while seen.len() < writes {
                let chunk = tokio::time::timeout(Duration::from_secs(30), body.next())
                    .await
                    .context("watch stalled")?
                    .context("watch ended")??;
                let at = Instant::now();
                buf.extend_from_slice(&chunk);
                while let Some(pos) = buf.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = buf.drain(..=pos).collect();
                    let v: serde_json::Value = serde_json::from_slice(&line)?;
                    if let Some(name) = v["object"]["metadata"]["name"].as_str() {
                        seen.push((name.to_string(), at));
                    }
                }
            }
            anyhow::Ok(seen)
        }));
    }
    let mut issued = std::collections::HashMap::new();
    for i in 0..writes {
        let name = format!("w{i:05}");
        let body = Bytes::from(format!(
            r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"{name}"}}}}"#
        ));
        let t0 = Instant::now();
        request(
            &mut c,
            "POST",
            "/api/v1/namespaces/bench-watch/configmaps",
            &s.token,
            Some(body),
        )
        .await?;
        issued.insert(name, t0);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut lat = Vec::new();
    for t in tasks {
        for (name, at) in t.await?? {
            if let Some(t0) = issued.get(&name) {
                lat.push(at.saturating_duration_since(*t0));
            }
        }
    }
    lat.sort();
    Ok((percentile(&lat, 50.0), percentile(&lat, 99.0)))
}

pub async fn run(args: ApiBenchArgs) -> anyhow::Result<()> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let mut all = Vec::new();
    for b in &args.backends {
        eprintln!("== {b}");
        all.push((b.clone(), measure(b, &args).await?));
    }
    println!("Machine: {}", machine_summary());
    let probe = tempfile::tempdir()?;
    println!(
        "Disk: {:.0} fdatasync/s (4 KiB, one thread) on the temp directory's disk",
        super::store::fsync_rate(probe.path())?
    );
    println!(
        "Command: rudder bench api --backends {} --seconds {} --list-size {} --watchers {}",
        args.backends.join(","),
        args.seconds,
        args.list_size,
        args.watchers
    );
    println!();
    let mut header = String::from("| workload |");
    let mut rule = String::from("|---|");
    for (b, _) in &all {
        header.push_str(&format!(" {b} |"));
        rule.push_str("---|");
    }
    println!("{header}\n{rule}");
    let row = |label: &str, f: &dyn Fn(&Results) -> String| {
        let mut line = format!("| {label} |");
        for (_, r) in &all {
            line.push_str(&format!(" {} |", f(r)));
        }
        println!("{line}");
    };
    let ms = |d: Duration| format!("{:.1} ms", d.as_secs_f64() * 1e3);
    row("start to /readyz (restart)", &|r| ms(r.ready));
    row("idle RSS of rudder server", &|r| {
        format!("{:.1} MB", r.idle_rss_mb)
    });
    row("creates/s, 1 connection (durable)", &|r| {
        format!("{:.0}", r.creates_1)
    });
    row("creates/s, 32 connections (durable)", &|r| {
        format!("{:.0}", r.creates_32)
    });
    row("GETs/s, 32 connections", &|r| format!("{:.0}", r.gets_32));
    row(
        "custom resource creates/s, 32 connections (vs ConfigMap)",
        &|r| {
            format!(
                "{:.0} ({:.2}×)",
                r.cr_creates_32,
                r.cr_creates_32 / r.creates_32
            )
        },
    );
    row(
        "custom resource GETs/s, 32 connections (vs ConfigMap)",
        &|r| format!("{:.0} ({:.2}×)", r.cr_gets_32, r.cr_gets_32 / r.gets_32),
    );
    row(
        &format!("list {} ConfigMaps (median of 5)", args.list_size),
        &|r| ms(r.list),
    );
    row(
        &format!("watch delivery p50, {} watchers", args.watchers),
        &|r| ms(r.watch_p50),
    );
    row(
        &format!("watch delivery p99, {} watchers", args.watchers),
        &|r| ms(r.watch_p99),
    );
    Ok(())
}
