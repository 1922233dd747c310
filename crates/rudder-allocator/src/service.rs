//! The Service fields allocation reads and writes, and upstream's pure preparation steps
//! (`normalizeClusterIPs`, `patchAllocatedValues`, `initIPFamilyFields` and the pre-validation
//! it runs), over the object's JSON.
//!
//! Rudder's service strategy may not have defaulted the object yet, so a missing `type` is
//! treated as `ClusterIP` and a missing `allocateLoadBalancerNodePorts` as true (upstream's
//! defaults); nothing here sets them.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};

use rudder_api::field::{ErrorList, FieldError, Path};
use serde_json::{Map, Value};

pub(crate) const CLUSTER_IP: &str = "ClusterIP";
pub(crate) const NODE_PORT: &str = "NodePort";
pub(crate) const LOAD_BALANCER: &str = "LoadBalancer";
pub(crate) const EXTERNAL_NAME: &str = "ExternalName";
pub(crate) const NONE: &str = "None";
pub(crate) const IPV4: &str = "IPv4";
pub(crate) const IPV6: &str = "IPv6";
pub(crate) const SINGLE_STACK: &str = "SingleStack";
pub(crate) const PREFER_DUAL_STACK: &str = "PreferDualStack";
pub(crate) const REQUIRE_DUAL_STACK: &str = "RequireDualStack";

/// One entry of `spec.ports`, as allocation sees it.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct PortFields {
    pub name: String,
    pub protocol: String,
    pub port: i64,
    pub node_port: i64,
}

/// The allocation-relevant part of a Service's spec.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Svc {
    /// The effective type: `ClusterIP` when unset.
    pub svc_type: String,
    pub cluster_ip: String,
    pub cluster_ips: Vec<String>,
    pub ip_families: Vec<String>,
    pub ip_family_policy: Option<String>,
    pub has_selector: bool,
    pub ports: Vec<PortFields>,
    pub health_check_node_port: i64,
    pub external_traffic_policy: String,
    /// `allocateLoadBalancerNodePorts`, true when unset (upstream's default for LoadBalancer).
    pub allocate_lb_node_ports: bool,
}

fn text(v: &Value) -> String {
    v.as_str().map_or_else(|| v.to_string(), str::to_string)
}

fn str_field(spec: Option<&Map<String, Value>>, name: &str) -> String {
    spec.and_then(|s| s.get(name))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string()
}

fn list_field(spec: Option<&Map<String, Value>>, name: &str) -> Vec<String> {
    spec.and_then(|s| s.get(name))
        .and_then(Value::as_array)
        .map(|a| a.iter().map(text).collect())
        .unwrap_or_default()
}

impl Svc {
    pub fn read(obj: &Value) -> Svc {
        let spec = obj.get("spec").and_then(Value::as_object);
        let svc_type = match str_field(spec, "type") {
            t if t.is_empty() => CLUSTER_IP.to_string(),
            t => t,
        };
        let ports = spec
            .and_then(|s| s.get("ports"))
            .and_then(Value::as_array)
            .map(|ports| {
                ports
                    .iter()
                    .map(|p| PortFields {
                        name: p.get("name").and_then(Value::as_str).unwrap_or("").into(),
                        protocol: p
                            .get("protocol")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .into(),
                        port: p.get("port").and_then(Value::as_i64).unwrap_or(0),
                        node_port: p.get("nodePort").and_then(Value::as_i64).unwrap_or(0),
                    })
                    .collect()
            })
            .unwrap_or_default();
        Svc {
            svc_type,
            cluster_ip: str_field(spec, "clusterIP"),
            cluster_ips: list_field(spec, "clusterIPs"),
            ip_families: list_field(spec, "ipFamilies"),
            ip_family_policy: spec
                .and_then(|s| s.get("ipFamilyPolicy"))
                .filter(|v| !v.is_null())
                .map(text),
            has_selector: spec
                .and_then(|s| s.get("selector"))
                .and_then(Value::as_object)
                .is_some_and(|m| !m.is_empty()),
            ports,
            health_check_node_port: spec
                .and_then(|s| s.get("healthCheckNodePort"))
                .and_then(Value::as_i64)
                .unwrap_or(0),
            external_traffic_policy: str_field(spec, "externalTrafficPolicy"),
            allocate_lb_node_ports: spec
                .and_then(|s| s.get("allocateLoadBalancerNodePorts"))
                .and_then(Value::as_bool)
                .unwrap_or(true),
        }
    }

