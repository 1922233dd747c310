//! Rudder's Kubernetes API server.
//!
//! A request flows: TLS (client certificates verified against the cluster CA) → the router
//! (health, version and metrics need no credentials) → authentication (client certificate or
//! bearer token; 401) → request-info parsing → authorization seam (403) → the verb handler,
//! which decodes the body and calls the generic store (admission and the per-type strategy run
//! there) → the state store; reads and watches come from the watch cache.

pub mod admission_policy;
pub mod admission_webhook;
pub mod aggregator;
pub mod audit;
pub mod conversion;
pub mod crd;
pub mod discovery;
pub mod dupes;
pub mod encode;
pub mod gojson;
pub mod impersonation;
pub mod podproxy;
pub mod pretty;
pub mod rbac;
pub mod request;
pub mod rest;
pub mod review;
pub mod svcproxy;
pub mod tokens;
pub mod watch;
pub mod webhook;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use http::{header, HeaderValue, StatusCode};
use http_body_util::BodyExt;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use rudder_api::status::ApiError;
use rudder_auth::{AuthRequest, Authenticator, Authorizer, Decision, UserInfo};
use rudder_registry::GenericStore;
use rustls_pki_types::CertificateDer;
use tower_http::compression::predicate::Predicate;

use crate::request::Query;

/// Upstream's limit on request bodies (3 MiB, `MaxRequestBodyBytes`).
pub(crate) const MAX_BODY: usize = 3 * 1024 * 1024;
/// The Kubernetes version whose API this server serves.
pub const KUBE_MAJOR: &str = "1";
pub const KUBE_MINOR: &str = "37";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    verb: String,
    group: String,
    resource: String,
    subresource: String,
    code: String,
}

/// Request metrics (`apiserver_request_total`), rendered on `/metrics`.
#[derive(Default)]
pub struct Metrics {
    requests: Family<RequestLabels, Counter>,
}

/// The API server's shared state.
pub struct ApiServer {
    pub gs: GenericStore,
    pub authn: Box<dyn Authenticator>,
    pub authz: Arc<dyn Authorizer>,
    /// The RBAC objects the authorizer reads, when RBAC is an authorization mode: also what
    /// SelfSubjectRulesReview enumerates and the escalation checks of role writes compare.
    pub rbac: Option<Arc<rudder_auth::rbac::RbacIndex>>,
    /// Set once start-up (namespaces, caches) is complete; `/readyz` reports it.
    pub ready: AtomicBool,
    pub metrics: Metrics,
    /// The address advertised in the legacy `/api` document.
    pub advertise_address: String,
    /// Metrics of in-process components (scheduler, controllers), appended to `/metrics` as
    /// upstream's separate processes would serve them on their own ports.
    pub component_metrics: std::sync::RwLock<Vec<MetricsSource>>,
    /// The service-account token issuer (TokenRequest, OIDC discovery); `None` serves neither.
    pub service_accounts: Option<Arc<tokens::ServiceAccountTokens>>,
    /// How `pods/log`, `exec`, `attach` and `portforward` reach kubelets; `None` refuses them.
    pub kubelet_client: Option<podproxy::KubeletClient>,
    /// The audit policy and log (`--audit-policy-file`, `--audit-log-path`); `None` audits
    /// nothing.
    pub auditor: Option<audit::Auditor>,
    /// API aggregation (APIServices, the front proxy); `None` serves only local groups.
    pub aggregator: Option<aggregator::Aggregator>,
}

