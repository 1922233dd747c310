//! Creation, reload and re-issue of the cluster PKI on a real directory, and TLS handshakes
//! between the server configuration and rustls clients over loopback TCP.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rudder_pki::{
    ClusterPki, PkiError, PkiOptions, San, CA_CERT_FILE, CA_KEY_FILE, SERVING_CERT_FILE,
    SERVING_KEY_FILE,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

fn tls_dir(root: &Path) -> std::path::PathBuf {
    root.join("server").join("tls")
}

fn cert_of(pem: &str) -> CertificateDer<'static> {
    CertificateDer::from_pem_slice(pem.as_bytes()).unwrap()
}

#[test]
fn first_start_creates_everything() {
    let root = tempfile::tempdir().unwrap();
    let dir = tls_dir(root.path());
    let pki = ClusterPki::load_or_create(&dir, PkiOptions::default()).unwrap();

    for (file, want) in [
        (CA_CERT_FILE, 0o644),
        (CA_KEY_FILE, 0o600),
        (SERVING_CERT_FILE, 0o644),
        (SERVING_KEY_FILE, 0o600),
    ] {
        assert_eq!(mode(&dir.join(file)), want, "{file}");
    }
    let token_file = root.path().join("server").join("tokens.csv");
    assert_eq!(pki.token_file(), token_file);
    assert_eq!(mode(&token_file), 0o600);
    assert_eq!(
        std::fs::read_to_string(&token_file).unwrap(),
        format!(
            "{},system:admin,admin,\"system:masters\"\n",
            pki.admin_token()
        )
    );
    assert_eq!(pki.admin_token().len(), 64);

    // The CA: self-signed, CA:TRUE, CN rudder-ca@<unix time>, ten years.
    assert_eq!(
        std::fs::read_to_string(dir.join(CA_CERT_FILE)).unwrap(),
        pki.ca_pem()
    );
    let ca_der = cert_of(pki.ca_pem());
    let (_, ca) = x509_parser::parse_x509_certificate(&ca_der).unwrap();
    assert!(ca.is_ca());
    let cn = ca
        .subject()
        .iter_common_name()
        .next()
        .unwrap()
        .as_str()
        .unwrap();
    assert!(cn.starts_with("rudder-ca@"), "{cn}");
    let years = (ca.validity().not_after.timestamp() - ca.validity().not_before.timestamp())
        / (365 * 86_400);
    assert_eq!(years, 10);
    assert_eq!(
        ca.public_key().algorithm.algorithm.to_id_string(),
        "1.2.840.10045.2.1"
    );
    ca.verify_signature(None).unwrap();

    // The hash k3s-style join tokens pin: sha256 of the CA file's bytes.
    let digest = aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        &std::fs::read(dir.join(CA_CERT_FILE)).unwrap(),
    );
    let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(pki.ca_hash(), hex);

    // The serving certificate: signed by the CA, for every wanted name.
    let serving_der = cert_of(pki.serving_cert_pem());
    let (_, serving) = x509_parser::parse_x509_certificate(&serving_der).unwrap();
    serving.verify_signature(Some(ca.public_key())).unwrap();
    assert!(!serving.is_ca());
    let sans = serving.subject_alternative_name().unwrap().unwrap().value;
    let text = format!("{:?}", sans.general_names);
    for want in [
        "localhost",
        "kubernetes.default.svc.cluster.local",
        "kubernetes.default.svc",
        "kubernetes.default",
        "\"kubernetes\"",
    ] {
        assert!(text.contains(want), "{want} missing from {text}");
    }
    for ip in ["127.0.0.1", "::1", "10.43.0.1"] {
        assert!(pki.serving_sans().contains(&San::Ip(ip.parse().unwrap())));
    }
    assert_eq!(sans.general_names.len(), pki.serving_sans().len());
}

#[test]
fn restart_keeps_ca_token_and_serving_cert() {
    let root = tempfile::tempdir().unwrap();
    let dir = tls_dir(root.path());
    let first = ClusterPki::load_or_create(&dir, PkiOptions::default()).unwrap();
    let second = ClusterPki::load_or_create(&dir, PkiOptions::default()).unwrap();
    assert_eq!(first.ca_pem(), second.ca_pem());
    assert_eq!(first.ca_hash(), second.ca_hash());
    assert_eq!(first.admin_token(), second.admin_token());
    assert_eq!(first.serving_cert_pem(), second.serving_cert_pem());
}

