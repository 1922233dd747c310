//! Kubelet TLS bootstrap (upstream's `pkg/kubelet/certificate/bootstrap`, with k3s's join
//! token): an agent holding only the server URL and the join token
//! `K10<sha256 of the CA bundle>::<id>.<secret>` fetches the CA from `/cacerts` without
//! trusting it, checks it against the token's hash, then asks for a node client certificate
//! with a CertificateSigningRequest made as the bootstrap token, waits for the controllers to
//! approve and issue it, and writes `kubelet.kubeconfig` for `system:node:<name>`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use k8s_openapi::api::certificates::v1::{
    CertificateSigningRequest, CertificateSigningRequestSpec,
};
use k8s_openapi::ByteString;
use kube::api::{Api, ObjectMeta, PostParams};
use rudder_auth::bootstrap::JoinToken;

/// The kubeconfig the agent's certificate is written to, under the agent directory.
pub const KUBECONFIG_FILE: &str = "kubelet.kubeconfig";
/// The server's CA, as fetched and verified.
pub const SERVER_CA_FILE: &str = "server-ca.crt";
/// `certificatesv1.KubeAPIServerClientKubeletSignerName`.
const SIGNER: &str = "kubernetes.io/kube-apiserver-client-kubelet";
/// The kubelet's usages for a non-RSA key (an RSA key adds key encipherment).
const USAGES: [&str; 2] = ["digital signature", "client auth"];
/// A certificate with less than this share of its life left is replaced, as the kubelet's
/// certificate manager rotates at 70–90 % of the validity.
const RENEW_FRACTION: f64 = 0.2;
/// The longest pause between attempts to reach the server.
const RETRY_MAX: Duration = Duration::from_secs(30);
/// How long to wait for approval and issuance.
const ISSUE_TIMEOUT: Duration = Duration::from_secs(30 * 60);

#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    #[error("invalid join token: {0}")]
    InvalidToken(String),
    #[error("the join token was refused by {0}")]
    TokenRefused(String),
    #[error(
        "the CA certificate served by {server} has hash {actual}, but the join token expects {expected}: \
         this is not the server the token belongs to"
    )]
    CaHashMismatch {
        server: String,
        expected: String,
        actual: String,
    },
    #[error("fetching {url}: {message}")]
    FetchCa { url: String, message: String },
    #[error("the node certificate request {name} was denied: {message}")]
    Denied { name: String, message: String },
    #[error("the node certificate request {name} failed: {message}")]
    Failed { name: String, message: String },
    #[error("timed out after {0:?} waiting for the node certificate request {1} to be approved and issued")]
    Timeout(Duration, String),
    #[error("{0}")]
    Certificate(String),
    #[error("talking to {server}: {source}")]
    Api {
        server: String,
        #[source]
        source: kube::Error,
    },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Returns the kubeconfig of `system:node:<node_name>` under `agent_dir`: the one there while
