//! The API server's CA, serving certificate and admin token, on disk under one directory.

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine as _;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PublicKeyData, SerialNumber,
};
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use time::OffsetDateTime;
use x509_parser::certificate::X509Certificate;

use crate::clientcert::{self, CaSigner, ClientCertRequest};
use crate::error::{PkiError, Result};
use crate::fsutil::{
    ensure_private_dir, hex, random_bytes, read_optional, write_atomic, PUBLIC_MODE, SECRET_MODE,
};
use crate::kubeconfig::KubeconfigSpec;
use crate::sans::{sans_of, wanted_sans, San};
use crate::token::load_or_create_admin_token;

/// File names inside the TLS directory.
pub const CA_CERT_FILE: &str = "ca.crt";
pub const CA_KEY_FILE: &str = "ca.key";
pub const SERVING_CERT_FILE: &str = "serving-kube-apiserver.crt";
pub const SERVING_KEY_FILE: &str = "serving-kube-apiserver.key";
/// The CA that signs only the API server's front-proxy client certificate, which aggregated
/// API servers trust for `X-Remote-User` headers (k3s's names). A separate CA, because the
/// cluster CA also signs CSRs for users, who must never be able to pose as the proxy.
pub const REQUEST_HEADER_CA_CERT_FILE: &str = "request-header-ca.crt";
pub const REQUEST_HEADER_CA_KEY_FILE: &str = "request-header-ca.key";
/// The common name of the front-proxy client certificate (k3s's), listed in
/// `requestheader-allowed-names`.
pub const PROXY_CLIENT_NAME: &str = "system:auth-proxy";
/// The admin token file's name, placed next to the TLS directory unless the caller says
/// otherwise (k3s keeps its `token` and `cred/` files beside `tls/` the same way).
pub const TOKEN_FILE_NAME: &str = "tokens.csv";

const DAY: time::Duration = time::Duration::days(1);
/// Long enough that no cluster meets it in practice (kubeadm and k3s use 10 years too); the
/// CA is never rotated automatically because every kubeconfig pins it.
const CA_VALIDITY: time::Duration = time::Duration::days(3650);
const SERVING_VALIDITY: time::Duration = time::Duration::days(365);
/// Re-issue the serving certificate at start-up when it has less than this left, as k3s does.
const SERVING_RENEW_BEFORE: time::Duration = time::Duration::days(90);
/// Certificates start slightly in the past so that a peer whose clock is a little behind
/// does not reject a certificate issued a moment ago.
const BACKDATE: time::Duration = time::Duration::minutes(5);

/// Choices the caller makes about the PKI; everything else is derived from the host.
#[derive(Clone, Debug, Default)]
pub struct PkiOptions {
    /// Extra DNS names or IP addresses for the serving certificate (a load balancer, a public
    /// name), like k3s's `--tls-san`.
    pub sans: Vec<String>,
    /// Where the static token file with the admin token lives; by default
    /// `<dir>/../tokens.csv`.
    pub token_file: Option<PathBuf>,
}

/// The cluster's certificates and the admin credential, loaded once at start-up.
///
/// The CA is created on first start and then only ever loaded, so kubeconfigs and client
/// certificates handed out earlier keep working across restarts. The serving certificate is
/// cheap to replace (clients trust the CA, not the leaf), so it is re-issued whenever the
/// names it must cover change or it nears expiry.
pub struct ClusterPki {
    dir: PathBuf,
    ca_pem: String,
    ca_der: CertificateDer<'static>,
    ca_subject_der: Vec<u8>,
    ca_key_id: Option<Vec<u8>>,
    ca_key: KeyPair,
    serving_pem: String,
    serving_sans: BTreeSet<San>,
    token_file: PathBuf,
    admin_token: String,
    service_key_pem: String,
    server_config: Arc<rustls::ServerConfig>,
}

impl fmt::Debug for ClusterPki {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterPki")
            .field("dir", &self.dir)
            .field("ca_hash", &self.ca_hash())
            .field("serving_sans", &self.serving_sans)
            .field("token_file", &self.token_file)
            .finish_non_exhaustive()
    }
}

