//! `pods/<id>/proxy/<path>` and `services/<id>/proxy/<path>`: HTTP(S), upgrades included,
//! from the API server to a pod's IP or to one ready endpoint of a service, as upstream's
//! ProxyREST (`pkg/registry/core/pod/strategy.go` and `service/storage/storage.go`
//! `ResourceLocation`). `<id>` is `name`, `name:port` or `scheme:name:port`; a pod's default
//! port is its first declared container port, a service's port is named (or a number that
//! names one of the service's ports). Upstream also rewrites links in proxied HTML pages;
//! Rudder passes bodies through unchanged.

use std::sync::Arc;

use axum::body::Body;
use axum::response::Response;
use rudder_api::status::ApiError;
use serde_json::Value;

use crate::podproxy::{outgoing, relay, unreachable};
use crate::ApiServer;

/// Upstream's `SplitSchemeNamePort`: `(scheme, name, port)`.
fn split_scheme_name_port(id: &str) -> Option<(&str, &str, &str)> {
    let parts: Vec<&str> = id.split(':').collect();
    let (scheme, name, port) = match parts.as_slice() {
        [name] => ("", *name, ""),
        [name, port] => ("", *name, *port),
        [scheme, name, port] => (*scheme, *name, *port),
        _ => return None,
    };
    (!name.is_empty() && matches!(scheme, "" | "http" | "https")).then_some((scheme, name, port))
}

/// Where a request goes: scheme, IP and port (none: the scheme's default).
struct Location {
    https: bool,
    ip: String,
    port: Option<u16>,
}

async fn object(
    s: &ApiServer,
    resource: &str,
    namespace: &str,
    name: &str,
) -> Result<Value, ApiError> {
    let entry =
        s.gs.registry
            .get("", "v1", resource)
            .ok_or_else(|| ApiError::internal_error(format!("{resource} are not registered")))?;
    s.gs.get(&entry, Some(namespace), name).await
}

fn parse_port(p: &str) -> Result<Option<u16>, ApiError> {
    if p.is_empty() {
        return Ok(None);
    }
    p.parse()
        .map(Some)
        .map_err(|_| ApiError::bad_request(format!("invalid port {p:?}")))
}

async fn pod_location(s: &ApiServer, namespace: &str, id: &str) -> Result<Location, ApiError> {
    let (scheme, name, port) = split_scheme_name_port(id)
        .ok_or_else(|| ApiError::bad_request(format!("invalid pod request {id:?}")))?;
    let pod = object(s, "pods", namespace, name).await?;
    let port = match port {
        "" => pod["spec"]["containers"]
            .as_array()
            .into_iter()
            .flatten()
            .find_map(|c| c["ports"][0]["containerPort"].as_u64())
            .map(|p| p.to_string())
            .unwrap_or_default(),
        p => p.to_string(),
    };
    let ip = pod["status"]["podIP"].as_str().unwrap_or_default();
    if !proxyable(ip) {
        return Err(ApiError::bad_request("address not allowed"));
    }
    Ok(Location {
        https: scheme == "https",
        ip: ip.to_string(),
        port: parse_port(&port)?,
    })
}

/// Upstream proxies only to global unicast addresses (no loopback, link-local, multicast or
/// unspecified ones), so the API server cannot be pointed at itself or the node's metadata.
fn proxyable(ip: &str) -> bool {
    match ip.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(a)) => {
            !(a.is_loopback()
                || a.is_link_local()
                || a.is_multicast()
                || a.is_unspecified()
                || a.is_broadcast())
        }
        Ok(std::net::IpAddr::V6(a)) => {
            !(a.is_loopback()
                || a.is_multicast()
                || a.is_unspecified()
                || (a.segments()[0] & 0xffc0) == 0xfe80)
        }
        Err(_) => false,
    }
}

