//! Jobs and CronJobs (`batch/v1`; upstream `pkg/apis/batch/v1/defaults.go`,
//! `pkg/apis/batch/validation`, `pkg/registry/batch/{job,cronjob}/strategy.go`).

use rudder_api::field::{ErrorList, FieldError, Path};
use rudder_api::k8s_openapi::api::batch::v1::{CronJob, Job};
use rudder_api::validation::{is_dns1123_label, validate_label_selector};
use rudder_registry::{OpCx, Strategy};
use serde_json::{json, Value};

use super::decode::round_trip;
use super::podspec::{default_pod_template, validate_pod_template_spec};
use super::util::*;

pub struct JobStrategy;
pub struct CronJobStrategy;

const LEGACY_CONTROLLER_UID: &str = "controller-uid";
const CONTROLLER_UID: &str = "batch.kubernetes.io/controller-uid";
const LEGACY_JOB_NAME: &str = "job-name";
const JOB_NAME: &str = "batch.kubernetes.io/job-name";

fn spec_of(obj: &Value) -> &Value {
    obj.get("spec").unwrap_or(&Value::Null)
}

/// `SetDefaults_Job` on a job spec (without the label copy, which needs the object).
fn default_job_spec(spec: &mut Value) {
    if !has(spec, "completions") && !has(spec, "parallelism") {
        spec["completions"] = json!(1);
        spec["parallelism"] = json!(1);
    }
    default_field(spec, "parallelism", json!(1));
    if has(spec, "backoffLimitPerIndex") {
        default_field(spec, "backoffLimit", json!(i32::MAX));
    } else {
        default_field(spec, "backoffLimit", json!(6));
    }
    default_field(spec, "completionMode", json!("NonIndexed"));
    default_field(spec, "suspend", json!(false));
    if has(spec, "podFailurePolicy") {
        default_field(spec, "podReplacementPolicy", json!("Failed"));
        if let Some(pfp) = spec.get_mut("podFailurePolicy") {
            each_mut(pfp, "rules", |r| {
                each_mut(r, "onPodConditions", |c| default_str(c, "status", "True"));
            });
        }
    } else {
        default_field(spec, "podReplacementPolicy", json!("TerminatingOrFailed"));
    }
    default_field(spec, "manualSelector", json!(false));
}

/// Job labels default to the template's labels.
fn default_job_labels(obj: &mut Value) {
    let labels = at(spec_of(obj), &["template", "metadata", "labels"])
        .filter(|l| l.as_object().is_some_and(|m| !m.is_empty()))
        .cloned();
    let Some(labels) = labels else { return };
    let empty = obj
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .is_none_or(|l| l.is_empty());
    if empty {
        child_obj(obj, "metadata")["labels"] = labels;
    }
}

impl Strategy for JobStrategy {
    fn decode(&self, obj: Value) -> Result<Value, String> {
        round_trip::<Job>(obj)
    }

    fn default(&self, obj: &mut Value) {
        default_job_spec(child_obj(obj, "spec"));
        default_job_labels(obj);
        default_pod_template(child_obj(child_obj(obj, "spec"), "template"));
    }

    fn prepare_for_create(&self, _cx: &OpCx, obj: &mut Value) {
        // Upstream generates the selector here, now that the uid is known.
        if !spec_of(obj)
            .get("manualSelector")
            .and_then(Value::as_bool)
            .unwrap_or(false)
        {
            let name = name_of(obj).to_string();
            let uid = uid_of(obj).to_string();
            let spec = child_obj(obj, "spec");
            let tlabels = child_obj(child_obj(child_obj(spec, "template"), "metadata"), "labels");
            for (k, v) in [
                (LEGACY_JOB_NAME, &name),
                (JOB_NAME, &name),
                (LEGACY_CONTROLLER_UID, &uid),
                (CONTROLLER_UID, &uid),
            ] {
                if tlabels.get(k).is_none() {
                    tlabels[k] = json!(v);
                }
            }
            let ml = child_obj(child_obj(spec, "selector"), "matchLabels");
            if ml.get(CONTROLLER_UID).is_none() {
                ml[CONTROLLER_UID] = json!(uid);
            }
        }
        // Upstream fills the job's labels from the (now labelled) template when reading it back.
        default_job_labels(obj);
    }

