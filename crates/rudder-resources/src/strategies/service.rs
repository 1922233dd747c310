//! Services (upstream `SetDefaults_Service`, `ValidateService`/`ValidateServiceUpdate` and
//! `pkg/registry/core/service/strategy.go`). Cluster IPs, node ports and the IP family fields
//! (`ipFamilyPolicy`, `ipFamilies`) are the allocator admission plugin's (it runs after
//! `prepare_for_*`, as upstream's REST allocation runs after the strategy); this strategy
//! defaults, normalises (`clusterIP` ↔ `clusterIPs`, values carried over from the stored object
//! on update) and validates.

use std::collections::BTreeSet;

use rudder_api::field::{BadValue, ErrorList, FieldError, Path};
use rudder_api::k8s_openapi::api::core::v1::Service;
use rudder_api::validation::{
    is_dns1123_label, is_dns1123_subdomain, is_qualified_name, name_is_dns1035_label,
    validate_labels, NameValidator,
};
use rudder_registry::{OpCx, Strategy};
use serde_json::{json, Value};

use super::decode::round_trip;
use super::podspec::validate_protocol;
use super::util::*;

pub struct ServiceStrategy;

fn spec_of(obj: &Value) -> &Value {
    obj.get("spec").unwrap_or(&Value::Null)
}

fn svc_type(spec: &Value) -> &str {
    str_at(spec, "type")
}

fn needs_cluster_ip(spec: &Value) -> bool {
    svc_type(spec) != "ExternalName"
}

fn needs_node_port(spec: &Value) -> bool {
    matches!(svc_type(spec), "NodePort" | "LoadBalancer")
}

fn needs_hc_node_port(spec: &Value) -> bool {
    svc_type(spec) == "LoadBalancer" && str_at(spec, "externalTrafficPolicy") == "Local"
}

/// Upstream `service.ExternallyAccessible`.
fn externally_accessible(spec: &Value) -> bool {
    needs_node_port(spec)
        || (svc_type(spec) == "ClusterIP" && !list_at(spec, "externalIPs").is_empty())
}

fn is_headless(spec: &Value) -> bool {
    let ips = list_at(spec, "clusterIPs");
    ips.len() == 1 && ips[0].as_str() == Some("None")
}

fn cluster_ips(spec: &Value) -> Vec<String> {
    list_at(spec, "clusterIPs")
        .iter()
        .map(|v| v.as_str().unwrap_or_default().to_string())
        .collect()
}

impl Strategy for ServiceStrategy {
    fn decode(&self, obj: Value) -> Result<Value, String> {
        round_trip::<Service>(obj)
    }

    fn default(&self, obj: &mut Value) {
        let spec = child_obj(obj, "spec");
        default_str(spec, "sessionAffinity", "None");
        match str_at(spec, "sessionAffinity") {
            "None" => {
                if let Some(m) = spec.as_object_mut() {
                    m.remove("sessionAffinityConfig");
                }
            }
            "ClientIP" => {
                let has_timeout = at(
                    spec,
                    &["sessionAffinityConfig", "clientIP", "timeoutSeconds"],
                )
                .is_some_and(|t| !t.is_null());
                if !has_timeout {
                    spec["sessionAffinityConfig"] = json!({"clientIP": {"timeoutSeconds": 10800}});
                }
            }
            _ => {}
        }
        default_str(spec, "type", "ClusterIP");
        each_mut(spec, "ports", |p| {
            default_str(p, "protocol", "TCP");
            let unset = match p.get("targetPort") {
                None | Some(Value::Null) => true,
                Some(Value::String(s)) => s.is_empty(),
                Some(Value::Number(n)) => n.as_i64() == Some(0),
                _ => false,
            };
            if unset {
                p["targetPort"] = p.get("port").cloned().unwrap_or(json!(0));
            }
        });
        if externally_accessible(spec) {
            default_str(spec, "externalTrafficPolicy", "Cluster");
        }
        if matches!(svc_type(spec), "NodePort" | "LoadBalancer" | "ClusterIP") {
            default_field(spec, "internalTrafficPolicy", json!("Cluster"));
        }
        let lb = svc_type(spec) == "LoadBalancer";
        if lb {
            default_field(spec, "allocateLoadBalancerNodePorts", json!(true));
            if let Some(ingress) = obj
                .pointer_mut("/status/loadBalancer/ingress")
                .and_then(Value::as_array_mut)
            {
                for ing in ingress {
                    if !str_at(ing, "ip").is_empty() {
                        default_field(ing, "ipMode", json!("VIP"));
                    }
                }
            }
        }
    }

