//! API aggregation, as upstream's kube-aggregator does it in front of kube-apiserver:
//!
//! - **Local APIServices**: every group version this server serves (built-in ones and those of
//!   CustomResourceDefinitions) has an `APIService` named `<version>.<group>` with no service,
//!   kept by the autoregister controllers with upstream's labels and priorities, and always
//!   `Available` (`Local`).
//! - **Service-backed APIServices**: requests under `/apis/<group>/<version>` are proxied to one
//!   ready endpoint of the service over TLS (verified against `caBundle`, server name
//!   `<service>.<namespace>.svc`, unless `insecureSkipTLSVerify`), presenting the front-proxy
//!   client certificate and the caller's identity in `X-Remote-User`/`X-Remote-Group`/
//!   `X-Remote-Extra-*` headers, after this server authenticated and authorized the request.
//!   Endpoints come from EndpointSlices, as with upstream's `--enable-aggregator-routing`: the
//!   API server needs no service proxy on its own host (a `--disable-agent` server has none).
//! - **Availability**: upstream's remote-availability checks (service, port, ready endpoints, a
//!   GET of the group version's discovery document within 5 s) set the `Available` condition
//!   with upstream's reasons and messages; the fetched document feeds discovery, so `/apis`
//!   (legacy and aggregated) lists the aggregated groups and kubectl finds their resources.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use base64::Engine as _;
use http::{HeaderName, HeaderValue, StatusCode};
use http_body_util::BodyExt;
use rudder_api::status::ApiError;
use rudder_auth::UserInfo;
use rudder_registry::{object, Entry, GenericStore, OpCx, WatchFrom, WriteOpts};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::{json, Value};

use crate::discovery::{self, Endpoint};
use crate::ApiServer;

/// Label upstream's autoregister controllers put on the APIServices they own: `onstart` for
/// the server's own groups, `true` for those of CustomResourceDefinitions.
pub const AUTOMANAGED_LABEL: &str = "kube-aggregator.kubernetes.io/automanaged";

/// How often service-backed APIServices are checked when nothing changes (upstream requeues
/// on service and endpoint events and a tight resync; a tick covers both here).
const CHECK_INTERVAL: Duration = Duration::from_secs(5);
/// Upstream's discovery-check client timeout.
const CHECK_TIMEOUT: Duration = Duration::from_secs(5);
/// Upstream's proxy dial timeout is 30 s; a dead endpoint should fail a request sooner.
const DIAL_TIMEOUT: Duration = Duration::from_secs(10);

/// Upstream's `DefaultGenericAPIServicePriorities` and the kube-apiserver groups' table
/// (`groupPriorityMinimum`); unknown built-in groups come last among the built-ins.
const GROUP_PRIORITIES: &[(&str, i32)] = &[
    ("", 18000),
    ("apps", 17800),
    ("events.k8s.io", 17750),
    ("authentication.k8s.io", 17700),
    ("authorization.k8s.io", 17600),
    ("autoscaling", 17500),
    ("batch", 17400),
    ("certificates.k8s.io", 17300),
    ("networking.k8s.io", 17200),
    ("policy", 17100),
    ("rbac.authorization.k8s.io", 17000),
    ("storage.k8s.io", 16800),
    ("apiextensions.k8s.io", 16700),
    ("admissionregistration.k8s.io", 16700),
    ("scheduling.k8s.io", 16600),
    ("coordination.k8s.io", 16500),
    ("node.k8s.io", 16300),
    ("discovery.k8s.io", 16200),
    ("flowcontrol.apiserver.k8s.io", 16100),
    ("internal.apiserver.k8s.io", 16000),
    ("resource.k8s.io", 15900),
    ("storagemigration.k8s.io", 15800),
];

/// `(groupPriorityMinimum, versionPriority)` of a built-in group version: GA versions 15
/// (`autoscaling/v2` 30 and `flowcontrol/v1` 21, as upstream), betas 9, alphas 1.
fn builtin_priority(group: &str, version: &str) -> (i32, i32) {
    let g = GROUP_PRIORITIES
        .iter()
        .find(|(name, _)| *name == group)
        .map_or(15000, |(_, p)| *p);
    let v = match (group, version) {
        ("", "v1") => 1,
        ("autoscaling", "v2") => 30,
        ("flowcontrol.apiserver.k8s.io", "v1") => 21,
        (_, v) if v.contains("alpha") => 1,
        (_, v) if v.contains("beta") => 9,
        _ => 15,
    };
    (g, v)
}