    fn validate(&self, _cx: &OpCx, obj: &Value) -> ErrorList {
        validate_job(obj, true)
    }

    fn validate_update(&self, _cx: &OpCx, new: &Value, old: &Value) -> ErrorList {
        let old_tl = string_map(at(spec_of(old), &["template", "metadata", "labels"]));
        let require_prefixed = old_tl.contains_key(JOB_NAME) && old_tl.contains_key(CONTROLLER_UID);
        let mut errs = validate_job(new, require_prefixed);
        errs.extend(validate_job_spec_update(new, old));
        errs
    }

    fn tracks_generation(&self) -> bool {
        true
    }

    fn selectable_fields(&self, obj: &Value, out: &mut Vec<(String, String)>) {
        let succeeded = obj
            .get("status")
            .and_then(|s| int_at(s, "succeeded"))
            .unwrap_or(0);
        out.push(("status.successful".into(), succeeded.to_string()));
    }
}

/// Upstream `ValidateJob`.
fn validate_job(obj: &Value, require_prefixed: bool) -> ErrorList {
    let mut errs = ErrorList::new();
    let spec = spec_of(obj);
    validate_generated_selector(obj, require_prefixed, &mut errs);
    validate_job_spec_full(spec, &Path::new("spec"), &mut errs);
    if str_at(spec, "completionMode") == "Indexed" {
        if let Some(c) = int_at(spec, "completions").filter(|c| *c > 0) {
            let name = name_of(obj);
            let host = format!("{name}-{}", c - 1);
            if !is_dns1123_label(&host).is_empty() {
                errs.push(FieldError::invalid(
                    &Path::new("metadata").child("name"),
                    name,
                    format!("will not able to create pod with invalid DNS label: {host}"),
                ));
            }
        }
    }
    errs
}

/// Upstream `validateGeneratedSelector`.
fn validate_generated_selector(obj: &Value, require_prefixed: bool, errs: &mut ErrorList) {
    let spec = spec_of(obj);
    if spec.get("manualSelector").and_then(Value::as_bool) == Some(true) {
        return;
    }
    if !has(spec, "selector") {
        return;
    }
    let uid = uid_of(obj);
    let name = name_of(obj);
    if uid.is_empty() {
        errs.push(FieldError::required(
            &Path::new("metadata").child("uid"),
            "",
        ));
    }
    let meta_path = Path::new("spec").child("template").child("metadata");
    let labels = at(spec, &["template", "metadata", "labels"]);
    let map = string_map(labels);
    let mut has_label = |key: &str, want: &str| match map.get(key) {
        None => errs.push(FieldError::required(
            &meta_path.child("labels").key(key),
            format!("must be '{want}'"),
        )),
        Some(v) if v != want => errs.push(FieldError::invalid(
            &meta_path.child("labels").key(key),
            bad_value(labels),
            format!("must be '{want}'"),
        )),
        Some(_) => {}
    };
    has_label(LEGACY_CONTROLLER_UID, uid);
    has_label(LEGACY_JOB_NAME, name);
    let mut expected = std::collections::BTreeMap::new();
    if require_prefixed {
        has_label(CONTROLLER_UID, uid);
        has_label(JOB_NAME, name);
        expected.insert(CONTROLLER_UID.to_string(), uid.to_string());
        expected.insert(JOB_NAME.to_string(), name.to_string());
    }
    expected.insert(LEGACY_CONTROLLER_UID.to_string(), uid.to_string());
    expected.insert(LEGACY_JOB_NAME.to_string(), name.to_string());
    if let Ok(sel) = as_selector(label_selector(spec.get("selector")).as_ref()) {
        if !sel.matches(&expected) {
            errs.push(FieldError::invalid(
                &Path::new("spec").child("selector"),
                selector_json(spec.get("selector")),
                "`selector` not auto-generated",
            ));
        }
    }
}