    /// Write the fields allocation may change back into `obj`, touching only those that
    /// differ from `orig` (what [`Svc::read`] gave). Empty values are removed, as Go's
    /// `omitempty` leaves them out.
    pub fn write(&self, orig: &Svc, obj: &mut Value) {
        if self == orig {
            return;
        }
        let Some(root) = obj.as_object_mut() else {
            return;
        };
        let spec = root
            .entry("spec")
            .or_insert_with(|| Value::Object(Map::new()));
        let Some(spec) = spec.as_object_mut() else {
            return;
        };
        let set_str = |spec: &mut Map<String, Value>, name: &str, v: &str| {
            if v.is_empty() {
                spec.remove(name);
            } else {
                spec.insert(name.into(), Value::String(v.into()));
            }
        };
        let set_list = |spec: &mut Map<String, Value>, name: &str, v: &[String]| {
            if v.is_empty() {
                spec.remove(name);
            } else {
                spec.insert(
                    name.into(),
                    Value::Array(v.iter().cloned().map(Value::String).collect()),
                );
            }
        };
        if self.cluster_ip != orig.cluster_ip {
            set_str(spec, "clusterIP", &self.cluster_ip);
        }
        if self.cluster_ips != orig.cluster_ips {
            set_list(spec, "clusterIPs", &self.cluster_ips);
        }
        if self.ip_families != orig.ip_families {
            set_list(spec, "ipFamilies", &self.ip_families);
        }
        if self.ip_family_policy != orig.ip_family_policy {
            set_str(
                spec,
                "ipFamilyPolicy",
                self.ip_family_policy.as_deref().unwrap_or(""),
            );
        }
        if self.health_check_node_port != orig.health_check_node_port {
            set_int(spec, "healthCheckNodePort", self.health_check_node_port);
        }
        if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
            for ((port, new), old) in ports.iter_mut().zip(&self.ports).zip(&orig.ports) {
                if new.node_port != old.node_port {
                    if let Some(p) = port.as_object_mut() {
                        set_int(p, "nodePort", new.node_port);
                    }
                }
            }
        }
    }

    pub fn needs_cluster_ip(&self) -> bool {
        self.svc_type != EXTERNAL_NAME
    }

    pub fn needs_node_port(&self) -> bool {
        self.svc_type == NODE_PORT || self.svc_type == LOAD_BALANCER
    }

    /// Upstream's `NeedsHealthCheck`: a LoadBalancer with `externalTrafficPolicy: Local`.
    pub fn needs_health_check_node_port(&self) -> bool {
        self.svc_type == LOAD_BALANCER && self.external_traffic_policy == "Local"
    }

    /// Whether ports without a nodePort get one (NodePort, or LoadBalancer unless
    /// `allocateLoadBalancerNodePorts: false`).
    pub fn should_allocate_node_ports(&self) -> bool {
        self.svc_type == NODE_PORT
            || (self.svc_type == LOAD_BALANCER && self.allocate_lb_node_ports)
    }

    /// `clusterIPs: ["None"]` (upstream's `isHeadlessService`).
    pub fn is_headless(&self) -> bool {
        self.cluster_ips.len() == 1 && self.cluster_ips[0] == NONE
    }

    fn policy(&self) -> &str {
        self.ip_family_policy.as_deref().unwrap_or("")
    }

    /// What this service holds once persisted: its ClusterIPs (unless ExternalName or
    /// headless) and, for NodePort and LoadBalancer services, its node ports and health-check
    /// node port. Releases and the start-up rebuild use the same rule, so what is reserved is
    /// always exactly what stored services hold.
    pub fn held(&self) -> Held {
        let mut held = Held::default();
        if self.needs_cluster_ip() {
            let ips: &[String] = if self.cluster_ips.is_empty() {
                std::slice::from_ref(&self.cluster_ip)
            } else {
                &self.cluster_ips
            };
            held.ips = ips
                .iter()
                .filter_map(|ip| ip.parse::<Ipv4Addr>().ok())
                .collect();
        }
        if self.needs_node_port() {
            held.ports = self
                .ports
                .iter()
                .map(|p| p.node_port)
                .filter(|p| *p != 0)
                .collect();
        }
        if self.needs_health_check_node_port() && self.health_check_node_port != 0 {
            held.ports.insert(self.health_check_node_port);
        }
        held
    }
}

