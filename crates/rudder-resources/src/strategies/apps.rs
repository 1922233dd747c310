//! Workloads with pod templates: Deployments, ReplicaSets, StatefulSets, DaemonSets
//! (`apps/v1`; upstream `pkg/apis/apps/v1/defaults.go`, `pkg/apis/apps/validation`,
//! `pkg/registry/apps/*/strategy.go`), and the core ReplicationControllers and PodTemplates.

use rudder_api::field::{BadValue, ErrorList, FieldError, Path};
use rudder_api::k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use rudder_api::k8s_openapi::api::core::v1::{PodTemplate, ReplicationController};
use rudder_api::validation::{name_is_dns_label, validate_label_selector, NameValidator};
use rudder_registry::{OpCx, Strategy};
use serde_json::{json, Value};

use super::decode::round_trip;
use super::podspec::{default_pod_template, validate_pod_template_spec};
use super::util::*;

pub struct DeploymentStrategy;
pub struct ReplicaSetStrategy;
pub struct StatefulSetStrategy;
pub struct DaemonSetStrategy;
pub struct ReplicationControllerStrategy;
pub struct PodTemplateStrategy;

/// The annotation apps/v1 DaemonSets carry their template generation in.
const DS_TEMPLATE_GENERATION: &str = "deprecated.daemonset.template.generation";

fn spec_of(obj: &Value) -> &Value {
    obj.get("spec").unwrap_or(&Value::Null)
}

fn template_labels(spec: &Value) -> Option<&Value> {
    at(spec, &["template", "metadata", "labels"])
}

/// The selector checks of Deployments, ReplicaSets and StatefulSets: required, valid,
/// non-empty. Returns the converted selector when it converts.
fn check_selector(
    spec: &Value,
    sp: &Path,
    kind_word: &str,
    errs: &mut ErrorList,
) -> Option<rudder_api::selector::labels::Selector> {
    let raw = spec.get("selector").filter(|s| !s.is_null());
    let typed = label_selector(raw);
    match (&typed, raw) {
        (None, None) => errs.push(FieldError::required(&sp.child("selector"), "")),
        (None, Some(_)) => {}
        (Some(sel), Some(_)) => {
            errs.extend(validate_label_selector(Some(sel), &sp.child("selector")));
            let n = sel.match_labels.as_ref().map_or(0, |m| m.len())
                + sel.match_expressions.as_ref().map_or(0, Vec::len);
            if n == 0 {
                errs.push(FieldError::invalid(
                    &sp.child("selector"),
                    selector_json(raw),
                    format!("empty selector is invalid for {kind_word}"),
                ));
            }
        }
        (Some(_), None) => {}
    }
    as_selector(typed.as_ref()).ok()
}

/// `` `selector` does not match template `labels` ``.
fn check_template_labels(
    selector: &rudder_api::selector::labels::Selector,
    spec: &Value,
    sp: &Path,
    errs: &mut ErrorList,
) {
    let labels = template_labels(spec);
    if !selector.is_empty() && !selector.matches(&string_map(labels)) {
        errs.push(FieldError::invalid(
            &sp.child("template").child("metadata").child("labels"),
            bad_value(labels),
            "`selector` does not match template `labels`",
        ));
    }
}

/// The template rules of controllers whose pods always restart.
fn check_restart_always(spec: &Value, sp: &Path, controller: &str, errs: &mut ErrorList) {
    let tsp = sp.child("template").child("spec");
    let tspec = at(spec, &["template", "spec"]).unwrap_or(&Value::Null);
    let rp = str_at(tspec, "restartPolicy");
    if rp != "Always" {
        errs.push(FieldError::not_supported(
            &tsp.child("restartPolicy"),
            rp,
            &["Always"],
        ));
    }
    if has(tspec, "activeDeadlineSeconds") {
        errs.push(FieldError::forbidden(
            &tsp.child("activeDeadlineSeconds"),
            format!("activeDeadlineSeconds in {controller} is not Supported"),
        ));
    }
}

/// Upstream `ValidatePodTemplateSpecForReplicaSet`.
fn check_replica_set_template(
    selector: Option<&rudder_api::selector::labels::Selector>,
    spec: &Value,
    sp: &Path,
    errs: &mut ErrorList,
) {
    match selector {
        None => errs.push(FieldError::invalid(
            &sp.child("selector"),
            selector_json(spec.get("selector")),
            "invalid label selector",
        )),
        Some(sel) => {
            check_template_labels(sel, spec, sp, errs);
            let empty = json!({});
            validate_pod_template_spec(
                spec.get("template").unwrap_or(&empty),
                &sp.child("template"),
                errs,
            );
            check_restart_always(spec, sp, "ReplicaSet", errs);
        }
    }
}