/// A service-backed APIService as the proxy uses it.
pub struct Remote {
    pub name: String,
    pub group: String,
    pub version: String,
    group_priority: i64,
    version_priority: i64,
    namespace: String,
    service: String,
    port: i64,
    server_name: String,
    /// The TLS client for this APIService, or why none could be built (a bad `caBundle`),
    /// reported to callers as upstream reports a transport-building error.
    tls: Result<tokio_rustls::TlsConnector, String>,
    available: AtomicBool,
    /// The group version's `APIResourceList`, from the last successful discovery check.
    resources: RwLock<Option<Value>>,
    /// The spec this was built from, to rebuild only on change.
    spec: Value,
}

/// The aggregation layer's state: the proxy client credentials and the service-backed
/// APIServices, swapped whole when APIServices change.
pub struct Aggregator {
    cert: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    remotes: RwLock<Arc<Vec<Arc<Remote>>>>,
}

/// Where the aggregator sends a request.
pub enum Route {
    /// `/apis/<group>` of a group only aggregated servers serve: answered from APIServices.
    Group(String),
    /// A path under a service-backed group version.
    Proxy(Arc<Remote>),
}

impl Aggregator {
    /// From the front-proxy client certificate and key (PEM).
    pub fn new(cert_pem: &str, key_pem: &str) -> Result<Aggregator, String> {
        use rustls_pki_types::pem::PemObject;
        let cert = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("proxy client certificate: {e}"))?;
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
            .map_err(|e| format!("proxy client key: {e}"))?;
        Ok(Aggregator {
            cert,
            key,
            remotes: RwLock::new(Arc::new(Vec::new())),
        })
    }

    fn remotes(&self) -> Arc<Vec<Arc<Remote>>> {
        self.remotes
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The route of a request path, if aggregated servers handle it.
    pub fn route(&self, path: &str) -> Option<Route> {
        let rest = path.strip_prefix("/apis/")?;
        let remotes = self.remotes();
        if remotes.is_empty() {
            return None;
        }
        let mut parts = rest.splitn(3, '/');
        let group = parts.next().unwrap_or_default();
        match parts.next().filter(|v| !v.is_empty()) {
            Some(version) => remotes
                .iter()
                .find(|r| r.group == group && r.version == version)
                .map(|r| Route::Proxy(r.clone())),
            None => remotes
                .iter()
                .any(|r| r.group == group)
                .then(|| Route::Group(group.to_string())),
        }
    }

    /// Groups served only by aggregated servers, each with its versions (most preferred
    /// first) and their last discovery documents, ordered as upstream orders groups
    /// (`groupPriorityMinimum` descending, then name).
    fn remote_groups(&self, local: &rudder_registry::Snapshot) -> Vec<RemoteGroup> {
        let mut by_group: BTreeMap<String, Vec<Arc<Remote>>> = BTreeMap::new();
        for r in self.remotes().iter() {
            let served_locally = local
                .entries()
                .iter()
                .any(|e| e.info.group == r.group && e.info.version == r.version);
            if !served_locally {
                by_group.entry(r.group.clone()).or_default().push(r.clone());
            }
        }
        let mut groups: Vec<RemoteGroup> = by_group
            .into_iter()
            .map(|(name, mut versions)| {
                versions.sort_by(|a, b| {
                    b.version_priority.cmp(&a.version_priority).then_with(|| {
                        rudder_api::resources::compare_kube_versions(&a.version, &b.version)
                    })
                });
                let priority = versions.iter().map(|r| r.group_priority).max().unwrap_or(0);
                RemoteGroup {
                    name,
                    priority,
                    versions,
                }
            })
            .collect();
        groups.sort_by(|a, b| b.priority.cmp(&a.priority).then(a.name.cmp(&b.name)));
        groups
    }
}

struct RemoteGroup {
    name: String,
    priority: i64,
    versions: Vec<Arc<Remote>>,
}

impl RemoteGroup {
    fn group_doc(&self) -> Value {
        let gv = |r: &Arc<Remote>| json!({"groupVersion": format!("{}/{}", self.name, r.version), "version": r.version});
        json!({
            "name": self.name,
            "versions": self.versions.iter().map(gv).collect::<Vec<_>>(),
            "preferredVersion": self.versions.first().map(gv),
        })
    }