#[test]
fn san_change_reissues_serving_cert_with_same_ca() {
    let root = tempfile::tempdir().unwrap();
    let dir = tls_dir(root.path());
    let first = ClusterPki::load_or_create(&dir, PkiOptions::default()).unwrap();
    let opts = PkiOptions {
        sans: vec!["Rudder.Example.COM".into(), "203.0.113.9".into()],
        ..Default::default()
    };
    let second = ClusterPki::load_or_create(&dir, opts.clone()).unwrap();
    assert_eq!(first.ca_pem(), second.ca_pem());
    assert_eq!(first.admin_token(), second.admin_token());
    assert_ne!(first.serving_cert_pem(), second.serving_cert_pem());
    assert!(second
        .serving_sans()
        .contains(&San::Dns("rudder.example.com".into())));

    let der = cert_of(second.serving_cert_pem());
    let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
    let names = format!(
        "{:?}",
        cert.subject_alternative_name().unwrap().unwrap().value
    );
    assert!(names.contains("rudder.example.com"), "{names}");
    assert!(names.contains("[203, 0, 113, 9]"), "{names}");

    // Same options again: nothing to do.
    let third = ClusterPki::load_or_create(&dir, opts).unwrap();
    assert_eq!(second.serving_cert_pem(), third.serving_cert_pem());
    // Back to the defaults: the extra names go away again.
    let fourth = ClusterPki::load_or_create(&dir, PkiOptions::default()).unwrap();
    assert!(!fourth
        .serving_sans()
        .contains(&San::Dns("rudder.example.com".into())));
    assert_ne!(third.serving_cert_pem(), fourth.serving_cert_pem());
}