/// its certificate has more than a fifth of its life left; else a new certificate, requested
/// with the current one while it is valid (a renewal) or with the join token.
pub async fn bootstrap(
    server: &str,
    token: &str,
    node_name: &str,
    agent_dir: &Path,
) -> Result<PathBuf, BootstrapError> {
    let kubeconfig = agent_dir.join(KUBECONFIG_FILE);
    let server = server.trim_end_matches('/');
    let current = existing(&kubeconfig, jiff::Timestamp::now().as_second());
    if let Existing::Fresh(left) = current {
        tracing::info!(path = %kubeconfig.display(), days_left = left / 86_400, "using the existing node client certificate");
        return Ok(kubeconfig);
    }
    let join = JoinToken::parse(token).map_err(BootstrapError::InvalidToken)?;
    // A certificate near its end renews itself, as the kubelet's certificate manager does
    // (csrapproving's selfnodeclient); while the server cannot be reached it stays in use, and
    // the join token is the fallback when the server refuses it.
    let issued = match current {
        Existing::Renewable {
            ca_pem,
            cert_pem,
            key_pem,
        } => {
            let spec = rudder_pki::KubeconfigSpec::new(server, ca_pem.clone())
                .with_client_cert(cert_pem, key_pem);
            match request_certificate(client(&spec).await?, server, node_name).await {
                Ok(issued) => Some((ca_pem, issued)),
                Err(BootstrapError::TokenRefused(_)) => {
                    tracing::warn!(
                        "the server refused the current node certificate; joining with the token"
                    );
                    None
                }
                Err(e) => {
                    tracing::warn!(error = %e, "could not renew the node client certificate; using the current one until it expires");
                    return Ok(kubeconfig);
                }
            }
        }
        _ => None,
    };
    let (ca_pem, (name, cert_pem, key_pem)) = match issued {
        Some(done) => done,
        None => join_with_token(server, &join, node_name).await?,
    };

    let ca_path = agent_dir.join(SERVER_CA_FILE);
    write_file(&ca_path, ca_pem.as_bytes(), 0o644)?;
    let mut spec =
        rudder_pki::KubeconfigSpec::new(server, ca_pem).with_client_cert(cert_pem, key_pem);
    spec.user = format!("system:node:{node_name}");
    let yaml = rudder_pki::kubeconfig_yaml(&spec)
        .map_err(|e| BootstrapError::Certificate(e.to_string()))?;
    write_file(&kubeconfig, yaml.as_bytes(), 0o600)?;
    tracing::info!(path = %kubeconfig.display(), csr = %name, "node client certificate issued");
    Ok(kubeconfig)
}

/// The token's way in: the CA checked against its hash, then a CSR as the bootstrap token.
/// While the server cannot be reached (or answers with an error other than refusing the
/// token), it tries again with back-off, as k3s's agent waits for its server.
async fn join_with_token(
    server: &str,
    join: &JoinToken,
    node_name: &str,
) -> Result<(String, (String, String, String)), BootstrapError> {
    let mut delay = Duration::from_secs(1);
    loop {
        let attempt = async {
            let ca_pem = trusted_ca(server, join).await?;
            let spec = rudder_pki::KubeconfigSpec::new(server, ca_pem.clone())
                .with_token(join.token.clone());
            let issued = request_certificate(client(&spec).await?, server, node_name).await?;
            Ok((ca_pem, issued))
        };
        match attempt.await {
            Err(e @ (BootstrapError::FetchCa { .. } | BootstrapError::Api { .. })) => {
                tracing::warn!(error = %e, retry_in = ?delay, "waiting for the server");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(RETRY_MAX);
            }
            done => return done,
        }
    }
}

/// The server's CA from `/cacerts`, checked against the token's hash.
async fn trusted_ca(server: &str, join: &JoinToken) -> Result<String, BootstrapError> {
    let ca_pem = fetch_ca(server).await?;
    let actual = sha256_hex(ca_pem.as_bytes());
    match &join.ca_hash {
        Some(expected) if *expected != actual => Err(BootstrapError::CaHashMismatch {
            server: server.to_string(),
            expected: expected.clone(),
            actual,
        }),
        Some(_) => Ok(ca_pem),
        None => {
            tracing::warn!(
                server,
                ca_hash = %actual,
                "the join token carries no CA hash: trusting the server's CA on first use"
            );
            Ok(ca_pem)
        }
    }
}

