//! ValidatingAdmissionPolicy and MutatingAdmissionPolicy (admissionregistration.k8s.io/v1),
//! as upstream's `k8s.io/apiserver/pkg/admission/plugin/policy/{validating,mutating}`: every
//! binding names a policy; when the policy's `matchConstraints` and the binding's
//! `matchResources` match the request and the policy's `matchConditions` hold, its CEL
//! expressions run over `object`, `oldObject`, `request`, `params` (the binding's `paramRef`
//! resolved against the policy's `paramKind`), `namespaceObject`, `variables` and `authorizer`
//! (checks by the server's authorizer chain for the requesting user or a service account).
//!
//! A failed validation is acted on per the binding's `validationActions`: Deny refuses with
//! upstream's message (`<resource> "<name>" is forbidden: ValidatingAdmissionPolicy 'p' with
//! binding 'b' denied request: ...`), Warn adds a warning, Audit records the failure on the
//! request's audit event (`validation.policy.admission.k8s.io/validation_failure`), where the
//! policy's `auditAnnotations` also go (`<policy>/<key>`).
//!
//! A mutation is an apply configuration (`Object{...}`) merged into the object as server-side
//! apply merges, by the kind's schema (setting an atomic list, map or struct is refused, as
//! upstream), or a list of `JSONPatch{...}` operations. Policies run in name order, each
//! binding in name order; a policy with `reinvocationPolicy: IfNeeded` runs once more when a
//! later one changed the object. Failures under `failurePolicy: Fail` refuse the request
//! (`policy 'p' with binding 'b' denied request: ...`).
//!
//! Policies and bindings are read from the watch cache on each request. `status.typeChecking`
//! stays empty: Rudder's CEL has no type checker.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use rudder_api::selector::labels::Selector;
use rudder_api::status::{ApiError, Cause, StatusReason};
use rudder_registry::{object, Admission, Attributes, Entry, Operation, Registry, WatchCache};
use serde_json::{json, Value};

use crate::admission_webhook::{labels_of, review_request, rule_matches, Programs};

/// Which of the two policy kinds an instance runs: they share matching, params, variables
/// and the `authorizer`, and sit at two places of the chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PolicyKind {
    /// MutatingAdmissionPolicy: `mutations` change the object, before the mutating webhooks.
    Mutating,
    /// ValidatingAdmissionPolicy: `validations` admit or refuse, before the validating webhooks.
    Validating,
}

pub struct PolicyAdmission {
    kind: PolicyKind,
    cache: Arc<WatchCache>,
    /// The server's authorizer chain, which the `authorizer` variable asks.
    authz: Arc<dyn rudder_auth::Authorizer>,
    registry: Arc<Registry>,
    policies_prefix: String,
    bindings_prefix: String,
    namespaces_prefix: String,
    programs: Arc<Programs>,
}

/// Why a policy could not be evaluated (upstream applies its failurePolicy to these).
struct Failure(String);

