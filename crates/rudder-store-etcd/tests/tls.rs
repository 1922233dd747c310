//! Connecting to an etcd that serves TLS and requires client certificates.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rudder_store::{Store, StoreError, WriteOptions};
use rudder_store_etcd::{EtcdConfig, EtcdStore, EtcdTls};

fn openssl(dir: &Path, args: &[&str]) {
    let status = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("run openssl");
    assert!(status.success(), "openssl {args:?}");
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate, all signed by the CA.
fn make_certs(dir: &Path) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=rudder-test-ca",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
        ],
    );
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    std::fs::write(dir.join("client.ext"), "extendedKeyUsage=clientAuth\n").unwrap();
    for (name, cn) in [("server", "127.0.0.1"), ("client", "rudder")] {
        openssl(
            dir,
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-subj",
                &format!("/CN={cn}"),
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.csr"),
            ],
        );
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &format!("{name}.csr"),
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "1",
                "-extfile",
                &format!("{name}.ext"),
                "-out",
                &format!("{name}.pem"),
            ],
        );
    }
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_certificates_are_presented() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    make_certs(d);
    let (client_port, peer_port) = (free_port(), free_port());
    let client_url = format!("https://127.0.0.1:{client_port}");
    let peer_url = format!("http://127.0.0.1:{peer_port}");
    let bin = rudder_store_etcd::testing::etcd_binary();
    let log = std::fs::File::create(d.join("etcd.log")).unwrap();
    let _etcd = Killed(
        Command::new(bin)
            .args(["--name", "tls", "--data-dir"])
            .arg(d.join("data"))
            .args(["--listen-client-urls", &client_url])
            .args(["--advertise-client-urls", &client_url])
            .args(["--listen-peer-urls", &peer_url])
            .args(["--initial-advertise-peer-urls", &peer_url])
            .args(["--initial-cluster", &format!("tls={peer_url}")])
            .args(["--logger", "zap", "--log-outputs", "stderr"])
            .arg("--client-cert-auth")
            .arg("--trusted-ca-file")
            .arg(d.join("ca.pem"))
            .arg("--cert-file")
            .arg(d.join("server.pem"))
            .arg("--key-file")
            .arg(d.join("server.key"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("run etcd"),
    );
    let config = |cert: bool| EtcdConfig {
        endpoints: vec![client_url.clone()],
        tls: Some(EtcdTls {
            ca_pem: d.join("ca.pem"),
            cert_pem: cert.then(|| d.join("client.pem")),
            key_pem: cert.then(|| d.join("client.key")),
        }),
        request_timeout: Duration::from_secs(2),
        ..Default::default()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let store = loop {
        match EtcdStore::connect(config(true)).await {
            Ok(s) => break s,
            Err(e) if Instant::now() < deadline => {
                eprintln!("waiting for etcd: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!(
                "cannot connect over TLS: {e}\n{}",
                std::fs::read_to_string(d.join("etcd.log")).unwrap_or_default()
            ),
        }
    };
    let rev = store
        .create("/tls", Bytes::from_static(b"v"), WriteOptions::default())
        .await
        .unwrap();
    assert_eq!(
        store
            .get("/tls", None)
            .await
            .unwrap()
            .0
            .unwrap()
            .mod_revision,
        rev
    );
    // Without the client certificate etcd refuses the handshake.
    let err = EtcdStore::connect(config(false)).await.err();
    assert!(matches!(err, Some(StoreError::Unavailable(_))), "{err:?}");
    // A certificate without its key is a configuration error.
    let mut half = config(true);
    if let Some(tls) = half.tls.as_mut() {
        tls.key_pem = None;
    }
    let err = EtcdStore::connect(half).await.err();
    assert!(
        matches!(err, Some(StoreError::InvalidRequest(_))),
        "{err:?}"
    );
    // TLS settings with a plain-HTTP endpoint are refused rather than ignored.
    let mut plain = config(true);
    plain.endpoints = vec![format!("http://127.0.0.1:{client_port}")];
    let err = EtcdStore::connect(plain).await.err();
    assert!(
        matches!(err, Some(StoreError::InvalidRequest(_))),
        "{err:?}"
    );
}
