//! MutatingAdmissionWebhook and ValidatingAdmissionWebhook (admissionregistration.k8s.io/v1),
//! as upstream's `k8s.io/apiserver/pkg/admission/plugin/webhook`: the configurations are read
//! from the watch cache on every request (a change applies at once), sorted by name; a
//! webhook is called when a rule matches the request (operations, apiGroups, apiVersions,
//! resources with subresources, scope), its namespaceSelector and objectSelector match and
//! its matchConditions hold. The call is an AdmissionReview v1; the answer allows, denies (the
//! error upstream builds: `admission webhook "x" denied the request: ...`) or, for mutating
//! webhooks, patches (JSONPatch) the object. Mutating webhooks run in order, and those with
//! `reinvocationPolicy: IfNeeded` once more when a later one changed the object; validating
//! webhooks run concurrently. A webhook that cannot be called fails the request unless its
//! `failurePolicy` is `Ignore`.
//!
//! `matchPolicy: Equivalent` matches only the request's own version: Rudder serves each
//! resource in one version, so there is no equivalent one to convert to.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use rudder_api::selector::labels::Selector;
use rudder_api::status::{ApiError, Cause, ErrorDetails, StatusReason};
use rudder_registry::{object, Admission, Attributes, Entry, Operation, WatchCache};
use serde_json::{json, Value};

use crate::webhook::{ClientConfig, WebhookClient, WebhookError, DEFAULT_TIMEOUT};

/// Which of the two plugins.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Mutating,
    Validating,
}

/// One of the two webhook admission plugins.
pub struct WebhookAdmission {
    phase: Phase,
    cache: Arc<WatchCache>,
    /// The store prefix of the phase's configurations.
    config_prefix: String,
    namespaces_prefix: String,
    client: WebhookClient,
    programs: Arc<Programs>,
}

/// Compiled CEL expressions by their text, so a configuration's matchConditions are parsed
/// once, not per request (configurations change rarely; the map is bounded).
#[derive(Default)]
pub struct Programs(std::sync::Mutex<std::collections::HashMap<String, Arc<rudder_cel::Program>>>);

impl Programs {
    const MAX: usize = 4096;

    pub fn get(&self, expr: &str) -> Result<Arc<rudder_cel::Program>, String> {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(p) = map.get(expr) {
            return Ok(p.clone());
        }
        let program = Arc::new(rudder_cel::Program::compile(expr).map_err(|e| e.to_string())?);
        if map.len() >= Self::MAX {
            map.clear();
        }
        map.insert(expr.to_string(), program.clone());
        Ok(program)
    }
}

/// Upstream's matchConditions: the webhook is skipped when any condition is false; an
/// evaluation error (with none false) fails the call.
fn conditions_hold(
    programs: &Programs,
    conditions: &[(String, String)],
    vars: &rudder_cel::Vars,
) -> Result<bool, String> {
    let mut errors = Vec::new();
    for (name, expr) in conditions {
        match programs
            .get(expr)
            .and_then(|p| p.eval_bool(vars).map_err(|e| e.to_string()))
        {
            Ok(true) => {}
            Ok(false) => return Ok(false),
            Err(e) => errors.push(format!("expression '{name}' resulted in error: {e}")),
        }
    }
    match errors.is_empty() {
        true => Ok(true),
        false => Err(errors.join(", ")),
    }
}

impl WebhookAdmission {
    pub fn new(
        phase: Phase,
        cache: Arc<WatchCache>,
        config_prefix: String,
        namespaces_prefix: String,
        client: WebhookClient,
        programs: Arc<Programs>,
    ) -> WebhookAdmission {
        WebhookAdmission {
            phase,
            cache,
            config_prefix,
            namespaces_prefix,
            client,
            programs,
        }
    }

