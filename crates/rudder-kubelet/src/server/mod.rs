//! The kubelet's HTTPS server (port 10250): container logs, exec/attach/port-forward streams
//! and health, for the API server, which presents a client certificate of the cluster CA.

pub mod logs;
mod stats;
mod stream;
mod v5;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use http::StatusCode;
use k8s_openapi::api::core::v1::Pod;

use crate::cri::{api as cri, Cri};
use crate::pods::PodManager;

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("kubelet serving certificate: {0}")]
    Cert(String),
    #[error("kubelet client CA: {0}")]
    ClientCa(String),
    #[error("listening on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

pub struct ServerConfig {
    pub addr: SocketAddr,
    /// The CA whose client certificates are accepted (the cluster CA).
    pub client_ca_pem: String,
    /// Names and addresses for the self-signed serving certificate.
    pub sans: Vec<String>,
}

#[derive(Clone)]
pub(crate) struct Ctx {
    pub pods: Arc<PodManager>,
    pub cri: Cri,
    pub rates: Arc<stats::CpuRates>,
}

fn status(code: StatusCode, msg: impl Into<String>) -> Response {
    (code, msg.into()).into_response()
}

impl Ctx {
    pub(crate) fn pod(&self, ns: &str, name: &str) -> Option<Arc<Pod>> {
        self.pods.find_pod(ns, name)
    }

    /// (current, previous) instances of a pod's container, newest first.
    pub(crate) async fn containers(
        &self,
        uid: &str,
        name: &str,
    ) -> Result<Vec<cri::Container>, Response> {
        let mut all: Vec<cri::Container> = self
            .cri
            .list_containers()
            .await
            .map_err(|e| status(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
            .into_iter()
            .filter(|c| {
                c.labels
                    .get(crate::cri::labels::POD_UID)
                    .map(String::as_str)
                    == Some(uid)
                    && c.labels
                        .get(crate::cri::labels::CONTAINER_NAME)
                        .map(String::as_str)
                        == Some(name)
            })
            .collect();
        all.sort_by_key(|c| std::cmp::Reverse(c.created_at));
        Ok(all)
    }
}

async fn healthz() -> &'static str {
    "ok"
}

async fn container_logs(
    State(ctx): State<Ctx>,
    Path((ns, pod, container)): Path<(String, String, String)>,
    Query(q): Query<std::collections::HashMap<String, String>>,
) -> Response {
    let Some(p) = ctx.pod(&ns, &pod) else {
        return status(StatusCode::NOT_FOUND, format!("pod {ns}/{pod} not found"));
    };
    let uid = p.metadata.uid.clone().unwrap_or_default();
    let instances = match ctx.containers(&uid, &container).await {
        Ok(i) => i,
        Err(r) => return r,
    };
    let truthy = |k: &str| q.get(k).is_some_and(|v| v == "true" || v == "1");
    let previous = truthy("previous");
    let Some(inst) = instances.get(usize::from(previous)).cloned() else {
        let msg = if previous {
            format!("previous terminated container \"{container}\" in pod \"{pod}\" not found")
        } else {
            format!("container \"{container}\" in pod \"{pod}\" is not available")
        };
        return status(StatusCode::BAD_REQUEST, msg);
    };
    let st = match ctx.cri.container_status(&inst.id).await {
        Ok(s) => s,
        Err(e) => return status(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    let since = q
        .get("sinceTime")
        .and_then(|t| t.parse::<jiff::Timestamp>().ok())
        .or_else(|| {
            q.get("sinceSeconds")
                .and_then(|s| s.parse::<i64>().ok())
                .and_then(|s| {
                    jiff::Timestamp::now()
                        .checked_sub(jiff::SignedDuration::from_secs(s))
                        .ok()
                })
        });
    let opts = logs::LogOptions {
        follow: truthy("follow") && !previous,
        tail_lines: q
            .get("tailLines")
            .and_then(|t| t.parse::<i64>().ok())
            .filter(|t| *t >= 0)
            .map(|t| t as usize),
        limit_bytes: q.get("limitBytes").and_then(|t| t.parse().ok()),
        since,
        timestamps: truthy("timestamps"),
    };
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    let cri_for = ctx.cri.clone();
    let id = inst.id.clone();
    tokio::spawn(logs::stream(st.log_path.into(), opts, tx, move || {
        let cri = cri_for.clone();
        let id = id.clone();
        Box::pin(async move {
            cri.container_status(&id)
                .await
                .map(|s| s.state == cri::ContainerState::ContainerRunning as i32)
                .unwrap_or(false)
        })
    }));
    let body = Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx));
    Response::builder()
        .header(http::header::CONTENT_TYPE, "text/plain")
        .body(body)
        .unwrap_or_else(|_| status(StatusCode::INTERNAL_SERVER_ERROR, "response"))
}

pub(crate) fn router(ctx: Ctx) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/containerLogs/{ns}/{pod}/{container}", get(container_logs))
        .route(
            "/exec/{ns}/{pod}/{container}",
            get(stream::exec).post(stream::exec),
        )
        .route(
            "/attach/{ns}/{pod}/{container}",
            get(stream::attach).post(stream::attach),
        )
        .route(
            "/portForward/{ns}/{pod}",
            get(stream::port_forward).post(stream::port_forward),
        )
        .route("/stats/summary", get(stats::summary))
        .route("/metrics/resource", get(stats::resource_metrics))
        .with_state(ctx)
}

fn tls_config(cfg: &ServerConfig) -> Result<Arc<rustls::ServerConfig>, ServerError> {
    use rustls_pki_types::pem::PemObject;
    let cert = rcgen::generate_simple_self_signed(cfg.sans.clone())
        .map_err(|e| ServerError::Cert(e.to_string()))?;
    let key = rustls_pki_types::PrivateKeyDer::from_pem_slice(
        cert.signing_key.serialize_pem().as_bytes(),
    )
    .map_err(|e| ServerError::Cert(e.to_string()))?;
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pki_types::CertificateDer::pem_slice_iter(cfg.client_ca_pem.as_bytes()) {
        let c = c.map_err(|e| ServerError::ClientCa(e.to_string()))?;
        roots
            .add(c)
            .map_err(|e| ServerError::ClientCa(e.to_string()))?;
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .map_err(|e| ServerError::ClientCa(e.to_string()))?;
    let mut sc = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ServerError::Cert(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(vec![cert.cert.der().clone()], key)
        .map_err(|e| ServerError::Cert(e.to_string()))?;
    sc.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(sc))
}

/// Serves until the task is dropped; only clients with a certificate of the cluster CA get in.
pub async fn serve(cfg: ServerConfig, pods: Arc<PodManager>, cri: Cri) -> Result<(), ServerError> {
    let tls = tokio_rustls::TlsAcceptor::from(tls_config(&cfg)?);
    let listener = tokio::net::TcpListener::bind(cfg.addr)
        .await
        .map_err(|source| ServerError::Listen {
            addr: cfg.addr,
            source,
        })?;
    tracing::info!(addr = %listener.local_addr().unwrap_or(cfg.addr), "kubelet server listening");
    let app = router(Ctx {
        pods,
        cri,
        rates: Arc::default(),
    });
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        let (tls, app) = (tls.clone(), app.clone());
        tokio::spawn(async move {
            let Ok(stream) = tls.accept(tcp).await else {
                return;
            };
            let svc = hyper_util::service::TowerToHyperService::new(app);
            let _ =
                hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new())
                    .serve_connection_with_upgrades(hyper_util::rt::TokioIo::new(stream), svc)
                    .await;
        });
    }
}
