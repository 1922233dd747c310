//! ValidatingAdmissionPolicy (admissionregistration.k8s.io/v1), as upstream's
//! `k8s.io/apiserver/pkg/admission/plugin/policy/validating`: every
//! ValidatingAdmissionPolicyBinding names a policy; when the policy's `matchConstraints` and
//! the binding's `matchResources` match the request and the policy's `matchConditions` hold,
//! the policy's CEL `validations` run over `object`, `oldObject`, `request`, `params` (the
//! binding's `paramRef` resolved against the policy's `paramKind`), `namespaceObject` and
//! `variables`. A failed validation is acted on per the binding's `validationActions`: Deny
//! refuses with upstream's message (`ValidatingAdmissionPolicy 'p' with binding 'b' denied
//! request: ...`), Warn adds a warning; Audit has no audit annotation to write to yet, and
//! neither do `auditAnnotations`. Policies and bindings are read from the watch cache on each
//! request. `status.typeChecking` stays empty: Rudder's CEL has no type checker.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use rudder_api::selector::labels::Selector;
use rudder_api::status::{ApiError, Cause, ErrorDetails, StatusReason};
use rudder_registry::{object, Admission, Attributes, Entry, Operation, Registry, WatchCache};
use serde_json::{json, Value};

use crate::admission_webhook::{labels_of, review_request, rule_matches, Programs};

pub struct PolicyAdmission {
    cache: Arc<WatchCache>,
    registry: Arc<Registry>,
    policies_prefix: String,
    bindings_prefix: String,
    namespaces_prefix: String,
    programs: Arc<Programs>,
}

/// Why a policy could not be evaluated (upstream applies its failurePolicy to these).
struct Failure(String);

impl PolicyAdmission {
    pub fn new(
        cache: Arc<WatchCache>,
        registry: Arc<Registry>,
        policies_prefix: String,
        bindings_prefix: String,
        namespaces_prefix: String,
        programs: Arc<Programs>,
    ) -> PolicyAdmission {
        PolicyAdmission {
            cache,
            registry,
            policies_prefix,
            bindings_prefix,
            namespaces_prefix,
            programs,
        }
    }

    fn list(&self, prefix: &str) -> Vec<Value> {
        let (items, _) = self.cache.list(prefix, &format!("{prefix}/"));
        let mut v: Vec<Value> = items.iter().map(|o| o.value()).collect();
        v.sort_by(|a, b| object::name(a).cmp(object::name(b)));
        v
    }

    fn namespace(&self, ns: &str) -> Option<Value> {
        let key = format!("{}/{ns}", self.namespaces_prefix);
        self.cache
            .get(&self.namespaces_prefix, &key)
            .map(|o| o.value())
    }

    /// upstream's `MatchResources`: namespace and object selectors, resource rules minus the
    /// excluded ones.
    fn resources_match(
        &self,
        m: Option<&Value>,
        attrs: &Attributes<'_>,
        obj: Option<&Value>,
        ns_labels: &BTreeMap<String, String>,
    ) -> Result<bool, Failure> {
        let Some(m) = m.filter(|m| m.is_object()) else {
            return Ok(true);
        };
        let selector = |k: &str| -> Result<Selector, Failure> {
            match m.get(k) {
                None | Some(Value::Null) => Ok(Selector::everything()),
                Some(v) => {
                    let ls: LabelSelector =
                        serde_json::from_value(v.clone()).map_err(|e| Failure(e.to_string()))?;
                    Selector::from_label_selector(Some(&ls)).map_err(|e| Failure(e.0))
                }
            }
        };
        let obj_sel = selector("objectSelector")?;
        let obj_ok = obj_sel.matches(&obj.map(labels_of).unwrap_or_default())
            || attrs.old.is_some_and(|o| obj_sel.matches(&labels_of(o)));
        let info = &attrs.entry.info;
        let is_namespace = info.group.is_empty() && info.plural == "namespaces";
        // Cluster-scoped objects other than namespaces ignore the namespace selector.
        let ns_ok =
            !(info.namespaced || is_namespace) || selector("namespaceSelector")?.matches(ns_labels);
        let named = |r: &Value| {
            let names = str_list(r.get("resourceNames"));
            rule_matches(r, attrs) && (names.is_empty() || names.contains(&attrs.name))
        };
        let rules = |k: &str| {
            m.get(k)
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
        };
        let included = rules("resourceRules").iter().any(named);
        let excluded = rules("excludeResourceRules").iter().any(named);
        Ok(obj_ok && ns_ok && included && !excluded)
    }