/// An int-or-percent as upstream prints it (its `String()`).
fn int_or_string(v: Option<&Value>) -> BadValue {
    match v {
        Some(Value::String(s)) => BadValue::Raw(s.clone()),
        Some(Value::Number(n)) => BadValue::Raw(n.to_string()),
        _ => BadValue::Raw("0".into()),
    }
}

/// Upstream `getIntOrPercentValue`.
fn int_or_percent_value(v: Option<&Value>) -> i64 {
    match v {
        Some(Value::Number(n)) => n.as_i64().unwrap_or(0),
        Some(Value::String(s)) => s
            .strip_suffix('%')
            .and_then(|n| n.parse().ok())
            .or_else(|| s.parse().ok())
            .unwrap_or(0),
        _ => 0,
    }
}

/// Upstream `ValidatePositiveIntOrPercent`.
fn positive_int_or_percent(v: Option<&Value>, path: &Path, errs: &mut ErrorList) {
    match v {
        Some(Value::String(s)) => {
            let ok = s
                .strip_suffix('%')
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|c| c.is_ascii_digit()));
            if !ok {
                errs.push(FieldError::invalid(
                    path,
                    int_or_string(v),
                    rudder_api::validation::regex_error(
                        "a valid percent string must be a numeric string followed by an ending '%'",
                        "[0-9]+%",
                        &["1%", "93%"],
                    ),
                ));
            }
        }
        Some(Value::Number(n)) => nonnegative(n.as_i64().unwrap_or(0), path, errs),
        _ => {}
    }
}

/// Upstream `IsNotMoreThan100Percent`.
fn not_more_than_100(v: Option<&Value>, path: &Path, errs: &mut ErrorList) {
    if let Some(Value::String(s)) = v {
        if let Some(p) = s.strip_suffix('%').and_then(|n| n.parse::<i64>().ok()) {
            if p > 100 {
                errs.push(FieldError::invalid(
                    path,
                    int_or_string(v),
                    "must not be greater than 100%",
                ));
            }
        }
    }
}

fn default_template(obj: &mut Value) {
    default_pod_template(child_obj(child_obj(obj, "spec"), "template"));
}

fn selector_update(new: &Value, old: &Value, errs: &mut ErrorList) {
    let (n, o) = (spec_of(new).get("selector"), spec_of(old).get("selector"));
    if !semantic_eq(n, o) {
        errs.push(FieldError::invalid(
            &Path::new("spec").child("selector"),
            selector_json(n),
            rudder_api::validation::object_meta::FIELD_IMMUTABLE_ERROR_MSG,
        ));
    }
}

fn replicas_selectable(obj: &Value, out: &mut Vec<(String, String)>) {
    let replicas = obj
        .get("status")
        .and_then(|s| int_at(s, "replicas"))
        .unwrap_or(0);
    out.push(("status.replicas".into(), replicas.to_string()));
}

// ---------------------------------------------------------------------------------------------

impl Strategy for DeploymentStrategy {
    fn decode(&self, obj: Value) -> Result<Value, String> {
        round_trip::<Deployment>(obj)
    }

    fn default(&self, obj: &mut Value) {
        let spec = child_obj(obj, "spec");
        default_field(spec, "replicas", json!(1));
        let strategy = child_obj(spec, "strategy");
        default_str(strategy, "type", "RollingUpdate");
        if str_at(strategy, "type") == "RollingUpdate" {
            let ru = child_obj(strategy, "rollingUpdate");
            default_field(ru, "maxUnavailable", json!("25%"));
            default_field(ru, "maxSurge", json!("25%"));
        }
        default_field(spec, "revisionHistoryLimit", json!(10));
        default_field(spec, "progressDeadlineSeconds", json!(600));
        default_template(obj);
    }

    fn validate(&self, _cx: &OpCx, obj: &Value) -> ErrorList {
        validate_deployment_spec(spec_of(obj))
    }