    /// `APIGroupDiscovery`, from each version's legacy `APIResourceList` (upstream fetches
    /// the aggregated form when the server offers it; both carry the same facts). A version
    /// never fetched is left out, one that fails its checks now is `Stale`.
    fn aggregated_doc(&self) -> Value {
        let versions: Vec<Value> = self
            .versions
            .iter()
            .filter_map(|r| {
                let list = r
                    .resources
                    .read()
                    .unwrap_or_else(|p| p.into_inner())
                    .clone()?;
                let fresh = r.available.load(Ordering::Acquire);
                Some(json!({
                    "version": r.version,
                    "resources": aggregated_resources(&self.name, &r.version, &list),
                    "freshness": if fresh { "Current" } else { "Stale" },
                }))
            })
            .collect();
        json!({"metadata": {"name": self.name, "creationTimestamp": null}, "versions": versions})
    }
}

/// Upstream's `ConvertGroupVersionIntoToDiscovery`: resources with their subresources folded
/// in (`flunders/status` becomes a subresource of `flunders`).
fn aggregated_resources(group: &str, version: &str, list: &Value) -> Vec<Value> {
    let items = list["resources"].as_array().cloned().unwrap_or_default();
    let kind_of = |r: &Value| {
        json!({
            "group": r["group"].as_str().unwrap_or(group),
            "version": r["version"].as_str().unwrap_or(version),
            "kind": r["kind"].as_str().unwrap_or_default(),
        })
    };
    let mut out: Vec<Value> = Vec::new();
    for r in items
        .iter()
        .filter(|r| !r["name"].as_str().unwrap_or("").contains('/'))
    {
        let name = r["name"].as_str().unwrap_or_default();
        let subresources: Vec<Value> = items
            .iter()
            .filter_map(|s| {
                let (parent, sub) = s["name"].as_str()?.split_once('/')?;
                (parent == name).then(
                    || json!({"subresource": sub, "responseKind": kind_of(s), "verbs": s["verbs"]}),
                )
            })
            .collect();
        let mut d = json!({
            "resource": name,
            "responseKind": kind_of(r),
            "scope": if r["namespaced"].as_bool().unwrap_or(false) { "Namespaced" } else { "Cluster" },
            "singularResource": r["singularName"].as_str().unwrap_or_default(),
            "verbs": r["verbs"],
        });
        for key in ["shortNames", "categories"] {
            if r[key].as_array().is_some_and(|a| !a.is_empty()) {
                d[key] = r[key].clone();
            }
        }
        if !subresources.is_empty() {
            d["subresources"] = Value::Array(subresources);
        }
        out.push(d);
    }
    out
}

/// `/apis` with the aggregated groups merged in, or `None` when there are none (the plain
/// document then answers) or the path is another one.
pub fn discovery(s: &ApiServer, path: &str, accept: &str) -> Option<Response> {
    let agg = s.aggregator.as_ref()?;
    let path = path.trim_end_matches('/');
    // Only `/apis` and `/apis/<group>` merge anything; every other discovery path (and every
    // non-resource request) goes on without looking at the APIServices.
    let group_path = path
        .strip_prefix("/apis/")
        .is_some_and(|g| !g.is_empty() && !g.contains('/'));
    if path != "/apis" && !group_path {
        return None;
    }
    let snap = s.gs.registry.snapshot();
    let remote = agg.remote_groups(&snap);
    if remote.is_empty() {
        return None;
    }
    match path {
        "/apis" => {
            if let Some(format) = discovery::negotiate(accept, Endpoint::Aggregated) {
                let mut doc = serde_json::to_value(discovery::aggregated(&snap, false)).ok()?;
                if let Some(items) = doc["items"].as_array_mut() {
                    items.extend(remote.iter().map(RemoteGroup::aggregated_doc));
                }
                return Some(discovery::respond(&doc, format, true));
            }
            let mut doc = serde_json::to_value(discovery::api_group_list(&snap)).ok()?;
            if let Some(groups) = doc["groups"].as_array_mut() {
                groups.extend(remote.iter().map(RemoteGroup::group_doc));
            }
            Some(discovery::legacy_response(
                &doc,
                discovery::negotiate(accept, Endpoint::Legacy),
            ))
        }
        p => {
            let group = p.strip_prefix("/apis/")?;
            let g = remote.iter().find(|g| g.name == group)?;
            let mut doc = json!({"kind": "APIGroup", "apiVersion": "v1"});
            if let (Some(d), Value::Object(extra)) = (doc.as_object_mut(), g.group_doc()) {
                d.extend(extra);
            }
            Some(discovery::legacy_response(
                &doc,
                discovery::negotiate(accept, Endpoint::Legacy),
            ))
        }
    }
}

/// Upstream's `http.Error`: plain text, for errors the proxy itself answers.
fn plain(code: StatusCode, msg: &str) -> Response {
    let mut r = Response::new(Body::from(format!("{msg}\n")));
    *r.status_mut() = code;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r.headers_mut().insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    r
}

