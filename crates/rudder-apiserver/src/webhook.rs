//! The API server's outgoing webhook client (upstream's `k8s.io/apiserver/pkg/util/webhook`):
//! admission webhooks and CRD conversion webhooks post JSON to a `clientConfig`, which names
//! either a `url` or a `service {namespace, name, path, port}`.
//!
//! A service is resolved to one ready endpoint of it, read from the watch cache (upstream's
//! endpoint resolver, `--enable-aggregator-routing`): the API server need not sit on a node
//! whose proxy has the service's rules. The TLS server name is still `<svc>.<ns>.svc`, as
//! upstream checks the webhook's certificate against it. A `caBundle` is the only trust root
//! when given; without one the system's roots are used, as upstream.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::client::conn::http1::SendRequest;

use base64::Engine;
use http_body_util::BodyExt;
use rudder_registry::WatchCache;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use serde_json::Value;

/// How long a webhook call may take unless its configuration says (upstream's default for
/// admission webhooks, `timeoutSeconds: 10`).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// A webhook's answer larger than this is refused (upstream caps response bodies too).
const MAX_RESPONSE_BYTES: usize = 3 * 1024 * 1024;
const SYSTEM_ROOTS: &str = "/etc/ssl/certs/ca-certificates.crt";

#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// The configuration cannot be used (bad URL, unparsable caBundle).
    #[error("{0}")]
    Config(String),
    /// The call failed (resolution, connection, TLS, timeout, HTTP status, bad body). The
    /// message follows Go's `Post "<url>": <cause>`.
    #[error("{0}")]
    Call(String),
}

/// `service` of a `clientConfig`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceRef {
    pub namespace: String,
    pub name: String,
    pub path: String,
    pub port: u16,
}

/// A webhook's `clientConfig`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientConfig {
    pub url: Option<String>,
    pub service: Option<ServiceRef>,
    /// PEM bytes of the CA bundle (decoded from the base64 in the object).
    pub ca_bundle: Option<Vec<u8>>,
}

impl ClientConfig {
    /// From the `clientConfig` object of a webhook configuration or CRD conversion.
    pub fn from_json(v: &Value) -> Result<ClientConfig, WebhookError> {
        let url = v
            .get("url")
            .and_then(Value::as_str)
            .filter(|u| !u.is_empty())
            .map(str::to_string);
        let service = match v.get("service").filter(|s| s.is_object()) {
            Some(s) => {
                let field = |k: &str| s.get(k).and_then(Value::as_str).unwrap_or("").to_string();
                let port = match s.get("port").and_then(Value::as_i64) {
                    None => 443,
                    Some(p) => u16::try_from(p)
                        .ok()
                        .filter(|p| *p > 0)
                        .ok_or_else(|| WebhookError::Config(format!("invalid port {p}")))?,
                };
                Some(ServiceRef {
                    namespace: field("namespace"),
                    name: field("name"),
                    path: field("path"),
                    port,
                })
            }
            None => None,
        };
        if url.is_none() == service.is_none() {
            return Err(WebhookError::Config(
                "exactly one of url or service is required".into(),
            ));
        }
        let ca_bundle = match v.get("caBundle").and_then(Value::as_str) {
            None | Some("") => None,
            Some(b64) => Some(
                base64::engine::general_purpose::STANDARD
                    .decode(b64)
                    .map_err(|e| WebhookError::Config(format!("invalid caBundle: {e}")))?,
            ),
        };
        Ok(ClientConfig {
            url,
            service,
            ca_bundle,
        })
    }

    /// The URL as upstream shows it in errors: the `url`, or
    /// `https://<svc>.<ns>.svc:<port><path>`.
    pub fn display_url(&self) -> String {
        match (&self.url, &self.service) {
            (Some(u), _) => u.clone(),
            (None, Some(s)) => format!(
                "https://{}.{}.svc:{}{}",
                s.name,
                s.namespace,
                s.port,
                if s.path.is_empty() { "/" } else { &s.path }
            ),
            (None, None) => String::new(),
        }
    }
}