    /// Every webhook of every configuration, configurations sorted by name as upstream.
    fn hooks(&self) -> Vec<Hook> {
        let (items, _) = self
            .cache
            .list(&self.config_prefix, &format!("{}/", self.config_prefix));
        let mut configs: Vec<Value> = items.iter().map(|o| o.value()).collect();
        configs.sort_by(|a, b| object::name(a).cmp(object::name(b)));
        let mut out = Vec::new();
        for c in &configs {
            for (i, w) in c
                .get("webhooks")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .enumerate()
            {
                out.push(Hook::from_json(object::name(c), i, w));
            }
        }
        out
    }

    fn namespace_labels(&self, ns: &str) -> Option<BTreeMap<String, String>> {
        let key = format!("{}/{ns}", self.namespaces_prefix);
        self.cache
            .get(&self.namespaces_prefix, &key)
            .map(|o| labels_of(&o.value()))
    }

    /// Whether `hook` applies to the request (rules and selectors; matchConditions later).
    fn matches(
        &self,
        hook: &Hook,
        attrs: &Attributes<'_>,
        obj: Option<&Value>,
    ) -> Result<bool, ApiError> {
        if !hook.rules.iter().any(|r| r.matches(attrs)) {
            return Ok(false);
        }
        let object_labels = |v: Option<&Value>| v.map(labels_of).unwrap_or_default();
        let obj_sel = hook.selector(&hook.object_selector)?;
        if !(obj_sel.matches(&object_labels(obj))
            || attrs.old.is_some_and(|o| obj_sel.matches(&labels_of(o))))
        {
            return Ok(false);
        }
        let ns_sel = hook.selector(&hook.namespace_selector)?;
        let info = &attrs.entry.info;
        if info.group.is_empty() && info.plural == "namespaces" {
            // A namespace is matched by its own labels.
            let own = obj.or(attrs.old).map(labels_of).unwrap_or_default();
            return Ok(ns_sel.matches(&own));
        }
        if !info.namespaced || ns_sel.is_empty() {
            return Ok(true);
        }
        match self.namespace_labels(attrs.namespace) {
            Some(labels) => Ok(ns_sel.matches(&labels)),
            None => Err(ApiError::internal_error(format!(
                "namespace \"{}\" not found",
                attrs.namespace
            ))),
        }
    }

    /// Runs one webhook; `Ok(None)` when it does not apply.
    async fn call(
        &self,
        hook: &Hook,
        attrs: &Attributes<'_>,
        obj: Option<&Value>,
    ) -> Result<Option<Value>, ApiError> {
        if !self.matches(hook, attrs, obj)? {
            return Ok(None);
        }
        let review = review_request(attrs, obj);
        if !hook.match_conditions.is_empty() {
            let null = Value::Null;
            let old = attrs
                .old
                .filter(|_| attrs.operation != Operation::Create)
                .unwrap_or(&null);
            let vars = rudder_cel::Vars::new()
                .with_json("object", obj.unwrap_or(&null))
                .with_json("oldObject", old)
                .with_json("request", &review["request"]);
            match conditions_hold(&self.programs, &hook.match_conditions, &vars) {
                Ok(true) => {}
                Ok(false) => return Ok(None),
                Err(e) => {
                    return self.failed(hook, format!("failed evaluating match conditions: {e}"))
                }
            }
        }
        if attrs.dry_run && !hook.side_effects_free_on_dry_run() {
            return Err(ApiError::bad_request(format!(
                "admission webhook {:?} does not support dry run",
                hook.name
            )));
        }
        let cfg = match &hook.client_config {
            Ok(c) => c,
            Err(e) => return self.failed(hook, format!("failed to call webhook: {e}")),
        };
        let answer = match self.client.post_json(cfg, &review, hook.timeout).await {
            Ok(a) => a,
            Err(WebhookError::Call(e)) | Err(WebhookError::Config(e)) => {
                return self.failed(hook, format!("failed to call webhook: {e}"))
            }
        };
        let uid = review["request"]["uid"].as_str().unwrap_or_default();
        let Some(resp) = answer.get("response").filter(|r| r.is_object()) else {
            return self.failed(hook, "received empty webhook response".into());
        };
        if resp.get("uid").and_then(Value::as_str) != Some(uid) {
            return self.failed(
                hook,
                format!(
                    "expected response.uid={uid:?}, got {:?}",
                    resp.get("uid").and_then(Value::as_str).unwrap_or("")
                ),
            );
        }
        for w in resp
            .get("warnings")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            attrs.warnings.push(w.to_string());
        }
        // Upstream files a webhook's audit annotations under its name.
        if let Some(m) = resp.get("auditAnnotations").and_then(Value::as_object) {
            for (k, v) in m {
                if let Some(v) = v.as_str() {
                    attrs.audit.add(format!("{}/{k}", hook.name), v);
                }
            }
        }
        if resp.get("allowed").and_then(Value::as_bool) != Some(true) {
            return Err(denied(&hook.name, resp.get("status")));
        }
        Ok(Some(resp.clone()))
    }

    /// A webhook that could not be called or answered nonsense: upstream's
    /// `ErrCallingWebhook`, fatal unless the failure policy is Ignore.
    fn failed(&self, hook: &Hook, reason: String) -> Result<Option<Value>, ApiError> {
        let msg = format!("failed calling webhook {:?}: {reason}", hook.name);
        if hook.ignore_failures {
            tracing::warn!(webhook = %hook.name, "{msg} (failurePolicy Ignore)");
            return Ok(None);
        }
        Err(ApiError::internal_error(msg))
    }
}

