//! Pods (upstream `pkg/registry/core/pod/strategy.go`), plus what upstream's default admission
//! chain does to every new pod: ServiceAccount (`serviceAccountName: default`) and
//! DefaultTolerationSeconds (300 s `not-ready`/`unreachable` tolerations). Priority admission
//! needs the PriorityClasses: `crate::admission::PriorityAdmission`.

use rudder_api::field::{ErrorList, FieldError, Path};
use rudder_api::k8s_openapi::api::core::v1::Pod;
use rudder_registry::{OpCx, Strategy};
use serde_json::{json, Value};

use super::decode::round_trip;
use super::podspec::{self, validate_pod_spec, validate_tolerations};
use super::util::*;

pub struct PodStrategy;

/// The updatable pod spec fields, as upstream lists them in its message.
const UPDATABLE_POD_SPEC_FIELDS: &str = "`spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)";

impl Strategy for PodStrategy {
    fn decode(&self, obj: Value) -> Result<Value, String> {
        round_trip::<Pod>(obj)
    }

    fn default(&self, obj: &mut Value) {
        let spec = child_obj(obj, "spec");
        podspec::default_pod_only(spec);
        podspec::default_pod_spec(spec);
        podspec::add_default_tolerations(spec);
    }

    fn prepare_for_create(&self, _cx: &OpCx, obj: &mut Value) {
        // ServiceAccount admission, which leaves mirror pods alone: they may use no API
        // object (NodeRestriction refuses those that reference an account).
        let mirror = obj
            .pointer("/metadata/annotations/kubernetes.io~1config.mirror")
            .is_some();
        let spec = child_obj(obj, "spec");
        if !mirror {
            default_str(spec, "serviceAccountName", "default");
        }
        podspec::sync_service_account(spec);
        let qos = podspec::compute_qos(spec);
        let gated = !list_at(spec, "schedulingGates").is_empty();
        let mut status = json!({"phase": "Pending", "qosClass": qos});
        if gated {
            status["conditions"] = json!([{
                "type": "PodScheduled",
                "status": "False",
                "reason": "SchedulingGated",
                "message": "Scheduling is blocked due to non-empty scheduling gates",
            }]);
        }
        obj["status"] = status;
    }

    fn prepare_for_update(&self, _cx: &OpCx, new: &mut Value, old: &Value) {
        // Priority admission keeps what it set on create.
        let spec = child_obj(new, "spec");
        for key in ["priority", "preemptionPolicy"] {
            if !has(spec, key) {
                if let Some(v) = old.get("spec").and_then(|s| s.get(key)) {
                    spec[key] = v.clone();
                }
            }
        }
    }

    fn validate(&self, _cx: &OpCx, obj: &Value) -> ErrorList {
        let mut errs = validate_pod(obj);
        let spec = obj.get("spec").unwrap_or(&Value::Null);
        let sp = Path::new("spec");
        if !list_at(spec, "ephemeralContainers").is_empty() {
            errs.push(FieldError::forbidden(
                &sp.child("ephemeralContainers"),
                "cannot be set on create",
            ));
        }
        if !str_at(spec, "nodeName").is_empty() && !list_at(spec, "schedulingGates").is_empty() {
            errs.push(FieldError::forbidden(
                &sp.child("nodeName"),
                "cannot be set until all schedulingGates have been cleared",
            ));
        }
        errs
    }

    fn validate_update(&self, _cx: &OpCx, new: &Value, old: &Value) -> ErrorList {
        let mut errs = validate_pod(new);
        errs.extend(validate_pod_spec_update(
            new.get("spec").unwrap_or(&Value::Null),
            old.get("spec").unwrap_or(&Value::Null),
        ));
        errs
    }

    fn prepare_for_subresource_update(
        &self,
        subresource: &str,
        _cx: &OpCx,
        new: &mut Value,
        old: &Value,
    ) {
        if subresource == "ephemeralcontainers" {
            // Upstream's EphemeralContainersStrategy: only spec.ephemeralContainers changes.
            let eph = new
                .get("spec")
                .and_then(|s| s.get("ephemeralContainers"))
                .cloned();
            let meta = new.get("metadata").cloned();
            *new = old.clone();
            if let Some(m) = meta {
                new["metadata"] = m;
            }
            let spec = child_obj(new, "spec");
            match eph {
                Some(e) => spec["ephemeralContainers"] = e,
                None => {
                    if let Some(o) = spec.as_object_mut() {
                        o.remove("ephemeralContainers");
                    }
                }
            }
        }
    }