/// Upstream `ValidateJobSpec`: the spec, a required selector matching the template.
fn validate_job_spec_full(spec: &Value, sp: &Path, errs: &mut ErrorList) {
    validate_job_spec(spec, sp, errs);
    let raw = spec.get("selector").filter(|s| !s.is_null());
    let typed = label_selector(raw);
    if raw.is_none() {
        errs.push(FieldError::required(&sp.child("selector"), ""));
    } else {
        errs.extend(validate_label_selector(
            typed.as_ref(),
            &sp.child("selector"),
        ));
    }
    if let Ok(sel) = as_selector(typed.as_ref()) {
        let labels = at(spec, &["template", "metadata", "labels"]);
        if !sel.matches(&string_map(labels)) {
            errs.push(FieldError::invalid(
                &sp.child("template").child("metadata").child("labels"),
                bad_value(labels),
                "`selector` does not match template `labels`",
            ));
        }
    }
}

/// Upstream `validateJobSpec` (shared with CronJobs' job templates).
fn validate_job_spec(spec: &Value, sp: &Path, errs: &mut ErrorList) {
    for key in [
        "parallelism",
        "completions",
        "activeDeadlineSeconds",
        "backoffLimit",
        "ttlSecondsAfterFinished",
        "backoffLimitPerIndex",
    ] {
        nonnegative_at(spec, key, sp, errs);
    }
    if has(spec, "maxFailedIndexes") {
        nonnegative_at(spec, "maxFailedIndexes", sp, errs);
        if !has(spec, "backoffLimitPerIndex") {
            errs.push(FieldError::required(
                &sp.child("backoffLimitPerIndex"),
                "when maxFailedIndexes is specified",
            ));
        }
    }
    let mode = spec.get("completionMode").and_then(Value::as_str);
    if let Some(m) = mode {
        if m != "NonIndexed" && m != "Indexed" {
            errs.push(FieldError::not_supported(
                &sp.child("completionMode"),
                m,
                &["NonIndexed", "Indexed"],
            ));
        }
        if m == "Indexed" {
            if !has(spec, "completions") {
                errs.push(FieldError::required(
                    &sp.child("completions"),
                    "when completion mode is Indexed",
                ));
            }
            if let Some(p) = int_at(spec, "parallelism").filter(|p| *p > 100_000) {
                errs.push(FieldError::invalid(
                    &sp.child("parallelism"),
                    p,
                    "must be less than or equal to 100000 when completion mode is Indexed",
                ));
            }
        }
    }
    if mode.is_none_or(|m| m == "NonIndexed") {
        for key in ["backoffLimitPerIndex", "maxFailedIndexes"] {
            if let Some(v) = int_at(spec, key) {
                errs.push(FieldError::invalid(
                    &sp.child(key),
                    v,
                    "requires indexed completion mode",
                ));
            }
        }
    }
    if let Some(prp) = spec.get("podReplacementPolicy").and_then(Value::as_str) {
        let p = sp.child("podReplacementPolicy");
        if has(spec, "podFailurePolicy") {
            if prp != "Failed" {
                errs.push(FieldError::not_supported(&p, prp, &["Failed"]));
            }
        } else if prp != "Failed" && prp != "TerminatingOrFailed" {
            errs.push(FieldError::not_supported(
                &p,
                prp,
                &["Failed", "TerminatingOrFailed"],
            ));
        }
    }
    let empty = json!({});
    let template = spec.get("template").unwrap_or(&empty);
    validate_pod_template_spec(template, &sp.child("template"), errs);
    let rp_path = sp.child("template").child("spec").child("restartPolicy");
    let rp = at(template, &["spec", "restartPolicy"])
        .and_then(Value::as_str)
        .unwrap_or("");
    if rp == "Always" || rp.is_empty() {
        errs.push(FieldError::required(
            &rp_path,
            "valid values: \"OnFailure\", \"Never\"",
        ));
    } else if rp != "OnFailure" && rp != "Never" {
        errs.push(FieldError::not_supported(
            &rp_path,
            rp,
            &["OnFailure", "Never"],
        ));
    } else if has(spec, "podFailurePolicy") && rp != "Never" {
        errs.push(FieldError::invalid(
            &rp_path,
            rp,
            "only \"Never\" is supported when podFailurePolicy is specified",
        ));
    }
}