#[test]
fn invalid_extra_san_is_an_error() {
    let root = tempfile::tempdir().unwrap();
    let err = ClusterPki::load_or_create(
        &tls_dir(root.path()),
        PkiOptions {
            sans: vec!["not a name".into()],
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(matches!(err, PkiError::InvalidSan(_)), "{err}");
}

#[test]
fn serving_cert_near_expiry_or_with_wrong_key_is_reissued() {
    let root = tempfile::tempdir().unwrap();
    let dir = tls_dir(root.path());
    let first = ClusterPki::load_or_create(&dir, PkiOptions::default()).unwrap();

    // Replace the serving certificate by one for the same names that expires in 30 days.
    let ca_key =
        rcgen::KeyPair::from_pem(&std::fs::read_to_string(dir.join(CA_KEY_FILE)).unwrap()).unwrap();
    let issuer = rcgen::Issuer::from_ca_cert_pem(first.ca_pem(), &ca_key).unwrap();
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let names: Vec<String> = first.serving_sans().iter().map(|s| s.to_string()).collect();
    let mut params = rcgen::CertificateParams::new(names).unwrap();
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + time::Duration::days(30);
    let short = params.signed_by(&key, &issuer).unwrap();
    std::fs::write(dir.join(SERVING_CERT_FILE), short.pem()).unwrap();
    std::fs::write(dir.join(SERVING_KEY_FILE), key.serialize_pem()).unwrap();
    let second = ClusterPki::load_or_create(&dir, PkiOptions::default()).unwrap();
    assert_ne!(second.serving_cert_pem(), short.pem());
    let der = cert_of(second.serving_cert_pem());
    let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
    assert!(cert.validity().not_after.timestamp() - now.unix_timestamp() > 300 * 86_400);

    // A key that does not match the certificate (a crash between the two writes).
    let other = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    std::fs::write(dir.join(SERVING_KEY_FILE), other.serialize_pem()).unwrap();
    let third = ClusterPki::load_or_create(&dir, PkiOptions::default()).unwrap();
    assert_ne!(third.serving_cert_pem(), second.serving_cert_pem());
    assert_eq!(third.ca_pem(), first.ca_pem());
}

#[test]
fn missing_ca_key_is_fatal_not_silently_replaced() {
    let root = tempfile::tempdir().unwrap();
    let dir = tls_dir(root.path());
    ClusterPki::load_or_create(&dir, PkiOptions::default()).unwrap();
    std::fs::remove_file(dir.join(CA_KEY_FILE)).unwrap();
    let err = ClusterPki::load_or_create(&dir, PkiOptions::default()).unwrap_err();
    assert!(matches!(err, PkiError::MissingCaKey { .. }), "{err}");
}

#[test]
fn token_file_path_can_be_chosen() {
    let root = tempfile::tempdir().unwrap();
    let path = root.path().join("cred").join("admin-tokens.csv");
    let pki = ClusterPki::load_or_create(
        &tls_dir(root.path()),
        PkiOptions {
            token_file: Some(path.clone()),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(pki.token_file(), path);
    assert!(std::fs::read_to_string(&path)
        .unwrap()
        .starts_with(pki.admin_token()));
    assert!(!root.path().join("server").join("tokens.csv").exists());
}

#[test]
fn client_cert_has_cn_and_one_o_per_group() {
    let root = tempfile::tempdir().unwrap();
    let pki = ClusterPki::load_or_create(&tls_dir(root.path()), PkiOptions::default()).unwrap();
    let (cert_pem, key_pem) = pki
        .issue_client_cert(
            "alice",
            &["system:masters", "dev", "ops"],
            Duration::from_secs(3600),
        )
        .unwrap();
    assert!(key_pem.contains("PRIVATE KEY"));
    let der = cert_of(&cert_pem);
    let (rest, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
    assert!(rest.is_empty());
    let cn: Vec<_> = cert
        .subject()
        .iter_common_name()
        .map(|a| a.as_str().unwrap())
        .collect();
    let orgs: Vec<_> = cert
        .subject()
        .iter_organization()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(cn, ["alice"]);
    assert_eq!(orgs, ["system:masters", "dev", "ops"]);
    assert_eq!(cert.version(), x509_parser::x509::X509Version::V3);
    let ca_der = cert_of(pki.ca_pem());
    let (_, ca) = x509_parser::parse_x509_certificate(&ca_der).unwrap();
    assert_eq!(cert.issuer().as_raw(), ca.subject().as_raw());
    cert.verify_signature(Some(ca.public_key())).unwrap();
    let eku = cert.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.client_auth && !eku.server_auth);
    assert!(!cert.is_ca());
    let life = cert.validity().not_after.timestamp() - cert.validity().not_before.timestamp();
    assert_eq!(life, 3600 + 300);
    // The key in the PEM is the certificate's key.
    let key = rcgen::KeyPair::from_pem(&key_pem).unwrap();
    use rcgen::PublicKeyData;
    assert_eq!(
        cert.public_key().raw,
        key.subject_public_key_info().as_slice()
    );

    assert!(pki
        .issue_client_cert("", &[], Duration::from_secs(60))
        .is_err());
    assert!(pki
        .issue_client_cert("bob", &[""], Duration::from_secs(60))
        .is_err());
}

/// OpenSSL, when installed, agrees the client certificate chains to the CA for client use.
#[test]
fn openssl_verifies_client_cert() {
    if std::process::Command::new("openssl")
        .arg("version")
        .output()
        .is_err()
    {
        eprintln!("openssl not installed; skipped");
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let pki = ClusterPki::load_or_create(&tls_dir(root.path()), PkiOptions::default()).unwrap();
    let (cert_pem, _) = pki
        .issue_client_cert(
            "system:kube-scheduler",
            &["a", "b"],
            Duration::from_secs(600),
        )
        .unwrap();
    let cert = root.path().join("client.crt");
    std::fs::write(&cert, &cert_pem).unwrap();
    let out = std::process::Command::new("openssl")
        .args(["verify", "-purpose", "sslclient", "-CAfile"])
        .arg(tls_dir(root.path()).join(CA_CERT_FILE))
        .arg(&cert)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let out = std::process::Command::new("openssl")
        .args(["x509", "-noout", "-subject", "-nameopt", "RFC2253", "-in"])
        .arg(&cert)
        .output()
        .unwrap();
    let subject = String::from_utf8_lossy(&out.stdout);
    assert!(
        subject.contains("CN=system:kube-scheduler,O=b,O=a"),
        "{subject}"
    );
}

// ----- TLS handshakes over loopback TCP -----

fn client_config(ca_pem: &str, client_cert: Option<(&str, &str)>) -> Arc<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert_of(ca_pem)).unwrap();
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let mut config = match client_cert {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => builder
            .with_client_auth_cert(
                vec![cert_of(cert)],
                PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap(),
            )
            .unwrap(),
    };
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Arc::new(config)
}

/// What the server saw of one connection.
#[derive(Debug)]
struct Seen {
    alpn: Option<Vec<u8>>,
    peer_cn: Option<String>,
}

/// Runs one handshake between `server` and a client built from `client`, then exchanges a
/// ping. Returns the server's view, or the server's error.
async fn handshake(
    server: Arc<rustls::ServerConfig>,
    client: Arc<rustls::ClientConfig>,
    server_name: &str,
) -> (Result<Seen, String>, Result<(), String>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server_task = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.map_err(|e| e.to_string())?;
        let mut tls = tokio_rustls::TlsAcceptor::from(server)
            .accept(tcp)
            .await
            .map_err(|e| e.to_string())?;
        let mut buf = [0u8; 4];
        tls.read_exact(&mut buf).await.map_err(|e| e.to_string())?;
        tls.write_all(b"pong").await.map_err(|e| e.to_string())?;
        tls.shutdown().await.map_err(|e| e.to_string())?;
        let (_, conn) = tls.get_ref();
        let peer_cn = conn.peer_certificates().map(|certs| {
            let (_, c) = x509_parser::parse_x509_certificate(&certs[0]).unwrap();
            let cn = c
                .subject()
                .iter_common_name()
                .next()
                .unwrap()
                .as_str()
                .unwrap()
                .to_owned();
            cn
        });
        Ok::<_, String>(Seen {
            alpn: conn.alpn_protocol().map(|p| p.to_vec()),
            peer_cn,
        })
    });
    let name = ServerName::try_from(server_name.to_owned()).unwrap();
    let client_result = async {
        let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        let mut tls = tokio_rustls::TlsConnector::from(client)
            .connect(name, tcp)
            .await
            .map_err(|e| e.to_string())?;
        tls.write_all(b"ping").await.map_err(|e| e.to_string())?;
        let mut buf = [0u8; 4];
        tls.read_exact(&mut buf).await.map_err(|e| e.to_string())?;
        assert_eq!(&buf, b"pong");
        Ok::<_, String>(())
    }
    .await;
    let server_result = tokio::time::timeout(Duration::from_secs(10), server_task)
        .await
        .expect("server task hung")
        .unwrap();
    (server_result, client_result)
}

#[tokio::test]
async fn tls_without_client_cert_is_accepted() {
    let root = tempfile::tempdir().unwrap();
    let pki = ClusterPki::load_or_create(&tls_dir(root.path()), PkiOptions::default()).unwrap();
    for name in ["localhost", "127.0.0.1", "kubernetes.default.svc"] {
        let (server, client) = handshake(
            pki.server_tls_config(),
            client_config(pki.ca_pem(), None),
            name,
        )
        .await;
        client.unwrap();
        let seen = server.unwrap();
        assert_eq!(seen.alpn.as_deref(), Some(&b"h2"[..]));
        assert_eq!(seen.peer_cn, None);
    }
}

#[tokio::test]
async fn tls_with_client_cert_is_verified() {
    let root = tempfile::tempdir().unwrap();
    let pki = ClusterPki::load_or_create(&tls_dir(root.path()), PkiOptions::default()).unwrap();
    let (cert, key) = pki
        .issue_client_cert("alice", &["dev", "ops"], Duration::from_secs(3600))
        .unwrap();
    let (server, client) = handshake(
        pki.server_tls_config(),
        client_config(pki.ca_pem(), Some((&cert, &key))),
        "localhost",
    )
    .await;
    client.unwrap();
    assert_eq!(server.unwrap().peer_cn.as_deref(), Some("alice"));
}

#[tokio::test]
async fn tls_rejects_client_cert_from_another_ca() {
    let root = tempfile::tempdir().unwrap();
    let pki = ClusterPki::load_or_create(&tls_dir(root.path()), PkiOptions::default()).unwrap();
    let other_root = tempfile::tempdir().unwrap();
    let other =
        ClusterPki::load_or_create(&tls_dir(other_root.path()), PkiOptions::default()).unwrap();
    let (cert, key) = other
        .issue_client_cert("mallory", &["system:masters"], Duration::from_secs(3600))
        .unwrap();
    let (server, client) = handshake(
        pki.server_tls_config(),
        client_config(pki.ca_pem(), Some((&cert, &key))),
        "localhost",
    )
    .await;
    // UnknownIssuer, or BadSignature when both CAs were created in the same second and so
    // share a subject name.
    let err = server.unwrap_err();
    assert!(err.contains("invalid peer certificate"), "{err}");
    assert!(client.is_err());
}

#[tokio::test]
async fn tls_client_rejects_server_for_unknown_name_or_ca() {
    let root = tempfile::tempdir().unwrap();
    let pki = ClusterPki::load_or_create(&tls_dir(root.path()), PkiOptions::default()).unwrap();
    let (_, client) = handshake(
        pki.server_tls_config(),
        client_config(pki.ca_pem(), None),
        "not-a-san.example",
    )
    .await;
    assert!(client.is_err());

    let other_root = tempfile::tempdir().unwrap();
    let other =
        ClusterPki::load_or_create(&tls_dir(other_root.path()), PkiOptions::default()).unwrap();
    let (_, client) = handshake(
        pki.server_tls_config(),
        client_config(other.ca_pem(), None),
        "localhost",
    )
    .await;
    assert!(client.is_err());
}

/// The server shares one `ClusterPki` across connection tasks.
#[test]
fn cluster_pki_is_shareable() {
    fn assert_send_sync<T: Send + Sync + 'static>() {}
    assert_send_sync::<ClusterPki>();
}