impl PolicyAdmission {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        kind: PolicyKind,
        cache: Arc<WatchCache>,
        authz: Arc<dyn rudder_auth::Authorizer>,
        registry: Arc<Registry>,
        policies_prefix: String,
        bindings_prefix: String,
        namespaces_prefix: String,
        programs: Arc<Programs>,
    ) -> PolicyAdmission {
        PolicyAdmission {
            kind,
            cache,
            authz,
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

    /// The policy's composition variables (`variables.<name>`), compiled.
    fn variables(&self, policy: &Value) -> Result<Arc<[(String, rudder_cel::Program)]>, Failure> {
        let mut variables = Vec::new();
        for v in items(&policy["spec"], "variables") {
            let name = v
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            let expr = v.get("expression").and_then(Value::as_str).unwrap_or("");
            let p = self.programs.get(expr).map_err(Failure)?;
            variables.push((name, (*p).clone()));
        }
        Ok(variables.into())
    }

    /// Whether the policy's `matchConditions` all hold.
    fn conditions_hold(&self, policy: &Value, vars: &rudder_cel::Vars) -> Result<bool, Failure> {
        for c in items(&policy["spec"], "matchConditions") {
            let expr = c.get("expression").and_then(Value::as_str).unwrap_or("");
            let p = self.programs.get(expr).map_err(Failure)?;
            match p.eval_bool(vars) {
                Ok(true) => {}
                Ok(false) => return Ok(false),
                Err(e) => {
                    let name = c.get("name").and_then(Value::as_str).unwrap_or("");
                    return Err(Failure(format!(
                        "expression '{name}' resulted in error: {e}"
                    )));
                }
            }
        }
        Ok(true)
    }

    /// What every evaluation for one request shares.
    fn request_cx(&self, attrs: &Attributes<'_>, obj: Option<&Value>) -> RequestCx {
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
        let authorizer = rudder_cel::library::authz::AuthorizerVal::new(
            Arc::new(CelAuthorizer {
                authz: self.authz.clone(),
                user: attrs.user.map(|u| rudder_auth::UserInfo {
                    name: u.name.clone(),
                    uid: u.uid.clone(),
                    groups: u.groups.clone(),
                    extra: u.extra.clone(),
                }),
            }),
            Some(rudder_cel::library::authz::ResourceAttributes {
                group: attrs.entry.info.group.clone(),
                resource: attrs.entry.info.plural.clone(),
                subresource: attrs.subresource.to_string(),
                namespace: attrs.namespace.to_string(),
                name: attrs.name.to_string(),
                ..Default::default()
            }),
        );
        RequestCx {
            review: review_request(attrs, obj),
            ns_obj,
            ns_labels,
            authorizer,
        }
    }

    /// The variables an expression sees, with `object` as it stands.
    fn vars(
        &self,
        cx: &RequestCx,
        attrs: &Attributes<'_>,
        obj: Option<&Value>,
        param: Option<&Value>,
    ) -> rudder_cel::Vars {
        let null = Value::Null;
        rudder_cel::Vars::new()
            .with_json("object", obj.unwrap_or(&null))
            .with_json(
                "oldObject",
                attrs
                    .old
                    .filter(|_| attrs.operation != Operation::Create)
                    .unwrap_or(&null),
            )
            .with_json("request", &cx.review["request"])
            .with_json("params", param.unwrap_or(&null))
            .with_json("namespaceObject", cx.ns_obj.as_ref().unwrap_or(&null))
            .with_authorizer(cx.authorizer.clone())
    }

    /// The bound policies that apply to the request, policy by policy and binding by binding
    /// in name order (upstream's dispatcher), each with its params or why they could not be
    /// had.
    fn invocations<'a>(
        &self,
        attrs: &Attributes<'_>,
        obj: Option<&Value>,
        cx: &RequestCx,
        policies: &'a [Value],
        bindings: &'a [Value],
    ) -> Vec<Invocation<'a>> {
        let mut out = Vec::new();
        for policy in policies {
            let pname = object::name(policy);
            let ignore = policy
                .pointer("/spec/failurePolicy")
                .and_then(Value::as_str)
                == Some("Ignore");
            let policy_match = self.resources_match(
                policy.pointer("/spec/matchConstraints"),
                attrs,
                obj,
                &cx.ns_labels,
            );
            for binding in bindings
                .iter()
                .filter(|b| b.pointer("/spec/policyName").and_then(Value::as_str) == Some(pname))
            {
                let params = match &policy_match {
                    Err(f) => Err(Failure(f.0.clone())),
                    Ok(false) => continue,
                    Ok(true) => match self.resources_match(
                        binding.pointer("/spec/matchResources"),
                        attrs,
                        obj,
                        &cx.ns_labels,
                    ) {
                        Err(f) => Err(f),
                        Ok(false) => continue,
                        // No paramKind: one evaluation without params; params not found
                        // under `Allow`: none at all.
                        Ok(true) => {
                            self.params(policy, binding, attrs.namespace)
                                .map(|p| match p {
                                    None => vec![None],
                                    Some(list) => list.into_iter().map(Some).collect(),
                                })
                        }
                    },
                };
                out.push(Invocation {
                    policy,
                    pname,
                    bname: object::name(binding),
                    binding,
                    ignore,
                    params,
                });
            }
        }
        out
    }

    /// Evaluates one validating policy under one binding (and one param): the failed
    /// validations and the audit annotations.
    fn evaluate(&self, policy: &Value, vars: rudder_cel::Vars) -> Result<Evaluation, Failure> {
        let spec = &policy["spec"];
        let vars = vars.with_variables(self.variables(policy)?);
        if !self.conditions_hold(policy, &vars)? {
            return Ok(Evaluation::default());
        }
        let mut failed = Vec::new();
        for (index, v) in items(spec, "validations").enumerate() {
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
            failed.push(Failed {
                index,
                message,
                reason,
            });
        }
        let mut annotations = Vec::new();
        for a in items(spec, "auditAnnotations") {
            let key = a.get("key").and_then(Value::as_str).unwrap_or("");
            let expr = a
                .get("valueExpression")
                .and_then(Value::as_str)
                .unwrap_or("");
            let p = self
                .programs
                .get(expr)
                .map_err(|e| Failure(format!("compilation error: {e}")))?;
            // null leaves the annotation out, as upstream.
            match p.eval_json(&vars) {
                Ok(Value::Null) => {}
                Ok(Value::String(mut v)) => {
                    if v.len() > MAX_AUDIT_VALUE {
                        let mut end = MAX_AUDIT_VALUE;
                        while !v.is_char_boundary(end) {
                            end -= 1;
                        }
                        v.truncate(end);
                    }
                    annotations.push((key.to_string(), v));
                }
                Ok(other) => {
                    return Err(Failure(format!(
                        "valueExpression '{expr}' resulted in unsupported return type: {}. Return type must be either string or null.",
                        cel_type_name(&other)
                    )))
                }
                Err(e) => {
                    return Err(Failure(format!(
                        "valueExpression '{expr}' resulted in error: {e}"
                    )))
                }
            }
        }
        Ok(Evaluation {
            failed,
            annotations,
        })
    }

    /// Runs the bound validating policies; what they find for the audit event goes to
    /// `collector`.
    fn check(
        &self,
        attrs: &Attributes<'_>,
        obj: &Value,
        collector: &mut AuditCollector,
    ) -> Result<(), ApiError> {
        if attrs.operation == Operation::Connect {
            return Ok(());
        }
        let bindings = self.list(&self.bindings_prefix);
        if bindings.is_empty() {
            return Ok(());
        }
        let policies = self.list(&self.policies_prefix);
        let obj = (attrs.operation != Operation::Delete).then_some(obj);
        let cx = self.request_cx(attrs, obj);
        for inv in self.invocations(attrs, obj, &cx, &policies, &bindings) {
            let (pname, bname) = (inv.pname, inv.bname);
            let fail = |f: Failure| -> Result<(), ApiError> {
                if inv.ignore {
                    tracing::warn!(
                        policy = pname,
                        binding = bname,
                        "{} (failurePolicy Ignore)",
                        f.0
                    );
                    Ok(())
                } else {
                    Err(deny(attrs, obj, pname, bname, &f.0, "Invalid"))
                }
            };
            let params = match inv.params {
                Ok(p) => p,
                Err(f) => {
                    fail(f)?;
                    continue;
                }
            };
            let actions = str_list(inv.binding.pointer("/spec/validationActions"));
            for param in &params {
                let vars = self.vars(&cx, attrs, obj, param.as_ref());
                let evaluation = match self.evaluate(inv.policy, vars) {
                    Ok(e) => e,
                    Err(f) => {
                        fail(f)?;
                        continue;
                    }
                };
                for (key, value) in evaluation.annotations {
                    collector
                        .annotations
                        .entry((pname.to_string(), key))
                        .or_default()
                        .insert(value);
                }
                for f in evaluation.failed {
                    if actions.contains(&"Audit") {
                        collector.failures.push(json!({
                            "message": f.message,
                            "policy": pname,
                            "binding": bname,
                            "expressionIndex": f.index,
                            "validationActions": actions,
                        }));
                    }
                    if actions.contains(&"Warn") {
                        attrs.warnings.push(format!(
                            "Validation failed for ValidatingAdmissionPolicy '{pname}' with binding '{bname}': {}",
                            f.message
                        ));
                    }
                    if actions.contains(&"Deny") {
                        return Err(deny(attrs, obj, pname, bname, &f.message, &f.reason));
                    }
                }
            }
        }
        Ok(())
    }

    /// Runs one bound mutating policy's mutations, in order, for each of its params; whether
    /// the object changed.
    fn mutate_with(
        &self,
        attrs: &Attributes<'_>,
        cx: &RequestCx,
        inv: &Invocation<'_>,
        obj: &mut Value,
    ) -> Result<bool, ApiError> {
        // A create names its object in the body only.
        let name = match attrs.name {
            "" => object::name(obj).to_string(),
            n => n.to_string(),
        };
        let fail = |f: Failure| -> Result<(), ApiError> {
            if inv.ignore {
                tracing::warn!(
                    policy = inv.pname,
                    binding = inv.bname,
                    "{} (failurePolicy Ignore)",
                    f.0
                );
                Ok(())
            } else {
                Err(policy_denied(attrs, &name, inv.pname, inv.bname, &f.0))
            }
        };
        let params = match &inv.params {
            Ok(p) => p,
            Err(f) => {
                fail(Failure(f.0.clone()))?;
                return Ok(false);
            }
        };
        let before = obj.clone();
        for param in params {
            let variables = match self.variables(inv.policy) {
                Ok(v) => v,
                Err(f) => {
                    fail(f)?;
                    continue;
                }
            };
            let vars = self
                .vars(cx, attrs, Some(obj), param.as_ref())
                .with_variables(variables.clone());
            match self.conditions_hold(inv.policy, &vars) {
                Ok(true) => {}
                Ok(false) => continue,
                Err(f) => {
                    fail(f)?;
                    continue;
                }
            }
            for m in items(&inv.policy["spec"], "mutations") {
                // Each mutation sees the object as the previous one left it.
                let vars = self
                    .vars(cx, attrs, Some(obj), param.as_ref())
                    .with_variables(variables.clone());
                match self.apply_mutation(m, &vars, obj) {
                    Ok(patched) => *obj = patched,
                    Err(f) => fail(f)?,
                }
            }
        }
        Ok(*obj != before)
    }

    /// One mutation's result: an apply configuration merged into the object as server-side
    /// apply merges (atomic parts may not be set), or a JSON Patch applied to it.
    fn apply_mutation(
        &self,
        m: &Value,
        vars: &rudder_cel::Vars,
        obj: &Value,
    ) -> Result<Value, Failure> {
        let patch_type = m.get("patchType").and_then(Value::as_str).unwrap_or("");
        let at = match patch_type {
            "ApplyConfiguration" => "/applyConfiguration/expression",
            "JSONPatch" => "/jsonPatch/expression",
            other => return Err(Failure(format!("unsupported patch type {other:?}"))),
        };
        let expr = m.pointer(at).and_then(Value::as_str).unwrap_or("");
        let program = self
            .programs
            .get(expr)
            .map_err(|e| Failure(format!("compilation error: {e}")))?;
        let value = program
            .eval(vars)
            .map_err(|e| Failure(format!("expression '{expr}' resulted in error: {e}")))?;
        let to_json =
            |v: &rudder_cel::Value| rudder_cel::json::from_value(v).map_err(|e| Failure(e.0));
        if patch_type == "JSONPatch" {
            let ops = to_json(&value)?;
            if !ops.is_array() {
                return Err(Failure(format!(
                    "unsupported return type from JSONPatch expression: {}, expected a list of JSONPatch",
                    cel_type_name(&ops)
                )));
            }
            let patch: json_patch::Patch = serde_json::from_value(ops)
                .map_err(|e| Failure(format!("invalid JSONPatch: {e}")))?;
            let mut patched = obj.clone();
            json_patch::patch(&mut patched, &patch)
                .map_err(|e| Failure(format!("JSON Patch: {e}")))?;
            return Ok(patched);
        }
        match &value {
            rudder_cel::Value::Struct(s) if s.name() == rudder_cel::objects::OBJECT => {}
            other => {
                return Err(Failure(format!(
                    "unsupported return type from ApplyConfiguration expression: {}",
                    cel_type_name(&to_json(other).unwrap_or(Value::Null))
                )))
            }
        }
        rudder_cel::objects::check_type_names(&value)
            .map_err(|e| Failure(format!("type mismatch: {e}")))?;
        let patch = to_json(&value)?;
        let table =
            rudder_api::patch::SchemaTable::builtin().map_err(|e| Failure(e.to_string()))?;
        let schema = table
            .kind(object::api_version(obj), object::kind(obj))
            .unwrap_or_else(rudder_api::patch::TypeSchema::unknown);
        let atomics = rudder_fieldmanager::atomic_paths(&patch, schema);
        if !atomics.is_empty() {
            return Err(Failure(format!(
                "error applying patch: invalid ApplyConfiguration: may not mutate atomic arrays, maps or structs: {}",
                atomics.join(", ")
            )));
        }
        rudder_fieldmanager::merge(obj, &patch, schema)
            .map_err(|e| Failure(format!("error applying patch: failed to merge patch: {e}")))
    }
}