    fn prepare_for_create(&self, _cx: &OpCx, obj: &mut Value) {
        obj["status"] = json!({"loadBalancer": {}});
        let spec = child_obj(obj, "spec");
        // NormalizeClusterIPs on create: an old client's singular field fills the plural.
        let ip = str_at(spec, "clusterIP").to_string();
        if !ip.is_empty() && list_at(spec, "clusterIPs").is_empty() {
            spec["clusterIPs"] = json!([ip]);
        }
    }

    fn prepare_for_update(&self, _cx: &OpCx, new: &mut Value, old: &Value) {
        let old_spec = spec_of(old).clone();
        let spec = child_obj(new, "spec");
        patch_allocated_values(spec, &old_spec);
        normalize_cluster_ips_update(spec, &old_spec);
        drop_type_dependent_fields(spec, &old_spec);
        // Downgrading to single stack trims the secondary IP and family.
        let old_dual = matches!(
            str_at(&old_spec, "ipFamilyPolicy"),
            "RequireDualStack" | "PreferDualStack"
        );
        if old_dual && str_at(spec, "ipFamilyPolicy") == "SingleStack" {
            for key in ["clusterIPs", "ipFamilies"] {
                if let Some(a) = spec.get_mut(key).and_then(Value::as_array_mut) {
                    a.truncate(1);
                }
            }
        }
    }

    fn name_validator(&self) -> NameValidator {
        name_is_dns1035_label
    }

    fn validate(&self, _cx: &OpCx, obj: &Value) -> ErrorList {
        validate_service(obj)
    }

    fn validate_update(&self, _cx: &OpCx, new: &Value, old: &Value) -> ErrorList {
        let mut errs = ErrorList::new();
        let (n, o) = (spec_of(new), spec_of(old));
        upgrade_downgrade_cluster_ips(n, o, &mut errs);
        upgrade_downgrade_ip_families(n, o, &mut errs);
        if svc_type(o) == "LoadBalancer"
            && svc_type(n) == "LoadBalancer"
            && o.get("loadBalancerClass") != n.get("loadBalancerClass")
        {
            errs.push(FieldError::invalid(
                &Path::new("spec").child("loadBalancerClass"),
                bad_value(n.get("loadBalancerClass")),
                "may not change once set",
            ));
        }
        if needs_hc_node_port(o)
            && needs_hc_node_port(n)
            && int_at(n, "healthCheckNodePort") != int_at(o, "healthCheckNodePort")
        {
            errs.push(FieldError::forbidden(
                &Path::new("spec").child("healthCheckNodePort"),
                "field is immutable",
            ));
        }
        errs.extend(validate_service(new));
        errs
    }

    fn allow_create_on_update(&self) -> bool {
        true
    }
}

/// Upstream `patchAllocatedValues`: a resubmitted body without the allocated values keeps them.
fn patch_allocated_values(spec: &mut Value, old: &Value) {
    if needs_cluster_ip(old) && needs_cluster_ip(spec) {
        if str_at(spec, "clusterIP").is_empty() {
            if let Some(ip) = old.get("clusterIP") {
                spec["clusterIP"] = ip.clone();
            }
        }
        if list_at(spec, "clusterIPs").is_empty() {
            if let Some(ips) = old.get("clusterIPs") {
                spec["clusterIPs"] = ips.clone();
            }
        }
    }
    if needs_node_port(old) && needs_node_port(spec) {
        let by_name: Vec<(String, i64)> = list_at(old, "ports")
            .iter()
            .map(|p| {
                (
                    str_at(p, "name").to_string(),
                    int_at(p, "nodePort").unwrap_or(0),
                )
            })
            .collect();
        each_mut(spec, "ports", |p| {
            if int_at(p, "nodePort").unwrap_or(0) == 0 {
                let name = str_at(p, "name").to_string();
                if let Some((_, np)) = by_name.iter().rev().find(|(n, _)| *n == name) {
                    if *np != 0 {
                        p["nodePort"] = json!(np);
                    }
                }
            }
        });
    }
    if needs_hc_node_port(old)
        && needs_hc_node_port(spec)
        && int_at(spec, "healthCheckNodePort").unwrap_or(0) == 0
    {
        if let Some(v) = old.get("healthCheckNodePort") {
            spec["healthCheckNodePort"] = v.clone();
        }
    }
}