    fn validate_subresource_update(
        &self,
        subresource: &str,
        cx: &OpCx,
        new: &Value,
        old: &Value,
    ) -> ErrorList {
        if subresource != "ephemeralcontainers" {
            return self.validate_update(cx, new, old);
        }
        let mut errs = validate_pod(new);
        let path = Path::new("spec").child("ephemeralContainers");
        let spec = new.get("spec").unwrap_or(&Value::Null);
        let old_eph = old
            .get("spec")
            .map(|s| list_at(s, "ephemeralContainers"))
            .unwrap_or_default();
        let new_eph = list_at(spec, "ephemeralContainers");
        for o in old_eph {
            let name = str_at(o, "name");
            match new_eph.iter().find(|n| str_at(n, "name") == name) {
                None => errs.push(FieldError::forbidden(
                    &path,
                    format!("existing ephemeral containers \"{name}\" may not be removed"),
                )),
                Some(n) if n != o => errs.push(FieldError::forbidden(
                    &path,
                    format!("existing ephemeral containers \"{name}\" may not be changed"),
                )),
                _ => {}
            }
        }
        let mut names: Vec<String> = ["containers", "initContainers"]
            .iter()
            .flat_map(|k| list_at(spec, k))
            .map(|c| str_at(c, "name").to_string())
            .collect();
        for (i, e) in new_eph.iter().enumerate() {
            let p = path.index(i);
            let name = str_at(e, "name");
            if name.is_empty() {
                errs.push(FieldError::required(&p.child("name"), ""));
            } else if names.iter().any(|n| n == name) {
                errs.push(FieldError::duplicate(&p.child("name"), json!(name)));
            }
            names.push(name.to_string());
            if str_at(e, "image").is_empty() {
                errs.push(FieldError::required(&p.child("image"), ""));
            }
            for forbidden in [
                "ports",
                "livenessProbe",
                "readinessProbe",
                "startupProbe",
                "lifecycle",
                "resources",
            ] {
                let set = e
                    .get(forbidden)
                    .is_some_and(|v| !v.is_null() && v != &json!({}) && v != &json!([]));
                if set {
                    errs.push(FieldError::forbidden(
                        &p.child(forbidden),
                        "cannot be set for an Ephemeral Container",
                    ));
                }
            }
        }
        errs
    }

    fn tracks_generation(&self) -> bool {
        true
    }

    fn selectable_fields(&self, obj: &Value, out: &mut Vec<(String, String)>) {
        let spec = obj.get("spec").unwrap_or(&Value::Null);
        let status = obj.get("status").unwrap_or(&Value::Null);
        let pod_ip = list_at(status, "podIPs")
            .first()
            .map(|ip| str_at(ip, "ip"))
            .filter(|ip| !ip.is_empty())
            .unwrap_or_else(|| str_at(status, "podIP"));
        for (k, v) in [
            ("spec.nodeName", str_at(spec, "nodeName").to_string()),
            (
                "spec.restartPolicy",
                str_at(spec, "restartPolicy").to_string(),
            ),
            (
                "spec.schedulerName",
                str_at(spec, "schedulerName").to_string(),
            ),
            (
                "spec.serviceAccountName",
                str_at(spec, "serviceAccountName").to_string(),
            ),
            ("spec.hostNetwork", bool_at(spec, "hostNetwork").to_string()),
            ("status.phase", str_at(status, "phase").to_string()),
            ("status.podIP", pod_ip.to_string()),
            (
                "status.nominatedNodeName",
                str_at(status, "nominatedNodeName").to_string(),
            ),
        ] {
            out.push((k.to_string(), v));
        }
    }

    fn graceful_delete_seconds(&self, obj: &Value, requested: Option<i64>) -> Option<i64> {
        let spec = obj.get("spec").unwrap_or(&Value::Null);
        let mut period = requested
            .or_else(|| int_at(spec, "terminationGracePeriodSeconds"))
            .unwrap_or(0);
        if str_at(spec, "nodeName").is_empty() {
            period = 0;
        }
        let phase = obj
            .get("status")
            .map(|s| str_at(s, "phase"))
            .unwrap_or_default();
        if phase == "Failed" || phase == "Succeeded" {
            period = 0;
        }
        if period < 0 {
            period = 1;
        }
        Some(period)
    }
}

