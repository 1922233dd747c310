//! Pod specs, wherever they appear (Pods, pod templates of workloads): upstream's defaulting
//! (`pkg/apis/core/v1/defaults.go`) and validation (`ValidatePodSpec` and friends in
//! `pkg/apis/core/validation/validation.go`), with upstream's messages and field paths.

use std::collections::{BTreeMap, BTreeSet};

use rudder_api::field::{BadValue, ErrorList, FieldError, Path};
use rudder_api::validation::object_meta::IS_NEGATIVE_ERROR_MSG;
use rudder_api::validation::{
    is_dns1123_label, is_dns1123_subdomain, is_qualified_name, is_valid_label_value,
    name_is_dns_subdomain, validate_annotations, validate_label_name, validate_labels,
};
use serde_json::{json, Value};

use super::quantity;
use super::util::*;

/// Upstream's `DefaultTerminationGracePeriodSeconds`.
pub(crate) const DEFAULT_GRACE_SECONDS: i64 = 30;

const MAX_INT32: i64 = i32::MAX as i64;
const FILE_MODE_ERROR: &str = "must be a number between 0 and 0777 (octal), both inclusive";

// ---------------------------------------------------------------------------------------------
// Defaulting
// ---------------------------------------------------------------------------------------------

/// `SetDefaults_PodSpec` and the defaults of everything a pod spec contains (containers,
/// volumes, probes, ...), plus the v1 `serviceAccount`/`serviceAccountName` alias.
pub(crate) fn default_pod_spec(spec: &mut Value) {
    if !spec.is_object() {
        *spec = json!({});
    }
    default_str(spec, "dnsPolicy", "ClusterFirst");
    default_str(spec, "restartPolicy", "Always");
    default_field(spec, "securityContext", json!({}));
    default_field(
        spec,
        "terminationGracePeriodSeconds",
        json!(DEFAULT_GRACE_SECONDS),
    );
    default_str(spec, "schedulerName", "default-scheduler");
    sync_service_account(spec);
    for key in ["containers", "initContainers", "ephemeralContainers"] {
        each_mut(spec, key, default_container);
    }
    each_mut(spec, "volumes", default_volume);
}

/// The v1 conversion of the deprecated `serviceAccount` alias: it fills `serviceAccountName`
/// when that is empty, and always mirrors it on the way out.
pub(crate) fn sync_service_account(spec: &mut Value) {
    if str_at(spec, "serviceAccountName").is_empty() {
        let alias = str_at(spec, "serviceAccount").to_string();
        if !alias.is_empty() {
            spec["serviceAccountName"] = json!(alias);
        }
    }
    let name = str_at(spec, "serviceAccountName").to_string();
    if let Some(m) = spec.as_object_mut() {
        if name.is_empty() {
            m.remove("serviceAccount");
        } else {
            m.insert("serviceAccount".into(), json!(name));
        }
    }
}

/// Defaults of a pod template (`spec.template` of workloads, `template` of PodTemplates).
pub(crate) fn default_pod_template(template: &mut Value) {
    if !template.is_object() {
        *template = json!({});
    }
    default_pod_spec(child_obj(template, "spec"));
}

/// `SetDefaults_Pod`: what only Pods (not templates) get.
pub(crate) fn default_pod_only(spec: &mut Value) {
    for key in ["containers", "initContainers"] {
        each_mut(spec, key, |c| {
            let limits = c
                .get("resources")
                .and_then(|r| r.get("limits"))
                .and_then(Value::as_object)
                .cloned();
            if let Some(limits) = limits {
                let requests = child_obj(child_obj(c, "resources"), "requests");
                for (k, v) in limits {
                    if requests.get(&k).is_none() {
                        requests[&k] = v;
                    }
                }
            }
        });
    }
    default_field(spec, "enableServiceLinks", json!(true));
    if bool_at(spec, "hostNetwork") {
        for key in ["containers", "initContainers"] {
            each_mut(spec, key, |c| {
                each_mut(c, "ports", |p| {
                    if int_at(p, "hostPort").unwrap_or(0) == 0 {
                        if let Some(cp) = int_at(p, "containerPort") {
                            p["hostPort"] = json!(cp);
                        }
                    }
                });
            });
        }
    }
}

/// The DefaultTolerationSeconds admission plugin: pods tolerate `not-ready` and `unreachable`
/// nodes for 300 seconds unless they already tolerate them.
pub(crate) fn add_default_tolerations(spec: &mut Value) {
    const NOT_READY: &str = "node.kubernetes.io/not-ready";
    const UNREACHABLE: &str = "node.kubernetes.io/unreachable";
    let tolerates = |key: &str| {
        list_at(spec, "tolerations").iter().any(|t| {
            let k = str_at(t, "key");
            let e = str_at(t, "effect");
            (k == key || k.is_empty()) && (e == "NoExecute" || e.is_empty())
        })
    };
    let (not_ready, unreachable) = (tolerates(NOT_READY), tolerates(UNREACHABLE));
    if not_ready && unreachable {
        return;
    }
    if !spec.get("tolerations").is_some_and(Value::is_array) {
        spec["tolerations"] = json!([]);
    }
    for (key, have) in [(NOT_READY, not_ready), (UNREACHABLE, unreachable)] {
        if !have {
            if let Some(list) = spec["tolerations"].as_array_mut() {
                list.push(json!({
                    "key": key,
                    "operator": "Exists",
                    "effect": "NoExecute",
                    "tolerationSeconds": 300,
                }));
            }
        }
    }
}

/// Upstream's pull policy default: `Always` for `:latest` (or no tag and no digest), else
/// `IfNotPresent`.
pub(crate) fn default_pull_policy(image: &str) -> &'static str {
    if image_tag_is_latest(image) {
        "Always"
    } else {
        "IfNotPresent"
    }
}

/// Upstream `parsers.ParseImageName` reduced to "is the tag latest"; references that do not
/// parse count as not latest, as upstream ignores the error and gets an empty tag.
fn image_tag_is_latest(image: &str) -> bool {
    if image.is_empty() || image.chars().any(char::is_whitespace) {
        return false;
    }
    let (name, digest) = match image.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (image, None),
    };
    let mut parts: Vec<&str> = name.split('/').collect();
    // A first component with '.', ':' or "localhost" is a registry, which may have capitals.
    if parts.len() > 1
        && (parts[0].contains('.') || parts[0].contains(':') || parts[0] == "localhost")
    {
        parts.remove(0);
    }
    let last = parts.last().copied().unwrap_or_default();
    let (repo_last, tag) = match last.split_once(':') {
        Some((r, t)) => (r, Some(t)),
        None => (last, None),
    };
    let repo_ok = parts[..parts.len().saturating_sub(1)]
        .iter()
        .chain(std::iter::once(&repo_last))
        .all(|p| {
            !p.is_empty()
                && p.bytes().all(|c| {
                    c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'.' | b'_' | b'-')
                })
        });
    if !repo_ok {
        return false;
    }
    match tag {
        Some(t) => t == "latest",
        None => digest.is_none(),
    }
}

/// `SetDefaults_Container` and the defaults of what a container holds.
fn default_container(c: &mut Value) {
    if !c.is_object() {
        return;
    }
    let image = str_at(c, "image").to_string();
    default_str(c, "imagePullPolicy", default_pull_policy(&image));
    default_str(c, "terminationMessagePath", "/dev/termination-log");
    default_str(c, "terminationMessagePolicy", "File");
    // A Go struct (not a pointer): always present in upstream's output.
    default_field(c, "resources", json!({}));
    each_mut(c, "ports", |p| default_str(p, "protocol", "TCP"));
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        if let Some(p) = c.get_mut(probe).filter(|p| p.is_object()) {
            default_int(p, "timeoutSeconds", 1);
            default_int(p, "periodSeconds", 10);
            default_int(p, "successThreshold", 1);
            default_int(p, "failureThreshold", 3);
            default_http_get(p);
        }
    }
    if let Some(l) = c.get_mut("lifecycle").filter(|l| l.is_object()) {
        for h in ["postStart", "preStop"] {
            if let Some(h) = l.get_mut(h).filter(|h| h.is_object()) {
                default_http_get(h);
            }
        }
    }
    each_mut(c, "env", |e| {
        if let Some(fr) = e
            .get_mut("valueFrom")
            .and_then(|v| v.get_mut("fieldRef"))
            .filter(|f| f.is_object())
        {
            default_str(fr, "apiVersion", "v1");
        }
    });
}

/// `SetDefaults_HTTPGetAction` on a handler's `httpGet`.
fn default_http_get(handler: &mut Value) {
    if let Some(h) = handler.get_mut("httpGet").filter(|h| h.is_object()) {
        default_str(h, "path", "/");
        default_str(h, "scheme", "HTTP");
    }
}

/// `SetDefaults_Volume` and the volume sources' defaults.
fn default_volume(v: &mut Value) {
    let Some(m) = v.as_object() else { return };
    let has_source = m.iter().any(|(k, x)| k != "name" && !x.is_null());
    if !has_source {
        v["emptyDir"] = json!({});
        return;
    }
    for key in ["secret", "configMap", "downwardAPI", "projected"] {
        if let Some(s) = v.get_mut(key).filter(|s| s.is_object()) {
            default_field(s, "defaultMode", json!(420));
        }
    }
    if let Some(d) = v.get_mut("downwardAPI").filter(|s| s.is_object()) {
        each_mut(d, "items", default_downward_item);
    }
    if let Some(p) = v.get_mut("projected").filter(|s| s.is_object()) {
        each_mut(p, "sources", |s| {
            if let Some(t) = s.get_mut("serviceAccountToken").filter(|t| t.is_object()) {
                default_field(t, "expirationSeconds", json!(3600));
            }
            if let Some(d) = s.get_mut("downwardAPI").filter(|d| d.is_object()) {
                each_mut(d, "items", default_downward_item);
            }
        });
    }
    if let Some(h) = v.get_mut("hostPath").filter(|h| h.is_object()) {
        default_field(h, "type", json!(""));
    }
    default_in_tree_sources(v);
    if let Some(spec) = v
        .get_mut("ephemeral")
        .and_then(|e| e.get_mut("volumeClaimTemplate"))
        .and_then(|t| t.get_mut("spec"))
        .filter(|s| s.is_object())
    {
        default_str(spec, "volumeMode", "Filesystem");
    }
    if let Some(img) = v.get_mut("image").filter(|i| i.is_object()) {
        let reference = str_at(img, "reference").to_string();
        default_str(img, "pullPolicy", default_pull_policy(&reference));
    }
}