/// Upstream `NormalizeClusterIPs` for an update.
fn normalize_cluster_ips_update(spec: &mut Value, old: &Value) {
    let (old_ip, new_ip) = (
        str_at(old, "clusterIP").to_string(),
        str_at(spec, "clusterIP").to_string(),
    );
    if !list_at(old, "clusterIPs").is_empty()
        && list_at(spec, "clusterIPs").is_empty()
        && old_ip == new_ip
    {
        if let Some(ips) = old.get("clusterIPs") {
            spec["clusterIPs"] = ips.clone();
        }
    }
    if old_ip != new_ip {
        let same_plural = semantic_eq(old.get("clusterIPs"), spec.get("clusterIPs"));
        if !old_ip.is_empty() && new_ip.is_empty() {
            if same_plural {
                if let Some(m) = spec.as_object_mut() {
                    m.remove("clusterIPs");
                }
            }
        } else if same_plural {
            spec["clusterIPs"] = json!([new_ip]);
        }
    }
}

/// Upstream `dropTypeDependentFields`: switching type releases what the old type needed, when
/// the user did not change it too.
fn drop_type_dependent_fields(spec: &mut Value, old: &Value) {
    let remove = |spec: &mut Value, key: &str| {
        if let Some(m) = spec.as_object_mut() {
            m.remove(key);
        }
    };
    if needs_cluster_ip(old) && !needs_cluster_ip(spec) {
        if str_at(old, "clusterIP") == str_at(spec, "clusterIP")
            && semantic_eq(old.get("clusterIPs"), spec.get("clusterIPs"))
        {
            remove(spec, "clusterIP");
            remove(spec, "clusterIPs");
        }
        if semantic_eq(old.get("ipFamilies"), spec.get("ipFamilies")) {
            remove(spec, "ipFamilies");
        }
        if str_at(old, "ipFamilyPolicy") == str_at(spec, "ipFamilyPolicy") {
            remove(spec, "ipFamilyPolicy");
        }
    }
    if needs_node_port(old) && !needs_node_port(spec) {
        let ports = |s: &Value| -> BTreeSet<i64> {
            list_at(s, "ports")
                .iter()
                .filter_map(|p| int_at(p, "nodePort"))
                .filter(|n| *n != 0)
                .collect()
        };
        if ports(spec).is_subset(&ports(old)) {
            each_mut(spec, "ports", |p| {
                if let Some(m) = p.as_object_mut() {
                    m.remove("nodePort");
                }
            });
        }
    }
    if externally_accessible(old)
        && !externally_accessible(spec)
        && str_at(old, "externalTrafficPolicy") == str_at(spec, "externalTrafficPolicy")
    {
        remove(spec, "externalTrafficPolicy");
    }
    if needs_hc_node_port(old)
        && !needs_hc_node_port(spec)
        && int_at(old, "healthCheckNodePort") == int_at(spec, "healthCheckNodePort")
    {
        remove(spec, "healthCheckNodePort");
    }
    if svc_type(old) == "LoadBalancer"
        && svc_type(spec) != "LoadBalancer"
        && has(spec, "allocateLoadBalancerNodePorts")
        && spec.get("allocateLoadBalancerNodePorts") == old.get("allocateLoadBalancerNodePorts")
    {
        remove(spec, "allocateLoadBalancerNodePorts");
    }
    if svc_type(old) == "LoadBalancer"
        && svc_type(spec) != "LoadBalancer"
        && spec.get("loadBalancerClass") == old.get("loadBalancerClass")
    {
        remove(spec, "loadBalancerClass");
    }
}

/// Upstream `validateUpgradeDowngradeClusterIPs`.
fn upgrade_downgrade_cluster_ips(new: &Value, old: &Value, errs: &mut ErrorList) {
    if !needs_cluster_ip(new) || !needs_cluster_ip(old) {
        return;
    }
    if is_headless(old) && is_headless(new) {
        return;
    }
    let (o, n) = (cluster_ips(old), cluster_ips(new));
    let path = Path::new("spec").child("clusterIPs");
    let value = BadValue::Raw(go_json(&json!(n)));
    if o.len() == n.len() {
        for (i, ip) in o.iter().enumerate() {
            if *ip != n[i] {
                errs.push(FieldError::invalid(
                    &path.index(i),
                    value.clone(),
                    "may not change once set",
                ));
            }
        }
    } else if o.len() > n.len() {
        if n.is_empty() {
            errs.push(FieldError::invalid(
                &path.index(0),
                value.clone(),
                "primary clusterIP can not be unset",
            ));
        }
        if !o.is_empty() && !n.is_empty() && n[0] != o[0] {
            errs.push(FieldError::invalid(
                &path.index(0),
                value.clone(),
                "may not change once set",
            ));
        }
        if n.len() == 1 && str_at(new, "ipFamilyPolicy") != "SingleStack" {
            errs.push(FieldError::invalid(
                &Path::new("spec").child("ipFamilyPolicy"),
                bad_value(new.get("ipFamilyPolicy")),
                "must be set to 'SingleStack' when releasing the secondary clusterIP",
            ));
        }
    } else if !o.is_empty() && n[0] != o[0] {
        errs.push(FieldError::invalid(
            &path.index(0),
            value,
            "may not change once set",
        ));
    }
}

