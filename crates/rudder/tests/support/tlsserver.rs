//! Certificates for test servers, and a small HTTPS JSON server for tests that play the
//! cluster's outside parties (admission and conversion webhooks): a CA of its own, a serving
//! certificate for the given names, and a
//! handler from (path, request JSON) to response JSON, on an already bound listener (so a
//! test can bind it inside a network namespace it created).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::Arc;

use serde_json::Value;

pub type Handler = Arc<dyn Fn(&str, &Value) -> Value + Send + Sync>;

/// A CA of its own and a serving certificate it signed for some names (DNS names or IP
/// addresses), as a webhook or an aggregated API server is given.
#[allow(dead_code)] // Each test binary uses its own part.
pub struct Certificates {
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
    pub cert_der: rustls_pki_types::CertificateDer<'static>,
    pub key_der: Vec<u8>,
}

impl Certificates {
    pub fn for_names(names: &[&str]) -> Certificates {
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "test server CA");
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(names)
            .unwrap()
            .signed_by(&key, &issuer)
            .unwrap();
        Certificates {
            ca_pem: ca.pem(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            cert_der: cert.der().clone(),
            key_der: key.serialize_der(),
        }
    }
}

/// A PKCS#10 request for `cn` in the groups `orgs` with DNS names `dns`, and its key.
#[allow(dead_code)]
pub fn certificate_request(
    cn: &str,
    orgs: &[&str],
    dns: &[&str],
) -> (rcgen::CertificateSigningRequest, rcgen::KeyPair) {
    let key = rcgen::KeyPair::generate().unwrap();
    let names = dns.iter().map(|d| d.to_string()).collect::<Vec<_>>();
    let mut params = rcgen::CertificateParams::new(names).unwrap();
    for o in orgs {
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, *o);
    }
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    (params.serialize_request(&key).unwrap(), key)
}

pub struct TlsJsonServer {
    /// The CA that signed the serving certificate (PEM), for `caBundle`.
    pub ca_pem: String,
}

impl TlsJsonServer {
    /// Serves `listener` on background threads, with a certificate for `names` (DNS names or
    /// IP addresses).
    pub fn start(listener: TcpListener, names: &[&str], handler: Handler) -> TlsJsonServer {
        let certs = Certificates::for_names(names);
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let tls = Arc::new(
            rustls::ServerConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(
                    vec![certs.cert_der.clone()],
                    rustls_pki_types::PrivateKeyDer::Pkcs8(certs.key_der.clone().into()),
                )
                .unwrap(),
        );
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let tls = tls.clone();
                let handler = handler.clone();
                std::thread::spawn(move || {
                    let Ok(conn) = rustls::ServerConnection::new(tls) else {
                        return;
                    };
                    let mut s = rustls::StreamOwned::new(conn, stream);
                    while serve_one(&mut s, &handler).is_some() {}
                });
            }
        });
        TlsJsonServer {
            ca_pem: certs.ca_pem,
        }
    }
}

/// One HTTP/1.1 request on a kept-alive connection; `None` when the connection ends.
fn serve_one(
    s: &mut rustls::StreamOwned<rustls::ServerConnection, std::net::TcpStream>,
    handler: &Handler,
) -> Option<()> {
    let mut reader = BufReader::new(&mut *s);
    let mut line = String::new();
    reader.read_line(&mut line).ok().filter(|n| *n > 0)?;
    let path = line.split_whitespace().nth(1)?.to_string();
    let mut len = 0usize;
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).ok().filter(|n| *n > 0)?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                len = v.trim().parse().ok()?;
            }
        }
    }
    let mut body = vec![0; len];
    reader.read_exact(&mut body).ok()?;
    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let bytes = serde_json::to_vec(&handler(&path, &request)).ok()?;
    write!(
        s,
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        bytes.len()
    )
    .ok()?;
    s.write_all(&bytes).ok()?;
    s.flush().ok()
}