    fn validate_update(&self, _cx: &OpCx, new: &Value, old: &Value) -> ErrorList {
        let mut errs = validate_deployment_spec(spec_of(new));
        selector_update(new, old, &mut errs);
        errs
    }

    fn tracks_generation(&self) -> bool {
        true
    }
}

/// Upstream `ValidateDeploymentSpec`.
fn validate_deployment_spec(spec: &Value) -> ErrorList {
    let mut errs = ErrorList::new();
    let sp = Path::new("spec");
    nonnegative(
        int_at(spec, "replicas").unwrap_or(0),
        &sp.child("replicas"),
        &mut errs,
    );
    let selector = check_selector(spec, &sp, "deployment", &mut errs);
    check_replica_set_template(selector.as_ref(), spec, &sp, &mut errs);
    // Strategy.
    let stp = sp.child("strategy");
    let strategy = spec.get("strategy").unwrap_or(&Value::Null);
    match str_at(strategy, "type") {
        "Recreate" => {
            if has(strategy, "rollingUpdate") {
                errs.push(FieldError::forbidden(
                    &stp.child("rollingUpdate"),
                    "may not be specified when strategy `type` is 'Recreate'",
                ));
            }
        }
        "RollingUpdate" => match strategy.get("rollingUpdate").filter(|r| r.is_object()) {
            None => errs.push(FieldError::required(
                &stp.child("rollingUpdate"),
                "this should be defaulted and never be nil",
            )),
            Some(ru) => {
                let rp = stp.child("rollingUpdate");
                let (mu, ms) = (ru.get("maxUnavailable"), ru.get("maxSurge"));
                positive_int_or_percent(mu, &rp.child("maxUnavailable"), &mut errs);
                positive_int_or_percent(ms, &rp.child("maxSurge"), &mut errs);
                if int_or_percent_value(mu) == 0 && int_or_percent_value(ms) == 0 {
                    errs.push(FieldError::invalid(
                        &rp.child("maxUnavailable"),
                        int_or_string(mu),
                        "may not be 0 when `maxSurge` is 0",
                    ));
                }
                not_more_than_100(mu, &rp.child("maxUnavailable"), &mut errs);
            }
        },
        _ => errs.push(FieldError::not_supported(
            &stp,
            BadValue::Raw(go_json(strategy)),
            &["Recreate", "RollingUpdate"],
        )),
    }
    nonnegative_at(spec, "minReadySeconds", &sp, &mut errs);
    nonnegative_at(spec, "revisionHistoryLimit", &sp, &mut errs);
    if let Some(pds) = int_at(spec, "progressDeadlineSeconds") {
        nonnegative(pds, &sp.child("progressDeadlineSeconds"), &mut errs);
        if pds <= int_at(spec, "minReadySeconds").unwrap_or(0) {
            errs.push(FieldError::invalid(
                &sp.child("progressDeadlineSeconds"),
                pds,
                "must be greater than minReadySeconds",
            ));
        }
    }
    errs
}

// ---------------------------------------------------------------------------------------------

impl Strategy for ReplicaSetStrategy {
    fn decode(&self, obj: Value) -> Result<Value, String> {
        round_trip::<ReplicaSet>(obj)
    }

    fn default(&self, obj: &mut Value) {
        default_field(child_obj(obj, "spec"), "replicas", json!(1));
        default_template(obj);
    }

    fn validate(&self, _cx: &OpCx, obj: &Value) -> ErrorList {
        validate_replica_set_spec(spec_of(obj))
    }

    fn validate_update(&self, _cx: &OpCx, new: &Value, old: &Value) -> ErrorList {
        let mut errs = validate_replica_set_spec(spec_of(new));
        selector_update(new, old, &mut errs);
        errs
    }

    fn tracks_generation(&self) -> bool {
        true
    }

    fn selectable_fields(&self, obj: &Value, out: &mut Vec<(String, String)>) {
        replicas_selectable(obj, out);
    }
}

/// Upstream `ValidateReplicaSetSpec`.
fn validate_replica_set_spec(spec: &Value) -> ErrorList {
    let mut errs = ErrorList::new();
    let sp = Path::new("spec");
    nonnegative(
        int_at(spec, "replicas").unwrap_or(0),
        &sp.child("replicas"),
        &mut errs,
    );
    nonnegative_at(spec, "minReadySeconds", &sp, &mut errs);
    // Upstream's ReplicaSet message really says "deployment".
    let selector = check_selector(spec, &sp, "deployment", &mut errs);
    check_replica_set_template(selector.as_ref(), spec, &sp, &mut errs);
    errs
}