async fn service_location(s: &ApiServer, namespace: &str, id: &str) -> Result<Location, ApiError> {
    let (scheme, name, port) = split_scheme_name_port(id)
        .ok_or_else(|| ApiError::bad_request(format!("invalid service request {id:?}")))?;
    let mut port_name = port.to_string();
    if let Ok(number) = port.parse::<i64>() {
        let svc = object(s, "services", namespace, name).await?;
        port_name = svc["spec"]["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["port"].as_i64() == Some(number))
            .map(|p| p["name"].as_str().unwrap_or_default().to_string())
            .ok_or_else(|| {
                ApiError::service_unavailable(format!(
                    "no service port {number} found for service {name:?}"
                ))
            })?;
    }
    let eps = object(s, "endpoints", namespace, name).await?;
    let subsets = eps["subsets"].as_array().cloned().unwrap_or_default();
    if subsets.is_empty() {
        return Err(ApiError::service_unavailable(format!(
            "no endpoints available for service {name:?}"
        )));
    }
    let seed = random_index(subsets.len());
    for i in 0..subsets.len() {
        let ss = &subsets[(seed + i) % subsets.len()];
        let addrs = ss["addresses"].as_array().cloned().unwrap_or_default();
        if addrs.is_empty() {
            continue;
        }
        let Some(p) = ss["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["name"].as_str().unwrap_or_default() == port_name)
        else {
            continue;
        };
        let addr = &addrs[random_index(addrs.len())];
        return Ok(Location {
            https: scheme == "https",
            ip: addr["ip"].as_str().unwrap_or_default().to_string(),
            port: p["port"].as_u64().and_then(|p| u16::try_from(p).ok()),
        });
    }
    Err(ApiError::service_unavailable(format!(
        "no endpoints available for service {id:?}"
    )))
}

/// Upstream picks subsets and addresses at random to spread proxied requests.
fn random_index(n: usize) -> usize {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    (h.finish() as usize) % n.max(1)
}

/// Serves one `pods/<id>/proxy…` or `services/<id>/proxy…` request.
pub async fn handle(
    s: &Arc<ApiServer>,
    namespace: &str,
    resource: &str,
    id: &str,
    req: http::Request<Body>,
) -> Result<Response, ApiError> {
    let Some(client) = s.kubelet_client.as_ref() else {
        return Err(ApiError::service_unavailable(
            "this API server has no proxy client credentials",
        ));
    };
    let loc = if resource == "pods" {
        pod_location(s, namespace, id).await?
    } else {
        service_location(s, namespace, id).await?
    };
    let path = req.uri().path().to_string();
    let marker = format!("/{resource}/{id}/proxy");
    let rest = path.split_once(&marker).map(|(_, r)| r).unwrap_or("");
    if rest.is_empty() {
        // Upstream redirects `…/proxy` to `…/proxy/` so relative links resolve below it.
        let mut to = format!("{path}/");
        if let Some(q) = req.uri().query() {
            to.push('?');
            to.push_str(q);
        }
        return http::Response::builder()
            .status(http::StatusCode::MOVED_PERMANENTLY)
            .header(http::header::LOCATION, to)
            .body(Body::empty())
            .map_err(ApiError::internal_error);
    }
    let uri = match req.uri().query() {
        Some(q) => format!("{rest}?{q}"),
        None => rest.to_string(),
    };
    let port = loc.port.unwrap_or(if loc.https { 443 } else { 80 });
    let host = if loc.ip.contains(':') {
        format!("[{}]:{port}", loc.ip)
    } else {
        format!("{}:{port}", loc.ip)
    };
    let (out, upgrade, on_client_upgrade) = outgoing(req, uri, &host)?;
    let resp = client
        .send_to(loc.https, &loc.ip, port, out)
        .await
        .map_err(unreachable)?;
    relay(resp, upgrade, on_client_upgrade, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_split_as_upstream() {
        assert_eq!(split_scheme_name_port("web"), Some(("", "web", "")));
        assert_eq!(split_scheme_name_port("web:80"), Some(("", "web", "80")));
        assert_eq!(
            split_scheme_name_port("https:web:tls"),
            Some(("https", "web", "tls"))
        );
        assert_eq!(split_scheme_name_port("ftp:web:21"), None);
        assert_eq!(split_scheme_name_port(":80"), None);
        assert_eq!(split_scheme_name_port("a:b:c:d"), None);
    }

    #[test]
    fn only_global_addresses_are_proxied() {
        assert!(proxyable("10.42.0.7"));
        assert!(proxyable("fd00::7"));
        for ip in [
            "127.0.0.1",
            "169.254.169.254",
            "0.0.0.0",
            "224.0.0.1",
            "::1",
            "fe80::1",
            "",
        ] {
            assert!(!proxyable(ip), "{ip}");
        }
    }
}