/// Upstream's `webhookerrors.ToStatusErr`: the webhook's status with the message prefixed.
fn denied(name: &str, status: Option<&Value>) -> ApiError {
    let status = status.cloned().unwrap_or_else(|| json!({}));
    let code = status
        .get("code")
        .and_then(Value::as_u64)
        .and_then(|c| u16::try_from(c).ok())
        .filter(|c| *c >= 400)
        .unwrap_or(400);
    let by = format!("admission webhook {name:?} denied the request");
    let message = status.get("message").and_then(Value::as_str).unwrap_or("");
    let reason = status.get("reason").and_then(Value::as_str).unwrap_or("");
    let message = if !message.is_empty() {
        format!("{by}: {message}")
    } else if !reason.is_empty() {
        format!("{by}: {reason}")
    } else {
        format!("{by} without explanation")
    };
    let mut err = ApiError::new_generic(code, StatusReason::parse(reason), message);
    if let Some(d) = status.get("details").filter(|d| d.is_object()) {
        let s = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        err = err.with_details(ErrorDetails {
            name: s(d, "name"),
            group: s(d, "group"),
            kind: s(d, "kind"),
            uid: s(d, "uid"),
            causes: d
                .get("causes")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(|c| Cause {
                    reason: s(c, "reason"),
                    message: s(c, "message"),
                    field: s(c, "field"),
                })
                .collect(),
            retry_after_seconds: d
                .get("retryAfterSeconds")
                .and_then(Value::as_i64)
                .and_then(|r| i32::try_from(r).ok())
                .unwrap_or(0),
        });
    }
    err
}