/// Creates the node's CSR with `client` and waits until it is issued; returns (CSR name,
/// certificate PEM, key PEM).
async fn request_certificate(
    client: kube::Client,
    server: &str,
    node_name: &str,
) -> Result<(String, String, String), BootstrapError> {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .map_err(|e| BootstrapError::Certificate(format!("generating a key: {e}")))?;
    let common_name = format!("system:node:{node_name}");
    let request = certificate_request(&key, &common_name)?;
    let name = digested_name(&key, &common_name, &["system:nodes"], &USAGES);
    let api: Api<CertificateSigningRequest> = Api::all(client);
    let csr = CertificateSigningRequest {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            ..Default::default()
        },
        spec: CertificateSigningRequestSpec {
            request: ByteString(request.into_bytes()),
            signer_name: SIGNER.into(),
            usages: Some(USAGES.iter().map(|u| u.to_string()).collect()),
            ..Default::default()
        },
        status: None,
    };
    let api_error = |source: kube::Error| match &source {
        kube::Error::Api(s) if s.code == 401 => BootstrapError::TokenRefused(server.to_string()),
        _ => BootstrapError::Api {
            server: server.to_string(),
            source,
        },
    };
    match api.create(&PostParams::default(), &csr).await {
        Ok(_) => {}
        // The same key, subject and usages: a request made before a restart.
        Err(kube::Error::Api(s)) if s.code == 409 => {}
        Err(e) => return Err(api_error(e)),
    }
    tracing::info!(csr = %name, node = node_name, "requested a node client certificate; waiting for approval");
    let done = |c: Option<&CertificateSigningRequest>| {
        c.is_some_and(|c| {
            certificate(c).is_some()
                || verdict(c, "Denied").is_some()
                || verdict(c, "Failed").is_some()
        })
    };
    let issued = tokio::time::timeout(
        ISSUE_TIMEOUT,
        kube::runtime::wait::await_condition(api, &name, done),
    )
    .await
    .map_err(|_| BootstrapError::Timeout(ISSUE_TIMEOUT, name.clone()))?
    .map_err(|e| BootstrapError::Certificate(format!("watching {name}: {e}")))?
    .ok_or_else(|| BootstrapError::Certificate(format!("{name} was deleted")))?;
    if let Some(message) = verdict(&issued, "Denied") {
        return Err(BootstrapError::Denied { name, message });
    }
    if let Some(message) = verdict(&issued, "Failed") {
        return Err(BootstrapError::Failed { name, message });
    }
    let cert_pem = certificate(&issued)
        .ok_or_else(|| BootstrapError::Certificate(format!("{name} has no certificate")))?;

    Ok((name, cert_pem, key.serialize_pem()))
}

/// A kube client for `spec`.
async fn client(spec: &rudder_pki::KubeconfigSpec) -> Result<kube::Client, BootstrapError> {
    let bad =
        |e: String| BootstrapError::Certificate(format!("building the bootstrap client: {e}"));
    let yaml = rudder_pki::kubeconfig_yaml(spec).map_err(|e| bad(e.to_string()))?;
    let kc = kube::config::Kubeconfig::from_yaml(&yaml).map_err(|e| bad(e.to_string()))?;
    let config =
        kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
            .await
            .map_err(|e| bad(e.to_string()))?;
    kube::Client::try_from(config).map_err(|e| bad(e.to_string()))
}

/// The issued certificate, PEM.
fn certificate(csr: &CertificateSigningRequest) -> Option<String> {
    csr.status
        .as_ref()
        .and_then(|s| s.certificate.as_ref())
        .filter(|c| !c.0.is_empty())
        .map(|c| String::from_utf8_lossy(&c.0).into_owned())
}

/// The message of a True condition of `type_`.
fn verdict(csr: &CertificateSigningRequest, type_: &str) -> Option<String> {
    csr.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_ && c.status == "True")
        .map(|c| {
            let reason = c.reason.clone().unwrap_or_default();
            match c.message.as_deref().filter(|m| !m.is_empty()) {
                Some(m) if reason.is_empty() => m.to_string(),
                Some(m) => format!("{m} ({reason})"),
                None => reason,
            }
        })
}

/// A PKCS#10 request for `CN=<common_name>, O=system:nodes`, PEM.
fn certificate_request(key: &rcgen::KeyPair, common_name: &str) -> Result<String, BootstrapError> {
    let bad = |e: rcgen::Error| BootstrapError::Certificate(format!("building the request: {e}"));
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).map_err(bad)?;
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, "system:nodes");
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, common_name);
    params
        .serialize_request(key)
        .and_then(|r| r.pem())
        .map_err(bad)
}

