//! Stock kubectl, when installed, reads the kubeconfigs we write and completes TLS with the
//! serving certificate, authenticating with the admin token or a client certificate.
//! Go's TLS and x509 stacks are stricter than rustls in places, so this is the check that
//! matters for "kubectl drives it as if it were kube-apiserver".

use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rudder_pki::{write_kubeconfig, ClusterPki, KubeconfigSpec, PkiOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

fn kubectl_installed() -> bool {
    Command::new("kubectl")
        .args(["version", "--client"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// What the fake API server saw in one request.
#[derive(Clone, Debug, Default)]
struct Request {
    authorization: Option<String>,
    peer_cn: Option<String>,
    path: String,
}

/// Serves `GET /version` over HTTP/1.1 on TLS with the PKI's server configuration (ALPN
/// narrowed to http/1.1, since this fake does not speak HTTP/2), recording each request.
async fn fake_apiserver(pki: &ClusterPki) -> (std::net::SocketAddr, Arc<Mutex<Vec<Request>>>) {
    let mut config = (*pki.server_tls_config()).clone();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let seen2 = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            let seen = seen2.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tls.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&buf).into_owned();
                let mut req = Request {
                    path: head
                        .split_whitespace()
                        .nth(1)
                        .unwrap_or_default()
                        .to_owned(),
                    ..Default::default()
                };
                for line in head.lines() {
                    if let Some((k, v)) = line.split_once(':') {
                        if k.eq_ignore_ascii_case("authorization") {
                            req.authorization = Some(v.trim().to_owned());
                        }
                    }
                }
                req.peer_cn = tls.get_ref().1.peer_certificates().map(|c| {
                    let (_, cert) = x509_parser::parse_x509_certificate(&c[0]).unwrap();
                    let cn = cert
                        .subject()
                        .iter_common_name()
                        .next()
                        .unwrap()
                        .as_str()
                        .unwrap()
                        .to_owned();
                    cn
                });
                seen.lock().unwrap().push(req);
                let body = r#"{"major":"1","minor":"37","gitVersion":"v1.37.0-rudder"}"#;
                let resp = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = tls.write_all(resp.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    (addr, seen)
}

async fn kubectl(home: &Path, kubeconfig: &Path, args: &[&str]) -> (bool, String) {
    let mut cmd = tokio::process::Command::new("kubectl");
    cmd.arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .env("HOME", home)
        .env("NO_PROXY", "*")
        .env_remove("KUBECONFIG")
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(60), cmd.output())
        .await
        .expect("kubectl hung")
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[tokio::test]
async fn kubectl_uses_token_and_client_cert_kubeconfigs() {
    if !kubectl_installed() {
        eprintln!("kubectl not installed; skipped");
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let pki =
        ClusterPki::load_or_create(&root.path().join("server/tls"), PkiOptions::default()).unwrap();
    let (addr, seen) = fake_apiserver(&pki).await;
    let url = format!("https://{addr}");

    // Admin token.
    let admin = root.path().join("admin.yaml");
    write_kubeconfig(&admin, &pki.admin_kubeconfig(&url)).unwrap();
    let (ok, out) = kubectl(
        root.path(),
        &admin,
        &[
            "config",
            "view",
            "--raw",
            "-o",
            "jsonpath={.users[0].user.token}",
        ],
    )
    .await;
    assert!(ok, "{out}");
    assert_eq!(out, pki.admin_token());
    let (ok, out) = kubectl(root.path(), &admin, &["get", "--raw", "/version"]).await;
    assert!(ok, "{out}");
    assert!(out.contains("v1.37.0-rudder"), "{out}");
    let req = seen.lock().unwrap().pop().unwrap();
    assert_eq!(req.path, "/version");
    assert_eq!(
        req.authorization.as_deref(),
        Some(format!("Bearer {}", pki.admin_token()).as_str())
    );
    assert_eq!(req.peer_cn, None);

    // Client certificate with several groups, via "localhost" to exercise the DNS SAN too.
    let (cert, key) = pki
        .issue_client_cert("alice", &["dev", "ops"], Duration::from_secs(3600))
        .unwrap();
    let alice = root.path().join("kube").join("alice.yaml");
    let spec = KubeconfigSpec::new(format!("https://localhost:{}", addr.port()), pki.ca_pem())
        .with_client_cert(cert, key);
    write_kubeconfig(&alice, &spec).unwrap();
    let (ok, out) = kubectl(root.path(), &alice, &["get", "--raw", "/version"]).await;
    assert!(ok, "{out}");
    let req = seen.lock().unwrap().pop().unwrap();
    assert_eq!(req.authorization, None);
    assert_eq!(req.peer_cn.as_deref(), Some("alice"));
}