pub(crate) fn labels_of(v: &Value) -> BTreeMap<String, String> {
    v.pointer("/metadata/labels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

/// The AdmissionReview v1 upstream sends (`CreateAdmissionObjects`).
pub(crate) fn review_request(attrs: &Attributes<'_>, obj: Option<&Value>) -> Value {
    let info = &attrs.entry.info;
    let kind = json!({"group": info.group, "version": info.version, "kind": info.kind});
    let resource = json!({"group": info.group, "version": info.version, "resource": info.plural});
    let mut req = json!({
        "uid": uuid::Uuid::new_v4().to_string(),
        "kind": kind,
        "resource": resource,
        "requestKind": kind,
        "requestResource": resource,
        "name": attrs.name,
        "operation": attrs.operation.as_str(),
        "userInfo": user_info(attrs),
        "object": obj.cloned().unwrap_or(Value::Null),
        "oldObject": attrs.old.cloned().unwrap_or(Value::Null),
        "dryRun": attrs.dry_run,
        "options": attrs.options.cloned().unwrap_or(Value::Null),
    });
    if !attrs.namespace.is_empty() {
        req["namespace"] = json!(attrs.namespace);
    }
    if !attrs.subresource.is_empty() {
        req["subResource"] = json!(attrs.subresource);
        req["requestSubResource"] = json!(attrs.subresource);
    }
    json!({"kind": "AdmissionReview", "apiVersion": "admission.k8s.io/v1", "request": req})
}

fn user_info(attrs: &Attributes<'_>) -> Value {
    match attrs.user {
        Some(u) => crate::review::user_info_value(&u.name, &u.uid, &u.groups, &u.extra),
        None => json!({}),
    }
}

/// One webhook of a configuration, as read.
struct Hook {
    name: String,
    /// The configuration object the webhook is listed in.
    configuration: String,
    client_config: Result<ClientConfig, WebhookError>,
    rules: Vec<Rule>,
    namespace_selector: Option<Value>,
    object_selector: Option<Value>,
    match_conditions: Vec<(String, String)>,
    ignore_failures: bool,
    side_effects: String,
    timeout: Duration,
    reinvoke_if_needed: bool,
}

impl Hook {
    fn from_json(config: &str, index: usize, w: &Value) -> Hook {
        let s = |k: &str| w.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        let name = match s("name") {
            n if n.is_empty() => format!("{config}/{index}"),
            n => n,
        };
        Hook {
            name,
            configuration: config.to_string(),
            client_config: ClientConfig::from_json(w.get("clientConfig").unwrap_or(&Value::Null)),
            rules: w
                .get("rules")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(Rule::from_json)
                .collect(),
            namespace_selector: w.get("namespaceSelector").cloned(),
            object_selector: w.get("objectSelector").cloned(),
            match_conditions: w
                .get("matchConditions")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(|c| {
                    let f = |k: &str| c.get(k).and_then(Value::as_str).unwrap_or("").to_string();
                    (f("name"), f("expression"))
                })
                .collect(),
            // Upstream's v1 default is Fail.
            ignore_failures: s("failurePolicy") == "Ignore",
            side_effects: s("sideEffects"),
            timeout: w
                .get("timeoutSeconds")
                .and_then(Value::as_u64)
                .filter(|t| (1..=30).contains(t))
                .map(Duration::from_secs)
                .unwrap_or(DEFAULT_TIMEOUT),
            reinvoke_if_needed: s("reinvocationPolicy") == "IfNeeded",
        }
    }

    /// A selector field: absent or null matches everything (upstream defaults `{}`).
    fn selector(&self, v: &Option<Value>) -> Result<Selector, ApiError> {
        let ls: LabelSelector = match v {
            None | Some(Value::Null) => return Ok(Selector::everything()),
            Some(v) => serde_json::from_value(v.clone())
                .map_err(|e| ApiError::internal_error(format!("webhook {:?}: {e}", self.name)))?,
        };
        Selector::from_label_selector(Some(&ls))
            .map_err(|e| ApiError::internal_error(format!("webhook {:?}: {}", self.name, e.0)))
    }

    fn side_effects_free_on_dry_run(&self) -> bool {
        matches!(self.side_effects.as_str(), "None" | "NoneOnDryRun")
    }
}

/// A `RuleWithOperations`.
struct Rule {
    operations: Vec<String>,
    groups: Vec<String>,
    versions: Vec<String>,
    resources: Vec<String>,
    scope: String,
}

impl Rule {
    fn from_json(v: &Value) -> Rule {
        let list = |k: &str| -> Vec<String> {
            v.get(k)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        };
        Rule {
            operations: list("operations"),
            groups: list("apiGroups"),
            versions: list("apiVersions"),
            resources: list("resources"),
            scope: v
                .get("scope")
                .and_then(Value::as_str)
                .unwrap_or("*")
                .to_string(),
        }
    }

    /// Upstream's `rules.Matcher`.
    fn matches(&self, attrs: &Attributes<'_>) -> bool {
        let info = &attrs.entry.info;
        let any = |list: &[String], want: &str| list.iter().any(|x| x == "*" || x == want);
        let scope_ok = match self.scope.as_str() {
            "Cluster" => !info.namespaced,
            "Namespaced" => info.namespaced,
            _ => true,
        };
        scope_ok
            && any(&self.operations, attrs.operation.as_str())
            && any(&self.groups, &info.group)
            && any(&self.versions, &info.version)
            && self
                .resources
                .iter()
                .any(|r| resource_matches(r, &info.plural, attrs.subresource))
    }
}

/// Whether a `RuleWithOperations` (JSON) matches the request.
pub(crate) fn rule_matches(rule: &Value, attrs: &Attributes<'_>) -> bool {
    Rule::from_json(rule).matches(attrs)
}

/// `pods`, `pods/status`, `*/status`, `pods/*`, `*` (no subresources), `*/*` (everything).
fn resource_matches(rule: &str, resource: &str, sub: &str) -> bool {
    let (r, s) = match rule.split_once('/') {
        Some((r, s)) => (r, Some(s)),
        None => (rule, None),
    };
    let res_ok = r == "*" || r == resource;
    let sub_ok = match s {
        None => sub.is_empty(),
        Some("*") => true,
        Some(s) => s == sub,
    };
    res_ok && sub_ok
}

/// The exemption upstream makes so a broken webhook cannot lock the cluster out of fixing it:
/// webhooks never see webhook configurations or admission policies.
fn exempt(entry: &Entry) -> bool {
    entry.info.group == "admissionregistration.k8s.io"
}

/// Which mutating webhook ran in which round and whether it changed the object, as upstream
/// records it on the audit event.
fn mutation_annotation(
    attrs: &Attributes<'_>,
    round: usize,
    index: usize,
    hook: &Hook,
    mutated: bool,
) {
    if attrs.audit.enabled() {
        attrs.audit.add(
            format!("mutation.webhook.admission.k8s.io/round_{round}_index_{index}"),
            json!({"configuration": hook.configuration, "webhook": hook.name, "mutated": mutated})
                .to_string(),
        );
    }
}

fn apply_patch(resp: &Value, obj: &mut Value) -> Result<bool, String> {
    let Some(patch) = resp
        .get("patch")
        .and_then(Value::as_str)
        .filter(|p| !p.is_empty())
    else {
        return Ok(false);
    };
    match resp.get("patchType").and_then(Value::as_str) {
        Some("JSONPatch") => {}
        Some(other) => return Err(format!("unsupported patch type {other:?}")),
        None => return Err("patchType must be set when a patch is returned".into()),
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(patch)
        .map_err(|e| format!("invalid patch: {e}"))?;
    let patch: json_patch::Patch =
        serde_json::from_slice(&bytes).map_err(|e| format!("invalid patch: {e}"))?;
    let mut patched = obj.clone();
    json_patch::patch(&mut patched, &patch).map_err(|e| e.to_string())?;
    if object::api_version(&patched) != object::api_version(obj)
        || object::kind(&patched) != object::kind(obj)
    {
        return Err("the patch changed the object's apiVersion or kind".into());
    }
    let changed = patched != *obj;
    *obj = patched;
    Ok(changed)
}

#[async_trait::async_trait]
impl Admission for WebhookAdmission {
    fn handles(&self, entry: &Entry) -> bool {
        !exempt(entry)
    }

    async fn mutate(&self, attrs: &Attributes<'_>, obj: &mut Value) -> Result<(), ApiError> {
        if self.phase != Phase::Mutating {
            return Ok(());
        }
        let hooks = self.hooks();
        if hooks.is_empty() {
            return Ok(());
        }
        // What each IfNeeded webhook last saw, for the reinvocation round.
        let mut seen: Vec<Option<Value>> = vec![None; hooks.len()];
        let mut changed_after_reinvocable = false;
        for (i, hook) in hooks.iter().enumerate() {
            let before = hook.reinvoke_if_needed.then(|| obj.clone());
            let Some(resp) = self.call(hook, attrs, Some(obj)).await? else {
                continue;
            };
            if let Some(b) = before {
                seen[i] = Some(b);
            }
            match apply_patch(&resp, obj) {
                Ok(changed) => {
                    mutation_annotation(attrs, 0, i, hook, changed);
                    changed_after_reinvocable |= changed && seen[..i].iter().any(Option::is_some)
                }
                Err(e) => {
                    self.failed(hook, e)?;
                }
            }
        }
        if !changed_after_reinvocable {
            return Ok(());
        }
        for (i, hook) in hooks.iter().enumerate() {
            if seen[i].as_ref().is_none_or(|s| s == obj) {
                continue;
            }
            let Some(resp) = self.call(hook, attrs, Some(obj)).await? else {
                continue;
            };
            match apply_patch(&resp, obj) {
                Ok(changed) => mutation_annotation(attrs, 1, i, hook, changed),
                Err(e) => {
                    self.failed(hook, e)?;
                }
            }
        }
        Ok(())
    }

    async fn validate(&self, attrs: &Attributes<'_>, obj: &Value) -> Result<(), ApiError> {
        if self.phase != Phase::Validating {
            return Ok(());
        }
        let hooks = self.hooks();
        if hooks.is_empty() {
            return Ok(());
        }
        let obj = (attrs.operation != Operation::Delete).then_some(obj);
        let results =
            futures::future::join_all(hooks.iter().map(|h| self.call(h, attrs, obj))).await;
        results.into_iter().try_for_each(|r| r.map(|_| ()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resources_and_subresources_match_as_upstream() {
        assert!(resource_matches("pods", "pods", ""));
        assert!(!resource_matches("pods", "pods", "status"));
        assert!(resource_matches("pods/status", "pods", "status"));
        assert!(resource_matches("*/status", "deployments", "status"));
        assert!(resource_matches("pods/*", "pods", "exec"));
        assert!(resource_matches("pods/*", "pods", ""));
        assert!(resource_matches("*", "configmaps", ""));
        assert!(!resource_matches("*", "configmaps", "status"));
        assert!(resource_matches("*/*", "configmaps", "status"));
    }

    #[test]
    fn denials_read_as_upstream() {
        let e = denied(
            "deny.example.com",
            Some(&json!({"message": "no", "code": 403})),
        );
        assert_eq!(e.code, 403);
        assert_eq!(
            e.message,
            "admission webhook \"deny.example.com\" denied the request: no"
        );
        let e = denied("d", None);
        assert_eq!(e.code, 400);
        assert_eq!(
            e.message,
            "admission webhook \"d\" denied the request without explanation"
        );
        let e = denied("d", Some(&json!({"reason": "Forbidden", "code": 200})));
        assert_eq!((e.code, e.reason), (400, StatusReason::Forbidden));
        assert_eq!(
            e.message,
            "admission webhook \"d\" denied the request: Forbidden"
        );
    }

    #[test]
    fn json_patches_apply_and_keep_the_kind() {
        let mut obj = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}});
        let patch = base64::engine::general_purpose::STANDARD
            .encode(r#"[{"op":"add","path":"/metadata/labels","value":{"x":"y"}}]"#);
        let resp = json!({"patchType": "JSONPatch", "patch": patch});
        assert_eq!(apply_patch(&resp, &mut obj), Ok(true));
        assert_eq!(obj["metadata"]["labels"]["x"], "y");
        let bad = base64::engine::general_purpose::STANDARD
            .encode(r#"[{"op":"replace","path":"/kind","value":"Secret"}]"#);
        let resp = json!({"patchType": "JSONPatch", "patch": bad});
        assert!(apply_patch(&resp, &mut obj).is_err());
        assert!(apply_patch(&json!({"patch": patch}), &mut obj).is_err());
    }
}
