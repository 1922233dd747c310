//! The API objects of the cluster DNS: `kube-system/kube-dns`, the Service k3s's CoreDNS
//! manifest ships (same name, labels, ports and cluster IP), without a selector since no pod
//! backs it, and its EndpointSlice pointing at where this process listens, so the service proxy
//! sends `10.43.0.10:53` here. Both are put back as they should be when changed or deleted.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};
use serde_json::json;

use crate::index::SERVICE_NAME_LABEL;

pub const NAMESPACE: &str = "kube-system";
pub const SERVICE: &str = "kube-dns";
/// The EndpointSlice's name (upstream's controller generates `kube-dns-<suffix>`; this one is
/// written by us, under a fixed name).
pub const SLICE: &str = "kube-dns-rudder";
/// `endpointslice.kubernetes.io/managed-by` of our slice (the endpointslice controller only
/// touches slices labelled `endpointslice-controller.k8s.io`).
pub const MANAGED_BY: &str = "rudder-dns";
const FIELD_MANAGER: &str = "rudder-dns";
/// How often the objects are checked.
const RESYNC: Duration = Duration::from_secs(30);

/// Where the kube-dns service points.
#[derive(Clone, Debug)]
pub struct KubeDnsService {
    /// `--cluster-dns` (10.43.0.10 by default, as k3s).
    pub cluster_ip: IpAddr,
    /// The address this server listens on.
    pub endpoint_ip: IpAddr,
    /// The node it runs on, if any.
    pub node_name: Option<String>,
    /// The metrics port (9153).
    pub metrics_port: u16,
}

fn labels() -> BTreeMap<String, String> {
    [
        ("k8s-app", "kube-dns"),
        ("kubernetes.io/cluster-service", "true"),
        ("kubernetes.io/name", "CoreDNS"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

fn family(ip: IpAddr) -> &'static str {
    if ip.is_ipv4() {
        "IPv4"
    } else {
        "IPv6"
    }
}

/// The Service as k3s's `coredns.yaml` declares it, less the selector.
pub fn service(cfg: &KubeDnsService) -> serde_json::Value {
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": SERVICE,
            "namespace": NAMESPACE,
            "labels": labels(),
            "annotations": {
                "prometheus.io/port": cfg.metrics_port.to_string(),
                "prometheus.io/scrape": "true",
            },
        },
        "spec": {
            "clusterIP": cfg.cluster_ip.to_string(),
            "clusterIPs": [cfg.cluster_ip.to_string()],
            "ipFamilies": [family(cfg.cluster_ip)],
            "ipFamilyPolicy": "SingleStack",
            "ports": [
                {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
                {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53},
                {"name": "metrics", "port": cfg.metrics_port, "protocol": "TCP", "targetPort": cfg.metrics_port},
            ],
        },
    })
}

/// The EndpointSlice for the service: this server's address, ready.
pub fn slice(cfg: &KubeDnsService, owner_uid: Option<&str>) -> serde_json::Value {
    let mut endpoint = json!({
        "addresses": [cfg.endpoint_ip.to_string()],
        "conditions": {"ready": true, "serving": true, "terminating": false},
    });
    if let Some(node) = &cfg.node_name {
        endpoint["nodeName"] = json!(node);
    }
    let mut s = json!({
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": SLICE,
            "namespace": NAMESPACE,
            "labels": {
                SERVICE_NAME_LABEL: SERVICE,
                "endpointslice.kubernetes.io/managed-by": MANAGED_BY,
            },
        },
        "addressType": family(cfg.endpoint_ip),
        "endpoints": [endpoint],
        "ports": [
            {"name": "dns", "port": 53, "protocol": "UDP"},
            {"name": "dns-tcp", "port": 53, "protocol": "TCP"},
            {"name": "metrics", "port": cfg.metrics_port, "protocol": "TCP"},
        ],
    });
    if let Some(uid) = owner_uid {
        s["metadata"]["ownerReferences"] = json!([{
            "apiVersion": "v1",
            "kind": "Service",
            "name": SERVICE,
            "uid": uid,
            "controller": true,
            "blockOwnerDeletion": true,
        }]);
    }
    s
}

/// Whether `current` already has every field `want` sets (so nothing is written).
fn covers(current: &serde_json::Value, want: &serde_json::Value) -> bool {
    match (current, want) {
        (serde_json::Value::Object(c), serde_json::Value::Object(w)) => w
            .iter()
            .filter(|(k, _)| k.as_str() != "apiVersion" && k.as_str() != "kind")
            .all(|(k, v)| c.get(k).is_some_and(|cv| covers(cv, v))),
        (serde_json::Value::Array(c), serde_json::Value::Array(w)) => {
            c.len() == w.len() && c.iter().zip(w).all(|(a, b)| covers(a, b))
        }
        (c, w) => c == w,
    }
}

/// Makes sure the Service and its EndpointSlice exist as they should, once.
pub async fn ensure(client: &Client, cfg: &KubeDnsService) -> Result<(), kube::Error> {
    let services: Api<Service> = Api::namespaced(client.clone(), NAMESPACE);
    let want = service(cfg);
    let current = services.get_opt(SERVICE).await?;
    let uid = match current {
        Some(cur) if covers(&serde_json::to_value(&cur).unwrap_or_default(), &want) => {
            cur.metadata.uid
        }
        _ => {
            let pp = PatchParams::apply(FIELD_MANAGER).force();
            let applied = services.patch(SERVICE, &pp, &Patch::Apply(&want)).await?;
            tracing::info!(service = "kube-system/kube-dns", ip = %cfg.cluster_ip, "cluster DNS service applied");
            applied.metadata.uid
        }
    };
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), NAMESPACE);
    let want = slice(cfg, uid.as_deref());
    let current = slices.get_opt(SLICE).await?;
    let fresh =
        current.is_some_and(|cur| covers(&serde_json::to_value(&cur).unwrap_or_default(), &want));
    if !fresh {
        let pp = PatchParams::apply(FIELD_MANAGER).force();
        slices.patch(SLICE, &pp, &Patch::Apply(&want)).await?;
    }
    Ok(())
}

/// Keeps the objects in place until the future is dropped.
pub async fn keep(client: Client, cfg: KubeDnsService) {
    loop {
        if let Err(e) = ensure(&client, &cfg).await {
            tracing::warn!(error = %e, "could not write the kube-dns Service/EndpointSlice; retrying");
        }
        tokio::time::sleep(RESYNC).await;
    }
}