impl ClusterPki {
    /// Loads the PKI from `dir` (for example `<data-dir>/server/tls`), creating whatever is
    /// missing, and re-issuing the serving certificate if needed.
    pub fn load_or_create(dir: &Path, opts: PkiOptions) -> Result<ClusterPki> {
        ensure_private_dir(dir)?;
        let now = OffsetDateTime::now_utc();

        let (ca_pem, ca_key) = load_or_create_ca(dir, now)?;
        let ca_path = dir.join(CA_CERT_FILE);
        let ca_der = first_cert(&ca_pem, &ca_path)?;
        let (ca_subject_der, ca_key_id) = {
            let ca = parse_cert(&ca_der, &ca_path)?;
            if ca.public_key().raw != ca_key.subject_public_key_info().as_slice() {
                return Err(PkiError::InvalidKey {
                    path: dir.join(CA_KEY_FILE),
                    reason: format!("does not match the public key of {}", ca_path.display()),
                });
            }
            if !ca.is_ca() {
                return Err(PkiError::InvalidCertificate {
                    path: ca_path.clone(),
                    reason: "not a CA certificate (basicConstraints CA:TRUE missing)".into(),
                });
            }
            let left = ca.validity().not_after.timestamp() - now.unix_timestamp();
            if left < 365 * 86_400 {
                tracing::warn!(path = %ca_path.display(), days_left = left / 86_400, "the cluster CA expires within a year; rotate it");
            }
            (ca.subject().as_raw().to_vec(), subject_key_id(&ca))
        };

        let wanted = wanted_sans(&opts.sans)?;
        let (serving_pem, serving_key_pem) =
            load_or_issue_serving(dir, &ca_der, &ca_key, &wanted, now)?;

        let token_file = match opts.token_file {
            Some(p) => p,
            None => dir
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."))
                .join(TOKEN_FILE_NAME),
        };
        let admin_token = load_or_create_admin_token(&token_file)?;
        let service_key_pem = crate::servicekey::load_or_create_service_key(
            &dir.join(crate::servicekey::SERVICE_KEY_FILE),
        )?;

        let server_config = build_server_config(
            &ca_der,
            &serving_pem,
            &serving_key_pem,
            &dir.join(SERVING_CERT_FILE),
        )?;

        Ok(ClusterPki {
            dir: dir.to_owned(),
            ca_pem,
            ca_der,
            ca_subject_der,
            ca_key_id,
            ca_key,
            serving_pem,
            serving_sans: wanted,
            token_file,
            admin_token,
            service_key_pem,
            server_config,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The CA certificate exactly as stored (and as served to joining agents).
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    pub fn ca_der(&self) -> &CertificateDer<'static> {
        &self.ca_der
    }

    /// SHA-256 of the CA bundle's bytes, lowercase hex: what a k3s-style join token pins
    /// (`K10<hash>::…`), letting an agent trust the server's `/cacerts` on first use.
    pub fn ca_hash(&self) -> String {
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, self.ca_pem.as_bytes());
        hex(digest.as_ref())
    }

    pub fn serving_cert_pem(&self) -> &str {
        &self.serving_pem
    }

    /// The names and addresses the serving certificate covers.
    pub fn serving_sans(&self) -> &BTreeSet<San> {
        &self.serving_sans
    }

    /// The static token file holding the admin token; the API server's token authenticator
    /// should read this file.
    pub fn token_file(&self) -> &Path {
        &self.token_file
    }

    /// The bearer token of `system:admin` (group `system:masters`).
    pub fn admin_token(&self) -> &str {
        &self.admin_token
    }

    /// The service-account signing key (PEM), created with the CA and kept.
    pub fn service_account_key_pem(&self) -> &str {
        &self.service_key_pem
    }

    /// A kubeconfig spec for the admin, authenticating with the admin token.
    pub fn admin_kubeconfig(&self, server_url: impl Into<String>) -> KubeconfigSpec {
        KubeconfigSpec::new(server_url, self.ca_pem.clone()).with_token(self.admin_token.clone())
    }

    /// TLS settings for the API server's listener. The client verifier makes client
    /// certificates optional, as kube-apiserver's: a request with only a bearer token still
    /// completes the handshake, while a presented certificate must chain to the cluster CA, so
    /// the x509 authenticator can trust the subject of any certificate that reaches it.
    pub fn server_tls_config(&self) -> Arc<rustls::ServerConfig> {
        Arc::clone(&self.server_config)
    }

    /// The CA as the csrsigning controller's signer.
    pub fn csr_signer(&self) -> Result<crate::CsrSigner> {
        crate::CsrSigner::from_pem(&self.ca_pem, &self.ca_key.serialize_pem())
    }

    /// The request-header CA (created on first use) and a fresh front-proxy client certificate
    /// it signed: `(CA PEM, certificate PEM, key PEM)`. The API server presents the
    /// certificate to aggregated API servers, which trust the CA only for the identity headers.
    pub fn proxy_client(&self, validity: std::time::Duration) -> Result<(String, String, String)> {
        let now = OffsetDateTime::now_utc();
        let (ca_pem, ca_key) = load_or_create_named_ca(
            &self.dir,
            now,
            REQUEST_HEADER_CA_CERT_FILE,
            REQUEST_HEADER_CA_KEY_FILE,
            "rudder-request-header-ca",
        )?;
        let ca_path = self.dir.join(REQUEST_HEADER_CA_CERT_FILE);
        let ca_der = first_cert(&ca_pem, &ca_path)?;
        let ca = parse_cert(&ca_der, &ca_path)?;
        let validity = time::Duration::try_from(validity).map_err(|_| {
            PkiError::InvalidClientCertRequest(format!("validity {validity:?} is too long"))
        })?;
        let key_id = subject_key_id(&ca);
        let (der, key) = clientcert::issue(
            &CaSigner {
                key: &ca_key,
                subject_der: ca.subject().as_raw(),
                key_id: key_id.as_deref(),
            },
            &ClientCertRequest {
                user: PROXY_CLIENT_NAME,
                groups: &[],
                not_before: now - BACKDATE,
                not_after: now + validity,
            },
        )?;
        Ok((ca_pem, pem_encode("CERTIFICATE", &der), key.serialize_pem()))
    }

    /// Issues a client certificate signed by the cluster CA, with `CN=user` and one `O` per
    /// group (Kubernetes' convention), for components' kubeconfigs and for tests. Returns
    /// `(certificate PEM, private key PEM)`; nothing is written to disk.
    pub fn issue_client_cert(
        &self,
        user: &str,
        groups: &[&str],
        validity: std::time::Duration,
    ) -> Result<(String, String)> {
        let now = OffsetDateTime::now_utc();
        let validity = time::Duration::try_from(validity).map_err(|_| {
            PkiError::InvalidClientCertRequest(format!("validity {validity:?} is too long"))
        })?;
        let (der, key) = clientcert::issue(
            &CaSigner {
                key: &self.ca_key,
                subject_der: &self.ca_subject_der,
                key_id: self.ca_key_id.as_deref(),
            },
            &ClientCertRequest {
                user,
                groups,
                not_before: now - BACKDATE,
                not_after: now + validity,
            },
        )?;
        tracing::debug!(user, ?groups, "issued client certificate");
        Ok((pem_encode("CERTIFICATE", &der), key.serialize_pem()))
    }
}

/// Loads the CA, or creates it if neither its certificate nor a usable key exists.
fn load_or_create_ca(dir: &Path, now: OffsetDateTime) -> Result<(String, KeyPair)> {
    load_or_create_named_ca(dir, now, CA_CERT_FILE, CA_KEY_FILE, "rudder-ca")
}

fn load_or_create_named_ca(
    dir: &Path,
    now: OffsetDateTime,
    cert_file: &str,
    key_file: &str,
    cn_prefix: &str,
) -> Result<(String, KeyPair)> {
    let cert_path = dir.join(cert_file);
    let key_path = dir.join(key_file);
    match (read_optional(&cert_path)?, read_optional(&key_path)?) {
        (Some(cert), Some(key)) => {
            let key = KeyPair::from_pem(&key).map_err(|e| PkiError::InvalidKey {
                path: key_path,
                reason: e.to_string(),
            })?;
            tracing::debug!(path = %cert_path.display(), "loaded cluster CA");
            Ok((cert, key))
        }
        (Some(_), None) => Err(PkiError::MissingCaKey {
            cert: cert_path,
            key: key_path,
        }),
        // A key without a certificate is what a crash between the two writes leaves; nothing
        // can trust a CA whose certificate was never written, so replacing it is safe.
        (None, _) => {
            let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
            let mut params = CertificateParams::default();
            let mut dn = DistinguishedName::new();
            // A timestamped CN, as k3s's `k3s-server-ca@<unix time>`, tells CAs of successive
            // clusters apart when debugging a trust error.
            dn.push(
                DnType::CommonName,
                format!("{cn_prefix}@{}", now.unix_timestamp()),
            );
            params.distinguished_name = dn;
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            params.key_usages = vec![
                KeyUsagePurpose::KeyCertSign,
                KeyUsagePurpose::CrlSign,
                KeyUsagePurpose::DigitalSignature,
            ];
            params.not_before = now - BACKDATE;
            params.not_after = now + CA_VALIDITY;
            params.serial_number = Some(random_serial()?);
            let cert = params.self_signed(&key)?;
            let pem = cert.pem();
            write_atomic(&key_path, key.serialize_pem().as_bytes(), SECRET_MODE)?;
            write_atomic(&cert_path, pem.as_bytes(), PUBLIC_MODE)?;
            tracing::info!(path = %cert_path.display(), "created CA");
            Ok((pem, key))
        }
    }
}

/// Returns `(cert PEM, key PEM)` of a serving certificate that is usable for `wanted`,
/// issuing a new one when the stored one is missing, broken, from another CA, about to
/// expire, or covers a different set of names.
fn load_or_issue_serving(
    dir: &Path,
    ca_der: &CertificateDer<'static>,
    ca_key: &KeyPair,
    wanted: &BTreeSet<San>,
    now: OffsetDateTime,
) -> Result<(String, String)> {
    let cert_path = dir.join(SERVING_CERT_FILE);
    let key_path = dir.join(SERVING_KEY_FILE);
    let reason = match (read_optional(&cert_path)?, read_optional(&key_path)?) {
        (Some(cert), Some(key)) => match check_serving(&cert, &key, ca_der, wanted, now) {
            Ok(()) => {
                tracing::debug!(path = %cert_path.display(), "serving certificate is current");
                return Ok((cert, key));
            }
            Err(reason) => reason,
        },
        _ => "none on disk".to_owned(),
    };

    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "kube-apiserver");
    params.distinguished_name = dn;
    params.subject_alt_names = wanted.iter().map(San::to_rcgen).collect::<Result<_>>()?;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    params.not_before = now - BACKDATE;
    params.not_after = now + SERVING_VALIDITY;
    params.serial_number = Some(random_serial()?);
    let issuer = Issuer::from_ca_cert_der(ca_der, ca_key)?;
    let cert = params.signed_by(&key, &issuer)?;
    let (cert_pem, key_pem) = (cert.pem(), key.serialize_pem());
    // Key first: a crash between the writes leaves a key that matches no certificate, which
    // the next start detects and repairs.
    write_atomic(&key_path, key_pem.as_bytes(), SECRET_MODE)?;
    write_atomic(&cert_path, cert_pem.as_bytes(), PUBLIC_MODE)?;
    tracing::info!(path = %cert_path.display(), reason, sans = %join(wanted), "issued serving certificate");
    Ok((cert_pem, key_pem))
}