    fn params(
        &self,
        policy: &Value,
        binding: &Value,
        ns: &str,
    ) -> Result<Option<Vec<Value>>, Failure> {
        let Some(kind) = policy.pointer("/spec/paramKind").filter(|k| k.is_object()) else {
            return Ok(None);
        };
        let Some(r) = binding.pointer("/spec/paramRef").filter(|r| r.is_object()) else {
            return Err(Failure(
                "no paramRef in the binding of a policy with a paramKind".into(),
            ));
        };
        let api_version = kind.get("apiVersion").and_then(Value::as_str).unwrap_or("");
        let kind_name = kind.get("kind").and_then(Value::as_str).unwrap_or("");
        let (group, version) = match api_version.split_once('/') {
            Some((g, v)) => (g, v),
            None => ("", api_version),
        };
        let entry = self
            .registry
            .snapshot()
            .entries()
            .iter()
            .find(|e| {
                e.info.group == group && e.info.version == version && e.info.kind == kind_name
            })
            .cloned()
            .ok_or_else(|| {
                Failure(format!(
                    "paramKind kind `{kind_name}.{api_version}` not found"
                ))
            })?;
        let s = |k: &str| r.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        // A namespaced param with no namespace named is looked up in the request's.
        let pns = match s("namespace") {
            n if !n.is_empty() => n,
            _ if entry.info.namespaced => ns.to_string(),
            _ => String::new(),
        };
        let found: Vec<Value> = if !s("name").is_empty() {
            let key = entry
                .key((!pns.is_empty()).then_some(pns.as_str()), &s("name"))
                .map_err(|e| Failure(e.message))?;
            self.cache
                .get(&entry.prefix, &key)
                .map(|o| vec![o.value()])
                .unwrap_or_default()
        } else {
            let ls: LabelSelector =
                serde_json::from_value(r.get("selector").cloned().unwrap_or_else(|| json!({})))
                    .map_err(|e| Failure(e.to_string()))?;
            let sel = Selector::from_label_selector(Some(&ls)).map_err(|e| Failure(e.0))?;
            let (items, _) = self.cache.list(
                &entry.prefix,
                &entry.list_prefix((!pns.is_empty()).then_some(pns.as_str())),
            );
            items
                .iter()
                .map(|o| o.value())
                .filter(|v| sel.matches(&labels_of(v)))
                .collect()
        };
        if found.is_empty() && s("parameterNotFoundAction") != "Allow" {
            return Err(Failure(
                "no params found for policy binding with `Deny` parameterNotFoundAction".into(),
            ));
        }
        Ok(Some(found))
    }

    /// Evaluates one policy under one binding (and one param); the failed validations as
    /// `(message, reason)`.
    fn evaluate(
        &self,
        policy: &Value,
        vars: rudder_cel::Vars,
    ) -> Result<Vec<(String, String)>, Failure> {
        let spec = &policy["spec"];
        let mut variables = Vec::new();
        for v in items(spec, "variables") {
            let name = v
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            let expr = v.get("expression").and_then(Value::as_str).unwrap_or("");
            let p = self.programs.get(expr).map_err(Failure)?;
            variables.push((name, (*p).clone()));
        }
        let vars = vars.with_variables(variables.into());
        for c in items(spec, "matchConditions") {
            let expr = c.get("expression").and_then(Value::as_str).unwrap_or("");
            let p = self.programs.get(expr).map_err(Failure)?;
            match p.eval_bool(&vars) {
                Ok(true) => {}
                Ok(false) => return Ok(vec![]),
                Err(e) => {
                    let name = c.get("name").and_then(Value::as_str).unwrap_or("");
                    return Err(Failure(format!(
                        "expression '{name}' resulted in error: {e}"
                    )));
                }
            }
        }
        let mut failed = Vec::new();
        for v in items(spec, "validations") {
            let expr = v.get("expression").and_then(Value::as_str).unwrap_or("");
            let p = self
                .programs
                .get(expr)
                .map_err(|e| Failure(format!("compilation error: {e}")))?;
            let ok = p
                .eval_bool(&vars)
                .map_err(|e| Failure(format!("expression '{expr}' resulted in error: {e}")))?;
            if ok {
                continue;
            }
            let reason = v
                .get("reason")
                .and_then(Value::as_str)
                .unwrap_or("Invalid")
                .to_string();
            let mut message = v
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            if let Some(me) = v
                .get("messageExpression")
                .and_then(Value::as_str)
                .filter(|m| !m.is_empty())
            {
                if let Ok(m) = self
                    .programs
                    .get(me)
                    .and_then(|p| p.eval_string(&vars).map_err(|e| e.to_string()))
                {
                    if !m.trim().is_empty() && !m.contains('\n') {
                        message = m;
                    }
                }
            }
            if message.is_empty() {
                message = format!("failed expression: {expr}");
            }
            failed.push((message, reason));
        }
        Ok(failed)
    }
}

fn items<'a>(v: &'a Value, key: &str) -> impl Iterator<Item = &'a Value> {
    v.get(key).and_then(Value::as_array).into_iter().flatten()
}