/// Upstream `ValidateJobSpecUpdate`.
fn validate_job_spec_update(new: &Value, old: &Value) -> ErrorList {
    let mut errs = ErrorList::new();
    let sp = Path::new("spec");
    let (n, o) = (spec_of(new), spec_of(old));
    let indexed = str_at(n, "completionMode") == "Indexed";
    if !indexed {
        immutable(
            n.get("completions"),
            o.get("completions"),
            &sp.child("completions"),
            &mut errs,
        );
    } else if !semantic_eq(n.get("completions"), o.get("completions"))
        && has(n, "completions")
        && n.get("completions") != n.get("parallelism")
    {
        errs.push(FieldError::invalid(
            &sp.child("completions"),
            bad_value(n.get("completions")),
            "can only be modified in tandem with spec.parallelism",
        ));
    }
    if !semantic_eq(n.get("selector"), o.get("selector")) {
        errs.push(FieldError::invalid(
            &sp.child("selector"),
            selector_json(n.get("selector")),
            rudder_api::validation::object_meta::FIELD_IMMUTABLE_ERROR_MSG,
        ));
    }
    // The template is immutable, except scheduling directives of suspended jobs that never ran.
    let mut old_template = o.get("template").cloned().unwrap_or(Value::Null);
    let suspended = o.get("suspend").and_then(Value::as_bool).unwrap_or(false);
    let not_started = !old.get("status").is_some_and(|s| has(s, "startTime"));
    if suspended && not_started {
        if let (Some(ot), Some(nt)) = (old_template.as_object_mut(), n.get("template")) {
            let nspec = nt.get("spec").cloned().unwrap_or(Value::Null);
            let ospec = ot.entry("spec").or_insert(json!({}));
            for key in ["nodeSelector", "tolerations", "schedulingGates"] {
                match nspec.get(key) {
                    Some(v) => ospec[key] = v.clone(),
                    None => {
                        if let Some(m) = ospec.as_object_mut() {
                            m.remove(key);
                        }
                    }
                }
            }
            // Node affinity may change.
            let new_na = at(&nspec, &["affinity", "nodeAffinity"]).cloned();
            match new_na {
                Some(na) => child_obj(ospec, "affinity")["nodeAffinity"] = na,
                None => {
                    if let Some(a) = ospec.get_mut("affinity").and_then(Value::as_object_mut) {
                        a.remove("nodeAffinity");
                    }
                }
            }
            if ospec
                .get("affinity")
                .and_then(Value::as_object)
                .is_some_and(|a| a.is_empty())
                && nspec.get("affinity").is_none()
            {
                if let Some(m) = ospec.as_object_mut() {
                    m.remove("affinity");
                }
            }
            let ometa = ot.entry("metadata").or_insert(json!({}));
            for key in ["labels", "annotations"] {
                match at(nt, &["metadata", key]) {
                    Some(v) => ometa[key] = v.clone(),
                    None => {
                        if let Some(m) = ometa.as_object_mut() {
                            m.remove(key);
                        }
                    }
                }
            }
        }
    }
    immutable(
        n.get("template"),
        Some(&old_template),
        &sp.child("template"),
        &mut errs,
    );
    for key in [
        "completionMode",
        "podFailurePolicy",
        "backoffLimitPerIndex",
        "managedBy",
        "successPolicy",
    ] {
        immutable(n.get(key), o.get(key), &sp.child(key), &mut errs);
    }
    errs
}

// ---------------------------------------------------------------------------------------------

impl Strategy for CronJobStrategy {
    fn decode(&self, obj: Value) -> Result<Value, String> {
        round_trip::<CronJob>(obj)
    }

    fn default(&self, obj: &mut Value) {
        let spec = child_obj(obj, "spec");
        default_str(spec, "concurrencyPolicy", "Allow");
        default_field(spec, "suspend", json!(false));
        default_field(spec, "successfulJobsHistoryLimit", json!(3));
        default_field(spec, "failedJobsHistoryLimit", json!(1));
        let jt = child_obj(child_obj(spec, "jobTemplate"), "spec");
        default_pod_template(child_obj(jt, "template"));
        if let Some(pfp) = jt.get_mut("podFailurePolicy") {
            each_mut(pfp, "rules", |r| {
                each_mut(r, "onPodConditions", |c| default_str(c, "status", "True"));
            });
        }
    }