/// Where a service's traffic goes: one ready endpoint address and port.
pub trait ServiceResolver: Send + Sync {
    fn resolve(&self, namespace: &str, name: &str, port: u16) -> Result<(String, u16), String>;
}

/// Resolves services to a ready endpoint from the watch cache's Services and EndpointSlices.
pub struct CacheResolver {
    pub cache: Arc<WatchCache>,
    pub services_prefix: String,
    pub slices_prefix: String,
}

impl ServiceResolver for CacheResolver {
    fn resolve(&self, namespace: &str, name: &str, port: u16) -> Result<(String, u16), String> {
        let key = format!("{}/{namespace}/{name}", self.services_prefix);
        let svc = self
            .cache
            .get(&self.services_prefix, &key)
            .map(|o| o.value())
            .ok_or_else(|| format!("service \"{name}\" not found"))?;
        let sp = svc
            .pointer("/spec/ports")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .find(|p| p.get("port").and_then(Value::as_i64) == Some(i64::from(port)))
            .ok_or_else(|| format!("no service port {port} found for service \"{name}\""))?;
        let port_name = sp.get("name").and_then(Value::as_str).unwrap_or("");
        let (slices, _) = self.cache.list(
            &self.slices_prefix,
            &format!("{}/{namespace}/", self.slices_prefix),
        );
        for slice in slices {
            let slice = slice.value();
            if slice.pointer("/metadata/labels/kubernetes.io~1service-name")
                != Some(&Value::from(name))
            {
                continue;
            }
            let Some(target) = slice
                .get("ports")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .find(|p| p.get("name").and_then(Value::as_str).unwrap_or("") == port_name)
                .and_then(|p| p.get("port").and_then(Value::as_u64))
                .and_then(|p| u16::try_from(p).ok())
            else {
                continue;
            };
            let ready = slice
                .get("endpoints")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter(|e| e.pointer("/conditions/ready") != Some(&Value::Bool(false)))
                .find_map(|e| e.pointer("/addresses/0").and_then(Value::as_str));
            if let Some(ip) = ready {
                return Ok((ip.to_string(), target));
            }
        }
        Err(format!("service \"{name}\" has no ready endpoints"))
    }
}

/// Posts JSON to webhooks.
#[derive(Clone)]
pub struct WebhookClient {
    resolver: Arc<dyn ServiceResolver>,
    /// TLS configurations by CA bundle: building one parses the roots, which would otherwise
    /// be paid on every call (bounded: cleared when it grows past a few hundred bundles).
    tls: Arc<std::sync::Mutex<std::collections::HashMap<Vec<u8>, Arc<rustls::ClientConfig>>>>,
    pool: Arc<Pool>,
}

impl WebhookClient {
    pub fn new(resolver: Arc<dyn ServiceResolver>) -> WebhookClient {
        WebhookClient {
            resolver,
            tls: Default::default(),
            pool: Default::default(),
        }
    }

    fn tls_for(&self, ca_bundle: Option<&[u8]>) -> Result<Arc<rustls::ClientConfig>, WebhookError> {
        let key = ca_bundle.unwrap_or_default().to_vec();
        let mut map = self.tls.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = map.get(&key) {
            return Ok(c.clone());
        }
        let cfg = Arc::new(tls_config(ca_bundle)?);
        if map.len() >= 256 {
            map.clear();
        }
        map.insert(key, cfg.clone());
        Ok(cfg)
    }

