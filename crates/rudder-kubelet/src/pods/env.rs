//! Container environments: `env` (values, field/resource/configMap/secret references),
//! `envFrom`, the service links and `$(VAR)` expansion, as upstream's `makeEnvironmentVariables`.

use std::collections::{BTreeMap, HashMap};

use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, Secret, Service};
use kube::api::Api;

/// Upstream's `expansion.Expand`: `$(VAR)` becomes VAR's value when defined and stays as
/// written otherwise; `$$` is an escaped `$`.
pub fn expand(input: &str, lookup: &dyn Fn(&str) -> Option<String>) -> String {
    let bytes = input.as_bytes();
    let mut out = String::with_capacity(input.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'$' && i + 1 < bytes.len() {
            match bytes[i + 1] {
                b'$' => {
                    out.push('$');
                    i += 2;
                    continue;
                }
                b'(' => {
                    if let Some(end) = input[i + 2..].find(')') {
                        let name = &input[i + 2..i + 2 + end];
                        match lookup(name) {
                            Some(v) => out.push_str(&v),
                            None => out.push_str(&input[i..i + 3 + end]),
                        }
                        i += 3 + end;
                        continue;
                    }
                }
                _ => {}
            }
        }
        let ch = input[i..].chars().next().unwrap_or('\u{fffd}');
        out.push(ch);
        i += ch.len_utf8();
    }
    out
}