/// Upstream `validateUpgradeDowngradeIPFamilies`.
fn upgrade_downgrade_ip_families(new: &Value, old: &Value, errs: &mut ErrorList) {
    if !needs_cluster_ip(new) || !needs_cluster_ip(old) {
        return;
    }
    if is_headless(old) != is_headless(new) || is_headless(new) {
        return;
    }
    let fam = |s: &Value| -> Vec<String> {
        list_at(s, "ipFamilies")
            .iter()
            .map(|v| v.as_str().unwrap_or_default().to_string())
            .collect()
    };
    let (o, n) = (fam(old), fam(new));
    let path = Path::new("spec").child("ipFamilies").index(0);
    if o.len() == n.len() {
        if o != n {
            errs.push(FieldError::invalid(
                &path,
                BadValue::Raw(go_json(&json!(n))),
                "may not change once set",
            ));
        }
    } else if o.len() > n.len() {
        if cluster_ips(new).is_empty() {
            errs.push(FieldError::invalid(
                &path,
                BadValue::Raw(go_json(&json!(n))),
                "primary ipFamily can not be unset",
            ));
        }
        if !n.is_empty() && n[0] != o[0] {
            errs.push(FieldError::invalid(
                &path,
                BadValue::Raw(go_json(&json!(cluster_ips(new)))),
                "may not change once set",
            ));
        }
        if n.len() == 1 && str_at(new, "ipFamilyPolicy") != "SingleStack" {
            errs.push(FieldError::invalid(
                &Path::new("spec").child("ipFamilyPolicy"),
                bad_value(new.get("ipFamilyPolicy")),
                "must be set to 'SingleStack' when releasing the secondary ipFamily",
            ));
        }
    } else if !o.is_empty() && !n.is_empty() && n[0] != o[0] {
        errs.push(FieldError::invalid(
            &path,
            BadValue::Raw(go_json(&json!(cluster_ips(new)))),
            "may not change once set",
        ));
    }
}