    /// POST `body` to the webhook and decode its JSON answer; `timeout` bounds the whole call.
    pub async fn post_json(
        &self,
        cfg: &ClientConfig,
        body: &Value,
        timeout: Duration,
    ) -> Result<Value, WebhookError> {
        let shown = cfg.display_url();
        match tokio::time::timeout(timeout, self.post(cfg, body)).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(WebhookError::Call(e))) => {
                Err(WebhookError::Call(format!("Post \"{shown}\": {e}")))
            }
            Ok(Err(e)) => Err(e),
            Err(_) => Err(WebhookError::Call(format!(
                "Post \"{shown}\": context deadline exceeded"
            ))),
        }
    }

    async fn post(&self, cfg: &ClientConfig, body: &Value) -> Result<Value, WebhookError> {
        let target = self.target(cfg)?;
        let payload = bytes::Bytes::from(
            serde_json::to_vec(body).map_err(|e| WebhookError::Call(e.to_string()))?,
        );
        let addr = if target.ip.contains(':') && !target.ip.starts_with('[') {
            format!("[{}]:{}", target.ip, target.port)
        } else {
            format!("{}:{}", target.ip, target.port)
        };
        let key = PoolKey {
            addr,
            https: target.https,
            server_name: target.server_name.clone(),
            ca_bundle: cfg.ca_bundle.clone().unwrap_or_default(),
        };
        let mut req = http::Request::post(&target.path_and_query)
            .header(http::header::HOST, &target.host_header)
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(http::header::ACCEPT, "application/json, */*")
            .body(axum::body::Body::from(payload))
            .map_err(|e| WebhookError::Call(e.to_string()))?;
        // An idle connection first; one the server closed meanwhile gives the request back
        // unsent, and the next idle one (or a new one) takes it.
        let (resp, sender) = loop {
            match self.pool.take(&key) {
                Some(mut sender) => match sender.try_send_request(req).await {
                    Ok(resp) => break (resp, sender),
                    Err(mut e) => match e.take_message() {
                        Some(unsent) => req = unsent,
                        None => return Err(WebhookError::Call(e.into_error().to_string())),
                    },
                },
                None => {
                    let mut sender = self.dial(&key, cfg).await?;
                    let resp = sender
                        .send_request(req)
                        .await
                        .map_err(|e| WebhookError::Call(e.to_string()))?;
                    break (resp, sender);
                }
            }
        };
        let status = resp.status();
        let bytes = http_body_util::Limited::new(resp.into_body(), MAX_RESPONSE_BYTES)
            .collect()
            .await
            .map_err(|e| WebhookError::Call(format!("reading the response: {e}")))?
            .to_bytes();
        // Read to its end, the connection can carry the next call (hyper drops it itself when
        // the server asked to close).
        self.pool.give_back(key, sender);
        if !status.is_success() {
            return Err(WebhookError::Call(format!(
                "the server responded with the status code {}: {}",
                status.as_u16(),
                String::from_utf8_lossy(&bytes).trim()
            )));
        }
        serde_json::from_slice(&bytes)
            .map_err(|e| WebhookError::Call(format!("the response is not JSON: {e}")))
    }

    /// A new HTTP/1.1 connection (TLS when the target is https) to `key`'s address.
    async fn dial(
        &self,
        key: &PoolKey,
        cfg: &ClientConfig,
    ) -> Result<SendRequest<axum::body::Body>, WebhookError> {
        let addr = &key.addr;
        let tcp = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| WebhookError::Call(format!("dial tcp {addr}: {e}")))?;
        let _ = tcp.set_nodelay(true);
        if !key.https {
            return handshake(tcp).await;
        }
        let tls = self.tls_for(cfg.ca_bundle.as_deref())?;
        let name = ServerName::try_from(key.server_name.clone())
            .map_err(|e| WebhookError::Config(format!("invalid host: {e}")))?;
        let stream = tokio_rustls::TlsConnector::from(tls)
            .connect(name, tcp)
            .await
            .map_err(|e| WebhookError::Call(format!("tls: failed to verify certificate: {e}")))?;
        handshake(stream).await
    }

    fn target(&self, cfg: &ClientConfig) -> Result<Target, WebhookError> {
        if let Some(url) = &cfg.url {
            let uri: http::Uri = url
                .parse()
                .map_err(|e| WebhookError::Config(format!("invalid url {url:?}: {e}")))?;
            // Upstream's webhooks are HTTPS only.
            let https = match uri.scheme_str() {
                Some("https") => true,
                _ => {
                    return Err(WebhookError::Config(format!(
                        "invalid url {url:?}: the scheme must be https"
                    )))
                }
            };
            let host = uri
                .host()
                .ok_or_else(|| WebhookError::Config(format!("invalid url {url:?}: no host")))?
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string();
            let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
            return Ok(Target {
                https,
                ip: host.clone(),
                port,
                server_name: host,
                host_header: uri.authority().map(|a| a.to_string()).unwrap_or_default(),
                path_and_query: uri
                    .path_and_query()
                    .map(|p| p.to_string())
                    .unwrap_or_else(|| "/".into()),
            });
        }
        let Some(svc) = &cfg.service else {
            return Err(WebhookError::Config(
                "exactly one of url or service is required".into(),
            ));
        };
        let (ip, port) = self
            .resolver
            .resolve(&svc.namespace, &svc.name, svc.port)
            .map_err(WebhookError::Call)?;
        let server_name = format!("{}.{}.svc", svc.name, svc.namespace);
        Ok(Target {
            https: true,
            ip,
            port,
            host_header: format!("{server_name}:{}", svc.port),
            server_name,
            path_and_query: if svc.path.is_empty() {
                "/".into()
            } else {
                svc.path.clone()
            },
        })
    }
}