/// `Ok` if the stored serving certificate can be kept, else why not.
fn check_serving(
    cert_pem: &str,
    key_pem: &str,
    ca_der: &CertificateDer<'static>,
    wanted: &BTreeSet<San>,
    now: OffsetDateTime,
) -> std::result::Result<(), String> {
    let der = CertificateDer::from_pem_slice(cert_pem.as_bytes())
        .map_err(|e| format!("unreadable certificate: {e}"))?;
    let (_, cert) = x509_parser::parse_x509_certificate(&der)
        .map_err(|e| format!("unparsable certificate: {e}"))?;
    let key = KeyPair::from_pem(key_pem).map_err(|e| format!("unreadable key: {e}"))?;
    if cert.public_key().raw != key.subject_public_key_info().as_slice() {
        return Err("key does not match certificate".into());
    }
    let (_, ca) =
        x509_parser::parse_x509_certificate(ca_der).map_err(|e| format!("unparsable CA: {e}"))?;
    if cert.issuer().as_raw() != ca.subject().as_raw()
        || cert.verify_signature(Some(ca.public_key())).is_err()
    {
        return Err("not signed by the current CA".into());
    }
    let not_after = cert.validity().not_after.timestamp();
    if not_after - now.unix_timestamp() < SERVING_RENEW_BEFORE.whole_seconds() {
        return Err(format!(
            "expires in {} days",
            (not_after - now.unix_timestamp()) / DAY.whole_seconds()
        ));
    }
    let have = sans_of(&cert);
    if &have != wanted {
        let added: Vec<_> = wanted.difference(&have).map(|s| s.to_string()).collect();
        let removed: Vec<_> = have.difference(wanted).map(|s| s.to_string()).collect();
        return Err(format!(
            "names changed (added: [{}], removed: [{}])",
            added.join(", "),
            removed.join(", ")
        ));
    }
    Ok(())
}

