//! Ingresses (`networking.k8s.io/v1`; upstream `ValidateIngressCreate`/`ValidateIngressUpdate`
//! in `pkg/apis/networking/validation`).

use rudder_api::field::{BadValue, ErrorList, FieldError, Path};
use rudder_api::k8s_openapi::api::networking::v1::Ingress;
use rudder_api::validation::{
    is_dns1123_subdomain, is_valid_path_segment_name, name_is_dns1035_label, name_is_dns_subdomain,
};
use rudder_registry::{OpCx, Strategy};
use serde_json::Value;

use super::decode::round_trip;
use super::util::*;

pub struct IngressStrategy;

const INGRESS_CLASS_ANNOTATION: &str = "kubernetes.io/ingress.class";
const PATH_TYPES: &[&str] = &["Exact", "ImplementationSpecific", "Prefix"];
const INVALID_PATH_SEQUENCES: &[&str] = &["//", "/./", "/../", "%2f", "%2F"];
const INVALID_PATH_SUFFIXES: &[&str] = &["/..", "/."];

fn spec_of(obj: &Value) -> &Value {
    obj.get("spec").unwrap_or(&Value::Null)
}

impl Strategy for IngressStrategy {
    fn decode(&self, obj: Value) -> Result<Value, String> {
        round_trip::<Ingress>(obj)
    }

    fn validate(&self, _cx: &OpCx, obj: &Value) -> ErrorList {
        let mut errs = validate_ingress_spec(spec_of(obj), false);
        let annotation = obj
            .pointer("/metadata/annotations")
            .and_then(|a| a.get(INGRESS_CLASS_ANNOTATION))
            .and_then(Value::as_str);
        if let (Some(a), Some(class)) = (
            annotation,
            spec_of(obj).get("ingressClassName").and_then(Value::as_str),
        ) {
            if a != class {
                errs.push(FieldError::invalid(
                    &Path::new("annotations").child(INGRESS_CLASS_ANNOTATION),
                    a,
                    "must match `ingressClassName` when both are specified",
                ));
            }
        }
        errs
    }

    fn validate_update(&self, _cx: &OpCx, new: &Value, old: &Value) -> ErrorList {
        // Values that were already invalid may stay.
        let old_spec = spec_of(old);
        let tls_names_were_invalid = list_at(old_spec, "tls").iter().any(|t| {
            let n = str_at(t, "secretName");
            !n.is_empty() && !name_is_dns_subdomain(n, false).is_empty()
        });
        validate_ingress_spec(spec_of(new), tls_names_were_invalid)
    }

    fn tracks_generation(&self) -> bool {
        true
    }
}

fn wildcard_errors(host: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if host.len() > 253 {
        errs.push(rudder_api::validation::max_len_error(253));
    }
    let ok = host
        .strip_prefix("*.")
        .is_some_and(|rest| is_dns1123_subdomain(rest).is_empty());
    if !ok {
        errs.push(rudder_api::validation::regex_error(
            "a wildcard DNS-1123 subdomain must start with '*.', followed by a valid DNS subdomain, which must consist of lower case alphanumeric characters, '-' or '.' and end with an alphanumeric character",
            "\\*\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*",
            &["*.example.com"],
        ));
    }
    errs
}

fn host_errors(host: &str) -> Vec<String> {
    if host.contains('*') {
        wildcard_errors(host)
    } else {
        is_dns1123_subdomain(host)
    }
}

/// Upstream `ValidateIngressSpec`.
fn validate_ingress_spec(spec: &Value, allow_invalid_secret_name: bool) -> ErrorList {
    let mut errs = ErrorList::new();
    let sp = Path::new("spec");
    let rules = list_at(spec, "rules");
    let backend = spec.get("defaultBackend").filter(|b| !b.is_null());
    if rules.is_empty() && backend.is_none() {
        errs.push(FieldError::invalid(
            &sp,
            BadValue::Raw("null".into()),
            "either `defaultBackend` or `rules` must be specified",
        ));
    }
    if let Some(b) = backend {
        validate_backend(b, &sp.child("defaultBackend"), &mut errs);
    }
    for (i, rule) in rules.iter().enumerate() {
        let rp = sp.child("rules").index(i);
        let host = str_at(rule, "host");
        if !host.is_empty() {
            if host.parse::<std::net::IpAddr>().is_ok() {
                errs.push(FieldError::invalid(
                    &rp.child("host"),
                    host,
                    "must be a DNS name, not an IP address",
                ));
            }
            for m in host_errors(host) {
                errs.push(FieldError::invalid(&rp.child("host"), host, m));
            }
        }
        if let Some(http) = rule.get("http").filter(|h| h.is_object()) {
            let hp = rp.child("http");
            let paths = list_at(http, "paths");
            if paths.is_empty() {
                errs.push(FieldError::required(&hp.child("paths"), ""));
            }
            for (j, p) in paths.iter().enumerate() {
                validate_http_path(p, &hp.child("paths").index(j), &mut errs);
            }
        }
    }
    for (i, tls) in list_at(spec, "tls").iter().enumerate() {
        let tp = sp.child("tls").index(i);
        for (j, h) in list_at(tls, "hosts").iter().enumerate() {
            let h = h.as_str().unwrap_or_default();
            for m in host_errors(h) {
                errs.push(FieldError::invalid(&tp.child("hosts").index(j), h, m));
            }
        }
        let name = str_at(tls, "secretName");
        if !allow_invalid_secret_name && !name.is_empty() {
            name_errors(
                name,
                name_is_dns_subdomain(name, false),
                &tp.child("secretName"),
                &mut errs,
            );
        }
    }
    if let Some(class) = spec.get("ingressClassName").and_then(Value::as_str) {
        name_errors(
            class,
            name_is_dns_subdomain(class, false),
            &sp.child("ingressClassName"),
            &mut errs,
        );
    }
    errs
}