// ---------------------------------------------------------------------------------------------

impl Strategy for StatefulSetStrategy {
    fn decode(&self, obj: Value) -> Result<Value, String> {
        round_trip::<StatefulSet>(obj)
    }

    fn default(&self, obj: &mut Value) {
        let spec = child_obj(obj, "spec");
        default_str(spec, "podManagementPolicy", "OrderedReady");
        let us = child_obj(spec, "updateStrategy");
        if str_at(us, "type").is_empty() {
            us["type"] = json!("RollingUpdate");
            default_field(us, "rollingUpdate", json!({}));
        }
        if str_at(us, "type") == "RollingUpdate" {
            if let Some(ru) = us.get_mut("rollingUpdate").filter(|r| r.is_object()) {
                default_field(ru, "partition", json!(0));
            }
        }
        let retention = child_obj(spec, "persistentVolumeClaimRetentionPolicy");
        default_str(retention, "whenDeleted", "Retain");
        default_str(retention, "whenScaled", "Retain");
        default_field(spec, "replicas", json!(1));
        default_field(spec, "revisionHistoryLimit", json!(10));
        each_mut(spec, "volumeClaimTemplates", |t| {
            default_str(child_obj(t, "spec"), "volumeMode", "Filesystem");
            default_str(child_obj(t, "status"), "phase", "Pending");
        });
        default_template(obj);
    }

    /// Upstream `ValidateStatefulSetName`: pod names append `-<ordinal>` to it.
    fn name_validator(&self) -> NameValidator {
        name_is_dns_label
    }

    fn validate(&self, _cx: &OpCx, obj: &Value) -> ErrorList {
        validate_stateful_set_spec(spec_of(obj))
    }

    fn validate_update(&self, _cx: &OpCx, new: &Value, old: &Value) -> ErrorList {
        let mut errs = validate_stateful_set_spec(spec_of(new));
        let mut n = spec_of(new).clone();
        let o = spec_of(old);
        if let Some(m) = n.as_object_mut() {
            for key in [
                "replicas",
                "template",
                "updateStrategy",
                "minReadySeconds",
                "ordinals",
                "persistentVolumeClaimRetentionPolicy",
            ] {
                match o.get(key) {
                    Some(v) => {
                        m.insert(key.to_string(), v.clone());
                    }
                    None => {
                        m.remove(key);
                    }
                }
            }
        }
        if !semantic_eq(Some(&n), Some(o)) {
            errs.push(FieldError::forbidden(
                &Path::new("spec"),
                "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden",
            ));
        }
        errs
    }

    fn tracks_generation(&self) -> bool {
        true
    }
}