/// The kubelet's `digestedName`: `node-csr-` and the SHA-512/256 of the public key, subject and
/// usages, so a restarted agent with the same key finds its earlier request.
fn digested_name(key: &rcgen::KeyPair, cn: &str, orgs: &[&str], usages: &[&str]) -> String {
    use rcgen::PublicKeyData as _;
    let encode = |d: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(d);
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA512_256);
    let mut write = |d: &[u8]| {
        ctx.update(encode(d).as_bytes());
        ctx.update(b"|");
    };
    write(&key.subject_public_key_info());
    write(cn.as_bytes());
    for o in orgs {
        write(o.as_bytes());
    }
    for u in usages {
        write(u.as_bytes());
    }
    format!("node-csr-{}", encode(ctx.finish().as_ref()))
}

fn sha256_hex(data: &[u8]) -> String {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// What an agent directory's kubeconfig holds.
#[derive(Debug, PartialEq, Eq)]
enum Existing {
    /// No usable certificate.
    None,
    /// Seconds left on a certificate with more than [`RENEW_FRACTION`] of its life left.
    Fresh(i64),
    /// A still valid certificate near its end, which can ask for its successor.
    Renewable {
        ca_pem: String,
        cert_pem: String,
        key_pem: String,
    },
}

fn existing(kubeconfig: &Path, now: i64) -> Existing {
    // Read as plain YAML: kube's typed kubeconfig hides the key behind `secrecy`.
    let Some(kc) = std::fs::read_to_string(kubeconfig)
        .ok()
        .and_then(|t| serde_saphyr::from_str::<serde_json::Value>(&t).ok())
    else {
        return Existing::None;
    };
    let decode = |pointer: &str| {
        let b64 = kc.pointer(pointer)?.as_str()?;
        let bytes = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
        String::from_utf8(bytes).ok()
    };
    let (Some(cert_pem), Some(key_pem)) = (
        decode("/users/0/user/client-certificate-data"),
        decode("/users/0/user/client-key-data"),
    ) else {
        return Existing::None;
    };
    let ca_pem = decode("/clusters/0/cluster/certificate-authority-data");
    let Some(der) = pem_body(&cert_pem) else {
        return Existing::None;
    };
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(&der) else {
        return Existing::None;
    };
    let (from, to) = (
        cert.validity().not_before.timestamp(),
        cert.validity().not_after.timestamp(),
    );
    let left = to - now;
    if (left as f64) > (to - from) as f64 * RENEW_FRACTION {
        return Existing::Fresh(left);
    }
    match ca_pem {
        Some(ca_pem) if left > 0 => Existing::Renewable {
            ca_pem,
            cert_pem,
            key_pem,
        },
        _ => Existing::None,
    }
}

/// The DER of the first PEM block.
fn pem_body(text: &str) -> Option<Vec<u8>> {
    let start = text.find("-----BEGIN CERTIFICATE-----")? + "-----BEGIN CERTIFICATE-----".len();
    let end = start + text[start..].find("-----END CERTIFICATE-----")?;
    let b64: String = text[start..end]
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    base64::engine::general_purpose::STANDARD.decode(b64).ok()
}

fn write_file(path: &Path, data: &[u8], mode: u32) -> Result<(), BootstrapError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|source| BootstrapError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
    }
    rudder_pki::write_atomic(path, data, mode)
        .map_err(|e| BootstrapError::Certificate(e.to_string()))
}