struct Target {
    https: bool,
    /// What to dial (a name resolves through the system resolver).
    ip: String,
    port: u16,
    /// The name the certificate must carry.
    server_name: String,
    host_header: String,
    path_and_query: String,
}

/// A client configuration trusting only `ca_bundle` (or the system's roots without one).
fn tls_config(ca_bundle: Option<&[u8]>) -> Result<rustls::ClientConfig, WebhookError> {
    let pem = match ca_bundle {
        Some(b) => b.to_vec(),
        None => std::fs::read(SYSTEM_ROOTS).unwrap_or_default(),
    };
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| WebhookError::Config(format!("invalid caBundle: {e}")))?;
        // Unusable roots in the system bundle are skipped; a caBundle's must all load.
        if let Err(e) = roots.add(cert) {
            if ca_bundle.is_some() {
                return Err(WebhookError::Config(format!("invalid caBundle: {e}")));
            }
        }
    }
    if ca_bundle.is_some() && roots.is_empty() {
        return Err(WebhookError::Config(
            "invalid caBundle: no certificates".into(),
        ));
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| WebhookError::Config(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(cfg)
}

async fn handshake<T>(io: T) -> Result<SendRequest<axum::body::Body>, WebhookError>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let (sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(io))
        .await
        .map_err(|e| WebhookError::Call(e.to_string()))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

/// Where a pooled connection goes and whom it trusts: a connection is reused only for a call
/// that would have dialled the same address and verified the same name against the same roots.
#[derive(Clone, PartialEq, Eq, Hash)]
struct PoolKey {
    addr: String,
    https: bool,
    server_name: String,
    ca_bundle: Vec<u8>,
}

/// Idle keep-alive connections to webhooks, as Go's `http.Transport` keeps them for upstream's
/// webhook clients: a TLS handshake per admission call would cost more than the call (the
/// webhook benchmark measured creates/s dropping to a quarter without reuse).
#[derive(Default)]
struct Pool {
    idle: std::sync::Mutex<std::collections::HashMap<PoolKey, Vec<IdleConn>>>,
}

/// A connection and when it was last given back.
type IdleConn = (SendRequest<axum::body::Body>, Instant);

/// Go's `IdleConnTimeout` for upstream's transports.
const IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// Upstream's `MaxIdleConnsPerHost` (`utilnet.SetTransportDefaults`).
const MAX_IDLE_PER_TARGET: usize = 25;
/// Bounds the map when webhooks come and go (by address, name or caBundle).
const MAX_TARGETS: usize = 256;

impl Pool {
    /// The most recently used idle connection that is still open and fresh.
    fn take(&self, key: &PoolKey) -> Option<SendRequest<axum::body::Body>> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let conns = idle.get_mut(key)?;
        while let Some((sender, since)) = conns.pop() {
            if sender.is_ready() && since.elapsed() < IDLE_TIMEOUT {
                return Some(sender);
            }
        }
        idle.remove(key);
        None
    }

    fn give_back(&self, key: PoolKey, sender: SendRequest<axum::body::Body>) {
        if sender.is_closed() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() >= MAX_TARGETS && !idle.contains_key(&key) {
            idle.retain(|_, conns| {
                conns.retain(|(s, since)| !s.is_closed() && since.elapsed() < IDLE_TIMEOUT);
                !conns.is_empty()
            });
            if idle.len() >= MAX_TARGETS {
                return;
            }
        }
        let conns = idle.entry(key).or_default();
        if conns.len() < MAX_IDLE_PER_TARGET {
            conns.push((sender, Instant::now()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn client_configs_parse_as_upstream() {
        let c = ClientConfig::from_json(&json!({"service": {"namespace": "ns", "name": "hook"}}))
            .unwrap();
        assert_eq!(c.service.as_ref().unwrap().port, 443);
        assert_eq!(c.display_url(), "https://hook.ns.svc:443/");
        let c = ClientConfig::from_json(&json!({"url": "https://127.0.0.1:8443/m",
            "caBundle": "LS0tLQ=="}))
        .unwrap();
        assert_eq!(c.ca_bundle.as_deref(), Some(&b"----"[..]));
        assert!(ClientConfig::from_json(&json!({})).is_err());
        assert!(ClientConfig::from_json(&json!({"caBundle": "%%%", "url": "https://x"})).is_err());
    }

    struct NoServices;
    impl ServiceResolver for NoServices {
        fn resolve(&self, _: &str, name: &str, _: u16) -> Result<(String, u16), String> {
            Err(format!("service \"{name}\" not found"))
        }
    }

    #[tokio::test]
    async fn failures_name_the_url_as_go_does() {
        let client = WebhookClient::new(Arc::new(NoServices));
        let cfg =
            ClientConfig::from_json(&json!({"service": {"namespace": "n", "name": "s"}})).unwrap();
        let e = client
            .post_json(&cfg, &json!({}), Duration::from_secs(1))
            .await
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "Post \"https://s.n.svc:443/\": service \"s\" not found"
        );
        // A closed port on loopback refuses at once.
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        drop(l);
        let cfg = ClientConfig::from_json(&json!({"url": format!("https://127.0.0.1:{port}/x")}))
            .unwrap();
        let e = client
            .post_json(&cfg, &json!({}), Duration::from_secs(5))
            .await
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with(&format!(
                "Post \"https://127.0.0.1:{port}/x\": dial tcp 127.0.0.1:{port}:"
            )),
            "{e}"
        );
    }

    /// A TLS server on loopback answering `{}` and counting the connections it accepted;
    /// `close` makes it ask for each connection to be closed after one answer.
    async fn counting_server(
        dir: &std::path::Path,
        close: bool,
    ) -> (u16, String, Arc<std::sync::atomic::AtomicUsize>) {
        let pki =
            rudder_pki::ClusterPki::load_or_create(dir, rudder_pki::PkiOptions::default()).unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(pki.server_tls_config());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let svc = hyper::service::service_fn(move |_req| async move {
                        let mut resp = http::Response::new(axum::body::Body::from("{}"));
                        if close {
                            resp.headers_mut()
                                .insert(http::header::CONNECTION, "close".parse().unwrap());
                        }
                        Ok::<_, std::convert::Infallible>(resp)
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(tls), svc)
                        .await;
                });
            }
        });
        (port, pki.ca_pem().to_string(), accepted)
    }

    #[tokio::test]
    async fn calls_reuse_a_kept_alive_connection() {
        let dir = tempfile::tempdir().unwrap();
        for (close, want) in [(false, 1), (true, 5)] {
            let sub = dir.path().join(format!("close-{close}"));
            let (port, ca, accepted) = counting_server(&sub, close).await;
            let b64 = base64::engine::general_purpose::STANDARD.encode(ca);
            let cfg = ClientConfig::from_json(
                &json!({"url": format!("https://127.0.0.1:{port}/hook"), "caBundle": b64}),
            )
            .unwrap();
            let client = WebhookClient::new(Arc::new(NoServices));
            for _ in 0..5 {
                let got = client
                    .post_json(&cfg, &json!({"n": 1}), Duration::from_secs(10))
                    .await
                    .unwrap();
                assert_eq!(got, json!({}));
            }
            assert_eq!(
                accepted.load(std::sync::atomic::Ordering::SeqCst),
                want,
                "connections with close={close}"
            );
        }
    }
}