/// Upstream `ValidateStatefulSetSpec`.
fn validate_stateful_set_spec(spec: &Value) -> ErrorList {
    let mut errs = ErrorList::new();
    let sp = Path::new("spec");
    match str_at(spec, "podManagementPolicy") {
        "" => errs.push(FieldError::required(&sp.child("podManagementPolicy"), "")),
        "OrderedReady" | "Parallel" => {}
        other => errs.push(FieldError::invalid(
            &sp.child("podManagementPolicy"),
            other,
            "must be 'OrderedReady' or 'Parallel'",
        )),
    }
    let usp = sp.child("updateStrategy");
    let us = spec.get("updateStrategy").unwrap_or(&Value::Null);
    match str_at(us, "type") {
        "" => errs.push(FieldError::required(&usp, "")),
        "OnDelete" => {
            if let Some(ru) = us.get("rollingUpdate").filter(|r| !r.is_null()) {
                errs.push(FieldError::invalid(
                    &usp.child("rollingUpdate"),
                    BadValue::Raw(go_json(ru)),
                    "only allowed for updateStrategy 'RollingUpdate'",
                ));
            }
        }
        "RollingUpdate" => {
            if let Some(ru) = us.get("rollingUpdate").filter(|r| r.is_object()) {
                let rp = usp.child("rollingUpdate");
                nonnegative(
                    int_at(ru, "partition").unwrap_or(0),
                    &rp.child("partition"),
                    &mut errs,
                );
                if let Some(mu) = ru.get("maxUnavailable").filter(|m| !m.is_null()) {
                    let p = rp.child("maxUnavailable");
                    positive_int_or_percent(Some(mu), &p, &mut errs);
                    if int_or_percent_value(Some(mu)) == 0 {
                        errs.push(FieldError::invalid(
                            &p,
                            int_or_string(Some(mu)),
                            "cannot be 0",
                        ));
                    }
                    not_more_than_100(Some(mu), &p, &mut errs);
                }
            }
        }
        _ => errs.push(FieldError::invalid(
            &usp,
            BadValue::Raw(go_json(us)),
            "must be 'RollingUpdate' or 'OnDelete'",
        )),
    }
    if let Some(rp) = spec
        .get("persistentVolumeClaimRetentionPolicy")
        .filter(|p| p.is_object())
    {
        for key in ["whenDeleted", "whenScaled"] {
            let v = str_at(rp, key);
            if v != "Retain" && v != "Delete" {
                errs.push(FieldError::not_supported(
                    &sp.child("persistentVolumeClaimRetentionPolicy").child(key),
                    v,
                    &["Retain", "Delete"],
                ));
            }
        }
    }
    nonnegative(
        int_at(spec, "replicas").unwrap_or(0),
        &sp.child("replicas"),
        &mut errs,
    );
    nonnegative_at(spec, "minReadySeconds", &sp, &mut errs);
    if let Some(start) = spec.get("ordinals").and_then(|o| int_at(o, "start")) {
        nonnegative(start, &sp.child("ordinals.start"), &mut errs);
    }
    let selector = check_selector(spec, &sp, "statefulset", &mut errs);
    match selector {
        None => errs.push(FieldError::invalid(
            &sp.child("selector"),
            selector_json(spec.get("selector")),
            "",
        )),
        Some(sel) => {
            check_template_labels(&sel, spec, &sp, &mut errs);
            let tp = sp.child("template");
            let meta = at(spec, &["template", "metadata"]);
            errs.extend(rudder_api::validation::validate_labels(
                &string_map(meta.and_then(|m| m.get("labels"))),
                &tp.child("labels"),
            ));
            errs.extend(rudder_api::validation::validate_annotations(
                &string_map(meta.and_then(|m| m.get("annotations"))),
                &tp.child("annotations"),
            ));
        }
    }
    check_restart_always(spec, &sp, "StatefulSet", &mut errs);
    errs
}

// ---------------------------------------------------------------------------------------------

impl Strategy for DaemonSetStrategy {
    fn decode(&self, obj: Value) -> Result<Value, String> {
        round_trip::<DaemonSet>(obj)
    }

    fn default(&self, obj: &mut Value) {
        let spec = child_obj(obj, "spec");
        let us = child_obj(spec, "updateStrategy");
        default_str(us, "type", "RollingUpdate");
        if str_at(us, "type") == "RollingUpdate" {
            let ru = child_obj(us, "rollingUpdate");
            default_field(ru, "maxUnavailable", json!(1));
            default_field(ru, "maxSurge", json!(0));
        }
        default_field(spec, "revisionHistoryLimit", json!(10));
        default_template(obj);
    }

    fn prepare_for_create(&self, _cx: &OpCx, obj: &mut Value) {
        // apps/v1 keeps upstream's templateGeneration in an annotation.
        annotations_mut(obj)[DS_TEMPLATE_GENERATION] = json!("1");
    }

    fn prepare_for_update(&self, _cx: &OpCx, new: &mut Value, old: &Value) {
        let old_gen = old
            .pointer("/metadata/annotations")
            .and_then(|a| a.get(DS_TEMPLATE_GENERATION))
            .and_then(Value::as_str)
            .and_then(|g| g.parse::<i64>().ok())
            .unwrap_or(1);
        let changed = !semantic_eq(spec_of(new).get("template"), spec_of(old).get("template"));
        let generation = if changed { old_gen + 1 } else { old_gen };
        annotations_mut(new)[DS_TEMPLATE_GENERATION] = json!(generation.to_string());
    }

    fn validate(&self, _cx: &OpCx, obj: &Value) -> ErrorList {
        validate_daemon_set_spec(spec_of(obj))
    }

    fn validate_update(&self, _cx: &OpCx, new: &Value, old: &Value) -> ErrorList {
        let mut errs = validate_daemon_set_spec(spec_of(new));
        selector_update(new, old, &mut errs);
        errs
    }

    fn tracks_generation(&self) -> bool {
        true
    }
}