fn set_int(map: &mut Map<String, Value>, name: &str, v: i64) {
    if v == 0 {
        map.remove(name);
    } else {
        map.insert(name.into(), Value::from(v));
    }
}

/// The IPs and ports a service holds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Held {
    pub ips: BTreeSet<Ipv4Addr>,
    pub ports: BTreeSet<i64>,
}

impl Held {
    /// What `self` holds that `other` does not.
    pub fn minus(&self, other: &Held) -> Held {
        Held {
            ips: self.ips.difference(&other.ips).copied().collect(),
            ports: self.ports.difference(&other.ports).copied().collect(),
        }
    }
}

/// Upstream's `normalizeClusterIPs`: keep `clusterIP` and `clusterIPs` in step for clients
/// that set only the singular field.
pub(crate) fn normalize_cluster_ips(svc: &mut Svc, old: Option<&Svc>) {
    let Some(old) = old else {
        if !svc.cluster_ip.is_empty() && svc.cluster_ips.is_empty() {
            svc.cluster_ips = vec![svc.cluster_ip.clone()];
        }
        return;
    };
    // An old client patching some other field left clusterIPs out.
    if !old.cluster_ips.is_empty() && svc.cluster_ips.is_empty() && old.cluster_ip == svc.cluster_ip
    {
        svc.cluster_ips = old.cluster_ips.clone();
    }
    if old.cluster_ip != svc.cluster_ip {
        if !old.cluster_ip.is_empty() && svc.cluster_ip.is_empty() {
            // Clearing it: clear the plural too if it was left as it was.
            if old.cluster_ips == svc.cluster_ips {
                svc.cluster_ips.clear();
            }
        } else if old.cluster_ips == svc.cluster_ips {
            svc.cluster_ips = vec![svc.cluster_ip.clone()];
        }
    }
}

/// Upstream's `patchAllocatedValues`: a client re-sending its original manifest (no
/// clusterIP, no nodePorts) keeps what was allocated for it.
pub(crate) fn patch_allocated_values(svc: &mut Svc, old: &Svc) {
    if old.needs_cluster_ip() && svc.needs_cluster_ip() {
        if svc.cluster_ip.is_empty() {
            svc.cluster_ip = old.cluster_ip.clone();
        }
        if svc.cluster_ips.is_empty() && !old.cluster_ips.is_empty() {
            svc.cluster_ips = old.cluster_ips.clone();
        }
    }
    if old.needs_node_port() && svc.needs_node_port() {
        let used_by = |s: &Svc| -> BTreeSet<i64> {
            s.ports
                .iter()
                .map(|p| p.node_port)
                .filter(|p| *p != 0)
                .collect()
        };
        // Ports the new object already uses cannot be patched into another entry.
        let used: BTreeSet<i64> = used_by(old).intersection(&used_by(svc)).copied().collect();
        for p in svc.ports.iter_mut().filter(|p| p.node_port == 0) {
            // Matched by name; the last old entry of a name wins, as in upstream's map.
            let old_value = old
                .ports
                .iter()
                .rev()
                .find(|o| o.name == p.name)
                .map_or(0, |o| o.node_port);
            if !used.contains(&old_value) {
                p.node_port = old_value;
            }
        }
    }
    if old.needs_health_check_node_port()
        && svc.needs_health_check_node_port()
        && svc.health_check_node_port == 0
    {
        svc.health_check_node_port = old.health_check_node_port;
    }
}