/// Runs one of the API server's own controllers (CRDs, APIServices) for as long as the
/// server runs, starting it again a second after it stops on an error.
pub(crate) fn run_controller<F, Fut>(server: Arc<ApiServer>, name: &'static str, run: F)
where
    F: Fn(Arc<ApiServer>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<(), rudder_api::status::ApiError>> + Send,
{
    tokio::spawn(async move {
        loop {
            if let Err(err) = run(server.clone()).await {
                tracing::warn!(%err, controller = name, "controller restarting");
            }
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        }
    });
}

/// A built-in resource's registry entry, which the server's own controllers need.
pub(crate) fn builtin_entry(
    gs: &GenericStore,
    group: &str,
    resource: &str,
) -> Result<Arc<rudder_registry::Entry>, rudder_api::status::ApiError> {
    gs.registry.get(group, "v1", resource).ok_or_else(|| {
        rudder_api::status::ApiError::internal_error(format!("{resource} are not registered"))
    })
}

/// Renders a component's metrics in the Prometheus text format.
pub type MetricsSource = Arc<dyn Fn(&mut String) + Send + Sync>;

/// The identity of an in-process component (scheduler, controllers, node agent), attached by the
/// composition root to every request its `kube::Client` sends through [`ApiServer::router`]
/// without a socket. Request extensions cannot be set from the network, so this is as trusted
/// as a client certificate, and authorization applies to the user exactly as to a remote one.
#[derive(Clone, Debug)]
pub struct InProcessUser(pub UserInfo);

/// The TLS peer's certificates, attached to each request of a connection.
#[derive(Clone)]
pub struct PeerCertificates(pub Arc<Vec<CertificateDer<'static>>>);

impl ApiServer {
    /// The router: public endpoints, then everything else behind authentication.
    pub fn router(self: &Arc<Self>) -> Router {
        let openapi = crd::with_openapi(
            &self.gs,
            rudder_openapi::OpenApi::new(
                self.gs.registry.entries().iter().map(|e| e.info.clone()),
                &format!("v{KUBE_MAJOR}.{KUBE_MINOR}.0"),
            ),
        );
        let api = Router::new()
            .merge(rudder_openapi::router(Arc::new(openapi)))
            .fallback(handle)
            .layer(axum::middleware::from_fn_with_state(
                self.clone(),
                audit::middleware,
            ))
            .layer(axum::middleware::from_fn_with_state(
                self.clone(),
                authenticate,
            ));
        Router::new()
            .route("/healthz", get(health))
            .route("/livez", get(health))
            .route("/readyz", get(health))
            .route("/healthz/{check}", get(health_check))
            .route("/livez/{check}", get(health_check))
            .route("/readyz/{check}", get(health_check))
            .route("/version", get(version))
            .merge(api)
            .layer(axum::middleware::from_fn(pretty::indent_for_humans))
            .layer(tower_http::compression::CompressionLayer::new().compress_when(LargeBodies))
            .with_state(self.clone())
    }

    fn record(&self, info: &request::RequestInfo, apply: bool, code: u16) {
        self.metrics
            .requests
            .get_or_create(&RequestLabels {
                verb: metric_verb(info, apply),
                group: info.group.clone(),
                resource: info.resource.clone(),
                subresource: info.subresource.clone(),
                code: code.to_string(),
            })
            .inc();
    }
}

/// Upstream gzips responses of 128 KiB and more when the client accepts it. Streams (watches)
/// have no known size and are never compressed.
#[derive(Clone, Copy)]
struct LargeBodies;

impl Predicate for LargeBodies {
    fn should_compress<B: http_body::Body>(&self, response: &http::Response<B>) -> bool {
        response
            .body()
            .size_hint()
            .exact()
            .is_some_and(|n| n >= 128 * 1024)
    }
}

async fn authenticate(State(s): State<Arc<ApiServer>>, mut req: Request, next: Next) -> Response {
    if let Some(InProcessUser(user)) = req.extensions().get::<InProcessUser>().cloned() {
        return match act_as(&s, user, &mut req) {
            Ok(()) => next.run(req).await,
            Err(e) => encode::error_response(&e),
        };
    }
    let certs = req.extensions().get::<PeerCertificates>().cloned();
    let result = {
        let mut ar = AuthRequest::new(req.headers());
        if let Some(c) = &certs {
            ar = ar.with_peer_certificates(&c.0);
        }
        s.authn.authenticate(&ar)
    };
    match result {
        Ok(Some(user)) => match act_as(&s, user, &mut req) {
            Ok(()) => next.run(req).await,
            Err(e) => encode::error_response(&e),
        },
        Ok(None) | Err(_) => {
            if let Err(e) = &result {
                tracing::debug!(error = %e, "authentication failed");
            }
            encode::error_response(&ApiError::new_generic(
                401,
                rudder_api::status::StatusReason::Unauthorized,
                "Unauthorized",
            ))
        }
    }
}

/// Attach the user the request acts as: the authenticated one, or whom it impersonates.
fn act_as(s: &ApiServer, user: UserInfo, req: &mut Request) -> Result<(), ApiError> {
    let user = if impersonation::requested(req.headers()) {
        let acting = impersonation::impersonate(s.authz.as_ref(), &user, req.headers())?;
        impersonation::strip(req.headers_mut());
        acting
    } else {
        user
    };
    req.extensions_mut().insert(user);
    Ok(())
}

/// What a request asks (query, upstream's RequestInfo) and who asks (set by authentication).
pub(crate) fn request_context(
    parts: &http::request::Parts,
) -> (Query, request::RequestInfo, UserInfo) {
    let query = Query::parse(parts.uri.query());
    let info = request::parse(&parts.method, parts.uri.path(), &query);
    let user = parts
        .extensions
        .get::<UserInfo>()
        .cloned()
        .unwrap_or_else(|| UserInfo::new("system:anonymous"));
    (query, info, user)
}

/// The `verb` label of `apiserver_request_total` as upstream's installer and `CleanVerb` name
/// it: HTTP-style verbs (`POST` for a create, `PUT` for an update), `APPLY` for a server-side
/// apply patch, `CONNECT` for exec, attach, port-forward and proxy.
fn metric_verb(info: &request::RequestInfo, apply: bool) -> String {
    let connect = info.resource_request
        && matches!(
            info.subresource.as_str(),
            "exec" | "attach" | "portforward" | "proxy"
        );
    match info.verb.as_str() {
        _ if connect => "CONNECT",
        "create" => "POST",
        "update" => "PUT",
        "patch" if apply => "APPLY",
        "patch" => "PATCH",
        "get" => "GET",
        "list" => "LIST",
        "watch" => "WATCH",
        "delete" => "DELETE",
        "deletecollection" => "DELETECOLLECTION",
        other => return other.to_uppercase(),
    }
    .to_string()
}

/// Everything under `/api`, `/apis` and the other authenticated paths.
async fn handle(State(s): State<Arc<ApiServer>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let (query, info, user) = request_context(&parts);
    let apply = parts
        .headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/apply-patch"));
    let attrs = rudder_auth::Attributes {
        verb: info.verb.clone(),
        api_group: info.group.clone(),
        api_version: info.version.clone(),
        resource: info.resource.clone(),
        subresource: info.subresource.clone(),
        namespace: info.namespace.clone(),
        name: info.name.clone(),
        path: info.path.clone(),
        resource_request: info.resource_request,
    };
    let audit = parts
        .extensions
        .get::<rudder_registry::AuditContext>()
        .cloned()
        .unwrap_or_default();
    let decision = s.authz.authorize(&user, &attrs);
    if audit.enabled() {
        // Upstream's authorization filter annotates every audited request with its decision.
        let (verdict, reason) = match &decision {
            Decision::Allow => ("allow", ""),
            Decision::NoOpinion => ("forbid", ""),
            Decision::Deny(r) | Decision::NoOpinionBecause(r) => ("forbid", r.as_str()),
        };
        audit.add("authorization.k8s.io/decision", verdict);
        audit.add("authorization.k8s.io/reason", reason);
    }
    match decision {
        Decision::Allow => {}
        Decision::NoOpinion => return encode::error_response(&forbidden(&user, &info, "")),
        Decision::Deny(reason) | Decision::NoOpinionBecause(reason) => {
            return encode::error_response(&forbidden(&user, &info, &reason))
        }
    }
    if let Some(route) = s
        .aggregator
        .as_ref()
        .and_then(|a| a.route(parts.uri.path()))
    {
        match route {
            aggregator::Route::Proxy(remote) => {
                let req = Request::from_parts(parts, body);
                let resp = aggregator::proxy(&s, &remote, &user, req).await;
                s.record(&info, apply, resp.status().as_u16());
                return resp;
            }
            aggregator::Route::Group(_) => {}
        }
    }
    if info.resource_request && podproxy::is_proxied(&info.group, &info.resource, &info.subresource)
    {
        let req = Request::from_parts(parts, body);
        let r = if info.resource == "nodes" {
            podproxy::handle_node_proxy(&s, &info.name, req).await
        } else if info.subresource == "proxy" {
            svcproxy::handle(&s, &info.namespace, &info.resource, &info.name, req).await
        } else {
            podproxy::handle(
                &s,
                &info.namespace,
                &info.name,
                &info.subresource,
                &query,
                req,
            )
            .await
        };
        return r.unwrap_or_else(|e| encode::error_response(&e));
    }
    let body = match collect_body(&parts.headers, body).await {
        Ok(b) => b,
        Err(e) => return encode::error_response(&e),
    };
    let resp = if info.resource_request {
        match s
            .gs
            .registry
            .get(&info.group, &info.version, &info.resource)
        {
            Some(entry) => {
                let call = rest::Call {
                    server: &s,
                    info: &info,
                    entry,
                    query: &query,
                    headers: &parts.headers,
                    body,
                    user: &user,
                    audit,
                };
                rest::dispatch(call).await.unwrap_or_else(|e| {
                    let accept = parts
                        .headers
                        .get(header::ACCEPT)
                        .and_then(|v| v.to_str().ok());
                    encode::error_negotiated(accept, &e)
                })
            }
            None => encode::error_response(&rest::not_found_route()),
        }
    } else if parts.uri.path() == "/metrics" && parts.method == http::Method::GET {
        // Upstream authorizes /metrics as a non-resource URL like any other path; only the
        // health checks and /version are public.
        metrics(&s)
    } else if let Some(doc) = s
        .service_accounts
        .as_ref()
        .filter(|_| parts.method == http::Method::GET)
        .and_then(|t| t.discovery_document(parts.uri.path()))
    {
        doc
    } else {
        non_resource(&s, &parts.headers, parts.uri.path())
    };
    s.record(&info, apply, resp.status().as_u16());
    resp
}

/// Read a request body of at most `MAX_BODY` bytes, as upstream's `limitedReadBody`. A larger
/// body is answered 413 at once; what the client still sends is read and dropped in the
/// background (bounded), so the connection is not reset under a client that is still
/// uploading and it sees the 413 instead of a broken pipe.
async fn collect_body(headers: &http::HeaderMap, mut body: Body) -> Result<bytes::Bytes, ApiError> {
    let too_large = || ApiError::request_entity_too_large(&format!("limit is {MAX_BODY}"));
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY as u64) {
        // A client waiting for `100 Continue` sends nothing when answered first; polling its
        // body would invite the whole upload.
        let waits = headers
            .get(header::EXPECT)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
        if !waits {
            drain(body);
        }
        return Err(too_large());
    }
    let mut buf = bytes::BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame =
            frame.map_err(|e| ApiError::bad_request(format!("error reading request body: {e}")))?;
        if let Some(data) = frame.data_ref() {
            if buf.len() + data.len() > MAX_BODY {
                drain(body);
                return Err(too_large());
            }
            buf.extend_from_slice(data);
        }
    }
    Ok(buf.freeze())
}

/// Read and drop the rest of an oversized body: at most 1 GiB or one minute, then give up
/// (the connection is then closed under the client).
fn drain(mut body: Body) {
    tokio::spawn(async move {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
        let mut left: u64 = 1 << 30;
        while let Ok(Some(Ok(frame))) = tokio::time::timeout_at(deadline, body.frame()).await {
            let n = frame.data_ref().map_or(0, |d| d.len() as u64);
            if n >= left {
                break;
            }
            left -= n;
        }
    });
}

/// Upstream's `responsewriters.Forbidden`: what was refused, then the authorizers' reason.
fn forbidden(user: &UserInfo, info: &request::RequestInfo, reason: &str) -> ApiError {
    let msg = if info.resource_request {
        let mut m = format!(
            "User \"{}\" cannot {} resource \"{}\"",
            user.name,
            info.verb,
            if info.subresource.is_empty() {
                info.resource.clone()
            } else {
                format!("{}/{}", info.resource, info.subresource)
            }
        );
        m.push_str(&format!(" in API group \"{}\"", info.group));
        if !info.namespace.is_empty() {
            m.push_str(&format!(" in the namespace \"{}\"", info.namespace));
        } else {
            m.push_str(" at the cluster scope");
        }
        m
    } else {
        format!(
            "User \"{}\" cannot {} path \"{}\"",
            user.name, info.verb, info.path
        )
    };
    let msg = if reason.is_empty() {
        msg
    } else {
        format!("{msg}: {reason}")
    };
    let gr = rudder_api::status::GroupResource::new(info.group.clone(), info.resource.clone());
    ApiError::forbidden(&gr, &info.name, msg)
}

/// Discovery and other non-resource paths.
fn non_resource(s: &ApiServer, headers: &http::HeaderMap, path: &str) -> Response {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if let Some(r) = aggregator::discovery(s, path, accept) {
        return r;
    }
    discovery::serve(
        &s.gs.registry.snapshot(),
        &s.advertise_address,
        path,
        accept,
    )
    .unwrap_or_else(|| encode::error_response(&rest::not_found_route()))
}

/// The named checks of `/livez`, `/readyz` and `/healthz`, and whether each passes.
async fn checks(s: &ApiServer, ready_checks: bool) -> Vec<(&'static str, bool)> {
    let store_ok = s.gs.store.current_revision().await.is_ok();
    let mut out = vec![("ping", true), ("log", true), ("etcd", store_ok)];
    if ready_checks {
        out.push(("informer-sync", s.ready.load(Ordering::Acquire)));
        out.push((
            "poststarthook/rudder-bootstrap",
            s.ready.load(Ordering::Acquire),
        ));
        out.push(("shutdown", true));
    }
    out
}

fn text(code: StatusCode, body: String) -> Response {
    let mut r = (code, body).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r.headers_mut().insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    r
}

async fn health(State(s): State<Arc<ApiServer>>, req: Request) -> Response {
    let path = req.uri().path().trim_start_matches('/').to_string();
    let verbose = Query::parse(req.uri().query()).get("verbose").is_some();
    let results = checks(&s, path == "readyz").await;
    let ok = results.iter().all(|(_, pass)| *pass);
    if !verbose && ok {
        return text(StatusCode::OK, "ok".into());
    }
    let mut body = String::new();
    for (name, pass) in &results {
        if *pass {
            body.push_str(&format!("[+]{name} ok\n"));
        } else {
            body.push_str(&format!("[-]{name} failed: reason withheld\n"));
        }
    }
    if ok {
        body.push_str(&format!("{path} check passed\n"));
        text(StatusCode::OK, body)
    } else {
        body.push_str(&format!("{path} check failed\n"));
        text(StatusCode::INTERNAL_SERVER_ERROR, body)
    }
}

async fn health_check(
    State(s): State<Arc<ApiServer>>,
    axum::extract::Path(check): axum::extract::Path<String>,
    req: Request,
) -> Response {
    let readyz = req.uri().path().starts_with("/readyz");
    let results = checks(&s, readyz).await;
    match results.iter().find(|(n, _)| *n == check) {
        Some((_, true)) => text(StatusCode::OK, "ok".into()),
        Some((name, false)) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("[-]{name} failed: reason withheld\n"),
        ),
        None => text(StatusCode::NOT_FOUND, "404 page not found\n".into()),
    }
}

