//! `pods/log`, `pods/exec`, `pods/attach` and `pods/portforward`, proxied to the kubelet of the
//! pod's node (upstream's `pkg/registry/core/pod/rest/log.go` and `subresources.go`): the API
//! server checks the request against the pod (container names, scheduling, waiting
//! containers) with upstream's messages, then forwards it over HTTPS to the node's InternalIP
//! and kubelet port, presenting its kubelet-client certificate. Upgrades (WebSocket, SPDY)
//! are spliced through unchanged, as upstream's UpgradeAwareHandler does; the kubelet speaks
//! the streaming protocols.

use std::sync::Arc;

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode};
use http_body_util::BodyExt;
use rudder_api::status::{ApiError, GroupResource, StatusReason};
use serde_json::Value;

use crate::request::Query;
use crate::ApiServer;

/// How the API server reaches kubelets: its client certificate, and no verification of the
/// kubelet's (self-signed) serving certificate, as upstream without
/// `--kubelet-certificate-authority`.
pub struct KubeletClient {
    tls: tokio_rustls::TlsConnector,
}

impl KubeletClient {
    /// From the API server's kubelet-client certificate and key (PEM).
    pub fn new(cert_pem: &str, key_pem: &str) -> Result<KubeletClient, String> {
        use rustls_pki_types::pem::PemObject;
        let certs: Vec<rustls_pki_types::CertificateDer<'static>> =
            rustls_pki_types::CertificateDer::pem_slice_iter(cert_pem.as_bytes())
                .collect::<Result<_, _>>()
                .map_err(|e| e.to_string())?;
        let key = rustls_pki_types::PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
            .map_err(|e| e.to_string())?;
        let mut cfg = rudder_pki::insecure::any_server_client_config(Some((certs, key)))
            .map_err(|e| e.to_string())?;
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(KubeletClient {
            tls: tokio_rustls::TlsConnector::from(Arc::new(cfg)),
        })
    }

    async fn send(
        &self,
        host: &str,
        port: u16,
        req: http::Request<Body>,
    ) -> Result<http::Response<hyper::body::Incoming>, String> {
        self.send_to(true, host, port, req).await
    }

    /// One request over a new connection, TLS (this server's client certificate, no server
    /// verification) or plain; upgrades stay possible on the returned response.
    pub(crate) async fn send_to(
        &self,
        tls: bool,
        host: &str,
        port: u16,
        req: http::Request<Body>,
    ) -> Result<http::Response<hyper::body::Incoming>, String> {
        let addr = if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        let tcp = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            tokio::net::TcpStream::connect(&addr),
        )
        .await
        .map_err(|_| format!("dial tcp {addr}: i/o timeout"))?
        .map_err(|e| format!("dial tcp {addr}: {e}"))?;
        if !tls {
            return handshake(tcp, req).await;
        }
        let name = rustls_pki_types::ServerName::try_from(host.to_string())
            .map_err(|e| e.to_string())?
            .to_owned();
        let tls = self
            .tls
            .connect(name, tcp)
            .await
            .map_err(|e| format!("tls: {e}"))?;
        handshake(tls, req).await
    }
}

/// One HTTP/1.1 request over `io` (upgrades stay possible on the response).
pub(crate) async fn handshake<T>(
    io: T,
    req: http::Request<Body>,
) -> Result<http::Response<hyper::body::Incoming>, String>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(io))
            .await
            .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        let _ = conn.with_upgrades().await;
    });
    sender.send_request(req).await.map_err(|e| e.to_string())
}

pub fn is_proxied(group: &str, resource: &str, subresource: &str) -> bool {
    group.is_empty()
        && ((resource == "pods"
            && matches!(subresource, "log" | "exec" | "attach" | "portforward"))
            || (matches!(resource, "nodes" | "pods" | "services") && subresource == "proxy"))
}