/// Upstream `ValidateDaemonSetSpec`.
fn validate_daemon_set_spec(spec: &Value) -> ErrorList {
    let mut errs = ErrorList::new();
    let sp = Path::new("spec");
    let raw = spec.get("selector").filter(|s| !s.is_null());
    let typed = label_selector(raw);
    errs.extend(validate_label_selector(
        typed.as_ref(),
        &sp.child("selector"),
    ));
    if let Ok(sel) = as_selector(typed.as_ref()) {
        if !sel.matches(&string_map(template_labels(spec))) {
            errs.push(FieldError::invalid(
                &sp.child("template").child("metadata").child("labels"),
                bad_value(template_labels(spec)),
                "`selector` does not match template `labels`",
            ));
        }
    }
    if let Some(sel) = &typed {
        let n = sel.match_labels.as_ref().map_or(0, |m| m.len())
            + sel.match_expressions.as_ref().map_or(0, Vec::len);
        if n == 0 {
            errs.push(FieldError::invalid(
                &sp.child("selector"),
                selector_json(raw),
                "empty selector is invalid for daemonset",
            ));
        }
    }
    let empty = json!({});
    validate_pod_template_spec(
        spec.get("template").unwrap_or(&empty),
        &sp.child("template"),
        &mut errs,
    );
    check_restart_always(spec, &sp, "DaemonSet", &mut errs);
    nonnegative_at(spec, "minReadySeconds", &sp, &mut errs);
    let usp = sp.child("updateStrategy");
    let us = spec.get("updateStrategy").unwrap_or(&Value::Null);
    match str_at(us, "type") {
        "OnDelete" => {}
        "RollingUpdate" => match us.get("rollingUpdate").filter(|r| r.is_object()) {
            None => errs.push(FieldError::required(&usp.child("rollingUpdate"), "")),
            Some(ru) => {
                let rp = usp.child("rollingUpdate");
                let (mu, ms) = (ru.get("maxUnavailable"), ru.get("maxSurge"));
                positive_int_or_percent(mu, &rp.child("maxUnavailable"), &mut errs);
                positive_int_or_percent(ms, &rp.child("maxSurge"), &mut errs);
                not_more_than_100(mu, &rp.child("maxUnavailable"), &mut errs);
                not_more_than_100(ms, &rp.child("maxSurge"), &mut errs);
                let (u, s) = (int_or_percent_value(mu) != 0, int_or_percent_value(ms) != 0);
                if u && s {
                    errs.push(FieldError::invalid(
                        &rp.child("maxSurge"),
                        int_or_string(ms),
                        "may not be set when maxUnavailable is non-zero",
                    ));
                } else if !u && !s {
                    errs.push(FieldError::required(
                        &rp.child("maxUnavailable"),
                        "cannot be 0 when maxSurge is 0",
                    ));
                }
            }
        },
        _ => errs.push(FieldError::not_supported(
            &usp,
            BadValue::Raw(go_json(us)),
            &["RollingUpdate", "OnDelete"],
        )),
    }
    nonnegative_at(spec, "revisionHistoryLimit", &sp, &mut errs);
    errs
}

// ---------------------------------------------------------------------------------------------

impl Strategy for ReplicationControllerStrategy {
    fn decode(&self, obj: Value) -> Result<Value, String> {
        round_trip::<ReplicationController>(obj)
    }

    fn default(&self, obj: &mut Value) {
        let labels = template_labels(spec_of(obj))
            .filter(|l| l.is_object())
            .cloned();
        let spec = child_obj(obj, "spec");
        default_field(spec, "replicas", json!(1));
        if let Some(labels) = labels {
            if obj_at(spec, "selector").is_none_or(|s| s.is_empty()) {
                spec["selector"] = labels.clone();
            }
            let meta_labels = obj.pointer("/metadata/labels").and_then(Value::as_object);
            if meta_labels.is_none_or(|l| l.is_empty()) {
                child_obj(obj, "metadata")["labels"] = labels;
            }
        }
        default_template(obj);
    }

    fn validate(&self, _cx: &OpCx, obj: &Value) -> ErrorList {
        validate_rc_spec(spec_of(obj))
    }

    fn tracks_generation(&self) -> bool {
        true
    }

    fn selectable_fields(&self, obj: &Value, out: &mut Vec<(String, String)>) {
        replicas_selectable(obj, out);
    }
}