/// Upstream `ValidateService` (without its metadata part, checked generically with the DNS-1035
/// name rule of Services).
fn validate_service(obj: &Value) -> ErrorList {
    let mut errs = ErrorList::new();
    let spec = spec_of(obj);
    let sp = Path::new("spec");
    let ty = svc_type(spec);
    let ports = list_at(spec, "ports");
    if ports.is_empty() && !is_headless(spec) && ty != "ExternalName" {
        errs.push(FieldError::required(&sp.child("ports"), ""));
    }
    match ty {
        "LoadBalancer" | "NodePort" if is_headless(spec) => {
            errs.push(FieldError::invalid(
                &sp.child("clusterIPs").index(0),
                "None",
                format!("may not be set to 'None' for {ty} services"),
            ));
        }
        "ExternalName" => {
            if !list_at(spec, "clusterIPs").is_empty() {
                errs.push(FieldError::forbidden(
                    &sp.child("clusterIPs"),
                    "may not be set for ExternalName services",
                ));
            }
            if !list_at(spec, "ipFamilies").is_empty() {
                errs.push(FieldError::forbidden(
                    &sp.child("ipFamilies"),
                    "may not be set for ExternalName services",
                ));
            }
            if has(spec, "ipFamilyPolicy") {
                errs.push(FieldError::forbidden(
                    &sp.child("ipFamilyPolicy"),
                    "may not be set for ExternalName services",
                ));
            }
            let external = str_at(spec, "externalName");
            let cname = external.strip_suffix('.').unwrap_or(external);
            if cname.is_empty() {
                errs.push(FieldError::required(&sp.child("externalName"), ""));
            } else {
                for m in is_dns1123_subdomain(cname) {
                    errs.push(FieldError::invalid(&sp.child("externalName"), cname, m));
                }
            }
        }
        _ => {}
    }
    let mut names = BTreeSet::new();
    for (i, port) in ports.iter().enumerate() {
        let pp = sp.child("ports").index(i);
        let pname = str_at(port, "name");
        if ports.len() > 1 && pname.is_empty() {
            errs.push(FieldError::required(&pp.child("name"), ""));
        } else if !pname.is_empty() {
            for m in is_dns1123_label(pname) {
                errs.push(FieldError::invalid(&pp.child("name"), pname, m));
            }
            if !names.insert(pname) {
                errs.push(FieldError::duplicate(&pp.child("name"), pname));
            }
        }
        let num = int_at(port, "port").unwrap_or(0);
        for m in port_num_errors(num) {
            errs.push(FieldError::invalid(&pp.child("port"), num, m));
        }
        validate_protocol(str_at(port, "protocol"), &pp.child("protocol"), &mut errs);
        validate_port_num_or_name(port.get("targetPort"), &pp.child("targetPort"), &mut errs);
        if let Some(ap) = port.get("appProtocol").and_then(Value::as_str) {
            for m in is_qualified_name(ap) {
                errs.push(FieldError::invalid(&pp.child("appProtocol"), ap, m));
            }
        }
    }
    if has(spec, "selector") {
        errs.extend(validate_labels(
            &string_map(spec.get("selector")),
            &sp.child("selector"),
        ));
    }
    match str_at(spec, "sessionAffinity") {
        "" => errs.push(FieldError::required(&sp.child("sessionAffinity"), "")),
        "ClientIP" => {
            let cp = sp.child("sessionAffinityConfig");
            match spec.get("sessionAffinityConfig").filter(|c| c.is_object()) {
                None => errs.push(FieldError::required(
                    &cp,
                    "when session affinity type is ClientIP",
                )),
                Some(c) => match c.get("clientIP").filter(|c| c.is_object()) {
                    None => errs.push(FieldError::required(
                        &cp.child("clientIP"),
                        "when session affinity type is ClientIP",
                    )),
                    Some(ci) => match int_at(ci, "timeoutSeconds") {
                        None => errs.push(FieldError::required(
                            &cp.child("clientIP").child("timeoutSeconds"),
                            "when session affinity type is ClientIP",
                        )),
                        Some(t) if t <= 0 || t > 86400 => errs.push(FieldError::invalid(
                            &cp.child("clientIP").child("timeoutSeconds"),
                            t,
                            "must be greater than 0 and less than 86400",
                        )),
                        Some(_) => {}
                    },
                },
            }
        }
        "None" => {
            if has(spec, "sessionAffinityConfig") {
                errs.push(FieldError::forbidden(
                    &sp.child("sessionAffinityConfig"),
                    "must not be set when session affinity is None",
                ));
            }
        }
        other => errs.push(FieldError::not_supported(
            &sp.child("sessionAffinity"),
            other,
            &["ClientIP", "None"],
        )),
    }
    validate_cluster_ips_related(spec, &mut errs);
    for (i, ip) in list_at(spec, "externalIPs").iter().enumerate() {
        let ip = ip.as_str().unwrap_or_default();
        let p = sp.child("externalIPs").index(i);
        let before = errs.len();
        validate_ip(&p, ip, &mut errs);
        if errs.len() == before {
            non_special_ip(ip, &p, &mut errs);
        }
    }
    const TYPES: &[&str] = &["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"];
    if ty.is_empty() {
        errs.push(FieldError::required(&sp.child("type"), ""));
    } else if !TYPES.contains(&ty) {
        errs.push(FieldError::not_supported(&sp.child("type"), ty, TYPES));
    }
    if ty == "ClusterIP" {
        for (i, port) in ports.iter().enumerate() {
            if int_at(port, "nodePort").unwrap_or(0) != 0 {
                errs.push(FieldError::forbidden(
                    &sp.child("ports").index(i).child("nodePort"),
                    "may not be used when `type` is 'ClusterIP'",
                ));
            }
        }
    }
    let mut node_ports = BTreeSet::new();
    for (i, port) in ports.iter().enumerate() {
        let np = int_at(port, "nodePort").unwrap_or(0);
        if np == 0 {
            continue;
        }
        if !node_ports.insert((str_at(port, "protocol").to_string(), np)) {
            errs.push(FieldError::duplicate(
                &sp.child("ports").index(i).child("nodePort"),
                np,
            ));
        }
    }
    let mut seen_ports = BTreeSet::new();
    for (i, port) in ports.iter().enumerate() {
        let proto = str_at(port, "protocol").to_string();
        let num = int_at(port, "port").unwrap_or(0);
        if !seen_ports.insert((proto.clone(), num)) {
            errs.push(FieldError::duplicate(
                &sp.child("ports").index(i),
                BadValue::Raw(format!(
                    "{{\"Name\":\"\",\"Protocol\":{},\"AppProtocol\":null,\"Port\":{num},\"TargetPort\":0,\"NodePort\":0}}",
                    go_json(&json!(proto))
                )),
            ));
        }
    }
    let ranges = list_at(spec, "loadBalancerSourceRanges");
    if !ranges.is_empty() {
        let fp = sp.child("LoadBalancerSourceRanges");
        if ty != "LoadBalancer" {
            errs.push(FieldError::forbidden(
                &fp,
                "may only be used when `type` is 'LoadBalancer'",
            ));
        }
        for (i, r) in ranges.iter().enumerate() {
            validate_cidr(
                &fp.index(i),
                r.as_str().unwrap_or_default().trim(),
                &mut errs,
            );
        }
    }
    if has(spec, "allocateLoadBalancerNodePorts") && ty != "LoadBalancer" {
        errs.push(FieldError::forbidden(
            &sp.child("allocateLoadBalancerNodePorts"),
            "may only be used when `type` is 'LoadBalancer'",
        ));
    }
    if ty == "LoadBalancer" && !has(spec, "allocateLoadBalancerNodePorts") {
        errs.push(FieldError::required(
            &Path::new("allocateLoadBalancerNodePorts"),
            "",
        ));
    }
    if let Some(class) = spec.get("loadBalancerClass").and_then(Value::as_str) {
        if ty == "LoadBalancer" {
            for m in is_qualified_name(class) {
                errs.push(FieldError::invalid(
                    &sp.child("loadBalancerClass"),
                    class,
                    m,
                ));
            }
        } else {
            errs.push(FieldError::forbidden(
                &sp.child("loadBalancerClass"),
                "may only be used when `type` is 'LoadBalancer'",
            ));
        }
    }
    // External traffic policy.
    let etp = str_at(spec, "externalTrafficPolicy");
    if !externally_accessible(spec) {
        if !etp.is_empty() {
            errs.push(FieldError::invalid(
                &sp.child("externalTrafficPolicy"),
                etp,
                "may only be set for externally-accessible services",
            ));
        }
    } else if etp.is_empty() {
        errs.push(FieldError::required(&sp.child("externalTrafficPolicy"), ""));
    } else if etp != "Cluster" && etp != "Local" {
        errs.push(FieldError::not_supported(
            &sp.child("externalTrafficPolicy"),
            etp,
            &["Cluster", "Local"],
        ));
    }
    let hc = int_at(spec, "healthCheckNodePort").unwrap_or(0);
    if !needs_hc_node_port(spec) {
        if hc != 0 {
            errs.push(FieldError::invalid(
                &sp.child("healthCheckNodePort"),
                hc,
                "may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'",
            ));
        }
    } else if hc == 0 {
        errs.push(FieldError::required(&sp.child("healthCheckNodePort"), ""));
    } else {
        for m in port_num_errors(hc) {
            errs.push(FieldError::invalid(&sp.child("healthCheckNodePort"), hc, m));
        }
    }
    // Internal traffic policy.
    match spec.get("internalTrafficPolicy").and_then(Value::as_str) {
        None => {
            if matches!(ty, "NodePort" | "LoadBalancer" | "ClusterIP") {
                errs.push(FieldError::required(&sp.child("internalTrafficPolicy"), ""));
            }
        }
        Some("Cluster") | Some("Local") => {}
        Some(other) => errs.push(FieldError::not_supported(
            &sp.child("internalTrafficPolicy"),
            other,
            &["Cluster", "Local"],
        )),
    }
    if let Some(td) = spec.get("trafficDistribution").and_then(Value::as_str) {
        const TD: &[&str] = &["PreferClose", "PreferSameNode", "PreferSameZone"];
        if !TD.contains(&td) {
            errs.push(FieldError::not_supported(
                &sp.child("trafficDistribution"),
                td,
                TD,
            ));
        }
    }
    errs
}