/// `nodes/<name>/proxy/<path>`: the kubelet's own endpoints (`/stats/summary`,
/// `/metrics/resource`, `/healthz`, …), as upstream's node proxy.
pub async fn handle_node_proxy(
    s: &Arc<ApiServer>,
    node: &str,
    req: http::Request<Body>,
) -> Result<Response, ApiError> {
    let Some(client) = s.kubelet_client.as_ref() else {
        return Err(ApiError::service_unavailable(
            "this API server has no kubelet client credentials",
        ));
    };
    let (host, port) = kubelet_of(s, node).await?;
    let path = req.uri().path().to_string();
    let marker = format!("/nodes/{node}/proxy");
    let rest = path.split_once(&marker).map(|(_, r)| r).unwrap_or("");
    let rest = if rest.is_empty() { "/" } else { rest };
    let uri = match req.uri().query() {
        Some(q) => format!("{rest}?{q}"),
        None => rest.to_string(),
    };
    let (out, upgrade, on_client_upgrade) = outgoing(req, uri, &host)?;
    let resp = client.send(&host, port, out).await.map_err(unreachable)?;
    relay(resp, upgrade, on_client_upgrade, true)
}

/// A proxied destination that did not answer: 503, as upstream's proxy handlers.
pub(crate) fn unreachable(e: String) -> ApiError {
    ApiError::new_generic(
        503,
        StatusReason::ServiceUnavailable,
        format!("error trying to reach service: {e}"),
    )
}

fn bad(msg: String) -> ApiError {
    ApiError::bad_request(msg)
}