fn str_list(v: Option<&Value>) -> Vec<&str> {
    v.and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect()
}

fn deny(policy: &str, binding: &str, message: &str, reason: &str) -> ApiError {
    let reason = StatusReason::parse(reason);
    let code = match reason {
        StatusReason::Unauthorized => 401,
        StatusReason::Forbidden => 403,
        StatusReason::RequestEntityTooLarge => 413,
        _ => 422,
    };
    let msg = format!(
        "ValidatingAdmissionPolicy '{policy}' with binding '{binding}' denied request: {message}"
    );
    ApiError::new_generic(code, reason, msg.clone()).with_details(ErrorDetails {
        causes: vec![Cause {
            message: msg,
            ..Cause::default()
        }],
        ..ErrorDetails::default()
    })
}

#[async_trait::async_trait]
impl Admission for PolicyAdmission {
    fn handles(&self, entry: &Entry) -> bool {
        // As webhooks, policies never see the admission configuration objects.
        entry.info.group != "admissionregistration.k8s.io"
    }

    async fn validate(&self, attrs: &Attributes<'_>, obj: &Value) -> Result<(), ApiError> {
        if attrs.operation == Operation::Connect {
            return Ok(());
        }
        let bindings = self.list(&self.bindings_prefix);
        if bindings.is_empty() {
            return Ok(());
        }
        let policies = self.list(&self.policies_prefix);
        let obj = (attrs.operation != Operation::Delete).then_some(obj);
        let ns_obj = (!attrs.namespace.is_empty())
            .then(|| self.namespace(attrs.namespace))
            .flatten();
        let ns_labels = match (&ns_obj, attrs.entry.info.plural.as_str()) {
            (_, "namespaces") if attrs.entry.info.group.is_empty() => {
                obj.or(attrs.old).map(labels_of).unwrap_or_default()
            }
            (Some(n), _) => labels_of(n),
            (None, _) => BTreeMap::new(),
        };
        let review = review_request(attrs, obj);
        for binding in &bindings {
            let pname = binding
                .pointer("/spec/policyName")
                .and_then(Value::as_str)
                .unwrap_or("");
            let bname = object::name(binding);
            let Some(policy) = policies.iter().find(|p| object::name(p) == pname) else {
                continue;
            };
            let ignore = policy
                .pointer("/spec/failurePolicy")
                .and_then(Value::as_str)
                == Some("Ignore");
            let actions = str_list(binding.pointer("/spec/validationActions"));
            let fail = |f: Failure| -> Result<(), ApiError> {
                if ignore {
                    tracing::warn!(
                        policy = pname,
                        binding = bname,
                        "{} (failurePolicy Ignore)",
                        f.0
                    );
                    Ok(())
                } else {
                    Err(deny(pname, bname, &f.0, "Invalid"))
                }
            };
            let matched = self
                .resources_match(
                    policy.pointer("/spec/matchConstraints"),
                    attrs,
                    obj,
                    &ns_labels,
                )
                .and_then(|p| {
                    Ok(p && self.resources_match(
                        binding.pointer("/spec/matchResources"),
                        attrs,
                        obj,
                        &ns_labels,
                    )?)
                });
            match matched {
                Ok(true) => {}
                Ok(false) => continue,
                Err(f) => {
                    fail(f)?;
                    continue;
                }
            }
            let params = match self.params(policy, binding, attrs.namespace) {
                Ok(p) => p,
                Err(f) => {
                    fail(f)?;
                    continue;
                }
            };
            let param_list: Vec<Option<&Value>> = match &params {
                None => vec![None],
                Some(list) if list.is_empty() => vec![None],
                Some(list) => list.iter().map(Some).collect(),
            };
            for param in param_list {
                let null = Value::Null;
                let vars = rudder_cel::Vars::new()
                    .with_json("object", obj.unwrap_or(&null))
                    .with_json(
                        "oldObject",
                        attrs
                            .old
                            .filter(|_| attrs.operation != Operation::Create)
                            .unwrap_or(&null),
                    )
                    .with_json("request", &review["request"])
                    .with_json("params", param.unwrap_or(&null))
                    .with_json("namespaceObject", ns_obj.as_ref().unwrap_or(&null));
                let failed = match self.evaluate(policy, vars) {
                    Ok(f) => f,
                    Err(f) => {
                        fail(f)?;
                        continue;
                    }
                };
                for (message, reason) in failed {
                    if actions.contains(&"Warn") {
                        attrs.warnings.push(format!(
                            "Validation failed for ValidatingAdmissionPolicy '{pname}' with binding '{bname}': {message}"
                        ));
                    }
                    if actions.contains(&"Deny") {
                        return Err(deny(pname, bname, &message, &reason));
                    }
                }
            }
        }
        Ok(())
    }
}