/// Upstream `ValidateReplicationControllerSpec`.
fn validate_rc_spec(spec: &Value) -> ErrorList {
    let mut errs = ErrorList::new();
    let sp = Path::new("spec");
    nonnegative_at(spec, "minReadySeconds", &sp, &mut errs);
    let selector = string_map(spec.get("selector"));
    if selector.is_empty() {
        errs.push(FieldError::required(&sp.child("selector"), ""));
    }
    nonnegative(
        int_at(spec, "replicas").unwrap_or(0),
        &sp.child("replicas"),
        &mut errs,
    );
    let Some(template) = spec.get("template").filter(|t| t.is_object()) else {
        errs.push(FieldError::required(&sp.child("template"), ""));
        return errs;
    };
    let sel = rudder_api::selector::labels::Selector::from_set(&selector);
    check_template_labels(&sel, spec, &sp, &mut errs);
    validate_pod_template_spec(template, &sp.child("template"), &mut errs);
    check_restart_always(spec, &sp, "ReplicationController", &mut errs);
    errs
}

// ---------------------------------------------------------------------------------------------

impl Strategy for PodTemplateStrategy {
    fn decode(&self, obj: Value) -> Result<Value, String> {
        round_trip::<PodTemplate>(obj)
    }

    fn default(&self, obj: &mut Value) {
        default_pod_template(child_obj(obj, "template"));
    }