#[derive(Debug, thiserror::Error)]
pub enum EnvError {
    #[error("configmap {0:?} not found")]
    ConfigMapMissing(String),
    #[error("couldn't find key {key} in ConfigMap {namespace}/{name}")]
    ConfigMapKey {
        key: String,
        namespace: String,
        name: String,
    },
    #[error("secret {0:?} not found")]
    SecretMissing(String),
    #[error("couldn't find key {key} in Secret {namespace}/{name}")]
    SecretKey {
        key: String,
        namespace: String,
        name: String,
    },
    #[error("{0}")]
    Field(String),
    #[error("{0}")]
    Api(#[from] kube::Error),
}

/// The `{SVC}_SERVICE_HOST`… variables of every service in the pod's namespace (and the
/// master service from `default`), as docker links named them (`envvars.FromServices`).
pub fn service_env(services: &[Service]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut sorted: Vec<&Service> = services.iter().collect();
    sorted.sort_by_key(|s| s.metadata.name.clone());
    for svc in sorted {
        let Some(spec) = svc.spec.as_ref() else {
            continue;
        };
        let ip = spec.cluster_ip.as_deref().unwrap_or("");
        if ip.is_empty() || ip == "None" {
            continue;
        }
        let name = svc
            .metadata
            .name
            .as_deref()
            .unwrap_or_default()
            .to_uppercase()
            .replace('-', "_");
        let ports = spec.ports.as_deref().unwrap_or_default();
        out.push((format!("{name}_SERVICE_HOST"), ip.to_string()));
        if let Some(first) = ports.first() {
            out.push((format!("{name}_SERVICE_PORT"), first.port.to_string()));
        }
        for p in ports {
            if let Some(pn) = p.name.as_deref().filter(|n| !n.is_empty()) {
                out.push((
                    format!(
                        "{name}_SERVICE_PORT_{}",
                        pn.to_uppercase().replace('-', "_")
                    ),
                    p.port.to_string(),
                ));
            }
        }
        if let Some(first) = ports.first() {
            let proto = first.protocol.as_deref().unwrap_or("TCP");
            out.push((
                format!("{name}_PORT"),
                format!("{}://{ip}:{}", proto.to_lowercase(), first.port),
            ));
        }
        for p in ports {
            let proto = p.protocol.as_deref().unwrap_or("TCP");
            let prefix = format!("{name}_PORT_{}_{}", p.port, proto.to_uppercase());
            out.push((
                prefix.clone(),
                format!("{}://{ip}:{}", proto.to_lowercase(), p.port),
            ));
            out.push((format!("{prefix}_PROTO"), proto.to_lowercase()));
            out.push((format!("{prefix}_PORT"), p.port.to_string()));
            out.push((format!("{prefix}_ADDR"), ip.to_string()));
        }
    }
    out
}

/// `metadata.labels['x']`-style field paths and the rest of the downward API's fields.
pub fn field_value(
    pod: &Pod,
    path: &str,
    node_name: &str,
    host_ip: &str,
) -> Result<String, EnvError> {
    let meta = &pod.metadata;
    let status = pod.status.as_ref();
    let spec = pod.spec.as_ref();
    let subscript = |prefix: &str| -> Option<String> {
        let rest = path
            .strip_prefix(prefix)?
            .strip_prefix("['")?
            .strip_suffix("']")?;
        Some(rest.to_string())
    };
    if let Some(k) = subscript("metadata.labels") {
        return Ok(meta
            .labels
            .as_ref()
            .and_then(|l| l.get(&k))
            .cloned()
            .unwrap_or_default());
    }
    if let Some(k) = subscript("metadata.annotations") {
        return Ok(meta
            .annotations
            .as_ref()
            .and_then(|l| l.get(&k))
            .cloned()
            .unwrap_or_default());
    }
    let fmt_map = |m: Option<&BTreeMap<String, String>>| {
        m.map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={v:?}"))
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default()
    };
    Ok(match path {
        "metadata.name" => meta.name.clone().unwrap_or_default(),
        "metadata.namespace" => meta.namespace.clone().unwrap_or_default(),
        "metadata.uid" => meta.uid.clone().unwrap_or_default(),
        "metadata.labels" => fmt_map(meta.labels.as_ref()),
        "metadata.annotations" => fmt_map(meta.annotations.as_ref()),
        "spec.nodeName" => spec
            .and_then(|s| s.node_name.clone())
            .unwrap_or_else(|| node_name.into()),
        "spec.serviceAccountName" => spec
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_default(),
        "status.hostIP" => host_ip.to_string(),
        "status.hostIPs" => host_ip.to_string(),
        "status.podIP" => status.and_then(|s| s.pod_ip.clone()).unwrap_or_default(),
        "status.podIPs" => status
            .and_then(|s| s.pod_ips.as_ref())
            .map(|ips| {
                ips.iter()
                    .map(|i| i.ip.clone())
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .unwrap_or_default(),
        other => {
            return Err(EnvError::Field(format!(
                "unsupported fieldRef fieldPath {other:?}"
            )))
        }
    })
}

/// `resourceFieldRef`: the container's limit (or the node's allocatable when unset) or request,
/// divided by the divisor and rounded up, as upstream's `ExtractContainerResourceValue`.
pub fn resource_value(
    c: &Container,
    resource: &str,
    divisor: Option<&str>,
    allocatable: &BTreeMap<String, String>,
) -> Result<String, EnvError> {
    let res = c.resources.as_ref();
    let (kind, name) = resource
        .split_once('.')
        .ok_or_else(|| EnvError::Field(format!("unsupported container resource: {resource}")))?;
    let map = match kind {
        "limits" => res.and_then(|r| r.limits.as_ref()),
        "requests" => res.and_then(|r| r.requests.as_ref()),
        _ => {
            return Err(EnvError::Field(format!(
                "unsupported container resource: {resource}"
            )))
        }
    };
    let value = map
        .and_then(|m| m.get(name))
        .map(|q| q.0.clone())
        .or_else(|| {
            (kind == "limits")
                .then(|| allocatable.get(name).cloned())
                .flatten()
        })
        .unwrap_or_else(|| "0".into());
    let q = rudder_api::quantity::parse(&value).map_err(|e| EnvError::Field(e.to_string()))?;
    let d = rudder_api::quantity::parse(divisor.unwrap_or("1"))
        .map_err(|e| EnvError::Field(e.to_string()))?;
    let (qm, dm) = (q.milli_value() as i128, d.milli_value().max(1) as i128);
    Ok(((qm + dm - 1) / dm).to_string())
}

/// Reads ConfigMaps and Secrets of the pod's namespace once per container start.
pub struct Sources<'a> {
    pub client: &'a kube::Client,
    pub namespace: &'a str,
    configmaps: HashMap<String, Option<ConfigMap>>,
    secrets: HashMap<String, Option<Secret>>,
}

impl<'a> Sources<'a> {
    pub fn new(client: &'a kube::Client, namespace: &'a str) -> Sources<'a> {
        Sources {
            client,
            namespace,
            configmaps: HashMap::new(),
            secrets: HashMap::new(),
        }
    }

    pub async fn configmap(&mut self, name: &str) -> Result<Option<&ConfigMap>, EnvError> {
        if !self.configmaps.contains_key(name) {
            let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), self.namespace);
            let cm = api.get_opt(name).await?;
            self.configmaps.insert(name.to_string(), cm);
        }
        Ok(self.configmaps.get(name).and_then(Option::as_ref))
    }

    pub async fn secret(&mut self, name: &str) -> Result<Option<&Secret>, EnvError> {
        if !self.secrets.contains_key(name) {
            let api: Api<Secret> = Api::namespaced(self.client.clone(), self.namespace);
            let s = api.get_opt(name).await?;
            self.secrets.insert(name.to_string(), s);
        }
        Ok(self.secrets.get(name).and_then(Option::as_ref))
    }
}