/// What every evaluation for one request shares.
struct RequestCx {
    review: Value,
    ns_obj: Option<Value>,
    ns_labels: BTreeMap<String, String>,
    authorizer: rudder_cel::library::authz::AuthorizerVal,
}

/// A binding of a policy that applies to the request.
struct Invocation<'a> {
    policy: &'a Value,
    pname: &'a str,
    bname: &'a str,
    binding: &'a Value,
    /// The policy's failurePolicy is Ignore.
    ignore: bool,
    /// The params to evaluate with (`None`: the policy has no paramKind); none at all when
    /// none were found under `parameterNotFoundAction: Allow`.
    params: Result<Vec<Option<Value>>, Failure>,
}

/// The `authorizer` variable's checks, answered by the server's authorizer chain for the
/// requesting user or a service account (upstream's `authorizerVal`).
struct CelAuthorizer {
    authz: Arc<dyn rudder_auth::Authorizer>,
    /// `None` for the server's own writes, which no policy's check may speak for.
    user: Option<rudder_auth::UserInfo>,
}

impl rudder_cel::library::authz::Authorizer for CelAuthorizer {
    fn authorize(
        &self,
        subject: &rudder_cel::library::authz::Subject,
        verb: &str,
        target: &rudder_cel::library::authz::Target,
    ) -> rudder_cel::library::authz::Decision {
        use rudder_cel::library::authz::{Decision, Subject, Target};
        let user = match subject {
            Subject::Requester => match &self.user {
                Some(u) => u.clone(),
                None => {
                    return Decision {
                        allowed: false,
                        reason: String::new(),
                        error: Some("no user in the request".into()),
                    }
                }
            },
            Subject::ServiceAccount { namespace, name } => rudder_auth::UserInfo::new(
                rudder_auth::rbac::service_account_username(namespace, name),
            )
            .with_groups([
                "system:serviceaccounts".to_string(),
                format!("system:serviceaccounts:{namespace}"),
            ]),
        };
        let attrs = match target {
            Target::Path(path) => rudder_auth::Attributes {
                verb: verb.to_string(),
                path: path.clone(),
                resource_request: false,
                ..Default::default()
            },
            Target::Resource(r) => rudder_auth::Attributes {
                verb: verb.to_string(),
                api_group: r.group.clone(),
                resource: r.resource.clone(),
                subresource: r.subresource.clone(),
                namespace: r.namespace.clone(),
                name: r.name.clone(),
                resource_request: true,
                ..Default::default()
            },
        };
        match self.authz.authorize(&user, &attrs) {
            rudder_auth::Decision::Allow => Decision {
                allowed: true,
                ..Default::default()
            },
            rudder_auth::Decision::NoOpinion => Decision::default(),
            rudder_auth::Decision::Deny(reason)
            | rudder_auth::Decision::NoOpinionBecause(reason) => Decision {
                allowed: false,
                reason,
                error: None,
            },
        }
    }
}