fn names(list: &Value, key: &str) -> Vec<String> {
    list.get(key)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|c| c["name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Upstream's container choice for logs/exec/attach (`validateContainer`, the
/// `kubectl.kubernetes.io/default-container` annotation aside, which clients apply).
fn container(pod: &Value, requested: Option<&str>) -> Result<String, ApiError> {
    let name = pod["metadata"]["name"].as_str().unwrap_or_default();
    let spec = &pod["spec"];
    let app = names(spec, "containers");
    let init = names(spec, "initContainers");
    let eph = names(spec, "ephemeralContainers");
    match requested.filter(|c| !c.is_empty()) {
        Some(c) => {
            if app
                .iter()
                .chain(init.iter())
                .chain(eph.iter())
                .any(|n| n == c)
            {
                Ok(c.to_string())
            } else {
                Err(bad(format!("container {c} is not valid for pod {name}")))
            }
        }
        None if app.len() == 1 => Ok(app[0].clone()),
        None => {
            let mut msg = format!(
                "a container name must be specified for pod {name}, choose one of: [{}]",
                app.join(" ")
            );
            if !init.is_empty() {
                msg.push_str(&format!(
                    " or one of the init containers: [{}]",
                    init.join(" ")
                ));
            }
            if !eph.is_empty() {
                msg.push_str(&format!(
                    " or one of the ephemeral containers: [{}]",
                    eph.join(" ")
                ));
            }
            Err(bad(msg))
        }
    }
}

/// Upstream's `podLogs` checks: the container must have run (or be running) for logs.
fn check_log_container(pod: &Value, c: &str, previous: bool) -> Result<(), ApiError> {
    let name = pod["metadata"]["name"].as_str().unwrap_or_default();
    let status = &pod["status"];
    let all: Vec<&Value> = [
        "containerStatuses",
        "initContainerStatuses",
        "ephemeralContainerStatuses",
    ]
    .iter()
    .filter_map(|k| status.get(*k).and_then(Value::as_array))
    .flatten()
    .collect();
    let Some(s) = all.iter().find(|s| s["name"] == c) else {
        return Ok(());
    };
    if previous {
        if s["lastState"].get("terminated").is_none() {
            return Err(bad(format!(
                "previous terminated container \"{c}\" in pod \"{name}\" not found"
            )));
        }
        return Ok(());
    }
    if let Some(w) = s["state"].get("waiting") {
        let never_ran = s["lastState"].get("terminated").is_none();
        if never_ran {
            let reason = w["reason"].as_str().unwrap_or_default();
            let mut msg = format!("container \"{c}\" in pod \"{name}\" is waiting to start");
            if !reason.is_empty() {
                msg.push_str(&format!(": {reason}"));
            }
            return Err(bad(msg));
        }
    }
    Ok(())
}

/// The kubelet of a node: its InternalIP (else first address) and kubelet port.
async fn kubelet_of(s: &ApiServer, node_name: &str) -> Result<(String, u16), ApiError> {
    let nodes =
        s.gs.registry
            .get("", "v1", "nodes")
            .ok_or_else(|| ApiError::internal_error("nodes are not registered"))?;
    let node = s.gs.get(&nodes, None, node_name).await?;
    let addrs = node["status"]["addresses"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let ip = addrs
        .iter()
        .find(|a| a["type"] == "InternalIP")
        .or(addrs.first())
        .and_then(|a| a["address"].as_str())
        .ok_or_else(|| ApiError::internal_error(format!("node {node_name} has no address")))?;
    let port = node["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"]
        .as_u64()
        .unwrap_or(10250) as u16;
    Ok((ip.to_string(), port))
}

fn query_without(q: Option<&str>, drop: &[&str]) -> String {
    q.unwrap_or_default()
        .split('&')
        .filter(|kv| !kv.is_empty() && !drop.contains(&kv.split('=').next().unwrap_or_default()))
        .collect::<Vec<_>>()
        .join("&")
}

/// Serves one proxied pod subresource.
pub async fn handle(
    s: &Arc<ApiServer>,
    namespace: &str,
    pod_name: &str,
    subresource: &str,
    query: &Query,
    mut req: http::Request<Body>,
) -> Result<Response, ApiError> {
    let pods =
        s.gs.registry
            .get("", "v1", "pods")
            .ok_or_else(|| ApiError::internal_error("pods are not registered"))?;
    let pod = s.gs.get(&pods, Some(namespace), pod_name).await?;
    let Some(client) = s.kubelet_client.as_ref() else {
        return Err(ApiError::service_unavailable(
            "this API server has no kubelet client credentials",
        ));
    };
    let node = pod["spec"]["nodeName"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let container = match subresource {
        "portforward" => String::new(),
        _ => container(&pod, query.get("container"))?,
    };
    if node.is_empty() {
        // Upstream's LogLocation gives no location for an unscheduled pod: an empty log.
        if subresource == "log" {
            return http::Response::builder()
                .header(http::header::CONTENT_TYPE, "text/plain")
                .body(Body::empty())
                .map_err(ApiError::internal_error);
        }
        return Err(bad(format!("pod {pod_name} does not have a host assigned")));
    }
    let (host, port) = kubelet_of(s, &node).await?;
    let raw_query = req.uri().query().map(str::to_string);
    let c = container;
    let path = match subresource {
        "log" => {
            let previous = query
                .get("previous")
                .is_some_and(|v| v == "true" || v == "1");
            check_log_container(&pod, &c, previous)?;
            format!("/containerLogs/{namespace}/{pod_name}/{c}")
        }
        "exec" | "attach" => {
            if pod["status"]["phase"] == "Succeeded" || pod["status"]["phase"] == "Failed" {
                return Err(bad(format!(
                    "cannot {subresource} into a container in a completed pod; current phase is {}",
                    pod["status"]["phase"].as_str().unwrap_or_default()
                )));
            }
            format!("/{subresource}/{namespace}/{pod_name}/{c}")
        }
        _ => format!("/portForward/{namespace}/{pod_name}"),
    };
    let q = query_without(raw_query.as_deref(), &["container"]);
    let uri = if q.is_empty() {
        path
    } else {
        format!("{path}?{q}")
    };
    if subresource == "log" {
        *req.method_mut() = Method::GET;
    }
    let (out, upgrade, on_client_upgrade) = outgoing(req, uri, &host)?;
    let resp = client.send(&host, port, out).await.map_err(|e| {
        ApiError::new_generic(
            500,
            StatusReason::InternalError,
            format!("Get \"https://{host}:{port}/\": {e}"),
        )
    })?;
    relay(resp, upgrade, on_client_upgrade, false)
}

/// The request to send on: the client's method, end-to-end headers (not its credentials) and
/// body at `uri` on `host`; for an upgrade, also the client's side of the upgraded connection.
pub(crate) type Outgoing = (http::Request<Body>, bool, Option<hyper::upgrade::OnUpgrade>);

pub(crate) fn outgoing(
    mut req: http::Request<Body>,
    uri: String,
    host: &str,
) -> Result<Outgoing, ApiError> {
    let upgrade = req.headers().contains_key(http::header::UPGRADE);
    let on_client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
    let (parts, body) = req.into_parts();
    let mut out = http::Request::builder().method(parts.method).uri(uri);
    if let Some(h) = out.headers_mut() {
        copy_headers(&parts.headers, h, upgrade);
        if let Ok(v) = http::HeaderValue::from_str(host) {
            h.insert(http::header::HOST, v);
        }
    }
    let out = out
        .body(if upgrade { Body::empty() } else { body })
        .map_err(ApiError::internal_error)?;
    Ok((out, upgrade, on_client_upgrade))
}

/// The upstream's answer back to the client: an upgraded connection spliced through, or the
/// status, content headers and a streamed body.
pub(crate) fn relay(
    mut resp: http::Response<hyper::body::Incoming>,
    upgrade: bool,
    on_client_upgrade: Option<hyper::upgrade::OnUpgrade>,
    all_headers: bool,
) -> Result<Response, ApiError> {
    if upgrade && resp.status() == StatusCode::SWITCHING_PROTOCOLS {
        let kubelet_upgrade = hyper::upgrade::on(&mut resp);
        let mut builder = http::Response::builder().status(StatusCode::SWITCHING_PROTOCOLS);
        if let Some(h) = builder.headers_mut() {
            copy_headers(resp.headers(), h, true);
        }
        if let Some(client_upgrade) = on_client_upgrade {
            tokio::spawn(async move {
                let (Ok(a), Ok(b)) = (client_upgrade.await, kubelet_upgrade.await) else {
                    return;
                };
                let mut a = hyper_util::rt::TokioIo::new(a);
                let mut b = hyper_util::rt::TokioIo::new(b);
                let _ = tokio::io::copy_bidirectional(&mut a, &mut b).await;
            });
        }
        return builder
            .body(Body::empty())
            .map_err(ApiError::internal_error);
    }
    // Errors from the kubelet come back as they are (a Status, or text); logs stream.
    let status = resp.status();
    let mut builder = http::Response::builder().status(status);
    if let Some(h) = builder.headers_mut() {
        if all_headers {
            copy_headers(resp.headers(), h, false);
        } else {
            for k in [http::header::CONTENT_TYPE, http::header::TRANSFER_ENCODING] {
                if let Some(v) = resp.headers().get(&k) {
                    h.insert(k, v.clone());
                }
            }
        }
    }
    let stream = resp.into_body().into_data_stream();
    builder
        .body(Body::from_stream(futures::StreamExt::map(
            stream,
            |r: Result<Bytes, hyper::Error>| r,
        )))
        .map_err(ApiError::internal_error)
}

/// End-to-end headers (not the caller's credentials, not hop-by-hop ones unless upgrading).
pub(crate) fn copy_headers(from: &HeaderMap, to: &mut HeaderMap, upgrade: bool) {
    for (k, v) in from {
        let name = k.as_str();
        let hop = matches!(
            name,
            "connection"
                | "upgrade"
                | "keep-alive"
                | "proxy-connection"
                | "te"
                | "trailer"
                | "transfer-encoding"
        );
        if name == "authorization" || name == "host" || name == "content-length" && upgrade {
            continue;
        }
        if hop && !(upgrade && matches!(name, "connection" | "upgrade")) {
            continue;
        }
        to.append(k.clone(), v.clone());
    }
}

pub fn group_resource() -> GroupResource {
    GroupResource::new("", "pods")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn container_choice_as_upstream() {
        let pod = json!({"metadata": {"name": "p"}, "spec": {
            "containers": [{"name": "a"}, {"name": "b"}], "initContainers": [{"name": "i"}]}});
        assert_eq!(
            container(&pod, None).unwrap_err().message,
            "a container name must be specified for pod p, choose one of: [a b] or one of the init containers: [i]"
        );
        assert_eq!(container(&pod, Some("i")).unwrap(), "i");
        assert_eq!(
            container(&pod, Some("x")).unwrap_err().message,
            "container x is not valid for pod p"
        );
        let one = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a"}]}});
        assert_eq!(container(&one, None).unwrap(), "a");
    }

    #[test]
    fn waiting_containers_have_no_logs() {
        let pod = json!({"metadata": {"name": "p"}, "status": {"containerStatuses": [
            {"name": "a", "state": {"waiting": {"reason": "ContainerCreating"}}, "lastState": {}}]}});
        assert_eq!(
            check_log_container(&pod, "a", false).unwrap_err().message,
            "container \"a\" in pod \"p\" is waiting to start: ContainerCreating"
        );
        assert_eq!(
            check_log_container(&pod, "a", true).unwrap_err().message,
            "previous terminated container \"a\" in pod \"p\" not found"
        );
    }
}