/// Upstream `validatePodMetadataAndSpec` (the spec part; metadata is checked generically).
fn validate_pod(obj: &Value) -> ErrorList {
    let mut errs = ErrorList::new();
    let spec = obj.get("spec").unwrap_or(&Value::Null);
    let sp = Path::new("spec");
    if let Some(mirror) = obj
        .pointer("/metadata/annotations/kubernetes.io~1config.mirror")
        .and_then(Value::as_str)
    {
        if str_at(spec, "nodeName").is_empty() {
            errs.push(FieldError::invalid(
                &Path::new("metadata")
                    .child("annotations")
                    .key("kubernetes.io/config.mirror"),
                mirror,
                "must set spec.nodeName if mirror pod annotation is set",
            ));
        }
    }
    validate_pod_spec(spec, &sp, true, &mut errs);
    if str_at(spec, "serviceAccountName").is_empty() {
        for (vi, vol) in list_at(spec, "volumes").iter().enumerate() {
            let Some(proj) = vol.get("projected") else {
                continue;
            };
            for (si, src) in list_at(proj, "sources").iter().enumerate() {
                if has(src, "serviceAccountToken") {
                    errs.push(FieldError::forbidden(
                        &sp.child("volumes")
                            .index(vi)
                            .child("projected")
                            .child("sources")
                            .index(si)
                            .child("serviceAccountToken"),
                        "must not be specified when serviceAccountName is not set",
                    ));
                }
            }
        }
    }
    for key in ["containers", "initContainers"] {
        for (i, c) in list_at(spec, key).iter().enumerate() {
            podspec::image_whitespace(c, &sp.child(key).index(i), &mut errs);
        }
    }
    errs
}