/// Upstream `validateHTTPIngressPath`.
fn validate_http_path(p: &Value, path: &Path, errs: &mut ErrorList) {
    let Some(pt) = p.get("pathType").and_then(Value::as_str) else {
        errs.push(FieldError::required(
            &path.child("pathType"),
            "pathType must be specified",
        ));
        return;
    };
    let value = str_at(p, "path");
    match pt {
        "Exact" | "Prefix" => {
            if !value.starts_with('/') {
                errs.push(FieldError::invalid(
                    &path.child("path"),
                    value,
                    "must be an absolute path",
                ));
            }
            if !value.is_empty() {
                for seq in INVALID_PATH_SEQUENCES {
                    if value.contains(seq) {
                        errs.push(FieldError::invalid(
                            &path.child("path"),
                            value,
                            format!("must not contain '{seq}'"),
                        ));
                    }
                }
                for suffix in INVALID_PATH_SUFFIXES {
                    if value.ends_with(suffix) {
                        errs.push(FieldError::invalid(
                            &path.child("path"),
                            value,
                            format!("cannot end with '{suffix}'"),
                        ));
                    }
                }
            }
        }
        "ImplementationSpecific" => {
            if !value.is_empty() && !value.starts_with('/') {
                errs.push(FieldError::invalid(
                    &path.child("path"),
                    value,
                    "must be an absolute path",
                ));
            }
        }
        other => errs.push(FieldError::not_supported(
            &path.child("pathType"),
            other,
            PATH_TYPES,
        )),
    }
    match p.get("backend").filter(|b| b.is_object()) {
        Some(b) => validate_backend(b, &path.child("backend"), errs),
        None => errs.push(FieldError::invalid(
            &path.child("backend"),
            "",
            "resource or service backend is required",
        )),
    }
}

/// Upstream `validateIngressBackend`.
fn validate_backend(b: &Value, path: &Path, errs: &mut ErrorList) {
    let resource = b.get("resource").filter(|r| !r.is_null());
    let service = b.get("service").filter(|s| !s.is_null());
    match (resource, service) {
        (Some(_), Some(_)) => errs.push(FieldError::invalid(
            path,
            "",
            "cannot set both resource and service backends",
        )),
        (Some(r), None) => {
            let rp = path.child("resource");
            if let Some(g) = r.get("apiGroup").and_then(Value::as_str) {
                for m in is_dns1123_subdomain(g) {
                    errs.push(FieldError::invalid(&rp.child("apiGroup"), g, m));
                }
            }
            for key in ["kind", "name"] {
                let v = str_at(r, key);
                if v.is_empty() {
                    errs.push(FieldError::required(
                        &rp.child(key),
                        format!("{key} is required"),
                    ));
                } else {
                    for m in is_valid_path_segment_name(v) {
                        errs.push(FieldError::invalid(&rp.child(key), v, m));
                    }
                }
            }
        }
        (None, Some(s)) => {
            let sp = path.child("service");
            let name = str_at(s, "name");
            if name.is_empty() {
                errs.push(FieldError::required(&sp.child("name"), ""));
            } else {
                name_errors(
                    name,
                    name_is_dns1035_label(name, false),
                    &sp.child("name"),
                    errs,
                );
            }
            let port = s.get("port").unwrap_or(&Value::Null);
            let pname = str_at(port, "name");
            let pnum = int_at(port, "number").unwrap_or(0);
            if !pname.is_empty() && pnum != 0 {
                errs.push(FieldError::invalid(
                    path,
                    "",
                    "cannot set both port name & port number",
                ));
            } else if !pname.is_empty() {
                for m in port_name_errors(pname) {
                    errs.push(FieldError::invalid(
                        &sp.child("port").child("name"),
                        pname,
                        m,
                    ));
                }
            } else if pnum != 0 {
                for m in port_num_errors(pnum) {
                    errs.push(FieldError::invalid(
                        &sp.child("port").child("number"),
                        pnum,
                        m,
                    ));
                }
            } else {
                errs.push(FieldError::required(
                    path,
                    "port name or number is required",
                ));
            }
        }
        (None, None) => errs.push(FieldError::invalid(
            path,
            "",
            "resource or service backend is required",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cx() -> OpCx {
        OpCx {
            now: "2024-01-01T00:00:00Z".into(),
        }
    }

    fn messages(errs: &ErrorList) -> Vec<String> {
        errs.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn ingress_rules() {
        let s = IngressStrategy;
        let ing = s
            .decode(json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "i"},
                "spec": {"rules": [{"host": "example.com", "http": {"paths": [
                    {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"number": 80}}}},
                    {"path": "api", "backend": {"service": {"name": "web", "port": {"number": 80}}}},
                    {"path": "/x", "pathType": "Regex", "backend": {"service": {"name": "web", "port": {"number": 80}}}},
                    {"path": "/y", "pathType": "Exact", "backend": {"service": {"name": "web", "port": {}}}},
                ]}}]}}))
            .unwrap();
        assert_eq!(
            messages(&s.validate(&cx(), &ing)),
            vec![
                "spec.rules[0].http.paths[1].pathType: Required value: pathType must be specified",
                "spec.rules[0].http.paths[2].pathType: Unsupported value: \"Regex\": supported values: \"Exact\", \"ImplementationSpecific\", \"Prefix\"",
                "spec.rules[0].http.paths[3].backend: Required value: port name or number is required",
            ]
        );
        let empty = json!({"metadata": {"name": "i"}, "spec": {}});
        assert_eq!(
            messages(&s.validate(&cx(), &empty)),
            vec!["spec: Invalid value: null: either `defaultBackend` or `rules` must be specified"]
        );
    }
}