/// Upstream's `maxAuditAnnotationValueLength`.
const MAX_AUDIT_VALUE: usize = 10 * 1024;

/// A validation that did not hold.
struct Failed {
    index: usize,
    message: String,
    reason: String,
}

#[derive(Default)]
struct Evaluation {
    failed: Vec<Failed>,
    annotations: Vec<(String, String)>,
}

/// CEL's name for the type of a JSON value, for upstream's messages.
fn cel_type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null_type",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "double",
        Value::Number(_) => "int",
        Value::String(_) => "string",
        Value::Array(_) => "list",
        Value::Object(_) => "map",
    }
}

/// What one request's policies leave on its audit event (upstream's
/// `auditAnnotationCollector`): `<policy>/<key>` annotations, several bindings' distinct
/// values joined, and the failures of bindings with the Audit action.
#[derive(Default)]
struct AuditCollector {
    annotations: BTreeMap<(String, String), std::collections::BTreeSet<String>>,
    failures: Vec<Value>,
}

impl AuditCollector {
    fn publish(self, attrs: &Attributes<'_>) {
        for ((policy, key), values) in self.annotations {
            let values: Vec<String> = values.into_iter().collect();
            attrs
                .audit
                .add(format!("{policy}/{key}"), values.join(", "));
        }
        if !self.failures.is_empty() {
            attrs.audit.add(
                "validation.policy.admission.k8s.io/validation_failure",
                Value::Array(self.failures).to_string(),
            );
        }
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

/// A mutating policy that failed under failurePolicy Fail: upstream's generic dispatcher
/// answers `admission.NewForbidden` with the message replaced by `policy '<p>' with binding
/// '<b>' denied request: <error>` and the reason `Invalid`.
fn policy_denied(
    attrs: &Attributes<'_>,
    name: &str,
    policy: &str,
    binding: &str,
    message: &str,
) -> ApiError {
    let msg = format!("policy '{policy}' with binding '{binding}' denied request: {message}");
    let mut err = forbidden_with_cause(attrs, name, msg.clone(), 403, StatusReason::Invalid);
    err.message = msg;
    err
}

/// `admission.NewForbidden` for the request's object with `cause` as its error and as a
/// cause, and the given code and reason, as upstream's policy dispatchers shape denials.
fn forbidden_with_cause(
    attrs: &Attributes<'_>,
    name: &str,
    cause: String,
    code: u16,
    reason: StatusReason,
) -> ApiError {
    let mut err = ApiError::forbidden(&attrs.entry.info.group_resource(), name, &cause);
    err.code = code;
    err.reason = reason;
    err.details
        .get_or_insert_with(Default::default)
        .causes
        .push(Cause {
            message: cause,
            ..Cause::default()
        });
    err
}

/// Upstream's denial: `admission.NewForbidden` (`<resource> "<name>" is forbidden: ...`) with
/// the validation's reason, its code, and the message as a cause.
fn deny(
    attrs: &Attributes<'_>,
    obj: Option<&Value>,
    policy: &str,
    binding: &str,
    message: &str,
    reason: &str,
) -> ApiError {
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
    let name = match attrs.name {
        "" => obj.map(object::name).unwrap_or(""),
        n => n,
    };
    forbidden_with_cause(attrs, name, msg, code, reason)
}

#[async_trait::async_trait]
impl Admission for PolicyAdmission {
    fn handles(&self, entry: &Entry) -> bool {
        // As webhooks, policies never see the admission configuration objects.
        entry.info.group != "admissionregistration.k8s.io"
    }

    async fn mutate(&self, attrs: &Attributes<'_>, obj: &mut Value) -> Result<(), ApiError> {
        // Nothing to mutate on a delete or a connect.
        if self.kind != PolicyKind::Mutating
            || matches!(attrs.operation, Operation::Delete | Operation::Connect)
        {
            return Ok(());
        }
        let bindings = self.list(&self.bindings_prefix);
        if bindings.is_empty() {
            return Ok(());
        }
        let policies = self.list(&self.policies_prefix);
        let cx = self.request_cx(attrs, Some(obj));
        let invocations = self.invocations(attrs, Some(obj), &cx, &policies, &bindings);
        // Policies with reinvocationPolicy IfNeeded run once more if a later policy changed
        // the object. Upstream reinvokes them also when a mutating webhook after them changed
        // it (one reinvocation pass over policies and webhooks together); here each of the two
        // plugins reinvokes its own, so a policy does not see a webhook's later change.
        let mut ran_if_needed: Vec<usize> = Vec::new();
        let mut again: Vec<usize> = Vec::new();
        for (i, inv) in invocations.iter().enumerate() {
            if self.mutate_with(attrs, &cx, inv, obj)? {
                for j in &ran_if_needed {
                    if !again.contains(j) {
                        again.push(*j);
                    }
                }
            }
            if inv
                .policy
                .pointer("/spec/reinvocationPolicy")
                .and_then(Value::as_str)
                == Some("IfNeeded")
            {
                ran_if_needed.push(i);
            }
        }
        again.sort_unstable();
        for i in again {
            self.mutate_with(attrs, &cx, &invocations[i], obj)?;
        }
        Ok(())
    }

    async fn validate(&self, attrs: &Attributes<'_>, obj: &Value) -> Result<(), ApiError> {
        if self.kind != PolicyKind::Validating {
            return Ok(());
        }
        let mut collector = AuditCollector::default();
        let result = self.check(attrs, obj, &mut collector);
        collector.publish(attrs);
        result
    }
}