    fn validate(&self, _cx: &OpCx, obj: &Value) -> ErrorList {
        let mut errs = ErrorList::new();
        let empty = json!({});
        validate_pod_template_spec(
            obj.get("template").unwrap_or(&empty),
            &Path::new("template"),
            &mut errs,
        );
        errs
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

    fn prepared(s: &dyn Strategy, body: Value) -> Value {
        let mut obj = s.decode(body).unwrap();
        s.default(&mut obj);
        s.prepare_for_create(&cx(), &mut obj);
        obj
    }

    /// What `kubectl create deployment nginx --image=nginx` sends.
    fn create_deployment_body() -> Value {
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "nginx", "labels": {"app": "nginx"}},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": "nginx"}},
                "strategy": {},
                "template": {
                    "metadata": {"labels": {"app": "nginx"}},
                    "spec": {"containers": [{"name": "nginx", "image": "nginx", "resources": {}}]},
                },
            },
            "status": {},
        })
    }

    #[test]
    fn kubectl_create_deployment_gets_exactly_upstreams_defaults() {
        let s = DeploymentStrategy;
        let d = prepared(&s, create_deployment_body());
        // `kubectl get deployment nginx -o json` against upstream, spec part.
        assert_eq!(
            d["spec"],
            json!({
                "progressDeadlineSeconds": 600,
                "replicas": 1,
                "revisionHistoryLimit": 10,
                "selector": {"matchLabels": {"app": "nginx"}},
                "strategy": {
                    "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"},
                    "type": "RollingUpdate",
                },
                "template": {
                    "metadata": {"labels": {"app": "nginx"}},
                    "spec": {
                        "containers": [{
                            "image": "nginx",
                            "imagePullPolicy": "Always",
                            "name": "nginx",
                            "resources": {},
                            "terminationMessagePath": "/dev/termination-log",
                            "terminationMessagePolicy": "File",
                        }],
                        "dnsPolicy": "ClusterFirst",
                        "restartPolicy": "Always",
                        "schedulerName": "default-scheduler",
                        "securityContext": {},
                        "terminationGracePeriodSeconds": 30,
                    },
                },
            })
        );
        assert!(
            s.validate(&cx(), &d).is_empty(),
            "{:?}",
            messages(&s.validate(&cx(), &d))
        );
    }

    #[test]
    fn deployment_selector_must_match_template() {
        let s = DeploymentStrategy;
        let mut body = create_deployment_body();
        body["spec"]["selector"] = json!({"matchLabels": {"app": "other"}});
        let d = prepared(&s, body);
        assert_eq!(
            messages(&s.validate(&cx(), &d)),
            vec!["spec.template.metadata.labels: Invalid value: {\"app\":\"nginx\"}: `selector` does not match template `labels`"]
        );
    }

    #[test]
    fn deployment_selector_is_immutable_and_replicas_non_negative() {
        let s = DeploymentStrategy;
        let old = prepared(&s, create_deployment_body());
        let mut new = old.clone();
        new["spec"]["selector"] = json!({"matchLabels": {"app": "nginx", "tier": "web"}});
        new["spec"]["template"]["metadata"]["labels"]["tier"] = json!("web");
        new["spec"]["replicas"] = json!(-1);
        assert_eq!(
            messages(&s.validate_update(&cx(), &new, &old)),
            vec![
                "spec.replicas: Invalid value: -1: must be greater than or equal to 0",
                "spec.selector: Invalid value: {\"matchLabels\":{\"app\":\"nginx\",\"tier\":\"web\"}}: field is immutable",
            ]
        );
    }

    #[test]
    fn deployment_without_selector() {
        let s = DeploymentStrategy;
        let mut body = create_deployment_body();
        body["spec"].as_object_mut().unwrap().remove("selector");
        let d = prepared(&s, body);
        assert_eq!(
            messages(&s.validate(&cx(), &d)),
            vec![
                "spec.selector: Required value",
                "spec.template.metadata.labels: Invalid value: {\"app\":\"nginx\"}: `selector` does not match template `labels`",
            ]
        );
    }

    #[test]
    fn statefulset_and_daemonset_defaults() {
        let sts = prepared(
            &StatefulSetStrategy,
            json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "web"},
                "spec": {"serviceName": "web", "selector": {"matchLabels": {"app": "web"}},
                    "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "i:1"}]}},
                    "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]}}),
        );
        assert_eq!(sts["spec"]["podManagementPolicy"], "OrderedReady");
        assert_eq!(
            sts["spec"]["updateStrategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}})
        );
        assert_eq!(
            sts["spec"]["persistentVolumeClaimRetentionPolicy"],
            json!({"whenDeleted": "Retain", "whenScaled": "Retain"})
        );
        assert_eq!(sts["spec"]["replicas"], 1);
        assert_eq!(sts["spec"]["revisionHistoryLimit"], 10);
        assert_eq!(sts["spec"]["serviceName"], "web");
        assert_eq!(
            sts["spec"]["volumeClaimTemplates"][0]["spec"]["volumeMode"],
            "Filesystem"
        );
        assert_eq!(
            sts["spec"]["volumeClaimTemplates"][0]["status"],
            json!({"phase": "Pending"})
        );
        assert!(StatefulSetStrategy.validate(&cx(), &sts).is_empty());

        let ds = prepared(
            &DaemonSetStrategy,
            json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agent"},
                "spec": {"selector": {"matchLabels": {"app": "a"}},
                    "template": {"metadata": {"labels": {"app": "a"}}, "spec": {"containers": [{"name": "c", "image": "i:1"}]}}}}),
        );
        assert_eq!(
            ds["spec"]["updateStrategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}})
        );
        assert_eq!(ds["spec"]["revisionHistoryLimit"], 10);
        assert_eq!(ds["metadata"]["annotations"][DS_TEMPLATE_GENERATION], "1");
        assert!(DaemonSetStrategy.validate(&cx(), &ds).is_empty());
    }

    #[test]
    fn replicaset_and_rc() {
        let rs = prepared(
            &ReplicaSetStrategy,
            json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "r"},
                "spec": {"selector": {"matchLabels": {"app": "a"}},
                    "template": {"metadata": {"labels": {"app": "a"}}, "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "i"}]}}}}),
        );
        assert_eq!(rs["spec"]["replicas"], 1);
        assert_eq!(
            messages(&ReplicaSetStrategy.validate(&cx(), &rs)),
            vec!["spec.template.spec.restartPolicy: Unsupported value: \"Never\": supported values: \"Always\""]
        );
        let rc = prepared(
            &ReplicationControllerStrategy,
            json!({"apiVersion": "v1", "kind": "ReplicationController", "metadata": {"name": "r"},
                "spec": {"template": {"metadata": {"labels": {"app": "a"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}}),
        );
        assert_eq!(rc["spec"]["selector"], json!({"app": "a"}));
        assert_eq!(rc["metadata"]["labels"], json!({"app": "a"}));
        assert_eq!(rc["spec"]["replicas"], 1);
        assert!(ReplicationControllerStrategy
            .validate(&cx(), &rc)
            .is_empty());
        let mut out = Vec::new();
        ReplicationControllerStrategy
            .selectable_fields(&json!({"status": {"replicas": 3}}), &mut out);
        assert_eq!(out, vec![("status.replicas".to_string(), "3".to_string())]);
    }
}