    fn validate(&self, _cx: &OpCx, obj: &Value) -> ErrorList {
        let mut errs = validate_cron_job_spec(spec_of(obj), None);
        let name = name_of(obj);
        if name.len() > 52 {
            errs.push(FieldError::invalid(
                &Path::new("metadata").child("name"),
                name,
                "must be no more than 52 characters",
            ));
        }
        errs
    }

    fn validate_update(&self, _cx: &OpCx, new: &Value, old: &Value) -> ErrorList {
        validate_cron_job_spec(spec_of(new), Some(spec_of(old)))
    }

    fn tracks_generation(&self) -> bool {
        true
    }
}

/// Upstream `validateCronJobSpec`.
fn validate_cron_job_spec(spec: &Value, old: Option<&Value>) -> ErrorList {
    let mut errs = ErrorList::new();
    let sp = Path::new("spec");
    let schedule = str_at(spec, "schedule");
    if schedule.is_empty() {
        errs.push(FieldError::required(&sp.child("schedule"), ""));
    } else {
        if let Err(e) = parse_cron(schedule) {
            errs.push(FieldError::invalid(&sp.child("schedule"), schedule, e));
        }
        let allow_tz = old.is_some_and(|o| str_at(o, "schedule").contains("TZ"));
        if allow_tz && schedule.contains("TZ") && has(spec, "timeZone") {
            errs.push(FieldError::invalid(
                &sp.child("schedule"),
                schedule,
                "cannot use both timeZone field and TZ or CRON_TZ in schedule",
            ));
        } else if !allow_tz && schedule.contains("TZ") {
            errs.push(FieldError::invalid(
                &sp.child("schedule"),
                schedule,
                "cannot use TZ or CRON_TZ in schedule, use timeZone field instead",
            ));
        }
    }
    nonnegative_at(spec, "startingDeadlineSeconds", &sp, &mut errs);
    if old.is_none_or(|o| o.get("timeZone") != spec.get("timeZone")) {
        if let Some(tz) = spec.get("timeZone").and_then(Value::as_str) {
            validate_time_zone(tz, &sp.child("timeZone"), &mut errs);
        }
    }
    match str_at(spec, "concurrencyPolicy") {
        "Allow" | "Forbid" | "Replace" => {}
        "" => errs.push(FieldError::required(&sp.child("concurrencyPolicy"), "")),
        other => errs.push(FieldError::not_supported(
            &sp.child("concurrencyPolicy"),
            other,
            &["Allow", "Forbid", "Replace"],
        )),
    }
    let jtp = sp.child("jobTemplate");
    let empty = json!({});
    let jt_spec = at(spec, &["jobTemplate", "spec"]).unwrap_or(&empty);
    validate_job_spec(jt_spec, &jtp.child("spec"), &mut errs);
    if let Some(sel) = jt_spec.get("selector").filter(|s| !s.is_null()) {
        errs.push(FieldError::invalid(
            &jtp.child("spec").child("selector"),
            selector_json(Some(sel)),
            "`selector` will be auto-generated",
        ));
    }
    if jt_spec.get("manualSelector").and_then(Value::as_bool) == Some(true) {
        errs.push(FieldError::not_supported(
            &jtp.child("spec").child("manualSelector"),
            true,
            &["nil", "false"],
        ));
    }
    nonnegative_at(spec, "successfulJobsHistoryLimit", &sp, &mut errs);
    nonnegative_at(spec, "failedJobsHistoryLimit", &sp, &mut errs);
    errs
}

/// Upstream `validateTimeZone` (the name format; the tz database is the controller's).
fn validate_time_zone(tz: &str, path: &Path, errs: &mut ErrorList) {
    if tz.is_empty() {
        errs.push(FieldError::invalid(
            path,
            tz,
            "timeZone must be nil or non-empty string",
        ));
        return;
    }
    for part in tz.split('/') {
        let ok_chars = !part.is_empty()
            && part.len() <= 14
            && part
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-' | b'_' | b'+'));
        if part == "." || part == ".." || part.starts_with('-') || !ok_chars {
            errs.push(FieldError::invalid(
                path,
                tz,
                format!("unknown time zone {tz}"),
            ));
            return;
        }
    }
    if tz.eq_ignore_ascii_case("local") {
        errs.push(FieldError::invalid(
            path,
            tz,
            "timeZone must be an explicit time zone as defined in https://www.iana.org/time-zones",
        ));
    }
}