/// `/version`, always indented as upstream's `WriteRawJSON` writes it, in its field order.
async fn version() -> Response {
    #[derive(serde::Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Info {
        major: &'static str,
        minor: &'static str,
        emulation_major: &'static str,
        emulation_minor: &'static str,
        min_compatibility_major: &'static str,
        min_compatibility_minor: &'static str,
        git_version: String,
        git_commit: &'static str,
        git_tree_state: &'static str,
        build_date: &'static str,
        go_version: &'static str,
        compiler: &'static str,
        platform: String,
    }
    let info = Info {
        major: KUBE_MAJOR,
        minor: KUBE_MINOR,
        emulation_major: KUBE_MAJOR,
        emulation_minor: KUBE_MINOR,
        min_compatibility_major: KUBE_MAJOR,
        min_compatibility_minor: "36",
        git_version: format!(
            "v{KUBE_MAJOR}.{KUBE_MINOR}.0+rudder.{}",
            env!("CARGO_PKG_VERSION")
        ),
        git_commit: "",
        git_tree_state: "clean",
        build_date: "",
        go_version: "",
        compiler: "rustc",
        platform: format!(
            "{}/{}",
            std::env::consts::OS,
            match std::env::consts::ARCH {
                "x86_64" => "amd64",
                "aarch64" => "arm64",
                a => a,
            }
        ),
    };
    match serde_json::to_vec_pretty(&info) {
        Ok(body) => encode::bytes_response(StatusCode::OK, encode::JSON, body.into()),
        Err(e) => encode::error_response(&ApiError::internal_error(e)),
    }
}