fn family_of(ip: &str) -> &'static str {
    match ip.parse::<IpAddr>() {
        Ok(IpAddr::V4(_)) => IPV4,
        Ok(IpAddr::V6(_)) => IPV6,
        Err(_) => "unknown",
    }
}

/// The IP families this cluster serves: IPv4 only for now.
fn family_configured(family: &str) -> bool {
    family == IPV4
}

const CLUSTER_IS_DUAL_STACK: bool = false;

fn ips_value(ips: &[String]) -> Value {
    Value::Array(ips.iter().cloned().map(Value::String).collect())
}

/// Upstream's `ValidateServiceClusterIPsRelatedFields`: the loose checks allocation runs
/// before it trusts clusterIPs, ipFamilies and ipFamilyPolicy.
pub(crate) fn validate_cluster_ip_fields(svc: &Svc) -> ErrorList {
    let mut errs = ErrorList::new();
    if svc.svc_type == EXTERNAL_NAME {
        return errs;
    }
    let spec = Path::new("spec");
    let ips_path = spec.child("clusterIPs");
    let families_path = spec.child("ipFamilies");
    if !svc.cluster_ip.is_empty() {
        if svc.cluster_ips.is_empty() {
            errs.push(FieldError::required(&ips_path, ""));
        } else if svc.cluster_ips[0] != svc.cluster_ip {
            errs.push(FieldError::invalid(
                &ips_path,
                ips_value(&svc.cluster_ips),
                "first value must match `clusterIP`",
            ));
        }
    } else if !svc.cluster_ips.is_empty() {
        errs.push(FieldError::invalid(
            &ips_path,
            ips_value(&svc.cluster_ips),
            "must be empty when `clusterIP` is not specified",
        ));
    }
    let mut seen = BTreeSet::new();
    for (i, family) in svc.ip_families.iter().enumerate() {
        if family != IPV4 && family != IPV6 {
            errs.push(FieldError::not_supported(
                &families_path.index(i),
                family.as_str(),
                &[IPV4, IPV6],
            ));
        }
        if !seen.insert(family.as_str()) {
            errs.push(FieldError::duplicate(
                &families_path.index(i),
                family.as_str(),
            ));
        }
    }
    if let Some(policy) = &svc.ip_family_policy {
        let supported = [PREFER_DUAL_STACK, REQUIRE_DUAL_STACK, SINGLE_STACK];
        if !supported.contains(&policy.as_str()) {
            errs.push(FieldError::not_supported(
                &spec.child("ipFamilyPolicy"),
                policy.as_str(),
                &supported,
            ));
        }
    }
    let mut invalid_ips = false;
    for (i, ip) in svc.cluster_ips.iter().enumerate() {
        if i == 0 && ip == NONE {
            if svc.cluster_ips.len() > 1 {
                invalid_ips = true;
                errs.push(FieldError::invalid(
                    &ips_path,
                    ips_value(&svc.cluster_ips),
                    "'None' must be the first and only value",
                ));
            }
            continue;
        }
        if ip.parse::<IpAddr>().is_err() {
            invalid_ips = true;
            errs.push(FieldError::invalid(
                &ips_path.index(i),
                ip.as_str(),
                "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
            ));
        }
    }
    if svc.cluster_ips.len() > 2 {
        errs.push(FieldError::invalid(
            &ips_path,
            ips_value(&svc.cluster_ips),
            "may only hold up to 2 values",
        ));
    }
    if invalid_ips {
        return errs;
    }
    if svc.cluster_ips.len() > 1 {
        let v4 = svc.cluster_ips.iter().filter(|ip| family_of(ip) == IPV4);
        if v4.count() != 1 {
            errs.push(FieldError::invalid(
                &ips_path,
                ips_value(&svc.cluster_ips),
                "may specify no more than one IP for each IP family",
            ));
        }
    }
    if !svc.is_headless() {
        for (i, (ip, family)) in svc.cluster_ips.iter().zip(&svc.ip_families).enumerate() {
            if family == IPV4 && family_of(ip) == IPV6 {
                errs.push(FieldError::invalid(
                    &ips_path.index(i),
                    ip.as_str(),
                    format!("expected an IPv4 value as indicated by `ipFamilies[{i}]`"),
                ));
            }
            if family == IPV6 && family_of(ip) != IPV6 {
                errs.push(FieldError::invalid(
                    &ips_path.index(i),
                    ip.as_str(),
                    format!("expected an IPv6 value as indicated by `ipFamilies[{i}]`"),
                ));
            }
        }
    }
    errs
}