/// robfig/cron's `ParseStandard` (shared with the CronJob controller), errors only.
fn parse_cron(spec: &str) -> Result<(), String> {
    rudder_api::cron::parse_standard(spec).map(drop)
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

    fn create_job(body: Value) -> Value {
        let s = JobStrategy;
        let mut obj = s.decode(body).unwrap();
        s.default(&mut obj);
        obj["metadata"]["uid"] = json!("u-1");
        s.prepare_for_create(&cx(), &mut obj);
        obj
    }

    /// `kubectl create job pi --image=perl`.
    fn job_body() -> Value {
        json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "pi"},
            "spec": {"template": {"metadata": {}, "spec": {"restartPolicy": "Never",
                "containers": [{"name": "pi", "image": "perl", "resources": {}}]}}}, "status": {}})
    }

    #[test]
    fn job_defaults_and_generated_selector() {
        let job = create_job(job_body());
        let spec = &job["spec"];
        assert_eq!(spec["parallelism"], 1);
        assert_eq!(spec["completions"], 1);
        assert_eq!(spec["backoffLimit"], 6);
        assert_eq!(spec["completionMode"], "NonIndexed");
        assert_eq!(spec["suspend"], false);
        assert_eq!(spec["manualSelector"], false);
        assert_eq!(spec["podReplacementPolicy"], "TerminatingOrFailed");
        assert_eq!(
            spec["selector"],
            json!({"matchLabels": {"batch.kubernetes.io/controller-uid": "u-1"}})
        );
        let want_labels = json!({
            "batch.kubernetes.io/controller-uid": "u-1",
            "batch.kubernetes.io/job-name": "pi",
            "controller-uid": "u-1",
            "job-name": "pi",
        });
        assert_eq!(spec["template"]["metadata"]["labels"], want_labels);
        assert_eq!(job["metadata"]["labels"], want_labels);
        assert!(
            JobStrategy.validate(&cx(), &job).is_empty(),
            "{:?}",
            messages(&JobStrategy.validate(&cx(), &job))
        );
    }

    #[test]
    fn job_restart_policy_and_immutable_template() {
        let mut body = job_body();
        body["spec"]["template"]["spec"]
            .as_object_mut()
            .unwrap()
            .remove("restartPolicy");
        let job = create_job(body);
        assert_eq!(
            messages(&JobStrategy.validate(&cx(), &job)),
            vec!["spec.template.spec.restartPolicy: Required value: valid values: \"OnFailure\", \"Never\""]
        );
        let old = create_job(job_body());
        let mut new = old.clone();
        new["spec"]["template"]["spec"]["containers"][0]["image"] = json!("perl:2");
        let errs = messages(&JobStrategy.validate_update(&cx(), &new, &old));
        assert_eq!(errs.len(), 1);
        assert!(
            errs[0].starts_with("spec.template: Invalid value: "),
            "{}",
            errs[0]
        );
        assert!(errs[0].ends_with(": field is immutable"));
    }

    #[test]
    fn cron_job_defaults_and_schedule() {
        let s = CronJobStrategy;
        let mut cj = s
            .decode(json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "c"},
                "spec": {"schedule": "*/1 * * * *", "jobTemplate": {"spec": {"template": {"spec": {
                    "restartPolicy": "OnFailure", "containers": [{"name": "c", "image": "busybox"}]}}}}}}))
            .unwrap();
        s.default(&mut cj);
        assert_eq!(cj["spec"]["concurrencyPolicy"], "Allow");
        assert_eq!(cj["spec"]["suspend"], false);
        assert_eq!(cj["spec"]["successfulJobsHistoryLimit"], 3);
        assert_eq!(cj["spec"]["failedJobsHistoryLimit"], 1);
        assert!(
            s.validate(&cx(), &cj).is_empty(),
            "{:?}",
            messages(&s.validate(&cx(), &cj))
        );
        cj["spec"]["schedule"] = json!("* * *");
        assert_eq!(
            messages(&s.validate(&cx(), &cj)),
            vec!["spec.schedule: Invalid value: \"* * *\": expected exactly 5 fields, found 3: [* * *]"]
        );
        assert!(parse_cron("@hourly").is_ok());
        assert!(parse_cron("0 24 * * *").is_err());
    }
}