fn metrics(s: &ApiServer) -> Response {
    let mut registry = prometheus_client::registry::Registry::default();
    registry.register(
        "apiserver_request",
        "Counter of apiserver requests broken out for each verb, API group, resource and HTTP response code.",
        s.metrics.requests.clone(),
    );
    let mut out = String::new();
    if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &registry) {
        return encode::error_response(&ApiError::internal_error(e));
    }
    let rss = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .nth(1)
                .and_then(|p| p.parse::<u64>().ok())
        })
        .map_or(0, |pages| pages * 4096);
    out.push_str(&format!(
        "# HELP process_resident_memory_bytes Resident memory size in bytes.\n# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes {rss}\n"
    ));
    if let Ok(sources) = s.component_metrics.read() {
        for source in sources.iter() {
            source(&mut out);
        }
    }
    text(StatusCode::OK, out)
}

/// Serve HTTPS on `listener` until `shutdown` resolves.
pub async fn serve_tls(
    listener: tokio::net::TcpListener,
    tls: Arc<rustls::ServerConfig>,
    router: Router,
    shutdown: impl std::future::Future<Output = ()> + Send,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    continue;
                }
            },
            _ = &mut shutdown => return,
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let router = router.clone();
        tokio::spawn(async move {
            let stream = match acceptor.accept(tcp).await {
                Ok(s) => s,
                Err(e) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
            };
            let certs = stream.get_ref().1.peer_certificates().map(|c| {
                PeerCertificates(Arc::new(c.iter().map(|c| c.clone().into_owned()).collect()))
            });
            let svc = tower::ServiceExt::map_request(
                router,
                move |mut req: http::Request<hyper::body::Incoming>| {
                    if let Some(c) = &certs {
                        req.extensions_mut().insert(c.clone());
                    }
                    req.extensions_mut().insert(audit::PeerAddr(peer));
                    req
                },
            );
            let svc = hyper_util::service::TowerToHyperService::new(svc);
            let builder =
                hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
            if let Err(e) = builder
                .serve_connection_with_upgrades(hyper_util::rt::TokioIo::new(stream), svc)
                .await
            {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_metrics_name_verbs_as_upstream() {
        let verb = |method: &str, path: &str, query: &str, apply: bool| {
            let method = http::Method::from_bytes(method.as_bytes()).unwrap();
            let info = request::parse(&method, path, &Query::parse(Some(query)));
            metric_verb(&info, apply)
        };
        let pods = "/api/v1/namespaces/ns/pods";
        assert_eq!(verb("POST", pods, "", false), "POST");
        assert_eq!(verb("GET", pods, "", false), "LIST");
        assert_eq!(verb("GET", pods, "watch=true", false), "WATCH");
        assert_eq!(verb("GET", &format!("{pods}/p"), "", false), "GET");
        assert_eq!(verb("PUT", &format!("{pods}/p/status"), "", false), "PUT");
        assert_eq!(verb("PATCH", &format!("{pods}/p"), "", false), "PATCH");
        assert_eq!(verb("PATCH", &format!("{pods}/p"), "", true), "APPLY");
        assert_eq!(verb("DELETE", pods, "", false), "DELETECOLLECTION");
        assert_eq!(
            verb("POST", &format!("{pods}/p/binding"), "", false),
            "POST"
        );
        assert_eq!(
            verb("POST", &format!("{pods}/p/exec"), "", false),
            "CONNECT"
        );
        assert_eq!(verb("GET", "/healthz", "", false), "GET");
    }
}