/// Upstream `ValidateNonSpecialIP`.
fn non_special_ip(ip: &str, path: &Path, errs: &mut ErrorList) {
    let Ok(addr) = ip.parse::<std::net::IpAddr>() else {
        return;
    };
    if addr.is_unspecified() {
        errs.push(FieldError::invalid(
            path,
            ip,
            format!("may not be unspecified ({ip})"),
        ));
    }
    if addr.is_loopback() {
        errs.push(FieldError::invalid(
            path,
            ip,
            "may not be in the loopback range (127.0.0.0/8, ::1/128)",
        ));
    }
    let link_local = match addr {
        std::net::IpAddr::V4(v4) => v4.is_link_local(),
        std::net::IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) == 0xfe80,
    };
    if link_local {
        errs.push(FieldError::invalid(
            path,
            ip,
            "may not be in the link-local range (169.254.0.0/16, fe80::/10)",
        ));
    }
    let ll_multicast = match addr {
        std::net::IpAddr::V4(v4) => {
            let o = v4.octets();
            o[0] == 224 && o[1] == 0 && o[2] == 0
        }
        std::net::IpAddr::V6(v6) => (v6.segments()[0] & 0xff0f) == 0xff02,
    };
    if ll_multicast {
        errs.push(FieldError::invalid(
            path,
            ip,
            "may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)",
        ));
    }
}