pub fn configmap_value(cm: &ConfigMap, key: &str) -> Option<String> {
    cm.data
        .as_ref()
        .and_then(|d| d.get(key).cloned())
        .or_else(|| {
            cm.binary_data
                .as_ref()
                .and_then(|d| d.get(key))
                .map(|b| String::from_utf8_lossy(&b.0).into_owned())
        })
}

pub fn secret_value(s: &Secret, key: &str) -> Option<String> {
    s.data
        .as_ref()
        .and_then(|d| d.get(key))
        .map(|b| String::from_utf8_lossy(&b.0).into_owned())
        .or_else(|| s.string_data.as_ref().and_then(|d| d.get(key).cloned()))
}

/// The container's environment in upstream's order: service links first, then envFrom, then
/// env (each `$(VAR)`-expanded against what came before it).
pub async fn container_env(
    pod: &Pod,
    c: &Container,
    services: &[Service],
    sources: &mut Sources<'_>,
    node_name: &str,
    host_ip: &str,
    allocatable: &BTreeMap<String, String>,
) -> Result<Vec<(String, String)>, EnvError> {
    let mut vars: Vec<(String, String)> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut set = |vars: &mut Vec<(String, String)>, k: String, v: String| match index.get(&k) {
        Some(&i) => vars[i].1 = v,
        None => {
            index.insert(k.clone(), vars.len());
            vars.push((k, v));
        }
    };
    let links = pod
        .spec
        .as_ref()
        .and_then(|s| s.enable_service_links)
        .unwrap_or(true);
    let mut service_vars: HashMap<String, String> = HashMap::new();
    if links {
        for (k, v) in service_env(services) {
            service_vars.insert(k, v);
        }
    } else {
        // The master service's variables are always there.
        let master: Vec<Service> = services
            .iter()
            .filter(|s| {
                s.metadata.name.as_deref() == Some("kubernetes")
                    && s.metadata.namespace.as_deref() == Some("default")
            })
            .cloned()
            .collect();
        service_vars.extend(service_env(&master));
    }
    for from in c.env_from.iter().flatten() {
        let prefix = from.prefix.clone().unwrap_or_default();
        if let Some(r) = &from.config_map_ref {
            let optional = r.optional.unwrap_or(false);
            match sources.configmap(&r.name).await? {
                Some(cm) => {
                    let mut entries: Vec<(String, String)> = cm
                        .data
                        .iter()
                        .flatten()
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect();
                    entries.sort();
                    for (k, v) in entries {
                        set(&mut vars, format!("{prefix}{k}"), v);
                    }
                }
                None if optional => {}
                None => return Err(EnvError::ConfigMapMissing(r.name.clone())),
            }
        }
        if let Some(r) = &from.secret_ref {
            let optional = r.optional.unwrap_or(false);
            match sources.secret(&r.name).await? {
                Some(s) => {
                    let mut entries: Vec<(String, String)> = s
                        .data
                        .iter()
                        .flatten()
                        .map(|(k, v)| (k.clone(), String::from_utf8_lossy(&v.0).into_owned()))
                        .collect();
                    entries.sort();
                    for (k, v) in entries {
                        set(&mut vars, format!("{prefix}{k}"), v);
                    }
                }
                None if optional => {}
                None => return Err(EnvError::SecretMissing(r.name.clone())),
            }
        }
    }
    let ns = sources.namespace.to_string();
    for e in c.env.iter().flatten() {
        let value = if let Some(v) = &e.value {
            let known: HashMap<String, String> = vars
                .iter()
                .cloned()
                .chain(service_vars.iter().map(|(k, v)| (k.clone(), v.clone())))
                .collect();
            expand(v, &|n| known.get(n).cloned())
        } else if let Some(from) = &e.value_from {
            if let Some(f) = &from.field_ref {
                field_value(pod, &f.field_path, node_name, host_ip)?
            } else if let Some(r) = &from.resource_field_ref {
                let target = match r.container_name.as_deref() {
                    Some(n) if !n.is_empty() => pod
                        .spec
                        .as_ref()
                        .and_then(|s| s.containers.iter().find(|c| c.name == n))
                        .unwrap_or(c),
                    _ => c,
                };
                resource_value(
                    target,
                    &r.resource,
                    r.divisor.as_ref().map(|d| d.0.as_str()),
                    allocatable,
                )?
            } else if let Some(r) = &from.config_map_key_ref {
                let optional = r.optional.unwrap_or(false);
                match sources.configmap(&r.name).await? {
                    Some(cm) => match configmap_value(cm, &r.key) {
                        Some(v) => v,
                        None if optional => continue,
                        None => {
                            return Err(EnvError::ConfigMapKey {
                                key: r.key.clone(),
                                namespace: ns,
                                name: r.name.clone(),
                            })
                        }
                    },
                    None if optional => continue,
                    None => return Err(EnvError::ConfigMapMissing(r.name.clone())),
                }
            } else if let Some(r) = &from.secret_key_ref {
                let optional = r.optional.unwrap_or(false);
                match sources.secret(&r.name).await? {
                    Some(s) => match secret_value(s, &r.key) {
                        Some(v) => v,
                        None if optional => continue,
                        None => {
                            return Err(EnvError::SecretKey {
                                key: r.key.clone(),
                                namespace: ns,
                                name: r.name.clone(),
                            })
                        }
                    },
                    None if optional => continue,
                    None => return Err(EnvError::SecretMissing(r.name.clone())),
                }
            } else {
                String::new()
            }
        } else {
            String::new()
        };
        set(&mut vars, e.name.clone(), value);
    }
    // Service variables come first and lose to anything the pod sets itself.
    let mut out: Vec<(String, String)> = {
        let mut sv: Vec<(String, String)> = service_vars
            .into_iter()
            .filter(|(k, _)| !index.contains_key(k))
            .collect();
        sv.sort();
        sv
    };
    out.extend(vars);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn expansion_follows_upstream() {
        let vars: HashMap<&str, &str> = [("A", "1"), ("B", "two")].into_iter().collect();
        let look = |n: &str| vars.get(n).map(|s| s.to_string());
        assert_eq!(expand("$(A)-$(B)", &look), "1-two");
        assert_eq!(expand("$(MISSING)", &look), "$(MISSING)");
        assert_eq!(expand("$$(A)", &look), "$(A)");
        assert_eq!(expand("$$", &look), "$");
        assert_eq!(expand("a$b", &look), "a$b");
        assert_eq!(expand("$(A", &look), "$(A");
        assert_eq!(expand("é$(A)ü", &look), "é1ü");
    }

    #[test]
    fn service_links_as_docker_names_them() {
        let svc: Service = serde_json::from_value(json!({
            "metadata": {"name": "my-svc", "namespace": "default"},
            "spec": {"clusterIP": "10.43.0.5", "ports": [
                {"name": "http", "port": 80, "protocol": "TCP"},
                {"port": 53, "protocol": "UDP"}]}
        }))
        .unwrap();
        let env: HashMap<String, String> = service_env(&[svc]).into_iter().collect();
        assert_eq!(env["MY_SVC_SERVICE_HOST"], "10.43.0.5");
        assert_eq!(env["MY_SVC_SERVICE_PORT"], "80");
        assert_eq!(env["MY_SVC_SERVICE_PORT_HTTP"], "80");
        assert_eq!(env["MY_SVC_PORT"], "tcp://10.43.0.5:80");
        assert_eq!(env["MY_SVC_PORT_53_UDP"], "udp://10.43.0.5:53");
        assert_eq!(env["MY_SVC_PORT_53_UDP_PROTO"], "udp");
        assert_eq!(env["MY_SVC_PORT_80_TCP_ADDR"], "10.43.0.5");
    }

    #[test]
    fn resource_field_refs_divide_and_round_up() {
        let c: Container = serde_json::from_value(json!({"name": "a",
            "resources": {"limits": {"cpu": "250m", "memory": "64Mi"}}}))
        .unwrap();
        let alloc = BTreeMap::new();
        assert_eq!(resource_value(&c, "limits.cpu", None, &alloc).unwrap(), "1");
        assert_eq!(
            resource_value(&c, "limits.cpu", Some("1m"), &alloc).unwrap(),
            "250"
        );
        assert_eq!(
            resource_value(&c, "limits.memory", Some("1Mi"), &alloc).unwrap(),
            "64"
        );
        let mut alloc = BTreeMap::new();
        alloc.insert("cpu".to_string(), "2".to_string());
        let c: Container = serde_json::from_value(json!({"name": "a"})).unwrap();
        assert_eq!(resource_value(&c, "limits.cpu", None, &alloc).unwrap(), "2");
    }

    #[test]
    fn field_refs() {
        let p: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "ns", "uid": "u", "labels": {"app": "web"}},
            "spec": {"nodeName": "n1", "containers": []},
            "status": {"podIP": "10.42.0.7"}
        }))
        .unwrap();
        assert_eq!(
            field_value(&p, "metadata.labels['app']", "n", "1.2.3.4").unwrap(),
            "web"
        );
        assert_eq!(
            field_value(&p, "status.podIP", "n", "1.2.3.4").unwrap(),
            "10.42.0.7"
        );
        assert_eq!(
            field_value(&p, "status.hostIP", "n", "1.2.3.4").unwrap(),
            "1.2.3.4"
        );
        assert_eq!(field_value(&p, "spec.nodeName", "n", "").unwrap(), "n1");
        assert_eq!(
            field_value(&p, "metadata.labels", "n", "").unwrap(),
            "app=\"web\""
        );
    }
}
