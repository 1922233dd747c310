//! The authenticator chain the API server will run, fed by rudder-pki's credentials: the
//! admin token from the token file it writes, and client certificates it issues, presented
//! through a real (in-memory) TLS handshake with its server configuration.

use std::sync::Arc;
use std::time::Duration;

use http::header::AUTHORIZATION;
use http::{HeaderMap, HeaderValue};
use rudder_auth::user::CREDENTIAL_ID_KEY;
use rudder_auth::{
    AuthError, AuthRequest, Authenticator, TokenFileAuthenticator, UnionAuthenticator,
    X509Authenticator,
};
use rudder_pki::{ClusterPki, PkiOptions};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

/// Runs a TLS handshake between `server` and a client presenting `client_cert`, entirely in
/// memory, and returns the chain the server verified (or the server's error).
fn handshake(
    server: Arc<rustls::ServerConfig>,
    ca_pem: &str,
    client_cert: Option<(&str, &str)>,
) -> Result<Option<Vec<CertificateDer<'static>>>, rustls::Error> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca_pem.as_bytes()).unwrap())
        .unwrap();
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let config = match client_cert {
        None => builder.with_no_client_auth(),
        Some((c, k)) => builder
            .with_client_auth_cert(
                vec![CertificateDer::from_pem_slice(c.as_bytes()).unwrap()],
                PrivateKeyDer::from_pem_slice(k.as_bytes()).unwrap(),
            )
            .unwrap(),
    };
    let mut client =
        rustls::ClientConnection::new(Arc::new(config), ServerName::try_from("localhost").unwrap())
            .unwrap();
    let mut server = rustls::ServerConnection::new(server).unwrap();
    for _ in 0..20 {
        let mut buf = Vec::new();
        client.write_tls(&mut buf).unwrap();
        if !buf.is_empty() {
            server.read_tls(&mut &buf[..]).unwrap();
            server.process_new_packets()?;
        }
        let mut buf = Vec::new();
        server.write_tls(&mut buf).unwrap();
        if !buf.is_empty() {
            client.read_tls(&mut &buf[..]).unwrap();
            // The client's own errors are not what these tests look at.
            let _ = client.process_new_packets();
        }
        if !server.is_handshaking() && !client.is_handshaking() {
            return Ok(server.peer_certificates().map(|c| c.to_vec()));
        }
    }
    panic!("handshake did not finish");
}

fn chain(pki: &ClusterPki) -> UnionAuthenticator {
    let mut chain = UnionAuthenticator::default();
    chain
        .push(TokenFileAuthenticator::from_file(pki.token_file()).unwrap())
        .push(X509Authenticator::new());
    chain
}

fn bearer(token: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(
        AUTHORIZATION,
        HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
    );
    h
}

#[test]
fn admin_token_from_the_pki_token_file() {
    let root = tempfile::tempdir().unwrap();
    let pki = ClusterPki::load_or_create(&root.path().join("tls"), PkiOptions::default()).unwrap();
    let auth = chain(&pki);
    let headers = bearer(pki.admin_token());
    let user = auth
        .authenticate(&AuthRequest::new(&headers))
        .unwrap()
        .unwrap();
    assert_eq!(user.name, "system:admin");
    assert_eq!(user.uid, "admin");
    assert_eq!(user.groups, ["system:masters", "system:authenticated"]);

    let headers = bearer("not-the-token");
    assert_eq!(
        auth.authenticate(&AuthRequest::new(&headers)),
        Err(AuthError::InvalidBearerToken)
    );
    assert_eq!(
        auth.authenticate(&AuthRequest::new(&HeaderMap::new())),
        Ok(None)
    );
}

#[test]
fn client_certificate_verified_by_tls_authenticates() {
    let root = tempfile::tempdir().unwrap();
    let pki = ClusterPki::load_or_create(&root.path().join("tls"), PkiOptions::default()).unwrap();
    let (cert, key) = pki
        .issue_client_cert("alice", &["dev", "ops"], Duration::from_secs(600))
        .unwrap();
    let peer = handshake(pki.server_tls_config(), pki.ca_pem(), Some((&cert, &key)))
        .unwrap()
        .expect("server saw the client certificate");
    let auth = chain(&pki);

    let headers = HeaderMap::new();
    let req = AuthRequest::new(&headers).with_peer_certificates(&peer);
    let user = auth.authenticate(&req).unwrap().unwrap();
    assert_eq!(user.name, "alice");
    assert_eq!(user.groups, ["dev", "ops", "system:authenticated"]);
    assert!(user.extra[CREDENTIAL_ID_KEY][0].starts_with("X509SHA256="));

    // A stale token does not hide a valid certificate: the chain goes on after an error.
    let headers = bearer("stale");
    let req = AuthRequest::new(&headers).with_peer_certificates(&peer);
    assert_eq!(auth.authenticate(&req).unwrap().unwrap().name, "alice");

    // No client certificate: the handshake still succeeds (a token may follow).
    assert_eq!(
        handshake(pki.server_tls_config(), pki.ca_pem(), None).unwrap(),
        None
    );
}

#[test]
fn certificate_from_another_ca_never_reaches_the_authenticator() {
    let root = tempfile::tempdir().unwrap();
    let pki =
        ClusterPki::load_or_create(&root.path().join("a/tls"), PkiOptions::default()).unwrap();
    let other =
        ClusterPki::load_or_create(&root.path().join("b/tls"), PkiOptions::default()).unwrap();
    let (cert, key) = other
        .issue_client_cert("mallory", &["system:masters"], Duration::from_secs(600))
        .unwrap();
    let err = handshake(pki.server_tls_config(), pki.ca_pem(), Some((&cert, &key))).unwrap_err();
    assert!(matches!(err, rustls::Error::InvalidCertificate(_)), "{err}");
}