/// Upstream's `isMatchingPreferDualStackClusterIPFields`: an update of a PreferDualStack
/// service that leaves its IP fields alone is not re-examined.
fn is_matching_prefer_dual_stack(svc: &Svc, old: Option<&Svc>) -> bool {
    let Some(old) = old else {
        return false;
    };
    svc.ip_family_policy.is_some()
        && old.svc_type == svc.svc_type
        && svc.needs_cluster_ip()
        && svc.policy() == PREFER_DUAL_STACK
        && old.ip_family_policy.as_deref().unwrap_or(PREFER_DUAL_STACK) == PREFER_DUAL_STACK
        && old.cluster_ips == svc.cluster_ips
        && old.ip_families == svc.ip_families
}

/// Upstream's `initIPFamilyFields` for a single-stack IPv4 cluster: default
/// `ipFamilyPolicy` (SingleStack; the old policy on update; RequireDualStack for a headless
/// service without selector) and `ipFamilies` (from the clusterIPs, else IPv4), and refuse
/// families this cluster does not serve.
pub(crate) fn init_ip_family_fields(svc: &mut Svc, old: Option<&Svc>) -> Result<(), ErrorList> {
    if svc.svc_type == EXTERNAL_NAME || is_matching_prefer_dual_stack(svc, old) {
        return Ok(());
    }
    if svc.ip_family_policy.is_none() {
        svc.ip_family_policy = Some(match old.and_then(|o| o.ip_family_policy.clone()) {
            Some(p) => p,
            None if svc.cluster_ip == NONE && !svc.has_selector => REQUIRE_DUAL_STACK.into(),
            None => SINGLE_STACK.into(),
        });
    }
    let errs = validate_cluster_ip_fields(svc);
    if !errs.is_empty() {
        return Err(errs);
    }
    let spec = Path::new("spec");
    let policy_path = spec.child("ipFamilyPolicy");
    let mut errs = ErrorList::new();
    if let Some(old) = old {
        if svc.policy() == SINGLE_STACK {
            // With the fields unchanged, asking for SingleStack is clear intent to drop the
            // secondary IP (ClusterIPs[0] is immutable, so keeping it is safe).
            if old.cluster_ips == svc.cluster_ips && svc.cluster_ips.len() > 1 {
                svc.cluster_ips.truncate(1);
            }
            if old.ip_families == svc.ip_families && svc.ip_families.len() > 1 {
                svc.ip_families.truncate(1);
            }
        } else {
            if !svc.cluster_ips.is_empty() && svc.cluster_ips.len() < old.cluster_ips.len() {
                errs.push(FieldError::invalid(
                    &policy_path,
                    svc.policy(),
                    "must be 'SingleStack' to release the secondary cluster IP",
                ));
            }
            if !svc.ip_families.is_empty() && svc.ip_families.len() < old.ip_families.len() {
                errs.push(FieldError::invalid(
                    &policy_path,
                    svc.policy(),
                    "must be 'SingleStack' to release the secondary IP family",
                ));
            }
        }
    }
    if svc.policy() == SINGLE_STACK {
        if svc.cluster_ips.len() == 2 {
            errs.push(FieldError::invalid(
                &policy_path,
                svc.policy(),
                "must be 'RequireDualStack' or 'PreferDualStack' when multiple cluster IPs are specified",
            ));
        }
        if svc.ip_families.len() == 2 {
            errs.push(FieldError::invalid(
                &policy_path,
                svc.policy(),
                "must be 'RequireDualStack' or 'PreferDualStack' when multiple IP families are specified",
            ));
        }
    }
    // Infer ipFamilies from clusterIPs.
    for (i, ip) in svc.cluster_ips.clone().iter().enumerate() {
        if ip == NONE {
            break;
        }
        if i >= svc.ip_families.len() {
            let family = family_of(ip);
            if family_configured(family) {
                svc.ip_families.push(family.to_string());
            } else {
                errs.push(FieldError::invalid(
                    &spec.child("clusterIPs").index(i),
                    ips_value(&svc.cluster_ips),
                    format!("{family} is not configured on this cluster"),
                ));
            }
        }
    }
    if !errs.is_empty() {
        return Err(errs);
    }
    // Headless without a selector may name any families, even on a single-stack cluster.
    if svc.cluster_ip == NONE && !svc.has_selector {
        if svc.ip_families.is_empty() {
            svc.ip_families.push(IPV4.into());
        }
        if svc.ip_families.len() < 2 && svc.policy() != SINGLE_STACK {
            let other = if svc.ip_families[0] == IPV4 {
                IPV6
            } else {
                IPV4
            };
            svc.ip_families.push(other.into());
        }
        return Ok(());
    }
    if svc.policy() == REQUIRE_DUAL_STACK && !CLUSTER_IS_DUAL_STACK {
        errs.push(FieldError::invalid(
            &policy_path,
            svc.policy(),
            "this cluster is not configured for dual-stack services",
        ));
    }
    for (i, family) in svc.ip_families.iter().enumerate() {
        if !family_configured(family) {
            errs.push(FieldError::invalid(
                &spec.child("ipFamilies").index(i),
                family.as_str(),
                "not configured on this cluster",
            ));
        }
    }
    if !errs.is_empty() {
        return Err(errs);
    }
    if svc.ip_families.is_empty() {
        svc.ip_families.push(IPV4.into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn svc(spec: Value) -> Svc {
        Svc::read(&json!({ "spec": spec }))
    }

    fn messages(errs: &ErrorList) -> Vec<String> {
        errs.0
            .iter()
            .map(|e| format!("{}: {}", e.field, e.body()))
            .collect()
    }

    #[test]
    fn defaults_of_a_plain_cluster_ip_service() {
        let mut s = svc(json!({"ports": [{"port": 80}], "selector": {"app": "a"}}));
        normalize_cluster_ips(&mut s, None);
        init_ip_family_fields(&mut s, None).unwrap();
        assert_eq!(s.svc_type, "ClusterIP");
        assert_eq!(s.ip_family_policy.as_deref(), Some("SingleStack"));
        assert_eq!(s.ip_families, ["IPv4"]);
    }

    #[test]
    fn headless_without_selector_is_require_dual_stack_as_upstream() {
        let mut s = svc(json!({"clusterIP": "None"}));
        normalize_cluster_ips(&mut s, None);
        init_ip_family_fields(&mut s, None).unwrap();
        assert_eq!(s.ip_family_policy.as_deref(), Some("RequireDualStack"));
        assert_eq!(s.ip_families, ["IPv4", "IPv6"]);
        assert!(s.held().ips.is_empty());
    }

    #[test]
    fn families_this_cluster_does_not_serve_are_refused() {
        let mut s = svc(json!({"clusterIP": "fd00::5", "selector": {"a": "b"}}));
        normalize_cluster_ips(&mut s, None);
        let errs = init_ip_family_fields(&mut s, None).unwrap_err();
        assert_eq!(
            messages(&errs),
            [
                r#"spec.clusterIPs[0]: Invalid value: ["fd00::5"]: IPv6 is not configured on this cluster"#
            ]
        );
        let mut s = svc(json!({"ipFamilyPolicy": "RequireDualStack", "selector": {"a": "b"}}));
        let errs = init_ip_family_fields(&mut s, None).unwrap_err();
        assert_eq!(
            messages(&errs),
            [
                r#"spec.ipFamilyPolicy: Invalid value: "RequireDualStack": this cluster is not configured for dual-stack services"#
            ]
        );
        let mut s = svc(json!({"ipFamilies": ["IPv6"], "selector": {"a": "b"}}));
        let errs = init_ip_family_fields(&mut s, None).unwrap_err();
        assert_eq!(
            messages(&errs),
            [r#"spec.ipFamilies[0]: Invalid value: "IPv6": not configured on this cluster"#]
        );
    }

    #[test]
    fn malformed_cluster_ips_are_refused_before_allocation() {
        let mut s = svc(json!({"clusterIP": "10.43.0.300"}));
        normalize_cluster_ips(&mut s, None);
        let errs = init_ip_family_fields(&mut s, None).unwrap_err();
        assert_eq!(
            messages(&errs),
            [
                r#"spec.clusterIPs[0]: Invalid value: "10.43.0.300": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"#
            ]
        );
        let mut s = svc(json!({"clusterIP": "10.43.0.5", "clusterIPs": ["10.43.0.6"]}));
        let errs = init_ip_family_fields(&mut s, None).unwrap_err();
        assert_eq!(
            messages(&errs),
            [
                r#"spec.clusterIPs: Invalid value: ["10.43.0.6"]: first value must match `clusterIP`"#
            ]
        );
    }

    #[test]
    fn resubmitting_a_manifest_keeps_allocated_values() {
        let old = svc(json!({
            "type": "NodePort", "clusterIP": "10.43.1.2", "clusterIPs": ["10.43.1.2"],
            "ports": [{"name": "http", "port": 80, "nodePort": 30100},
                      {"name": "https", "port": 443, "nodePort": 30101}],
        }));
        let mut new = svc(json!({
            "type": "NodePort",
            "ports": [{"name": "https", "port": 443}, {"name": "http", "port": 80}],
        }));
        patch_allocated_values(&mut new, &old);
        normalize_cluster_ips(&mut new, Some(&old));
        assert_eq!(new.cluster_ip, "10.43.1.2");
        assert_eq!(new.cluster_ips, ["10.43.1.2"]);
        assert_eq!(
            new.ports.iter().map(|p| p.node_port).collect::<Vec<_>>(),
            [30101, 30100]
        );
    }

    #[test]
    fn what_a_service_holds_depends_on_its_type() {
        let s = svc(json!({
            "type": "LoadBalancer", "clusterIPs": ["10.43.0.9"], "externalTrafficPolicy": "Local",
            "healthCheckNodePort": 31000, "ports": [{"port": 80, "nodePort": 30001},
                                                    {"port": 80, "protocol": "UDP", "nodePort": 30001}],
        }));
        let held = s.held();
        assert_eq!(
            held.ips.into_iter().collect::<Vec<_>>(),
            [Ipv4Addr::new(10, 43, 0, 9)]
        );
        assert_eq!(held.ports.into_iter().collect::<Vec<_>>(), [30001, 31000]);
        let s = svc(json!({"type": "ClusterIP", "clusterIP": "10.43.0.9",
                           "ports": [{"port": 80, "nodePort": 30001}]}));
        assert!(s.held().ports.is_empty());
        let s = svc(json!({"type": "ExternalName", "clusterIP": "10.43.0.9"}));
        assert_eq!(s.held(), Held::default());
    }

    #[test]
    fn write_touches_only_changed_fields() {
        let mut obj = json!({"spec": {"type": "NodePort", "ports": [{"port": 80, "targetPort": 8080}],
                                       "clusterIPs": []}});
        let orig = Svc::read(&obj);
        let mut s = orig.clone();
        s.cluster_ip = "10.43.0.7".into();
        s.ports[0].node_port = 30007;
        s.write(&orig, &mut obj);
        assert_eq!(
            obj,
            json!({"spec": {"type": "NodePort", "clusterIP": "10.43.0.7", "clusterIPs": [],
                            "ports": [{"port": 80, "targetPort": 8080, "nodePort": 30007}]}})
        );
    }
}