fn build_server_config(
    ca_der: &CertificateDer<'static>,
    cert_pem: &str,
    key_pem: &str,
    cert_path: &Path,
) -> Result<Arc<rustls::ServerConfig>> {
    // Explicit provider rather than the process default: the API server must not depend on
    // who called `install_default` first.
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca_der.clone())?;
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .allow_unauthenticated()
        .build()?;
    let cert = CertificateDer::from_pem_slice(cert_pem.as_bytes()).map_err(|e| {
        PkiError::InvalidCertificate {
            path: cert_path.to_owned(),
            reason: e.to_string(),
        }
    })?;
    let key =
        PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|e| PkiError::InvalidKey {
            path: cert_path.with_extension("key"),
            reason: e.to_string(),
        })?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(vec![cert], key)?;
    // kubectl and client-go speak HTTP/2 when offered; HTTP/1.1 remains for upgrades
    // (exec, attach, port-forward over WebSocket/SPDY) and simple clients.
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

fn first_cert(pem: &str, path: &Path) -> Result<CertificateDer<'static>> {
    CertificateDer::from_pem_slice(pem.as_bytes()).map_err(|e| PkiError::InvalidCertificate {
        path: path.to_owned(),
        reason: e.to_string(),
    })
}

fn parse_cert<'a>(der: &'a CertificateDer<'_>, path: &Path) -> Result<X509Certificate<'a>> {
    x509_parser::parse_x509_certificate(der)
        .map(|(_, c)| c)
        .map_err(|e| PkiError::InvalidCertificate {
            path: path.to_owned(),
            reason: e.to_string(),
        })
}

fn subject_key_id(cert: &X509Certificate<'_>) -> Option<Vec<u8>> {
    use x509_parser::extensions::ParsedExtension;
    cert.extensions()
        .iter()
        .find_map(|ext| match ext.parsed_extension() {
            ParsedExtension::SubjectKeyIdentifier(id) => Some(id.0.to_vec()),
            _ => None,
        })
}

fn random_serial() -> Result<SerialNumber> {
    let mut serial = random_bytes::<16>()?;
    serial[0] &= 0x7f;
    serial[0] |= 0x01;
    Ok(SerialNumber::from_slice(&serial))
}

pub(crate) fn pem_encode(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        // base64 output is ASCII, so any chunk boundary is a char boundary.
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

fn join(sans: &BTreeSet<San>) -> String {
    sans.iter()
        .map(|s| s.to_string())
        .collect::<Vec<_>>()
        .join(",")
}