/// Upstream `ValidateServiceClusterIPsRelatedFields`.
fn validate_cluster_ips_related(spec: &Value, errs: &mut ErrorList) {
    if svc_type(spec) == "ExternalName" {
        return;
    }
    let sp = Path::new("spec");
    let ips_path = sp.child("clusterIPs");
    let ip = str_at(spec, "clusterIP");
    let ips = cluster_ips(spec);
    let ips_value = || BadValue::Raw(go_json(&json!(ips)));
    if !ip.is_empty() {
        if ips.is_empty() {
            errs.push(FieldError::required(&ips_path, ""));
        } else if ips[0] != ip {
            errs.push(FieldError::invalid(
                &ips_path,
                ips_value(),
                "first value must match `clusterIP`",
            ));
        }
    } else if !ips.is_empty() {
        errs.push(FieldError::invalid(
            &ips_path,
            ips_value(),
            "must be empty when `clusterIP` is not specified",
        ));
    }
    let mut seen = BTreeSet::new();
    for (i, fam) in list_at(spec, "ipFamilies").iter().enumerate() {
        let f = fam.as_str().unwrap_or_default();
        if f != "IPv4" && f != "IPv6" {
            errs.push(FieldError::not_supported(
                &sp.child("ipFamilies").index(i),
                f,
                &["IPv4", "IPv6"],
            ));
        }
        if !seen.insert(f) {
            errs.push(FieldError::duplicate(&sp.child("ipFamilies").index(i), f));
        }
    }
    if let Some(p) = spec.get("ipFamilyPolicy").and_then(Value::as_str) {
        const POLICIES: &[&str] = &["PreferDualStack", "RequireDualStack", "SingleStack"];
        if !POLICIES.contains(&p) {
            errs.push(FieldError::not_supported(
                &sp.child("ipFamilyPolicy"),
                p,
                POLICIES,
            ));
        }
    }
    let mut invalid = false;
    for (i, cip) in ips.iter().enumerate() {
        if i == 0 && cip == "None" {
            if ips.len() > 1 {
                invalid = true;
                errs.push(FieldError::invalid(
                    &ips_path,
                    ips_value(),
                    "'None' must be the first and only value",
                ));
            }
            continue;
        }
        let before = errs.len();
        validate_ip(&ips_path.index(i), cip, errs);
        invalid |= errs.len() != before;
    }
    if ips.len() > 2 {
        errs.push(FieldError::invalid(
            &ips_path,
            ips_value(),
            "may only hold up to 2 values",
        ));
    }
    if invalid {
        return;
    }
    if ips.len() > 1 {
        let v6: Vec<bool> = ips.iter().map(|i| i.contains(':')).collect();
        let dual = v6.iter().any(|b| *b) && v6.iter().any(|b| !*b);
        if !dual {
            errs.push(FieldError::invalid(
                &ips_path,
                ips_value(),
                "may specify no more than one IP for each IP family",
            ));
        }
    }
    let families = list_at(spec, "ipFamilies");
    if !is_headless(spec) && !ips.is_empty() && !families.is_empty() {
        for (i, cip) in ips.iter().enumerate() {
            let Some(fam) = families.get(i).and_then(Value::as_str) else {
                break;
            };
            let is_v6 = cip.contains(':');
            if fam == "IPv4" && is_v6 {
                errs.push(FieldError::invalid(
                    &ips_path.index(i),
                    cip.as_str(),
                    format!("expected an IPv4 value as indicated by `ipFamilies[{i}]`"),
                ));
            }
            if fam == "IPv6" && !is_v6 {
                errs.push(FieldError::invalid(
                    &ips_path.index(i),
                    cip.as_str(),
                    format!("expected an IPv6 value as indicated by `ipFamilies[{i}]`"),
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cx() -> OpCx {
        OpCx {
            now: "2024-01-01T00:00:00Z".into(),
        }
    }

    fn messages(errs: &ErrorList) -> Vec<String> {
        errs.iter().map(ToString::to_string).collect()
    }

    fn create(body: Value) -> Value {
        let s = ServiceStrategy;
        let mut obj = s.decode(body).unwrap();
        s.default(&mut obj);
        s.prepare_for_create(&cx(), &mut obj);
        obj
    }

    /// `kubectl create service clusterip web --tcp=80:8080`.
    fn web() -> Value {
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "labels": {"app": "web"}},
            "spec": {"ports": [{"name": "80-8080", "port": 80, "protocol": "TCP", "targetPort": 8080}],
                "selector": {"app": "web"}, "type": "ClusterIP"}, "status": {"loadBalancer": {}}})
    }

    #[test]
    fn defaults() {
        let svc = create(
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
            "spec": {"ports": [{"port": 80}], "selector": {"app": "a"}}}),
        );
        assert_eq!(
            svc["spec"],
            json!({
                "internalTrafficPolicy": "Cluster",
                "ports": [{"port": 80, "protocol": "TCP", "targetPort": 80}],
                "selector": {"app": "a"},
                "sessionAffinity": "None",
                "type": "ClusterIP",
            })
        );
        assert!(ServiceStrategy.validate(&cx(), &svc).is_empty());
        let np = create(
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
            "spec": {"type": "NodePort", "ports": [{"port": 80}]}}),
        );
        assert_eq!(np["spec"]["externalTrafficPolicy"], "Cluster");
        let ext = create(
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
            "spec": {"type": "ExternalName", "externalName": "example.com"}}),
        );
        assert!(ext["spec"].get("ipFamilies").is_none());
        assert!(ServiceStrategy.validate(&cx(), &ext).is_empty());
    }

    #[test]
    fn port_zero_and_names() {
        let mut body = web();
        body["spec"]["ports"] = json!([{"port": 0}, {"name": "b", "port": 81}]);
        let svc = create(body);
        assert_eq!(
            messages(&ServiceStrategy.validate(&cx(), &svc)),
            vec![
                "spec.ports[0].name: Required value",
                "spec.ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive",
                "spec.ports[0].targetPort: Invalid value: 0: must be between 1 and 65535, inclusive",
            ]
        );
    }

    #[test]
    fn type_external_name_and_node_port_rules() {
        let mut body = web();
        body["spec"]["type"] = json!("Magic");
        let svc = create(body);
        assert_eq!(
            messages(&ServiceStrategy.validate(&cx(), &svc)),
            vec!["spec.type: Unsupported value: \"Magic\": supported values: \"ClusterIP\", \"ExternalName\", \"LoadBalancer\", \"NodePort\""]
        );
        let svc = create(
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
            "spec": {"type": "ExternalName"}}),
        );
        assert_eq!(
            messages(&ServiceStrategy.validate(&cx(), &svc)),
            vec!["spec.externalName: Required value"]
        );
        let mut body = web();
        body["spec"]["ports"][0]["nodePort"] = json!(30080);
        let svc = create(body);
        assert_eq!(
            messages(&ServiceStrategy.validate(&cx(), &svc)),
            vec!["spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'"]
        );
    }

    #[test]
    fn node_port_back_to_cluster_ip_drops_what_only_node_ports_use() {
        let mut old = create(
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
            "spec": {"type": "NodePort", "ports": [{"port": 80}]}}),
        );
        old["spec"]["ports"][0]["nodePort"] = json!(30080);
        let mut new = old.clone();
        new["spec"]["type"] = json!("ClusterIP");
        ServiceStrategy.default(&mut new);
        ServiceStrategy.prepare_for_update(&cx(), &mut new, &old);
        assert!(new["spec"].get("externalTrafficPolicy").is_none());
        assert!(new["spec"]["ports"][0].get("nodePort").is_none());
        assert!(ServiceStrategy
            .validate_update(&cx(), &new, &old)
            .is_empty());
    }

    #[test]
    fn headless_is_allowed() {
        let mut body = web();
        body["spec"]["clusterIP"] = json!("None");
        let svc = create(body);
        assert_eq!(svc["spec"]["clusterIPs"], json!(["None"]));
        assert!(ServiceStrategy.validate(&cx(), &svc).is_empty());
    }

    #[test]
    fn cluster_ip_is_immutable_and_kept_on_resubmit() {
        let mut old = create(web());
        old["spec"]["clusterIP"] = json!("10.96.0.10");
        old["spec"]["clusterIPs"] = json!(["10.96.0.10"]);
        // Resubmitting the original YAML keeps the allocated IP.
        let mut new = ServiceStrategy.decode(web()).unwrap();
        ServiceStrategy.default(&mut new);
        ServiceStrategy.prepare_for_update(&cx(), &mut new, &old);
        assert_eq!(new["spec"]["clusterIP"], "10.96.0.10");
        assert!(ServiceStrategy
            .validate_update(&cx(), &new, &old)
            .is_empty());
        new["spec"]["clusterIP"] = json!("10.96.0.11");
        ServiceStrategy.prepare_for_update(&cx(), &mut new, &old);
        assert_eq!(
            messages(&ServiceStrategy.validate_update(&cx(), &new, &old)),
            vec!["spec.clusterIPs[0]: Invalid value: [\"10.96.0.11\"]: may not change once set"]
        );
    }
}