/// The declarative (`+default`) defaults of the in-tree volume sources, shared by pod volumes
/// and PersistentVolume specs.
pub(crate) fn default_in_tree_sources(v: &mut Value) {
    let mut source = |key: &str, defaults: &[(&str, Value)]| {
        if let Some(s) = v.get_mut(key).filter(|s| s.is_object()) {
            for (k, d) in defaults {
                if str_at(s, k).is_empty() && !matches!(s.get(*k), Some(Value::Bool(_))) {
                    s[*k] = d.clone();
                }
            }
        }
    };
    source("iscsi", &[("iscsiInterface", json!("default"))]);
    source(
        "rbd",
        &[
            ("pool", json!("rbd")),
            ("user", json!("admin")),
            ("keyring", json!("/etc/ceph/keyring")),
        ],
    );
    source(
        "azureDisk",
        &[
            ("cachingMode", json!("ReadWrite")),
            ("fsType", json!("ext4")),
            ("readOnly", json!(false)),
            ("kind", json!("Shared")),
        ],
    );
    source(
        "scaleIO",
        &[
            ("storageMode", json!("ThinProvisioned")),
            ("fsType", json!("xfs")),
        ],
    );
}

fn default_downward_item(item: &mut Value) {
    if let Some(fr) = item.get_mut("fieldRef").filter(|f| f.is_object()) {
        default_str(fr, "apiVersion", "v1");
    }
}

// ---------------------------------------------------------------------------------------------
// QoS
// ---------------------------------------------------------------------------------------------