/// Upstream `ValidatePodUpdate`'s spec rules: only images, `activeDeadlineSeconds`, added
/// tolerations, removed scheduling gates and a negative grace period raised to 1 may change.
fn validate_pod_spec_update(new: &Value, old: &Value) -> ErrorList {
    let mut errs = ErrorList::new();
    let sp = Path::new("spec");
    for key in ["containers", "initContainers"] {
        let (n, o) = (list_at(new, key), list_at(old, key));
        if n.len() != o.len() {
            errs.push(FieldError::forbidden(
                &sp.child(key),
                "pod updates may not add or remove containers",
            ));
            return errs;
        }
        for (i, c) in n.iter().enumerate() {
            let p = sp.child(key).index(i);
            if str_at(c, "image").is_empty() {
                errs.push(FieldError::required(&p.child("image"), ""));
            }
            podspec::image_whitespace(c, &p, &mut errs);
        }
    }
    let ads_path = sp.child("activeDeadlineSeconds");
    match (
        int_at(new, "activeDeadlineSeconds"),
        int_at(old, "activeDeadlineSeconds"),
    ) {
        (Some(n), old_ads) => {
            if !(0..=i64::from(i32::MAX)).contains(&n) {
                errs.push(FieldError::invalid(
                    &ads_path,
                    n,
                    inclusive_range(0, i64::from(i32::MAX)),
                ));
                return errs;
            }
            if old_ads.is_some_and(|o| o < n) {
                errs.push(FieldError::invalid(
                    &ads_path,
                    n,
                    "must be less than or equal to previous value",
                ));
                return errs;
            }
        }
        (None, Some(_)) => errs.push(FieldError::invalid(
            &ads_path,
            rudder_api::field::BadValue::Raw("null".into()),
            "must not update from a positive integer to nil value",
        )),
        (None, None) => {}
    }
    // Only additions to tolerations (tolerationSeconds may change).
    let new_tol = list_at(new, "tolerations");
    let strip = |t: &Value| {
        let mut t = t.clone();
        if let Some(m) = t.as_object_mut() {
            m.remove("tolerationSeconds");
        }
        t
    };
    let mut tol_ok = true;
    for o in list_at(old, "tolerations") {
        if !new_tol
            .iter()
            .any(|n| semantic_eq(Some(&strip(n)), Some(&strip(o))))
        {
            errs.push(FieldError::forbidden(
                &sp.child("tolerations"),
                "existing toleration can not be modified except its tolerationSeconds",
            ));
            tol_ok = false;
            break;
        }
    }
    if tol_ok {
        validate_tolerations(new_tol, &sp.child("tolerations"), &mut errs);
    }
    // Only deletions of scheduling gates.
    let old_gates: Vec<&str> = list_at(old, "schedulingGates")
        .iter()
        .map(|g| str_at(g, "name"))
        .collect();
    for (i, g) in list_at(new, "schedulingGates").iter().enumerate() {
        let name = str_at(g, "name");
        if !old_gates.contains(&name) {
            errs.push(FieldError::forbidden(
                &sp.child("schedulingGates").index(i).child("name"),
                format!("only deletion is allowed, but found new scheduling gate '{name}'"),
            ));
        }
    }
    if semantic_eq(Some(new), Some(old)) {
        return errs;
    }
    let mut munged = new.clone();
    for key in ["containers", "initContainers"] {
        let olds = list_at(old, key).to_vec();
        if let Some(items) = munged.get_mut(key).and_then(Value::as_array_mut) {
            for (c, o) in items.iter_mut().zip(&olds) {
                match o.get("image") {
                    Some(img) => c["image"] = img.clone(),
                    None => {
                        if let Some(m) = c.as_object_mut() {
                            m.remove("image");
                        }
                    }
                }
            }
        }
    }
    if let Some(m) = munged.as_object_mut() {
        for key in ["activeDeadlineSeconds", "schedulingGates", "tolerations"] {
            match old.get(key) {
                Some(v) => {
                    m.insert(key.to_string(), v.clone());
                }
                None => {
                    m.remove(key);
                }
            }
        }
        let old_grace = int_at(old, "terminationGracePeriodSeconds");
        if old_grace.is_some_and(|g| g < 0)
            && m.get("terminationGracePeriodSeconds") == Some(&json!(1))
        {
            if let Some(g) = old_grace {
                m.insert("terminationGracePeriodSeconds".into(), json!(g));
            }
        }
        // A gated pod may gain node selector entries.
        if !list_at(old, "schedulingGates").is_empty() {
            let old_sel = string_map(old.get("nodeSelector"));
            let new_sel = string_map(m.get("nodeSelector"));
            if old_sel != new_sel {
                if old_sel.iter().any(|(k, v)| new_sel.get(k) != Some(v)) {
                    errs.push(FieldError::invalid(
                        &sp.child("nodeSelector"),
                        bad_value(m.get("nodeSelector")),
                        "only additions to spec.nodeSelector are allowed (no mutations or deletions)",
                    ));
                }
                match old.get("nodeSelector") {
                    Some(v) => {
                        m.insert("nodeSelector".into(), v.clone());
                    }
                    None => {
                        m.remove("nodeSelector");
                    }
                }
            }
        }
    }
    if !semantic_eq(Some(&munged), Some(old)) {
        errs.push(FieldError::forbidden(
            &sp,
            format!(
                "pod updates may not change fields other than {UPDATABLE_POD_SPEC_FIELDS}\n{}",
                diff(old, &munged)
            ),
        ));
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cx() -> OpCx {
        OpCx {
            now: "2024-01-01T00:00:00Z".into(),
        }
    }

    fn create(s: &PodStrategy, body: Value) -> Value {
        let mut obj = s.decode(body).unwrap();
        s.default(&mut obj);
        s.prepare_for_create(&cx(), &mut obj);
        obj
    }

    fn messages(errs: &ErrorList) -> Vec<String> {
        errs.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn run_shaped_pod_gets_upstream_defaults() {
        let s = PodStrategy;
        let pod = create(
            &s,
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "nginx", "namespace": "default"},
                "spec": {"containers": [{"name": "nginx", "image": "nginx"}]}}),
        );
        assert_eq!(
            pod["spec"],
            json!({
                "containers": [{
                    "name": "nginx",
                    "image": "nginx",
                    "imagePullPolicy": "Always",
                    "resources": {},
                    "terminationMessagePath": "/dev/termination-log",
                    "terminationMessagePolicy": "File",
                }],
                "dnsPolicy": "ClusterFirst",
                "enableServiceLinks": true,
                "restartPolicy": "Always",
                "schedulerName": "default-scheduler",
                "securityContext": {},
                "serviceAccount": "default",
                "serviceAccountName": "default",
                "terminationGracePeriodSeconds": 30,
                "tolerations": [
                    {"effect": "NoExecute", "key": "node.kubernetes.io/not-ready", "operator": "Exists", "tolerationSeconds": 300},
                    {"effect": "NoExecute", "key": "node.kubernetes.io/unreachable", "operator": "Exists", "tolerationSeconds": 300},
                ],
            })
        );
        assert_eq!(
            pod["status"],
            json!({"phase": "Pending", "qosClass": "BestEffort"})
        );
        assert!(s.validate(&cx(), &pod).is_empty());
    }

    #[test]
    fn pod_without_image() {
        let s = PodStrategy;
        let pod = create(
            &s,
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                "spec": {"containers": [{"name": "c"}]}}),
        );
        assert_eq!(
            messages(&s.validate(&cx(), &pod)),
            vec!["spec.containers[0].image: Required value"]
        );
    }

    #[test]
    fn pod_without_containers_and_bad_names() {
        let s = PodStrategy;
        let pod = create(
            &s,
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {}}),
        );
        assert_eq!(
            messages(&s.validate(&cx(), &pod)),
            vec!["spec.containers: Required value"]
        );
        let pod = create(
            &s,
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                "spec": {"restartPolicy": "Sometimes", "containers": [
                    {"name": "A", "image": "x"}, {"name": "b", "image": "x"}, {"name": "b", "image": "x",
                     "ports": [{"containerPort": 70000}],
                     "volumeMounts": [{"name": "missing", "mountPath": "/m"}],
                     "resources": {"limits": {"cpu": "1"}, "requests": {"cpu": "2"}}}]}}),
        );
        assert_eq!(
            messages(&s.validate(&cx(), &pod)),
            vec![
                "spec.containers[0].name: Invalid value: \"A\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')",
                "spec.containers[2].ports[0].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive",
                "spec.containers[2].volumeMounts[0].name: Not found: \"missing\"",
                "spec.containers[2].resources.requests: Invalid value: \"2\": must be less than or equal to cpu limit of 1",
                "spec.containers[2].name: Duplicate value: \"b\"",
                "spec.restartPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"OnFailure\", \"Never\"",
            ]
        );
    }

    #[test]
    fn requests_default_to_limits_and_qos_follows() {
        let s = PodStrategy;
        let pod = create(
            &s,
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                "spec": {"containers": [{"name": "c", "image": "i",
                    "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}]}}),
        );
        assert_eq!(
            pod["spec"]["containers"][0]["resources"]["requests"],
            json!({"cpu": "1", "memory": "1Gi"})
        );
        assert_eq!(pod["status"]["qosClass"], "Guaranteed");
    }

    #[test]
    fn spec_is_immutable_but_image_is_not() {
        let s = PodStrategy;
        let old = create(
            &s,
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                "spec": {"containers": [{"name": "c", "image": "nginx:1"}]}}),
        );
        let mut new = old.clone();
        new["spec"]["containers"][0]["image"] = json!("nginx:2");
        assert!(s.validate_update(&cx(), &new, &old).is_empty());
        new["spec"]["restartPolicy"] = json!("Never");
        let errs = messages(&s.validate_update(&cx(), &new, &old));
        assert_eq!(errs.len(), 1);
        assert!(errs[0].starts_with(
            "spec: Forbidden: pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)\n"
        ), "{}", errs[0]);
        assert!(errs[0].contains("restartPolicy"));
    }

    #[test]
    fn graceful_delete_follows_upstream() {
        let s = PodStrategy;
        let unscheduled = json!({"spec": {"terminationGracePeriodSeconds": 30}});
        assert_eq!(s.graceful_delete_seconds(&unscheduled, None), Some(0));
        let scheduled = json!({"spec": {"nodeName": "n", "terminationGracePeriodSeconds": 30}});
        assert_eq!(s.graceful_delete_seconds(&scheduled, None), Some(30));
        assert_eq!(s.graceful_delete_seconds(&scheduled, Some(5)), Some(5));
        assert_eq!(s.graceful_delete_seconds(&scheduled, Some(-3)), Some(1));
        let done = json!({"spec": {"nodeName": "n", "terminationGracePeriodSeconds": 30}, "status": {"phase": "Succeeded"}});
        assert_eq!(s.graceful_delete_seconds(&done, None), Some(0));
    }

    #[test]
    fn selectable_fields() {
        let s = PodStrategy;
        let mut out = Vec::new();
        s.selectable_fields(
            &json!({"spec": {"nodeName": "n1", "hostNetwork": true}, "status": {"phase": "Running", "podIPs": [{"ip": "10.0.0.1"}]}}),
            &mut out,
        );
        assert!(out.contains(&("spec.nodeName".into(), "n1".into())));
        assert!(out.contains(&("spec.hostNetwork".into(), "true".into())));
        assert!(out.contains(&("status.podIP".into(), "10.0.0.1".into())));
        assert!(out.contains(&("status.phase".into(), "Running".into())));
    }
}