/// `GET <server>/cacerts` over TLS without verifying the server: what it returns is checked
/// against the token's hash instead (k3s's agent does the same with an insecure client).
async fn fetch_ca(server: &str) -> Result<String, BootstrapError> {
    let url = format!("{server}/cacerts");
    let fail = |message: String| BootstrapError::FetchCa {
        url: url.clone(),
        message,
    };
    let uri: http::Uri = url.parse().map_err(|e| fail(format!("{e}")))?;
    if uri.scheme_str() != Some("https") {
        return Err(fail("the server URL must be https://".into()));
    }
    let host = uri
        .host()
        .unwrap_or_default()
        .trim_matches(['[', ']'])
        .to_string();
    let port = uri.port_u16().unwrap_or(443);
    let tls =
        rudder_pki::insecure::any_server_client_config(None).map_err(|e| fail(e.to_string()))?;
    let tcp = tokio::net::TcpStream::connect((host.as_str(), port))
        .await
        .map_err(|e| fail(e.to_string()))?;
    let name =
        rustls_pki_types::ServerName::try_from(host.clone()).map_err(|e| fail(e.to_string()))?;
    let stream = tokio_rustls::TlsConnector::from(Arc::new(tls))
        .connect(name, tcp)
        .await
        .map_err(|e| fail(e.to_string()))?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| fail(e.to_string()))?;
    tokio::spawn(conn);
    let req = http::Request::get(uri.path())
        .header(
            http::header::HOST,
            uri.authority().map(|a| a.as_str()).unwrap_or_default(),
        )
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .map_err(|e| fail(e.to_string()))?;
    let resp = tokio::time::timeout(Duration::from_secs(30), sender.send_request(req))
        .await
        .map_err(|_| fail("timed out".into()))?
        .map_err(|e| fail(e.to_string()))?;
    let status = resp.status();
    let body = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .map_err(|e| fail(e.to_string()))?
        .to_bytes();
    if !status.is_success() {
        return Err(fail(format!("{status}")));
    }
    String::from_utf8(body.to_vec()).map_err(|_| fail("the CA bundle is not text".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_names_are_stable_per_key() {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let a = digested_name(&key, "system:node:a", &["system:nodes"], &USAGES);
        assert_eq!(
            a,
            digested_name(&key, "system:node:a", &["system:nodes"], &USAGES)
        );
        assert_ne!(
            a,
            digested_name(&key, "system:node:b", &["system:nodes"], &USAGES)
        );
        // node-csr- + 43 characters of unpadded base64url (32 bytes).
        assert_eq!(a.len(), "node-csr-".len() + 43);
    }

    #[test]
    fn reuses_a_certificate_with_life_left() {
        let dir = tempfile::tempdir().unwrap();
        let pki =
            rudder_pki::ClusterPki::load_or_create(&dir.path().join("tls"), Default::default())
                .unwrap();
        let now = jiff::Timestamp::now().as_second();
        let path = dir.path().join(KUBECONFIG_FILE);
        let write = |validity: u64| {
            let (cert, key) = pki
                .issue_client_cert(
                    "system:node:a",
                    &["system:nodes"],
                    Duration::from_secs(validity),
                )
                .unwrap();
            let spec = rudder_pki::KubeconfigSpec::new("https://127.0.0.1:6443", pki.ca_pem())
                .with_client_cert(cert, key);
            write_file(
                &path,
                rudder_pki::kubeconfig_yaml(&spec).unwrap().as_bytes(),
                0o600,
            )
            .unwrap();
        };
        assert_eq!(existing(&path, now), Existing::None, "no kubeconfig");
        write(86_400);
        // Issued 5 minutes back-dated for a day: most of it is left.
        assert!(matches!(existing(&path, now), Existing::Fresh(_)));
        // When 90 % of it has gone it asks for its successor, and once expired it is useless.
        assert!(matches!(
            existing(&path, now + 80_000),
            Existing::Renewable { .. }
        ));
        assert_eq!(existing(&path, now + 90_000), Existing::None);
    }

    #[test]
    fn condition_messages() {
        let mut csr = CertificateSigningRequest::default();
        assert_eq!(verdict(&csr, "Denied"), None);
        csr.status = Some(
            k8s_openapi::api::certificates::v1::CertificateSigningRequestStatus {
                conditions: Some(vec![
                    k8s_openapi::api::certificates::v1::CertificateSigningRequestCondition {
                        type_: "Denied".into(),
                        status: "True".into(),
                        reason: Some("KubectlDeny".into()),
                        message: Some("This CSR was denied by kubectl certificate deny.".into()),
                        ..Default::default()
                    },
                ]),
                certificate: None,
            },
        );
        assert_eq!(
            verdict(&csr, "Denied").unwrap(),
            "This CSR was denied by kubectl certificate deny. (KubectlDeny)"
        );
    }
}