/// Upstream `qos.ComputePodQOS`: `Guaranteed`, `Burstable` or `BestEffort`.
pub(crate) fn compute_qos(spec: &Value) -> &'static str {
    let mut requests: BTreeMap<&str, quantity::Quantity> = BTreeMap::new();
    let mut limits: BTreeMap<&str, quantity::Quantity> = BTreeMap::new();
    let mut guaranteed = true;
    let containers = list_at(spec, "containers")
        .iter()
        .chain(list_at(spec, "initContainers"));
    for c in containers {
        let res = c.get("resources");
        let mut limits_found = BTreeSet::new();
        for (which, acc) in [("requests", &mut requests), ("limits", &mut limits)] {
            let Some(m) = res.and_then(|r| obj_at(r, which)) else {
                continue;
            };
            for name in ["cpu", "memory"] {
                let Some(q) = m
                    .get(name)
                    .and_then(Value::as_str)
                    .and_then(|s| quantity::parse(s).ok())
                else {
                    continue;
                };
                if q > 0 {
                    let e = acc.entry(name).or_insert_with(quantity::Quantity::zero);
                    *e = e.add(q);
                    if which == "limits" {
                        limits_found.insert(name);
                    }
                }
            }
        }
        if !(limits_found.contains("cpu") && limits_found.contains("memory")) {
            guaranteed = false;
        }
    }
    if requests.is_empty() && limits.is_empty() {
        return "BestEffort";
    }
    if guaranteed {
        for (name, req) in &requests {
            if limits.get(name) != Some(req) {
                guaranteed = false;
                break;
            }
        }
    }
    if guaranteed && requests.len() == limits.len() {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

// ---------------------------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------------------------

/// What a volume name stands for, for mount and device checks.
struct Volumes {
    /// name → the volume is a claim (PVC or generic ephemeral)
    names: BTreeMap<String, bool>,
    /// image volumes, whose mounts may not use subPath
    images: BTreeSet<String>,
}

/// Upstream `ValidatePodTemplateSpec`.
pub(crate) fn validate_pod_template_spec(template: &Value, path: &Path, errs: &mut ErrorList) {
    let meta = template.get("metadata");
    errs.extend(validate_labels(
        &string_map(meta.and_then(|m| m.get("labels"))),
        &path.child("labels"),
    ));
    errs.extend(validate_annotations(
        &string_map(meta.and_then(|m| m.get("annotations"))),
        &path.child("annotations"),
    ));
    let empty = json!({});
    let spec = template.get("spec").unwrap_or(&empty);
    validate_pod_spec(spec, &path.child("spec"), false, errs);
    if !list_at(spec, "ephemeralContainers").is_empty() {
        errs.push(FieldError::forbidden(
            &path.child("spec").child("ephemeralContainers"),
            "ephemeral containers not allowed in pod template",
        ));
    }
}

/// Upstream `ValidatePodSpec`; `is_pod` is upstream's `opts.ResourceIsPod`.
pub(crate) fn validate_pod_spec(spec: &Value, path: &Path, is_pod: bool, errs: &mut ErrorList) {
    if !has(spec, "terminationGracePeriodSeconds") {
        errs.push(FieldError::required(
            &path.child("terminationGracePeriodSeconds"),
            "",
        ));
    }
    let grace = int_at(spec, "terminationGracePeriodSeconds");
    let vols = validate_volumes(
        list_at(spec, "volumes"),
        &path.child("volumes"),
        is_pod,
        errs,
    );
    let restart_policy = str_at(spec, "restartPolicy");
    validate_containers(
        spec,
        &vols,
        grace,
        &path.child("containers"),
        restart_policy,
        errs,
    );
    validate_init_containers(
        spec,
        &vols,
        grace,
        &path.child("initContainers"),
        restart_policy,
        errs,
    );
    validate_ephemeral_containers(
        spec,
        &vols,
        &path.child("ephemeralContainers"),
        restart_policy,
        errs,
    );
    validate_host_network_deps(spec, path, is_pod, errs);
    validate_restart_policy(restart_policy, &path.child("restartPolicy"), errs);
    validate_dns_policy(str_at(spec, "dnsPolicy"), &path.child("dnsPolicy"), errs);
    errs.extend(validate_labels(
        &string_map(spec.get("nodeSelector")),
        &path.child("nodeSelector"),
    ));
    if let Some(sc) = spec.get("securityContext").filter(|s| s.is_object()) {
        validate_pod_security_context(sc, &path.child("securityContext"), errs);
    }
    for (i, s) in list_at(spec, "imagePullSecrets").iter().enumerate() {
        if s.as_object().is_some_and(|m| m.keys().any(|k| k != "name")) {
            errs.push(FieldError::invalid(
                &path.child("imagePullSecrets").index(i),
                BadValue::Raw(go_json(s)),
                "only name may be set",
            ));
        }
    }
    validate_dns_config(spec, &path.child("dnsConfig"), errs);
    for (i, g) in list_at(spec, "readinessGates").iter().enumerate() {
        let ct = str_at(g, "conditionType");
        let p = path.child("readinessGates").index(i).child("conditionType");
        for m in is_qualified_name(ct) {
            errs.push(FieldError::invalid(&p, ct, m));
        }
    }
    let mut seen_gates = BTreeSet::new();
    for (i, g) in list_at(spec, "schedulingGates").iter().enumerate() {
        let n = str_at(g, "name");
        let p = path.child("schedulingGates").index(i);
        for m in is_qualified_name(n) {
            errs.push(FieldError::invalid(&p, n, m));
        }
        if !seen_gates.insert(n) {
            errs.push(FieldError::duplicate(&p, n));
        }
    }
    let sa = str_at(spec, "serviceAccountName");
    if !sa.is_empty() {
        name_errors(
            sa,
            name_is_dns_subdomain(sa, false),
            &path.child("serviceAccountName"),
            errs,
        );
    }
    let node = str_at(spec, "nodeName");
    if !node.is_empty() {
        name_errors(
            node,
            name_is_dns_subdomain(node, false),
            &path.child("nodeName"),
            errs,
        );
    }
    if let Some(ads) = int_at(spec, "activeDeadlineSeconds") {
        if !(1..=MAX_INT32).contains(&ads) {
            errs.push(FieldError::invalid(
                &path.child("activeDeadlineSeconds"),
                ads,
                inclusive_range(1, MAX_INT32),
            ));
        }
    }
    for key in ["hostname", "subdomain"] {
        let v = str_at(spec, key);
        if !v.is_empty() {
            for m in is_dns1123_label(v) {
                errs.push(FieldError::invalid(&path.child(key), v, m));
            }
        }
    }
    validate_tolerations(
        list_at(spec, "tolerations"),
        &path.child("tolerations"),
        errs,
    );
    for (i, ha) in list_at(spec, "hostAliases").iter().enumerate() {
        let p = path.child("hostAliases").index(i);
        validate_ip(&p.child("ip"), str_at(ha, "ip"), errs);
        for (j, h) in list_at(ha, "hostnames").iter().enumerate() {
            let h = h.as_str().unwrap_or_default();
            for m in is_dns1123_subdomain(h) {
                errs.push(FieldError::invalid(&p.child("hostnames").index(j), h, m));
            }
        }
    }
    let pcn = str_at(spec, "priorityClassName");
    if !pcn.is_empty() {
        name_errors(
            pcn,
            name_is_dns_subdomain(pcn, false),
            &path.child("priorityClassName"),
            errs,
        );
    }
    if let Some(rc) = spec.get("runtimeClassName").and_then(Value::as_str) {
        name_errors(
            rc,
            name_is_dns_subdomain(rc, false),
            &path.child("runtimeClassName"),
            errs,
        );
    }
    if let Some(pp) = spec.get("preemptionPolicy").and_then(Value::as_str) {
        match pp {
            "PreemptLowerPriority" | "Never" => {}
            "" => errs.push(FieldError::required(&path.child("preemptionPolicy"), "")),
            other => errs.push(FieldError::not_supported(
                &path.child("preemptionPolicy"),
                other,
                &["PreemptLowerPriority", "Never"],
            )),
        }
    }
    if let Some(os) = spec.get("os").filter(|o| o.is_object()) {
        let name = str_at(os, "name");
        if name.is_empty() {
            errs.push(FieldError::required(&path.child("os").child("name"), ""));
        } else if name != "linux" && name != "windows" {
            errs.push(FieldError::not_supported(
                &path.child("os").child("name"),
                name,
                &["linux", "windows"],
            ));
        }
    }
}

/// Upstream `ValidateVolumes`.
fn validate_volumes(volumes: &[Value], path: &Path, is_pod: bool, errs: &mut ErrorList) -> Volumes {
    let mut out = Volumes {
        names: BTreeMap::new(),
        images: BTreeSet::new(),
    };
    for (i, vol) in volumes.iter().enumerate() {
        let idx = path.index(i);
        let name = str_at(vol, "name");
        let name_path = idx.child("name");
        let mut el = ErrorList::new();
        validate_volume_source(vol, &idx, is_pod, &mut el);
        if name.is_empty() {
            el.push(FieldError::required(&name_path, ""));
        } else {
            for m in is_dns1123_label(name) {
                el.push(FieldError::invalid(&name_path, name, m));
            }
        }
        if out.names.contains_key(name) {
            el.push(FieldError::duplicate(&name_path, name));
        }
        if el.is_empty() {
            let claim = has(vol, "persistentVolumeClaim") || has(vol, "ephemeral");
            out.names.insert(name.to_string(), claim);
            if has(vol, "image") {
                out.images.insert(name.to_string());
            }
        } else {
            errs.extend(el);
        }
    }
    out
}

/// The volume source keys, in the order upstream checks them, with the path name upstream
/// reports when a second one is set (it has a few typos, kept on purpose).
const VOLUME_SOURCES: &[(&str, &str)] = &[
    ("emptyDir", "emptyDir"),
    ("hostPath", "hostPath"),
    ("gitRepo", "gitRepo"),
    ("gcePersistentDisk", "gcePersistentDisk"),
    ("awsElasticBlockStore", "awsElasticBlockStore"),
    ("secret", "secret"),
    ("nfs", "nfs"),
    ("iscsi", "iscsi"),
    ("glusterfs", "glusterfs"),
    ("flocker", "flocker"),
    ("persistentVolumeClaim", "persistentVolumeClaim"),
    ("rbd", "rbd"),
    ("cinder", "cinder"),
    ("cephfs", "cephFS"),
    ("quobyte", "quobyte"),
    ("downwardAPI", "downwarAPI"),
    ("fc", "fc"),
    ("flexVolume", "flexVolume"),
    ("configMap", "configMap"),
    ("azureFile", "azureFile"),
    ("vsphereVolume", "vsphereVolume"),
    ("photonPersistentDisk", "photonPersistentDisk"),
    ("portworxVolume", "portworxVolume"),
    ("azureDisk", "azureDisk"),
    ("storageos", "storageos"),
    ("projected", "projected"),
    ("scaleIO", "scaleIO"),
    ("csi", "csi"),
    ("ephemeral", "ephemeral"),
    ("image", "image"),
];

/// Upstream `validateVolumeSource`: exactly one source, each checked.
fn validate_volume_source(vol: &Value, path: &Path, is_pod: bool, errs: &mut ErrorList) {
    let mut count = 0;
    for (key, report) in VOLUME_SOURCES {
        let Some(src) = vol.get(*key).filter(|v| !v.is_null()) else {
            continue;
        };
        if count > 0 {
            errs.push(FieldError::forbidden(
                &path.child(*report),
                "may not specify more than 1 volume type",
            ));
            continue;
        }
        count += 1;
        let p = path.child(*key);
        match *key {
            "hostPath" => {
                let hp = str_at(src, "path");
                if hp.is_empty() {
                    errs.push(FieldError::required(&p.child("path"), ""));
                    continue;
                }
                no_backsteps(hp, &p.child("path"), errs);
                if let Some(t) = src.get("type").and_then(Value::as_str) {
                    const TYPES: &[&str] = &[
                        "",
                        "BlockDevice",
                        "CharDevice",
                        "Directory",
                        "DirectoryOrCreate",
                        "File",
                        "FileOrCreate",
                        "Socket",
                    ];
                    if !TYPES.contains(&t) {
                        errs.push(FieldError::not_supported(&p.child("type"), t, TYPES));
                    }
                }
            }
            "gitRepo" => {
                if str_at(src, "repository").is_empty() {
                    errs.push(FieldError::required(&p.child("repository"), ""));
                }
                local_descending_path(str_at(src, "directory"), &p.child("directory"), errs);
            }
            "secret" => {
                if str_at(src, "secretName").is_empty() {
                    errs.push(FieldError::required(&p.child("secretName"), ""));
                }
                file_mode(src, "defaultMode", &p, errs);
                for (i, kp) in list_at(src, "items").iter().enumerate() {
                    key_to_path(kp, &p.child("items").index(i), errs);
                }
            }
            "configMap" => {
                if str_at(src, "name").is_empty() {
                    errs.push(FieldError::required(&p.child("name"), ""));
                }
                file_mode(src, "defaultMode", &p, errs);
                for (i, kp) in list_at(src, "items").iter().enumerate() {
                    key_to_path(kp, &p.child("items").index(i), errs);
                }
            }
            "persistentVolumeClaim" if str_at(src, "claimName").is_empty() => {
                errs.push(FieldError::required(&p.child("claimName"), ""));
            }
            "nfs" => {
                if str_at(src, "server").is_empty() {
                    errs.push(FieldError::required(&p.child("server"), ""));
                }
                let np = str_at(src, "path");
                if np.is_empty() {
                    errs.push(FieldError::required(&p.child("path"), ""));
                }
                if !np.starts_with('/') {
                    errs.push(FieldError::invalid(
                        &p.child("path"),
                        np,
                        "must be an absolute path",
                    ));
                }
            }
            "downwardAPI" => {
                file_mode(src, "defaultMode", &p, errs);
                for item in list_at(src, "items") {
                    downward_api_file(item, &p, errs);
                }
            }
            "projected" => {
                file_mode(src, "defaultMode", &p, errs);
                validate_projection_sources(src, &p, errs);
            }
            "csi" => {
                let driver = str_at(src, "driver");
                let dp = p.child("driver");
                if driver.is_empty() {
                    errs.push(FieldError::required(&dp, ""));
                }
                if driver.len() > 63 {
                    errs.push(FieldError::too_long(&dp, 63));
                }
                for m in is_dns1123_subdomain(&driver.to_lowercase()) {
                    errs.push(FieldError::invalid(&dp, driver, m));
                }
            }
            "ephemeral" => match src.get("volumeClaimTemplate").filter(|t| t.is_object()) {
                None => errs.push(FieldError::required(&p.child("volumeClaimTemplate"), "")),
                Some(t) => {
                    let tp = p.child("volumeClaimTemplate");
                    let meta = t.get("metadata");
                    errs.extend(validate_annotations(
                        &string_map(meta.and_then(|m| m.get("annotations"))),
                        &tp.child("metadata").child("annotations"),
                    ));
                    errs.extend(validate_labels(
                        &string_map(meta.and_then(|m| m.get("labels"))),
                        &tp.child("metadata").child("labels"),
                    ));
                    let empty = json!({});
                    super::storage::validate_pvc_spec(
                        t.get("spec").unwrap_or(&empty),
                        &tp.child("spec"),
                        errs,
                    );
                }
            },
            "image" => {
                if is_pod && str_at(src, "reference").is_empty() {
                    errs.push(FieldError::required(&p.child("reference"), ""));
                }
                validate_pull_policy(str_at(src, "pullPolicy"), &p.child("pullPolicy"), errs);
            }
            _ => {}
        }
    }
    if count == 0 {
        errs.push(FieldError::required(path, "must specify a volume type"));
    }
}

fn file_mode(v: &Value, key: &str, path: &Path, errs: &mut ErrorList) {
    if let Some(m) = int_at(v, key) {
        if !(0..=0o777).contains(&m) {
            errs.push(FieldError::invalid(&path.child(key), m, FILE_MODE_ERROR));
        }
    }
}

/// Upstream `validateKeyToPath`.
fn key_to_path(kp: &Value, path: &Path, errs: &mut ErrorList) {
    if str_at(kp, "key").is_empty() {
        errs.push(FieldError::required(&path.child("key"), ""));
    }
    let p = str_at(kp, "path");
    if p.is_empty() {
        errs.push(FieldError::required(&path.child("path"), ""));
    }
    local_non_reserved_path(p, &path.child("path"), errs);
    file_mode(kp, "mode", path, errs);
}

/// Upstream `validatePathNoBacksteps`.
fn no_backsteps(target: &str, path: &Path, errs: &mut ErrorList) {
    if target.replace('\\', "/").split('/').any(|p| p == "..") {
        errs.push(FieldError::invalid(path, target, "must not contain '..'"));
    }
}

/// Upstream `validateLocalDescendingPath`.
fn local_descending_path(target: &str, path: &Path, errs: &mut ErrorList) {
    if target.starts_with('/') {
        errs.push(FieldError::invalid(path, target, "must be a relative path"));
    }
    no_backsteps(target, path, errs);
}

/// Upstream `ValidateLocalNonReservedPath`.
fn local_non_reserved_path(target: &str, path: &Path, errs: &mut ErrorList) {
    local_descending_path(target, path, errs);
    if target.starts_with("..") && !target.starts_with("../") {
        errs.push(FieldError::invalid(
            path,
            target,
            "must not start with '..'",
        ));
    }
}

/// Field paths a downward API volume file may reference.
const VOLUME_FIELD_PATHS: &[&str] = &[
    "metadata.annotations",
    "metadata.labels",
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
];

/// Field paths an environment variable may reference.
const ENV_FIELD_PATHS: &[&str] = &[
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "spec.nodeName",
    "spec.serviceAccountName",
    "status.hostIP",
    "status.hostIPs",
    "status.podIP",
    "status.podIPs",
];

const RESOURCE_FIELD_PATHS: &[&str] = &[
    "limits.cpu",
    "limits.ephemeral-storage",
    "limits.memory",
    "requests.cpu",
    "requests.ephemeral-storage",
    "requests.memory",
];

/// Upstream `validateDownwardAPIVolumeFile`.
fn downward_api_file(file: &Value, path: &Path, errs: &mut ErrorList) {
    let fp = str_at(file, "path");
    if fp.is_empty() {
        errs.push(FieldError::required(&path.child("path"), ""));
    }
    local_non_reserved_path(fp, &path.child("path"), errs);
    if let Some(fr) = file.get("fieldRef").filter(|f| f.is_object()) {
        object_field_selector(fr, VOLUME_FIELD_PATHS, &path.child("fieldRef"), errs);
        if has(file, "resourceFieldRef") {
            errs.push(FieldError::invalid(
                path,
                "resource",
                "fieldRef and resourceFieldRef can not be specified simultaneously",
            ));
        }
    } else if let Some(rf) = file.get("resourceFieldRef").filter(|f| f.is_object()) {
        resource_field_selector(rf, &path.child("resourceFieldRef"), true, errs);
    } else {
        errs.push(FieldError::required(
            path,
            "one of fieldRef and resourceFieldRef is required",
        ));
    }
    file_mode(file, "mode", path, errs);
}

/// Upstream `validateProjectionSources` (without cluster trust bundles' signer checks).
fn validate_projection_sources(projection: &Value, path: &Path, errs: &mut ErrorList) {
    let mut all_paths = BTreeSet::new();
    for (i, source) in list_at(projection, "sources").iter().enumerate() {
        let mut n = 0;
        let sp = path.child("sources").index(i);
        for key in ["secret", "configMap"] {
            if let Some(s) = source.get(key).filter(|s| !s.is_null()) {
                n += 1;
                let pp = sp.child(key);
                let name = str_at(s, "name");
                if name.is_empty() {
                    errs.push(FieldError::required(&pp.child("name"), ""));
                }
                for (j, kp) in list_at(s, "items").iter().enumerate() {
                    key_to_path(kp, &pp.child("items").index(j), errs);
                    let p = str_at(kp, "path");
                    if !p.is_empty() && !all_paths.insert(p.to_string()) {
                        errs.push(FieldError::invalid(
                            path,
                            name,
                            "conflicting duplicate paths",
                        ));
                    }
                }
            }
        }
        if let Some(d) = source.get("downwardAPI").filter(|s| !s.is_null()) {
            n += 1;
            let pp = sp.child("downwardAPI");
            for item in list_at(d, "items") {
                downward_api_file(item, &pp, errs);
                let p = str_at(item, "path");
                if !p.is_empty() && !all_paths.insert(p.to_string()) {
                    errs.push(FieldError::invalid(path, p, "conflicting duplicate paths"));
                }
            }
        }
        if let Some(t) = source.get("serviceAccountToken").filter(|s| !s.is_null()) {
            n += 1;
            let pp = sp.child("serviceAccountToken");
            let exp = int_at(t, "expirationSeconds").unwrap_or(0);
            if exp < 600 {
                errs.push(FieldError::invalid(
                    &pp.child("expirationSeconds"),
                    exp,
                    "may not specify a duration less than 10 minutes",
                ));
            }
            if exp > 1 << 32 {
                errs.push(FieldError::invalid(
                    &pp.child("expirationSeconds"),
                    exp,
                    "may not specify a duration larger than 2^32 seconds",
                ));
            }
            let tp = str_at(t, "path");
            if tp.is_empty() {
                errs.push(FieldError::required(&path.child("path"), ""));
            } else {
                local_non_reserved_path(tp, &path.child("path"), errs);
            }
        }
        if source
            .get("clusterTrustBundle")
            .is_some_and(|s| !s.is_null())
        {
            n += 1;
        }
        if source.get("podCertificate").is_some_and(|s| !s.is_null()) {
            n += 1;
        }
        if n > 1 {
            errs.push(FieldError::forbidden(
                &sp,
                "may not specify more than 1 volume type per source",
            ));
        }
    }
}

/// Upstream `validateObjectFieldSelector`.
fn object_field_selector(fs: &Value, allowed: &[&str], path: &Path, errs: &mut ErrorList) {
    let api_version = str_at(fs, "apiVersion");
    if api_version.is_empty() {
        errs.push(FieldError::required(&path.child("apiVersion"), ""));
        return;
    }
    let field_path = str_at(fs, "fieldPath");
    if field_path.is_empty() {
        errs.push(FieldError::required(&path.child("fieldPath"), ""));
        return;
    }
    let converted = convert_downward_field_label(api_version, field_path);
    let internal = match converted {
        Ok(p) => p,
        Err(e) => {
            errs.push(FieldError::invalid(
                &path.child("fieldPath"),
                field_path,
                format!("error converting fieldPath: {e}"),
            ));
            return;
        }
    };
    if let Some((p, sub)) = split_subscripted(&internal) {
        match p {
            "metadata.annotations" => {
                let sub = sub.to_lowercase();
                for m in is_qualified_name(&sub) {
                    errs.push(FieldError::invalid(path, sub.as_str(), m));
                }
            }
            "metadata.labels" => {
                for m in is_qualified_name(sub) {
                    errs.push(FieldError::invalid(path, sub, m));
                }
            }
            other => errs.push(FieldError::invalid(
                path,
                other,
                "does not support subscript",
            )),
        }
    } else if !allowed.contains(&internal.as_str()) {
        errs.push(FieldError::not_supported(
            &path.child("fieldPath"),
            internal.as_str(),
            allowed,
        ));
    }
}

/// Upstream `fieldpath.SplitMaybeSubscriptedPath`: `metadata.labels['app']`.
fn split_subscripted(p: &str) -> Option<(&str, &str)> {
    let rest = p.strip_suffix("']")?;
    let (path, sub) = rest.split_once("['")?;
    Some((path, sub))
}

/// Upstream `podshelper.ConvertDownwardAPIFieldLabel`.
fn convert_downward_field_label(version: &str, label: &str) -> Result<String, String> {
    if version != "v1" {
        return Err(format!("unsupported pod version: {version}"));
    }
    if let Some((p, _)) = split_subscripted(label) {
        return match p {
            "metadata.annotations" | "metadata.labels" => Ok(label.to_string()),
            _ => Err(format!("field label does not support subscript: {label}")),
        };
    }
    match label {
        "metadata.annotations"
        | "metadata.labels"
        | "metadata.name"
        | "metadata.namespace"
        | "metadata.uid"
        | "spec.nodeName"
        | "spec.restartPolicy"
        | "spec.serviceAccountName"
        | "spec.schedulerName"
        | "status.phase"
        | "status.hostIP"
        | "status.hostIPs"
        | "status.podIP"
        | "status.podIPs" => Ok(label.to_string()),
        "host" => Ok("spec.host".to_string()),
        _ => Err(format!("field label not supported: {label}")),
    }
}

/// Upstream `validateContainerResourceFieldSelector`.
fn resource_field_selector(fs: &Value, path: &Path, volume: bool, errs: &mut ErrorList) {
    let resource = str_at(fs, "resource");
    if volume && str_at(fs, "containerName").is_empty() {
        errs.push(FieldError::required(&path.child("containerName"), ""));
    } else if resource.is_empty() {
        errs.push(FieldError::required(&path.child("resource"), ""));
    } else if !RESOURCE_FIELD_PATHS.contains(&resource)
        && !resource.starts_with("requests.hugepages-")
        && !resource.starts_with("limits.hugepages-")
    {
        errs.push(FieldError::not_supported(
            &path.child("resource"),
            resource,
            RESOURCE_FIELD_PATHS,
        ));
    }
}

/// Upstream `validateContainers`.
fn validate_containers(
    spec: &Value,
    vols: &Volumes,
    grace: Option<i64>,
    path: &Path,
    restart_policy: &str,
    errs: &mut ErrorList,
) {
    let containers = list_at(spec, "containers");
    if containers.is_empty() {
        errs.push(FieldError::required(path, ""));
        return;
    }
    let mut names = BTreeSet::new();
    for (i, c) in containers.iter().enumerate() {
        let p = path.index(i);
        validate_container_common(c, vols, &p, restart_policy, errs);
        let name = str_at(c, "name");
        if !names.insert(name) {
            errs.push(FieldError::duplicate(&p.child("name"), name));
        }
        if let Some(l) = c.get("lifecycle").filter(|l| l.is_object()) {
            validate_lifecycle(l, grace, &p.child("lifecycle"), errs);
        }
        validate_probes(c, grace, &p, errs);
        if has(c, "restartPolicy") {
            errs.push(FieldError::forbidden(
                &p.child("restartPolicy"),
                "may not be set for non-init containers",
            ));
        }
    }
    check_host_port_conflicts(containers, path, errs);
}

fn validate_probes(c: &Value, grace: Option<i64>, p: &Path, errs: &mut ErrorList) {
    for (key, kind) in [
        ("livenessProbe", 0),
        ("readinessProbe", 1),
        ("startupProbe", 2),
    ] {
        let Some(probe) = c.get(key).filter(|x| x.is_object()) else {
            continue;
        };
        let pp = p.child(key);
        validate_probe(probe, grace, &pp, errs);
        match kind {
            1 => {
                if has(probe, "terminationGracePeriodSeconds") {
                    errs.push(FieldError::invalid(
                        &pp.child("terminationGracePeriodSeconds"),
                        bad_value(probe.get("terminationGracePeriodSeconds")),
                        "must not be set for readinessProbes",
                    ));
                }
            }
            _ => {
                let st = int_at(probe, "successThreshold").unwrap_or(0);
                if st != 1 {
                    errs.push(FieldError::invalid(
                        &pp.child("successThreshold"),
                        st,
                        "must be 1",
                    ));
                }
            }
        }
    }
}

/// Upstream `validateInitContainers`.
fn validate_init_containers(
    spec: &Value,
    vols: &Volumes,
    grace: Option<i64>,
    path: &Path,
    restart_policy: &str,
    errs: &mut ErrorList,
) {
    let mut names: BTreeSet<&str> = list_at(spec, "containers")
        .iter()
        .map(|c| str_at(c, "name"))
        .collect();
    for (i, c) in list_at(spec, "initContainers").iter().enumerate() {
        let p = path.index(i);
        validate_container_common(c, vols, &p, restart_policy, errs);
        let mut restart_always = false;
        if let Some(rp) = c.get("restartPolicy").and_then(Value::as_str) {
            if rp == "Always" {
                restart_always = true;
            } else {
                errs.push(FieldError::not_supported(
                    &p.child("restartPolicy"),
                    rp,
                    &["Always"],
                ));
            }
        }
        let name = str_at(c, "name");
        if names.contains(name) {
            errs.push(FieldError::duplicate(&p.child("name"), name));
        } else if !name.is_empty() {
            names.insert(name);
        }
        check_host_port_conflicts(std::slice::from_ref(c), path, errs);
        if restart_always {
            if let Some(l) = c.get("lifecycle").filter(|l| l.is_object()) {
                validate_lifecycle(l, grace, &p.child("lifecycle"), errs);
            }
            validate_probes(c, grace, &p, errs);
        } else {
            for key in [
                "lifecycle",
                "livenessProbe",
                "readinessProbe",
                "startupProbe",
            ] {
                if has(c, key) {
                    errs.push(FieldError::forbidden(
                        &p.child(key),
                        "may not be set for init containers without restartPolicy=Always",
                    ));
                }
            }
        }
    }
}

/// Upstream `validateEphemeralContainers` (the common container checks, names, targets).
fn validate_ephemeral_containers(
    spec: &Value,
    vols: &Volumes,
    path: &Path,
    restart_policy: &str,
    errs: &mut ErrorList,
) {
    let ecs = list_at(spec, "ephemeralContainers");
    if ecs.is_empty() {
        return;
    }
    let others: BTreeSet<&str> = list_at(spec, "containers")
        .iter()
        .chain(list_at(spec, "initContainers"))
        .map(|c| str_at(c, "name"))
        .collect();
    let mut all = others.clone();
    for (i, ec) in ecs.iter().enumerate() {
        let p = path.index(i);
        validate_container_common(ec, vols, &p, restart_policy, errs);
        image_whitespace(ec, &p, errs);
        let name = str_at(ec, "name");
        if !all.insert(name) {
            errs.push(FieldError::duplicate(&p.child("name"), name));
        }
        let target = str_at(ec, "targetContainerName");
        if !target.is_empty() && !others.contains(target) {
            errs.push(FieldError::not_found(
                &p.child("targetContainerName"),
                target,
            ));
        }
        for key in [
            "ports",
            "resources",
            "livenessProbe",
            "readinessProbe",
            "startupProbe",
            "lifecycle",
            "resizePolicy",
            "restartPolicy",
        ] {
            let set = match ec.get(key) {
                None | Some(Value::Null) => false,
                Some(Value::Object(m)) => !m.is_empty(),
                Some(Value::Array(a)) => !a.is_empty(),
                Some(_) => true,
            };
            if set {
                errs.push(FieldError::forbidden(
                    &p.child(key),
                    "cannot be set for an Ephemeral Container",
                ));
            }
        }
        for (j, vm) in list_at(ec, "volumeMounts").iter().enumerate() {
            for key in ["subPath", "subPathExpr"] {
                if !str_at(vm, key).is_empty() {
                    errs.push(FieldError::forbidden(
                        &p.child("volumeMounts").index(j).child(key),
                        "cannot be set for an Ephemeral Container",
                    ));
                }
            }
        }
    }
}

/// Upstream `validateContainerOnlyForPod`: images may not have surrounding whitespace.
pub(crate) fn image_whitespace(c: &Value, path: &Path, errs: &mut ErrorList) {
    let image = str_at(c, "image");
    if image.trim() != image {
        errs.push(FieldError::invalid(
            &path.child("image"),
            image,
            "must not have leading or trailing whitespace",
        ));
    }
}

/// Upstream `validateContainerCommon`.
fn validate_container_common(
    c: &Value,
    vols: &Volumes,
    path: &Path,
    restart_policy: &str,
    errs: &mut ErrorList,
) {
    let name = str_at(c, "name");
    let name_path = path.child("name");
    if name.is_empty() {
        errs.push(FieldError::required(&name_path, ""));
    } else {
        for m in is_dns1123_label(name) {
            errs.push(FieldError::invalid(&name_path, name, m));
        }
    }
    if str_at(c, "image").is_empty() {
        errs.push(FieldError::required(&path.child("image"), ""));
    }
    match str_at(c, "terminationMessagePolicy") {
        "File" | "FallbackToLogsOnError" => {}
        "" => errs.push(FieldError::required(
            &path.child("terminationMessagePolicy"),
            "",
        )),
        other => errs.push(FieldError::not_supported(
            &path.child("terminationMessagePolicy"),
            other,
            &["File", "FallbackToLogsOnError"],
        )),
    }
    validate_container_ports(list_at(c, "ports"), &path.child("ports"), errs);
    validate_env(list_at(c, "env"), &path.child("env"), errs);
    validate_env_from(list_at(c, "envFrom"), &path.child("envFrom"), errs);
    let devices: BTreeMap<&str, &str> = list_at(c, "volumeDevices")
        .iter()
        .map(|d| (str_at(d, "name"), str_at(d, "devicePath")))
        .collect();
    let mounts: BTreeMap<&str, &str> = list_at(c, "volumeMounts")
        .iter()
        .map(|d| (str_at(d, "name"), str_at(d, "mountPath")))
        .collect();
    validate_volume_mounts(c, &devices, vols, &path.child("volumeMounts"), errs);
    validate_volume_devices(c, &mounts, vols, &path.child("volumeDevices"), errs);
    validate_pull_policy(
        str_at(c, "imagePullPolicy"),
        &path.child("imagePullPolicy"),
        errs,
    );
    if let Some(r) = c.get("resources").filter(|r| r.is_object()) {
        validate_resource_requirements(r, &path.child("resources"), errs);
    }
    validate_resize_policy(
        list_at(c, "resizePolicy"),
        &path.child("resizePolicy"),
        restart_policy,
        errs,
    );
    if let Some(sc) = c.get("securityContext").filter(|s| s.is_object()) {
        validate_security_context(sc, &path.child("securityContext"), errs);
    }
}

fn validate_pull_policy(policy: &str, path: &Path, errs: &mut ErrorList) {
    match policy {
        "Always" | "IfNotPresent" | "Never" => {}
        "" => errs.push(FieldError::required(path, "")),
        other => errs.push(FieldError::not_supported(
            path,
            other,
            &["Always", "IfNotPresent", "Never"],
        )),
    }
}

fn validate_resize_policy(list: &[Value], path: &Path, restart_policy: &str, errs: &mut ErrorList) {
    let mut seen = BTreeSet::new();
    for (i, p) in list.iter().enumerate() {
        let rn = str_at(p, "resourceName");
        if !seen.insert(rn) {
            errs.push(FieldError::duplicate(&path.index(i), rn));
        }
        match rn {
            "cpu" | "memory" => {}
            "" => errs.push(FieldError::required(path, "")),
            other => errs.push(FieldError::not_supported(path, other, &["cpu", "memory"])),
        }
        let rp = str_at(p, "restartPolicy");
        match rp {
            "NotRequired" | "RestartContainer" => {}
            "" => errs.push(FieldError::required(path, "")),
            other => errs.push(FieldError::not_supported(
                path,
                other,
                &["NotRequired", "RestartContainer"],
            )),
        }
        if restart_policy == "Never" && rp != "NotRequired" {
            errs.push(FieldError::invalid(
                path,
                rp,
                "must be 'NotRequired' when `restartPolicy` is 'Never'",
            ));
        }
    }
}

/// Upstream `validateContainerPorts`.
fn validate_container_ports(ports: &[Value], path: &Path, errs: &mut ErrorList) {
    let mut names = BTreeSet::new();
    for (i, port) in ports.iter().enumerate() {
        let p = path.index(i);
        let name = str_at(port, "name");
        if !name.is_empty() {
            let msgs = port_name_errors(name);
            if !msgs.is_empty() {
                for m in msgs {
                    errs.push(FieldError::invalid(&p.child("name"), name, m));
                }
            } else if !names.insert(name) {
                errs.push(FieldError::duplicate(&p.child("name"), name));
            }
        }
        let cp = int_at(port, "containerPort").unwrap_or(0);
        if cp == 0 {
            errs.push(FieldError::required(&p.child("containerPort"), ""));
        } else {
            for m in port_num_errors(cp) {
                errs.push(FieldError::invalid(&p.child("containerPort"), cp, m));
            }
        }
        let hp = int_at(port, "hostPort").unwrap_or(0);
        if hp != 0 {
            for m in port_num_errors(hp) {
                errs.push(FieldError::invalid(&p.child("hostPort"), hp, m));
            }
        }
        validate_protocol(str_at(port, "protocol"), &p.child("protocol"), errs);
    }
}

/// Port protocols: `TCP`, `UDP`, `SCTP`.
pub(crate) fn validate_protocol(protocol: &str, path: &Path, errs: &mut ErrorList) {
    match protocol {
        "TCP" | "UDP" | "SCTP" => {}
        "" => errs.push(FieldError::required(path, "")),
        other => errs.push(FieldError::not_supported(
            path,
            other,
            &["SCTP", "TCP", "UDP"],
        )),
    }
}

/// Upstream `AccumulateUniqueHostPorts` over one list of containers.
fn check_host_port_conflicts(containers: &[Value], path: &Path, errs: &mut ErrorList) {
    let mut seen = BTreeSet::new();
    for (ci, c) in containers.iter().enumerate() {
        for (pi, port) in list_at(c, "ports").iter().enumerate() {
            let hp = int_at(port, "hostPort").unwrap_or(0);
            if hp == 0 {
                continue;
            }
            let key = format!(
                "{}/{}/{hp}",
                str_at(port, "protocol"),
                str_at(port, "hostIP")
            );
            if !seen.insert(key.clone()) {
                errs.push(FieldError::duplicate(
                    &path.index(ci).child("ports").index(pi).child("hostPort"),
                    key,
                ));
            }
        }
    }
}

/// Upstream `IsRelaxedEnvVarName` (relaxed environment variable names are GA).
fn env_var_name_errors(name: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if name.is_empty() {
        errs.push(format!(
            "environment variable name {}",
            rudder_api::validation::empty_error()
        ));
    }
    if name
        .chars()
        .any(|c| !c.is_ascii() || c.is_ascii_control() || c == '=')
    {
        errs.push(
            "a valid environment variable name must consist only of printable ASCII characters other than '='"
                .into(),
        );
    }
    errs
}

/// Upstream `ValidateEnv`.
fn validate_env(vars: &[Value], path: &Path, errs: &mut ErrorList) {
    for (i, ev) in vars.iter().enumerate() {
        let p = path.index(i);
        let name = str_at(ev, "name");
        if name.is_empty() {
            errs.push(FieldError::required(&p.child("name"), ""));
        } else {
            for m in env_var_name_errors(name) {
                errs.push(FieldError::invalid(&p.child("name"), name, m));
            }
        }
        let Some(vf) = ev.get("valueFrom").filter(|v| v.is_object()) else {
            continue;
        };
        let vp = p.child("valueFrom");
        let mut n = 0;
        if let Some(fr) = vf.get("fieldRef").filter(|v| v.is_object()) {
            n += 1;
            object_field_selector(fr, ENV_FIELD_PATHS, &vp.child("fieldRef"), errs);
        }
        if let Some(rf) = vf.get("resourceFieldRef").filter(|v| v.is_object()) {
            n += 1;
            resource_field_selector(rf, &vp.child("resourceFieldRef"), false, errs);
        }
        for key in ["configMapKeyRef", "secretKeyRef"] {
            if let Some(sel) = vf.get(key).filter(|v| v.is_object()) {
                n += 1;
                let sp = vp.child(key);
                let sname = str_at(sel, "name");
                name_errors(
                    sname,
                    name_is_dns_subdomain(sname, false),
                    &sp.child("name"),
                    errs,
                );
                let k = str_at(sel, "key");
                if k.is_empty() {
                    errs.push(FieldError::required(&sp.child("key"), ""));
                } else {
                    for m in config_map_key_errors(k) {
                        errs.push(FieldError::invalid(&sp.child("key"), k, m));
                    }
                }
            }
        }
        if has(vf, "fileKeyRef") {
            n += 1;
        }
        if n == 0 {
            errs.push(FieldError::invalid(
                &vp,
                "",
                "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`",
            ));
        } else if !str_at(ev, "value").is_empty() {
            errs.push(FieldError::invalid(
                &vp,
                "",
                "may not be specified when `value` is not empty",
            ));
        } else if n > 1 {
            errs.push(FieldError::invalid(
                &vp,
                "",
                "may not have more than one field specified at a time",
            ));
        }
    }
}

/// Upstream `ValidateEnvFrom`.
fn validate_env_from(vars: &[Value], path: &Path, errs: &mut ErrorList) {
    for (i, ev) in vars.iter().enumerate() {
        let p = path.index(i);
        let prefix = str_at(ev, "prefix");
        if !prefix.is_empty() {
            for m in env_var_name_errors(prefix) {
                errs.push(FieldError::invalid(&p.child("prefix"), prefix, m));
            }
        }
        let mut n = 0;
        for key in ["configMapRef", "secretRef"] {
            if let Some(r) = ev.get(key).filter(|v| v.is_object()) {
                n += 1;
                let name = str_at(r, "name");
                let np = p.child(key).child("name");
                if name.is_empty() {
                    errs.push(FieldError::required(&np, ""));
                } else {
                    name_errors(name, name_is_dns_subdomain(name, true), &np, errs);
                }
            }
        }
        if n == 0 {
            errs.push(FieldError::invalid(
                path,
                "",
                "must specify one of: `configMapRef` or `secretRef`",
            ));
        } else if n > 1 {
            errs.push(FieldError::invalid(
                path,
                "",
                "may not have more than one field specified at a time",
            ));
        }
    }
}

/// Upstream `ValidateVolumeMounts`.
fn validate_volume_mounts(
    c: &Value,
    devices: &BTreeMap<&str, &str>,
    vols: &Volumes,
    path: &Path,
    errs: &mut ErrorList,
) {
    let mut mountpoints = BTreeSet::new();
    let privileged = c
        .get("securityContext")
        .map(|sc| bool_at(sc, "privileged"))
        .unwrap_or(false);
    for (i, m) in list_at(c, "volumeMounts").iter().enumerate() {
        let p = path.index(i);
        let name = str_at(m, "name");
        let mount_path = str_at(m, "mountPath");
        if name.is_empty() {
            errs.push(FieldError::required(&p.child("name"), ""));
        }
        if !vols.names.contains_key(name) {
            errs.push(FieldError::not_found(&p.child("name"), name));
        }
        if mount_path.is_empty() {
            errs.push(FieldError::required(&p.child("mountPath"), ""));
        }
        if !mountpoints.insert(mount_path) {
            errs.push(FieldError::invalid(
                &p.child("mountPath"),
                mount_path,
                "must be unique",
            ));
        }
        if devices.contains_key(name) {
            errs.push(FieldError::invalid(
                &p.child("name"),
                name,
                "must not already exist in volumeDevices",
            ));
        }
        if devices.values().any(|d| *d == mount_path) {
            errs.push(FieldError::invalid(
                &p.child("mountPath"),
                mount_path,
                "must not already exist as a path in volumeDevices",
            ));
        }
        let sub = str_at(m, "subPath");
        let sub_expr = str_at(m, "subPathExpr");
        if vols.images.contains(name) {
            if !sub.is_empty() {
                errs.push(FieldError::invalid(
                    &p.child("subPath"),
                    sub,
                    "not allowed in image volume sources",
                ));
            }
            if !sub_expr.is_empty() {
                errs.push(FieldError::invalid(
                    &p.child("subPathExpr"),
                    sub_expr,
                    "not allowed in image volume sources",
                ));
            }
        }
        if !sub.is_empty() {
            local_descending_path(sub, &path.child("subPath"), errs);
        }
        if !sub_expr.is_empty() {
            if !sub.is_empty() {
                errs.push(FieldError::invalid(
                    &p.child("subPathExpr"),
                    sub_expr,
                    "subPathExpr and subPath are mutually exclusive",
                ));
            }
            local_descending_path(sub_expr, &path.child("subPathExpr"), errs);
        }
        if let Some(mp) = m.get("mountPropagation").and_then(Value::as_str) {
            let pp = path.child("mountPropagation");
            const MODES: &[&str] = &["Bidirectional", "HostToContainer", "None"];
            if !MODES.contains(&mp) {
                errs.push(FieldError::not_supported(&pp, mp, MODES));
            }
            if mp == "Bidirectional" && !privileged {
                errs.push(FieldError::forbidden(
                    &pp,
                    "Bidirectional mount propagation is available only to privileged containers",
                ));
            }
        }
        if let Some(rro) = m.get("recursiveReadOnly").and_then(Value::as_str) {
            let rp = path.child("recursiveReadOnly");
            match rro {
                "Disabled" => {}
                "Enabled" | "IfPossible" => {
                    if !bool_at(m, "readOnly") {
                        errs.push(FieldError::forbidden(
                            &rp,
                            "may only be specified when readOnly is true",
                        ));
                    }
                    if m.get("mountPropagation")
                        .and_then(Value::as_str)
                        .is_some_and(|p| p != "None")
                    {
                        errs.push(FieldError::forbidden(
                            &rp,
                            "may only be specified when mountPropagation is None or not specified",
                        ));
                    }
                }
                other => errs.push(FieldError::not_supported(
                    &rp,
                    other,
                    &["Disabled", "Enabled", "IfPossible"],
                )),
            }
        }
    }
}

/// Upstream `ValidateVolumeDevices`.
fn validate_volume_devices(
    c: &Value,
    mounts: &BTreeMap<&str, &str>,
    vols: &Volumes,
    path: &Path,
    errs: &mut ErrorList,
) {
    let mut paths = BTreeSet::new();
    let mut names = BTreeSet::new();
    for (i, d) in list_at(c, "volumeDevices").iter().enumerate() {
        let p = path.index(i);
        let name = str_at(d, "name");
        let dev_path = str_at(d, "devicePath");
        let matched = vols.names.get(name);
        if name.is_empty() {
            errs.push(FieldError::required(&p.child("name"), ""));
        }
        if names.contains(name) {
            errs.push(FieldError::invalid(
                &p.child("name"),
                name,
                "must be unique",
            ));
        }
        match matched {
            Some(false) => errs.push(FieldError::invalid(
                &p.child("name"),
                name,
                "can only use volume source type of PersistentVolumeClaim or Ephemeral for block mode",
            )),
            None => errs.push(FieldError::not_found(&p.child("name"), name)),
            Some(true) => {}
        }
        if dev_path.is_empty() {
            errs.push(FieldError::required(&p.child("devicePath"), ""));
        }
        if paths.contains(dev_path) {
            errs.push(FieldError::invalid(
                &p.child("devicePath"),
                dev_path,
                "must be unique",
            ));
        }
        if !dev_path.is_empty() && dev_path.split('/').any(|x| x == "..") {
            errs.push(FieldError::invalid(
                &p.child("devicePath"),
                dev_path,
                "can not contain backsteps ('..')",
            ));
        } else {
            paths.insert(dev_path);
        }
        if mounts.contains_key(name) {
            errs.push(FieldError::invalid(
                &p.child("name"),
                name,
                "must not already exist in volumeMounts",
            ));
        }
        if mounts.values().any(|m| *m == dev_path) {
            errs.push(FieldError::invalid(
                &p.child("devicePath"),
                dev_path,
                "must not already exist as a path in volumeMounts",
            ));
        }
        if !name.is_empty() {
            names.insert(name);
        }
    }
}

/// Resource names upstream calls standard (`helper.IsStandardResourceName`), besides
/// `hugepages-*`.
const STANDARD_RESOURCES: &[&str] = &[
    "cpu",
    "memory",
    "ephemeral-storage",
    "requests.cpu",
    "requests.memory",
    "requests.ephemeral-storage",
    "limits.cpu",
    "limits.memory",
    "limits.ephemeral-storage",
    "pods",
    "services",
    "replicationcontrollers",
    "resourcequotas",
    "secrets",
    "configmaps",
    "persistentvolumeclaims",
    "storage",
    "requests.storage",
    "services.nodeports",
    "services.loadbalancers",
];

fn is_native_resource(name: &str) -> bool {
    !name.contains('/') || name.contains("kubernetes.io/")
}

fn is_hugepages(name: &str) -> bool {
    name.starts_with("hugepages-")
}

/// Upstream `helper.IsOvercommitAllowed`.
fn overcommit_allowed(name: &str) -> bool {
    is_native_resource(name) && !is_hugepages(name)
}

fn is_extended_resource(name: &str) -> bool {
    if is_native_resource(name) || name.starts_with("requests.") {
        return false;
    }
    is_qualified_name(&format!("requests.{name}")).is_empty()
}

/// Upstream `validateContainerResourceName`.
fn validate_container_resource_name(name: &str, path: &Path, errs: &mut ErrorList) {
    let msgs = is_qualified_name(name);
    if !msgs.is_empty() {
        for m in msgs {
            errs.push(FieldError::invalid(path, name, m));
        }
        return;
    }
    if !name.contains('/') {
        if !STANDARD_RESOURCES.contains(&name) && !is_hugepages(name) {
            errs.push(FieldError::invalid(
                path,
                name,
                "must be a standard resource type or fully qualified",
            ));
        }
        if !matches!(name, "cpu" | "memory" | "ephemeral-storage") && !is_hugepages(name) {
            errs.push(FieldError::invalid(
                path,
                name,
                "must be a standard resource for containers",
            ));
        }
    } else if !is_native_resource(name) && !is_extended_resource(name) {
        errs.push(FieldError::invalid(
            path,
            name,
            "doesn't follow extended resource name standard",
        ));
    }
}

/// Upstream `ValidateResourceQuantityValue`.
fn validate_quantity_value(name: &str, value: &str, path: &Path, errs: &mut ErrorList) {
    let Ok(q) = quantity::parse(value) else {
        return;
    };
    if q.is_negative() {
        errs.push(FieldError::invalid(path, value, IS_NEGATIVE_ERROR_MSG));
    }
    if is_extended_resource(name) && !q.is_integer() {
        errs.push(FieldError::invalid(path, value, "must be an integer"));
    }
}

/// Upstream `validateResourceRequirements` for containers.
pub(crate) fn validate_resource_requirements(r: &Value, path: &Path, errs: &mut ErrorList) {
    let lim_path = path.child("limits");
    let req_path = path.child("requests");
    let limits = obj_at(r, "limits").cloned().unwrap_or_default();
    let requests = obj_at(r, "requests").cloned().unwrap_or_default();
    let (mut lim_cpu_mem, mut req_cpu_mem, mut lim_huge, mut req_huge) =
        (false, false, false, false);
    for (name, v) in &limits {
        let p = lim_path.key(name.as_str());
        validate_container_resource_name(name, &p, errs);
        validate_quantity_value(name, v.as_str().unwrap_or_default(), &p, errs);
        if is_hugepages(name) {
            lim_huge = true;
        }
        if name == "cpu" || name == "memory" {
            lim_cpu_mem = true;
        }
    }
    for (name, v) in &requests {
        let p = req_path.key(name.as_str());
        let value = v.as_str().unwrap_or_default();
        validate_container_resource_name(name, &p, errs);
        validate_quantity_value(name, value, &p, errs);
        match limits.get(name).and_then(Value::as_str) {
            Some(limit) => {
                if let (Ok(q), Ok(l)) = (quantity::parse(value), quantity::parse(limit)) {
                    if q != l && !overcommit_allowed(name) {
                        errs.push(FieldError::invalid(
                            &req_path,
                            value,
                            format!("must be equal to {name} limit of {limit}"),
                        ));
                    } else if q > l {
                        errs.push(FieldError::invalid(
                            &req_path,
                            value,
                            format!("must be less than or equal to {name} limit of {limit}"),
                        ));
                    }
                }
            }
            None if !overcommit_allowed(name) => errs.push(FieldError::required(
                &lim_path,
                "Limit must be set for non overcommitable resources",
            )),
            None => {}
        }
        if is_hugepages(name) {
            req_huge = true;
        }
        if name == "cpu" || name == "memory" {
            req_cpu_mem = true;
        }
    }
    if !lim_cpu_mem && !req_cpu_mem && (req_huge || lim_huge) {
        errs.push(FieldError::forbidden(
            path,
            "HugePages require cpu or memory",
        ));
    }
    for (i, claim) in list_at(r, "claims").iter().enumerate() {
        if str_at(claim, "name").is_empty() {
            errs.push(FieldError::required(&path.child("claims").index(i), ""));
        }
    }
}

/// Upstream `validateLifecycle`.
fn validate_lifecycle(l: &Value, grace: Option<i64>, path: &Path, errs: &mut ErrorList) {
    for key in ["postStart", "preStop"] {
        if let Some(h) = l.get(key).filter(|h| h.is_object()) {
            validate_handler(h, true, grace, &path.child(key), errs);
        }
    }
}

/// Upstream `validateProbe`.
fn validate_probe(p: &Value, grace: Option<i64>, path: &Path, errs: &mut ErrorList) {
    validate_handler(p, false, grace, path, errs);
    for key in [
        "initialDelaySeconds",
        "timeoutSeconds",
        "periodSeconds",
        "successThreshold",
        "failureThreshold",
    ] {
        nonnegative(int_at(p, key).unwrap_or(0), &path.child(key), errs);
    }
    if let Some(t) = int_at(p, "terminationGracePeriodSeconds") {
        if t <= 0 {
            errs.push(FieldError::invalid(
                &path.child("terminationGracePeriodSeconds"),
                t,
                "must be greater than 0",
            ));
        }
    }
}

/// Upstream `validateHandler`: exactly one of exec, httpGet, tcpSocket, grpc (probes) or sleep
/// (lifecycle hooks).
fn validate_handler(
    h: &Value,
    lifecycle: bool,
    grace: Option<i64>,
    path: &Path,
    errs: &mut ErrorList,
) {
    let mut n = 0;
    let keys: &[&str] = if lifecycle {
        &["exec", "httpGet", "tcpSocket", "sleep"]
    } else {
        &["exec", "httpGet", "tcpSocket", "grpc"]
    };
    for key in keys {
        let Some(a) = h.get(*key).filter(|a| !a.is_null()) else {
            continue;
        };
        let p = path.child(*key);
        if n > 0 {
            errs.push(FieldError::forbidden(
                &p,
                "may not specify more than 1 handler type",
            ));
            continue;
        }
        n += 1;
        match *key {
            "exec" if list_at(a, "command").is_empty() => {
                errs.push(FieldError::required(&p.child("command"), ""));
            }
            "httpGet" => {
                if str_at(a, "path").is_empty() {
                    errs.push(FieldError::required(&p.child("path"), ""));
                }
                validate_port_num_or_name(a.get("port"), &p.child("port"), errs);
                let scheme = str_at(a, "scheme");
                if scheme != "HTTP" && scheme != "HTTPS" {
                    errs.push(FieldError::not_supported(
                        &p.child("scheme"),
                        scheme,
                        &["HTTP", "HTTPS"],
                    ));
                }
                for hdr in list_at(a, "httpHeaders") {
                    let name = str_at(hdr, "name");
                    if name.is_empty()
                        || !name.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-')
                    {
                        errs.push(FieldError::invalid(
                            &p.child("httpHeaders"),
                            name,
                            rudder_api::validation::regex_error(
                                "a valid HTTP header must consist of alphanumeric characters or '-'",
                                "[-A-Za-z0-9]+",
                                &["X-Header-Name"],
                            ),
                        ));
                    }
                }
            }
            "tcpSocket" => validate_port_num_or_name(a.get("port"), &p.child("port"), errs),
            "grpc" => {
                let port = int_at(a, "port").unwrap_or(0);
                for m in port_num_errors(port) {
                    errs.push(FieldError::invalid(&p.child("port"), port, m));
                }
            }
            "sleep" => {
                let secs = int_at(a, "seconds").unwrap_or(0);
                if let Some(g) = grace {
                    if secs < 0 || secs > g {
                        errs.push(FieldError::invalid(
                            &p,
                            secs,
                            format!(
                                "must be non-negative and less than terminationGracePeriodSeconds ({g})"
                            ),
                        ));
                    }
                }
            }
            _ => {}
        }
    }
    if n == 0 {
        errs.push(FieldError::required(path, "must specify a handler type"));
    }
}

/// Upstream `ValidateSecurityContext` (the checks that do not depend on cluster policy).
fn validate_security_context(sc: &Value, path: &Path, errs: &mut ErrorList) {
    for key in ["runAsUser", "runAsGroup"] {
        if let Some(id) = int_at(sc, key) {
            if !(0..=MAX_INT32).contains(&id) {
                errs.push(FieldError::invalid(
                    &path.child(key),
                    id,
                    inclusive_range(0, MAX_INT32),
                ));
            }
        }
    }
    if let Some(pm) = sc.get("procMount").and_then(Value::as_str) {
        if pm != "Default" && pm != "Unmasked" {
            errs.push(FieldError::not_supported(
                &path.child("procMount"),
                pm,
                &["Default", "Unmasked"],
            ));
        }
    }
    if sc.get("allowPrivilegeEscalation").and_then(Value::as_bool) == Some(false) {
        if bool_at(sc, "privileged") {
            errs.push(FieldError::invalid(
                path,
                BadValue::Raw(go_json(sc)),
                "cannot set `allowPrivilegeEscalation` to false and `privileged` to true",
            ));
        }
        let adds = sc
            .get("capabilities")
            .map(|c| list_at(c, "add"))
            .unwrap_or(&[]);
        if adds.iter().any(|a| a.as_str() == Some("CAP_SYS_ADMIN")) {
            errs.push(FieldError::invalid(
                path,
                BadValue::Raw(go_json(sc)),
                "cannot set `allowPrivilegeEscalation` to false and `capabilities.Add` CAP_SYS_ADMIN",
            ));
        }
    }
}

/// Upstream `validatePodSpecSecurityContext` (ids, sysctls, fsGroupChangePolicy).
fn validate_pod_security_context(sc: &Value, path: &Path, errs: &mut ErrorList) {
    for key in ["fsGroup", "runAsUser", "runAsGroup"] {
        if let Some(id) = int_at(sc, key) {
            if !(0..=MAX_INT32).contains(&id) {
                errs.push(FieldError::invalid(
                    &path.child(key),
                    id,
                    inclusive_range(0, MAX_INT32),
                ));
            }
        }
    }
    for (i, g) in list_at(sc, "supplementalGroups").iter().enumerate() {
        let id = g.as_i64().unwrap_or(0);
        if !(0..=MAX_INT32).contains(&id) {
            errs.push(FieldError::invalid(
                &path.child("supplementalGroups").index(i),
                id,
                inclusive_range(0, MAX_INT32),
            ));
        }
    }
    let mut names = BTreeSet::new();
    for (i, s) in list_at(sc, "sysctls").iter().enumerate() {
        let n = str_at(s, "name");
        let p = path.child("sysctls").index(i).child("name");
        if n.is_empty() {
            errs.push(FieldError::required(&p, ""));
        } else if !valid_sysctl_name(n) {
            errs.push(FieldError::invalid(
                &p,
                n,
                "must have at most 253 characters and match regex ^([a-z0-9]([-_a-z0-9]*[a-z0-9])?[\\./])*[a-z0-9]([-_a-z0-9]*[a-z0-9])?$",
            ));
        } else if names.contains(n) {
            errs.push(FieldError::duplicate(&p, n));
        }
        names.insert(n);
    }
    if let Some(p) = sc.get("fsGroupChangePolicy").and_then(Value::as_str) {
        if p != "OnRootMismatch" && p != "Always" {
            errs.push(FieldError::not_supported(
                &path.child("fsGroupChangePolicy"),
                p,
                &["Always", "OnRootMismatch"],
            ));
        }
    }
}

fn valid_sysctl_name(n: &str) -> bool {
    if n.len() > 253 {
        return false;
    }
    n.split(['.', '/']).all(|seg| {
        let b = seg.as_bytes();
        match (b.first(), b.last()) {
            (Some(f), Some(l)) => {
                (f.is_ascii_lowercase() || f.is_ascii_digit())
                    && (l.is_ascii_lowercase() || l.is_ascii_digit())
                    && b.iter().all(|c| {
                        c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-' || *c == b'_'
                    })
            }
            _ => false,
        }
    })
}

/// Upstream `validatePodHostNetworkDeps`.
fn validate_host_network_deps(spec: &Value, path: &Path, is_pod: bool, errs: &mut ErrorList) {
    if !bool_at(spec, "hostNetwork") {
        return;
    }
    for (i, c) in list_at(spec, "containers").iter().enumerate() {
        for (j, port) in list_at(c, "ports").iter().enumerate() {
            let hp = int_at(port, "hostPort").unwrap_or(0);
            let cp = int_at(port, "containerPort").unwrap_or(0);
            if (is_pod || hp != 0) && hp != cp {
                errs.push(FieldError::invalid(
                    &path
                        .child("containers")
                        .index(i)
                        .child("ports")
                        .index(j)
                        .child("hostPort"),
                    hp,
                    "must match `containerPort` when `hostNetwork` is true",
                ));
            }
        }
    }
}

fn validate_restart_policy(policy: &str, path: &Path, errs: &mut ErrorList) {
    match policy {
        "Always" | "OnFailure" | "Never" => {}
        "" => errs.push(FieldError::required(path, "")),
        other => errs.push(FieldError::not_supported(
            path,
            other,
            &["Always", "OnFailure", "Never"],
        )),
    }
}

fn validate_dns_policy(policy: &str, path: &Path, errs: &mut ErrorList) {
    match policy {
        "ClusterFirstWithHostNet" | "ClusterFirst" | "Default" | "None" => {}
        "" => errs.push(FieldError::required(path, "")),
        other => errs.push(FieldError::not_supported(
            path,
            other,
            &["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"],
        )),
    }
}

/// Upstream `validatePodDNSConfig`.
fn validate_dns_config(spec: &Value, path: &Path, errs: &mut ErrorList) {
    let cfg = spec.get("dnsConfig").filter(|c| c.is_object());
    if str_at(spec, "dnsPolicy") == "None" {
        match cfg {
            None => {
                errs.push(FieldError::required(
                    path,
                    "must provide `dnsConfig` when `dnsPolicy` is None",
                ));
                return;
            }
            Some(c) if list_at(c, "nameservers").is_empty() => {
                errs.push(FieldError::required(
                    &path.child("nameservers"),
                    "must provide at least one DNS nameserver when `dnsPolicy` is None",
                ));
                return;
            }
            _ => {}
        }
    }
    let Some(cfg) = cfg else { return };
    let ns = list_at(cfg, "nameservers");
    if ns.len() > 3 {
        errs.push(FieldError::invalid(
            &path.child("nameservers"),
            BadValue::Raw(go_json(&json!(ns))),
            "must not have more than 3 nameservers",
        ));
    }
    for (i, n) in ns.iter().enumerate() {
        validate_ip(
            &path.child("nameservers").index(i),
            n.as_str().unwrap_or_default(),
            errs,
        );
    }
    let searches = list_at(cfg, "searches");
    if searches.len() > 32 {
        errs.push(FieldError::invalid(
            &path.child("searches"),
            BadValue::Raw(go_json(&json!(searches))),
            "must not have more than 32 search paths",
        ));
    }
    for (i, s) in searches.iter().enumerate() {
        let s = s.as_str().unwrap_or_default();
        if s == "." {
            continue;
        }
        let trimmed = s.strip_suffix('.').unwrap_or(s);
        for m in dns1123_subdomain_with_underscore(trimmed) {
            errs.push(FieldError::invalid(
                &path.child("searches").index(i),
                trimmed,
                m,
            ));
        }
    }
    for (i, o) in list_at(cfg, "options").iter().enumerate() {
        if str_at(o, "name").is_empty() {
            errs.push(FieldError::required(
                &path.child("options").index(i),
                "must not be empty",
            ));
        }
    }
}

/// Upstream `IsDNS1123SubdomainWithUnderscore` (relaxed DNS search validation is on).
fn dns1123_subdomain_with_underscore(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > 253 {
        errs.push(rudder_api::validation::max_len_error(253));
    }
    let label_ok = |l: &str| {
        let l = l.strip_prefix('_').unwrap_or(l);
        let b = l.as_bytes();
        let alnum = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
        match (b.first(), b.last()) {
            (Some(f), Some(e)) => {
                alnum(f) && alnum(e) && b.iter().all(|c| alnum(c) || *c == b'-' || *c == b'_')
            }
            _ => false,
        }
    };
    if !value.split('.').all(label_ok) {
        errs.push(rudder_api::validation::regex_error(
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '_', '-' or '.', and must start and end with an alphanumeric character",
            "_?[a-z0-9]([-_a-z0-9]*[a-z0-9])?(\\._?[a-z0-9]([-_a-z0-9]*[a-z0-9])?)*",
            &["example.com"],
        ));
    }
    errs
}

/// Upstream `ValidateTolerations`.
pub(crate) fn validate_tolerations(tolerations: &[Value], path: &Path, errs: &mut ErrorList) {
    for (i, t) in tolerations.iter().enumerate() {
        let p = path.index(i);
        let key = str_at(t, "key");
        let op = str_at(t, "operator");
        let effect = str_at(t, "effect");
        let value = str_at(t, "value");
        if !key.is_empty() {
            errs.extend(validate_label_name(key, &p.child("key")));
        }
        if key.is_empty() && op != "Exists" {
            errs.push(FieldError::invalid(
                &p.child("operator"),
                op,
                "operator must be Exists when `key` is empty, which means \"match all values and all keys\"",
            ));
        }
        if has(t, "tolerationSeconds") && effect != "NoExecute" {
            errs.push(FieldError::invalid(
                &p.child("effect"),
                effect,
                "effect must be 'NoExecute' when `tolerationSeconds` is set",
            ));
        }
        match op {
            "Equal" | "" => {
                let msgs = is_valid_label_value(value);
                if !msgs.is_empty() {
                    errs.push(FieldError::invalid(
                        &p.child("operator"),
                        value,
                        msgs.join(";"),
                    ));
                }
            }
            "Exists" => {
                if !value.is_empty() {
                    errs.push(FieldError::invalid(
                        &p.child("operator"),
                        value,
                        "value must be empty when `operator` is 'Exists'",
                    ));
                }
            }
            other => errs.push(FieldError::not_supported(
                &p.child("operator"),
                other,
                &["Equal", "Exists"],
            )),
        }
        if !effect.is_empty() {
            validate_taint_effect(effect, true, &p.child("effect"), errs);
        }
    }
}

/// Upstream `validateTaintEffect`.
pub(crate) fn validate_taint_effect(
    effect: &str,
    allow_empty: bool,
    path: &Path,
    errs: &mut ErrorList,
) {
    if !allow_empty && effect.is_empty() {
        errs.push(FieldError::required(path, ""));
        return;
    }
    if !matches!(effect, "NoSchedule" | "PreferNoSchedule" | "NoExecute") {
        errs.push(FieldError::not_supported(
            path,
            effect,
            &["NoSchedule", "PreferNoSchedule", "NoExecute"],
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pull_policy_follows_the_tag() {
        assert_eq!(default_pull_policy("nginx"), "Always");
        assert_eq!(default_pull_policy("nginx:latest"), "Always");
        assert_eq!(default_pull_policy("nginx:1.27"), "IfNotPresent");
        assert_eq!(default_pull_policy("localhost:5000/nginx"), "Always");
        assert_eq!(
            default_pull_policy("localhost:5000/nginx:v1"),
            "IfNotPresent"
        );
        assert_eq!(default_pull_policy("nginx@sha256:abcd"), "IfNotPresent");
        assert_eq!(default_pull_policy(""), "IfNotPresent");
        assert_eq!(default_pull_policy("Nginx"), "IfNotPresent");
    }

    #[test]
    fn qos_classes() {
        let spec = |res: Value| json!({"containers": [{"name": "c", "resources": res}]});
        assert_eq!(compute_qos(&spec(json!({}))), "BestEffort");
        assert_eq!(
            compute_qos(&spec(
                json!({"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "1", "memory": "1Gi"}})
            )),
            "Guaranteed"
        );
        assert_eq!(
            compute_qos(&spec(json!({"requests": {"cpu": "100m"}}))),
            "Burstable"
        );
    }

    #[test]
    fn default_tolerations_are_added_once() {
        let mut spec = json!({});
        add_default_tolerations(&mut spec);
        add_default_tolerations(&mut spec);
        assert_eq!(
            spec["tolerations"],
            json!([
                {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
                {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
            ])
        );
        let mut all = json!({"tolerations": [{"operator": "Exists"}]});
        add_default_tolerations(&mut all);
        assert_eq!(all["tolerations"].as_array().map(Vec::len), Some(1));
    }
}