/// Proxies one authorized request to the APIService's service.
pub async fn proxy(
    s: &ApiServer,
    remote: &Remote,
    user: &UserInfo,
    req: http::Request<Body>,
) -> Response {
    if !remote.available.load(Ordering::Acquire) {
        return plain(StatusCode::SERVICE_UNAVAILABLE, "service unavailable");
    }
    let tls = match &remote.tls {
        Ok(t) => t.clone(),
        Err(e) => return plain(StatusCode::INTERNAL_SERVER_ERROR, e),
    };
    let (ip, port) = match resolve(&s.gs, &remote.namespace, &remote.service, remote.port) {
        Ok(a) => a,
        Err(e) => {
            tracing::warn!(apiservice = %remote.name, error = %e, "cannot resolve the service");
            return plain(StatusCode::SERVICE_UNAVAILABLE, "service unavailable");
        }
    };
    let uri = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    let host = host_port(&ip, port);
    let (mut out, upgrade, on_client_upgrade) = match crate::podproxy::outgoing(req, uri, &host) {
        Ok(o) => o,
        Err(e) => return crate::encode::error_response(&e),
    };
    set_identity(out.headers_mut(), user);
    match send(&tls, &remote.server_name, &ip, port, out).await {
        Ok(resp) => crate::podproxy::relay(resp, upgrade, on_client_upgrade, true)
            .unwrap_or_else(|e| crate::encode::error_response(&e)),
        Err(e) => plain(StatusCode::SERVICE_UNAVAILABLE, &e),
    }
}

fn host_port(ip: &str, port: u16) -> String {
    if ip.contains(':') {
        format!("[{ip}]:{port}")
    } else {
        format!("{ip}:{port}")
    }
}

/// The identity headers (upstream's `SetAuthProxyHeaders`), after dropping any the caller sent:
/// only this server may assert an identity to the aggregated server.
fn set_identity(h: &mut http::HeaderMap, user: &UserInfo) {
    let drop: Vec<HeaderName> = h
        .keys()
        .filter(|k| {
            let k = k.as_str();
            k.starts_with("x-remote-") || k.starts_with("impersonate-")
        })
        .cloned()
        .collect();
    for k in drop {
        h.remove(k);
    }
    let mut put = |name: &str, value: &str| {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            h.append(n, v);
        }
    };
    put("x-remote-user", &user.name);
    if !user.uid.is_empty() {
        put("x-remote-uid", &user.uid);
    }
    for g in &user.groups {
        put("x-remote-group", g);
    }
    for (k, values) in &user.extra {
        // Keys are escaped as upstream does (`url.PathEscape`), header names being limited.
        let name = format!("x-remote-extra-{}", escape_extra_key(k));
        for v in values {
            put(&name, v);
        }
    }
}

/// Go's `url.PathEscape`: everything but unreserved characters and the few path-safe
/// sub-delimiters is %-encoded.
fn escape_extra_key(k: &str) -> String {
    let mut out = String::new();
    for b in k.bytes() {
        let keep = b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'-' | b'_' | b'.' | b'~' | b'$' | b'&' | b'+' | b':' | b'=' | b'@'
            );
        if keep {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

async fn send(
    tls: &tokio_rustls::TlsConnector,
    server_name: &str,
    ip: &str,
    port: u16,
    req: http::Request<Body>,
) -> Result<http::Response<hyper::body::Incoming>, String> {
    let addr = host_port(ip, port);
    let tcp = tokio::time::timeout(DIAL_TIMEOUT, tokio::net::TcpStream::connect(&addr))
        .await
        .map_err(|_| format!("dial tcp {addr}: i/o timeout"))?
        .map_err(|e| format!("dial tcp {addr}: {e}"))?;
    let name = rustls_pki_types::ServerName::try_from(server_name.to_string())
        .map_err(|e| e.to_string())?;
    let stream = tls
        .connect(name, tcp)
        .await
        .map_err(|e| format!("tls: {e}"))?;
    crate::podproxy::handshake(stream, req).await
}

/// One ready endpoint of a service's port (`port` is the service port), from the service's
/// EndpointSlices, as webhooks reach theirs.
fn resolve(gs: &GenericStore, ns: &str, name: &str, port: i64) -> Result<(String, u16), String> {
    use crate::webhook::ServiceResolver as _;
    let prefix = |group: &str, resource: &str| {
        gs.registry
            .get(group, "v1", resource)
            .map(|e| e.prefix.clone())
            .ok_or_else(|| format!("{resource} are not registered"))
    };
    let port = u16::try_from(port).map_err(|_| format!("invalid service port {port}"))?;
    crate::webhook::CacheResolver {
        cache: gs.cache.clone(),
        services_prefix: prefix("", "services")?,
        slices_prefix: prefix("discovery.k8s.io", "endpointslices")?,
    }
    .resolve(ns, name, port)
}

fn service_port_name(svc: &Value, port: i64) -> Option<String> {
    svc["spec"]["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["port"].as_i64() == Some(port))
        .map(|p| p["name"].as_str().unwrap_or_default().to_string())
}

fn cached(
    gs: &GenericStore,
    group: &str,
    version: &str,
    resource: &str,
    ns: &str,
    name: &str,
) -> Option<Value> {
    let entry = gs.registry.get(group, version, resource)?;
    let key = entry.key(Some(ns), name).ok()?;
    gs.cache.get(&entry.prefix, &key).map(|o| o.value())
}

fn endpoint_slices(gs: &GenericStore, ns: &str, service: &str) -> Vec<Value> {
    let Some(entry) = gs.registry.get("discovery.k8s.io", "v1", "endpointslices") else {
        return Vec::new();
    };
    gs.cache
        .list(&entry.prefix, &entry.list_prefix(Some(ns)))
        .0
        .iter()
        .map(|o| o.value())
        .filter(|s| s["metadata"]["labels"]["kubernetes.io/service-name"].as_str() == Some(service))
        .collect()
}

/// Runs the autoregister, proxy-building and availability controllers for as long as the
/// server runs.
pub fn spawn(server: Arc<ApiServer>) {
    if server.aggregator.is_none() {
        return;
    }
    crate::run_controller(server, "apiservices", |s| async move { follow(&s).await });
}

async fn follow(s: &ApiServer) -> Result<(), ApiError> {
    let entry = crate::builtin_entry(&s.gs, "apiregistration.k8s.io", "apiservices")?;
    let mut watch = s.gs.watch(&entry, None, WatchFrom::Now).await?;
    let mut tick = tokio::time::interval(CHECK_INTERVAL);
    loop {
        autoregister(&s.gs, &entry).await;
        rebuild(s, &entry);
        check_remotes(s, &entry).await;
        tokio::select! {
            ev = watch.live.recv() => {
                if ev.is_none() {
                    return Ok(());
                }
                while watch.live.try_recv().is_ok() {}
            }
            _ = tick.tick() => {}
        }
    }
}

fn list(gs: &GenericStore, entry: &Entry) -> Vec<Value> {
    gs.cache
        .list(&entry.prefix, &entry.list_prefix(None))
        .0
        .iter()
        .map(|o| o.value())
        .collect()
}

/// Upstream's autoregister controller: a Local APIService per served group version, created
/// or corrected when missing or changed; those of CRD group versions no longer served go.
async fn autoregister(gs: &GenericStore, entry: &Entry) {
    let snap = gs.registry.snapshot();
    let mut desired: Vec<(String, Value)> = Vec::new();
    for (group, versions) in discovery::groups(&snap) {
        for version in versions {
            let builtin = gs.registry.is_builtin(group, version);
            let (gp, vp, managed) = if builtin {
                let (g, v) = builtin_priority(group, version);
                (g, v, "onstart")
            } else {
                // Upstream's CRD registration controller: low group priority, kube-like
                // version order within the group.
                (1000, 100, "true")
            };
            let name = format!("{version}.{group}");
            desired.push((
                name.clone(),
                json!({
                    "apiVersion": "apiregistration.k8s.io/v1",
                    "kind": "APIService",
                    "metadata": {"name": name, "labels": {AUTOMANAGED_LABEL: managed}},
                    "spec": {
                        "group": group,
                        "version": version,
                        "groupPriorityMinimum": gp,
                        "versionPriority": vp,
                    },
                }),
            ));
        }
    }
    let existing = list(gs, entry);
    for (name, want) in &desired {
        let cur = existing.iter().find(|o| object::name(o) == name);
        let result = match cur {
            None => gs
                .create(entry, None, want.clone(), &WriteOpts::default())
                .await
                .map(|_| ()),
            // An APIService someone pointed at a service is theirs now (upstream leaves
            // APIServices it did not create alone).
            Some(cur) if !cur["spec"]["service"].is_null() => Ok(()),
            Some(cur)
                if cur["spec"] == want["spec"]
                    && cur["metadata"]["labels"][AUTOMANAGED_LABEL]
                        == want["metadata"]["labels"][AUTOMANAGED_LABEL] =>
            {
                Ok(())
            }
            Some(_) => gs
                .update(
                    entry,
                    None,
                    name,
                    |cur| {
                        let mut next = cur
                            .ok_or_else(|| ApiError::not_found(&entry.info.group_resource(), name))?
                            .clone();
                        next["spec"] = want["spec"].clone();
                        next["metadata"]["labels"][AUTOMANAGED_LABEL] =
                            want["metadata"]["labels"][AUTOMANAGED_LABEL].clone();
                        Ok(next)
                    },
                    &WriteOpts::default(),
                )
                .await
                .map(|_| ()),
        };
        if let Err(err) = result {
            if !err.is_already_exists() && err.code != 409 {
                tracing::warn!(apiservice = %name, %err, "autoregister");
            }
        }
    }
    for cur in &existing {
        let name = object::name(cur);
        let crd_managed = cur["metadata"]["labels"][AUTOMANAGED_LABEL] == "true";
        if crd_managed
            && cur["spec"]["service"].is_null()
            && !desired.iter().any(|(n, _)| n == name)
        {
            if let Err(err) = gs.delete(entry, None, name, &Default::default()).await {
                if !err.is_not_found() {
                    tracing::warn!(apiservice = %name, %err, "autoregister delete");
                }
            }
        }
    }
    // Local ones are always available.
    for cur in list(gs, entry) {
        if cur["spec"]["service"].is_null() {
            let cond = Condition {
                status: "True",
                reason: "Local".into(),
                message: "Local APIServices are always available".into(),
            };
            write_condition(gs, entry, &cur, &cond).await;
        }
    }
}

/// Rebuilds the proxy's view of the service-backed APIServices, keeping those whose spec did
/// not change (their TLS client and discovery document).
fn rebuild(s: &ApiServer, entry: &Entry) {
    let Some(agg) = s.aggregator.as_ref() else {
        return;
    };
    let old = agg.remotes();
    let mut next: Vec<Arc<Remote>> = Vec::new();
    for o in list(&s.gs, entry) {
        let spec = &o["spec"];
        if spec["service"].is_null() {
            continue;
        }
        let available = condition(&o).is_some_and(|c| c["status"] == "True");
        if let Some(r) = old
            .iter()
            .find(|r| r.name == object::name(&o) && r.spec == *spec)
        {
            r.available.store(available, Ordering::Release);
            next.push(r.clone());
            continue;
        }
        let namespace = spec["service"]["namespace"].as_str().unwrap_or_default();
        let service = spec["service"]["name"].as_str().unwrap_or_default();
        next.push(Arc::new(Remote {
            name: object::name(&o).to_string(),
            group: spec["group"].as_str().unwrap_or_default().into(),
            version: spec["version"].as_str().unwrap_or_default().into(),
            group_priority: spec["groupPriorityMinimum"].as_i64().unwrap_or(0),
            version_priority: spec["versionPriority"].as_i64().unwrap_or(0),
            namespace: namespace.into(),
            service: service.into(),
            port: spec["service"]["port"].as_i64().unwrap_or(443),
            server_name: format!("{service}.{namespace}.svc"),
            tls: tls_for(agg, spec),
            available: AtomicBool::new(available),
            resources: RwLock::new(None),
            spec: spec.clone(),
        }));
    }
    *agg.remotes.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(next);
}

/// Upstream's `BuildTransportConfig`: the proxy client certificate, and either no server
/// verification or `caBundle` as the only roots.
fn tls_for(agg: &Aggregator, spec: &Value) -> Result<tokio_rustls::TlsConnector, String> {
    let auth = (agg.cert.clone(), agg.key.clone_key());
    let mut cfg = if spec["insecureSkipTLSVerify"].as_bool() == Some(true) {
        rudder_pki::insecure::any_server_client_config(Some(auth)).map_err(|e| e.to_string())?
    } else {
        let bundle = spec["caBundle"].as_str().unwrap_or_default();
        let pem = base64::engine::general_purpose::STANDARD
            .decode(bundle)
            .map_err(|e| format!("invalid caBundle: {e}"))?;
        let mut roots = rustls::RootCertStore::empty();
        use rustls_pki_types::pem::PemObject;
        for c in CertificateDer::pem_slice_iter(&pem) {
            let c = c.map_err(|e| format!("invalid caBundle: {e}"))?;
            roots.add(c).map_err(|e| format!("invalid caBundle: {e}"))?;
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_client_auth_cert(auth.0, auth.1)
            .map_err(|e| e.to_string())?
    };
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsConnector::from(Arc::new(cfg)))
}

fn condition(o: &Value) -> Option<&Value> {
    o["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == "Available")
}

struct Condition {
    status: &'static str,
    reason: String,
    message: String,
}

/// Sets the `Available` condition when it changed (upstream writes only real changes, its
/// resync being tight); the transition time moves only with the status.
async fn write_condition(gs: &GenericStore, entry: &Entry, cur: &Value, c: &Condition) {
    if let Some(old) = condition(cur) {
        if old["status"] == c.status
            && old["reason"] == c.reason.as_str()
            && old["message"] == c.message.as_str()
        {
            return;
        }
    }
    let name = object::name(cur).to_string();
    let opts = WriteOpts {
        status: true,
        ..Default::default()
    };
    let now = OpCx::now().now;
    let result = gs
        .update(
            entry,
            None,
            &name,
            |cur| {
                let mut next = cur
                    .ok_or_else(|| ApiError::not_found(&entry.info.group_resource(), &name))?
                    .clone();
                let since = condition(&next)
                    .filter(|o| o["status"] == c.status)
                    .map(|o| o["lastTransitionTime"].clone())
                    .unwrap_or_else(|| json!(now));
                let cond = json!({
                    "type": "Available",
                    "status": c.status,
                    "lastTransitionTime": since,
                    "reason": c.reason,
                    "message": c.message,
                });
                let mut conds: Vec<Value> = next["status"]["conditions"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                conds.retain(|o| o["type"] != "Available");
                conds.push(cond);
                if !next["status"].is_object() {
                    next["status"] = json!({});
                }
                next["status"]["conditions"] = Value::Array(conds);
                Ok(next)
            },
            &opts,
        )
        .await;
    if let Err(err) = result {
        if !err.is_not_found() && err.code != 409 {
            tracing::warn!(apiservice = %name, %err, "APIService status");
        }
    }
}

/// Upstream's remote availability controller, for every service-backed APIService.
async fn check_remotes(s: &ApiServer, entry: &Entry) {
    let Some(agg) = s.aggregator.as_ref() else {
        return;
    };
    let remotes = agg.remotes();
    let checks = remotes.iter().map(|r| async move {
        let cond = check(s, agg, r).await;
        (r.clone(), cond)
    });
    for (r, cond) in futures::future::join_all(checks).await {
        r.available.store(cond.status == "True", Ordering::Release);
        if let Some(cur) = cached(
            &s.gs,
            "apiregistration.k8s.io",
            "v1",
            "apiservices",
            "",
            &r.name,
        ) {
            write_condition(&s.gs, entry, &cur, &cond).await;
        }
    }
}

async fn check(s: &ApiServer, agg: &Aggregator, r: &Remote) -> Condition {
    let fail = |reason: &str, message: String| Condition {
        status: "False",
        reason: reason.into(),
        message,
    };
    let (ns, name) = (&r.namespace, &r.service);
    let Some(svc) = cached(&s.gs, "", "v1", "services", ns, name) else {
        return fail(
            "ServiceNotFound",
            format!("service/{name} in {ns:?} is not present"),
        );
    };
    let cluster_ip = matches!(svc["spec"]["type"].as_str(), None | Some("ClusterIP"));
    if cluster_ip {
        let Some(port_name) = service_port_name(&svc, r.port) else {
            return fail(
                "ServicePortError",
                format!(
                    "service/{name} in {ns:?} is not listening on port {}",
                    r.port
                ),
            );
        };
        let slices = endpoint_slices(&s.gs, ns, name);
        if slices.is_empty() {
            return fail(
                "EndpointsNotFound",
                format!("cannot find endpointslices for service/{name} in {ns:?}"),
            );
        }
        let has_ready = slices.iter().any(|sl| {
            sl["endpoints"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|e| e["conditions"]["ready"].as_bool() != Some(false))
                && sl["ports"].as_array().into_iter().flatten().any(|p| {
                    p["name"].as_str().unwrap_or_default() == port_name && p["port"].is_number()
                })
        });
        if !has_ready {
            return fail(
                "MissingEndpoints",
                format!(
                    "endpointslices for service/{name} in {ns:?} have no addresses with port name {port_name:?}"
                ),
            );
        }
    }
    let path = format!("/apis/{}/{}", r.group, r.version);
    let (ip, port) = match resolve(&s.gs, ns, name, r.port) {
        Ok(a) => a,
        Err(e) => return fail("FailedDiscoveryCheck", e),
    };
    let url = format!("https://{}{path}", host_port(&ip, port));
    match discovery_get(agg, &ip, port, &path, &r.server_name).await {
        Ok(list) => {
            *r.resources.write().unwrap_or_else(|p| p.into_inner()) = Some(list);
            Condition {
                status: "True",
                reason: "Passed".into(),
                message: "all checks passed".into(),
            }
        }
        Err(e) => fail(
            "FailedDiscoveryCheck",
            format!("failing or missing response from {url}: {e}"),
        ),
    }
}

/// The discovery check's GET: no server verification (upstream: "if someone owns the network
/// and messes with your status that's not so bad"), as `system:kube-aggregator` in
/// `system:masters`, within 5 s.
async fn discovery_get(
    agg: &Aggregator,
    ip: &str,
    port: u16,
    path: &str,
    server_name: &str,
) -> Result<Value, String> {
    let cfg = rudder_pki::insecure::any_server_client_config(Some((
        agg.cert.clone(),
        agg.key.clone_key(),
    )))
    .map_err(|e| e.to_string())?;
    let tls = tokio_rustls::TlsConnector::from(Arc::new(cfg));
    let req = http::Request::get(path)
        .header(http::header::HOST, host_port(ip, port))
        .header(http::header::ACCEPT, "application/json")
        .header("x-remote-user", "system:kube-aggregator")
        .header("x-remote-group", "system:masters")
        .body(Body::empty())
        .map_err(|e| e.to_string())?;
    let url = format!("https://{}{path}", host_port(ip, port));
    let fetch = async {
        let resp = send(&tls, server_name, ip, port, req).await?;
        let status = resp.status();
        if !status.is_success() && !status.is_redirection() {
            return Err(format!("bad status from {url}: {}", status.as_u16()));
        }
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        // A discovery answer that is not an APIResourceList still passes the check (upstream
        // looks at the status only); discovery then lists no resources for it.
        Ok(serde_json::from_slice(&body).unwrap_or_else(|_| json!({"resources": []})))
    };
    tokio::time::timeout(CHECK_TIMEOUT, fetch)
        .await
        .map_err(|_| format!("Get \"{url}\": context deadline exceeded"))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subresources_fold_into_their_resource() {
        let list = json!({"resources": [
            {"name": "flunders", "singularName": "flunder", "namespaced": true, "kind": "Flunder",
             "verbs": ["get", "list"], "shortNames": ["fl"]},
            {"name": "flunders/status", "singularName": "", "namespaced": true, "kind": "Flunder",
             "verbs": ["get", "patch"]},
        ]});
        let out = aggregated_resources("wardle.example.com", "v1alpha1", &list);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0]["resource"], "flunders");
        assert_eq!(out[0]["scope"], "Namespaced");
        assert_eq!(out[0]["shortNames"], json!(["fl"]));
        assert_eq!(
            out[0]["responseKind"],
            json!({"group": "wardle.example.com", "version": "v1alpha1", "kind": "Flunder"})
        );
        assert_eq!(out[0]["subresources"][0]["subresource"], "status");
    }

    #[test]
    fn identity_headers_replace_what_the_caller_sent() {
        let mut h = http::HeaderMap::new();
        h.insert("x-remote-user", HeaderValue::from_static("mallory"));
        h.insert("x-remote-group", HeaderValue::from_static("system:masters"));
        h.insert("impersonate-user", HeaderValue::from_static("root"));
        let mut user = UserInfo::new("alice").with_groups(["dev", "system:authenticated"]);
        user.extra
            .insert("scopes/x y".into(), vec!["a".into(), "b".into()]);
        set_identity(&mut h, &user);
        assert_eq!(h.get_all("x-remote-user").iter().count(), 1);
        assert_eq!(h["x-remote-user"], "alice");
        let groups: Vec<_> = h.get_all("x-remote-group").iter().collect();
        assert_eq!(groups, ["dev", "system:authenticated"]);
        assert!(h.get("impersonate-user").is_none());
        let extra: Vec<_> = h.get_all("x-remote-extra-scopes%2Fx%20y").iter().collect();
        assert_eq!(extra, ["a", "b"]);
    }

    #[test]
    fn builtin_priorities_follow_upstream() {
        assert_eq!(builtin_priority("", "v1"), (18000, 1));
        assert_eq!(builtin_priority("apps", "v1"), (17800, 15));
        assert_eq!(builtin_priority("autoscaling", "v2"), (17500, 30));
        assert_eq!(
            builtin_priority("flowcontrol.apiserver.k8s.io", "v1"),
            (16100, 21)
        );
    }
}
