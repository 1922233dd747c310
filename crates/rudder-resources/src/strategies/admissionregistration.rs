//! ValidatingAdmissionPolicy, MutatingAdmissionPolicy and their bindings
//! (admissionregistration.k8s.io/v1): upstream's defaults (`SetDefaults_*`) and validation
//! (`pkg/apis/admissionregistration/validation`), including the compile check of every CEL
//! expression against the variables its environment declares, so a policy reading an
//! undeclared variable is refused when it is written (`compilation failed: ERROR: <input>:1:1:
//! undeclared reference to 'x' (in container '')`) rather than failing each request it matches.

use rudder_api::field::{BadValue, ErrorList, FieldError, Path};
use rudder_api::validation::object_meta::validate_label_selector;
use rudder_api::validation::{is_dns1035_label, is_dns1123_subdomain, is_qualified_name};
use rudder_registry::{OpCx, Strategy};
use serde_json::{json, Value};

use super::util::{bad_value, default_field, each_mut, label_selector, list_at, str_at};

/// Which object of the group a strategy serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    ValidatingPolicy,
    ValidatingBinding,
    MutatingPolicy,
    MutatingBinding,
}

pub(crate) struct AdmissionPolicyStrategy(pub(crate) Kind);

impl Strategy for AdmissionPolicyStrategy {
    /// Upstream `SetDefaults_ValidatingAdmissionPolicySpec` / `_MutatingAdmissionPolicySpec`
    /// (failurePolicy `Fail`), `SetDefaults_MatchResources` and `SetDefaults_Rule`.
    fn default(&self, obj: &mut Value) {
        let Some(spec) = obj.get_mut("spec").filter(|s| s.is_object()) else {
            return;
        };
        match self.0 {
            Kind::ValidatingPolicy | Kind::MutatingPolicy => {
                default_field(spec, "failurePolicy", json!("Fail"));
                default_match_resources(spec, "matchConstraints");
            }
            Kind::ValidatingBinding | Kind::MutatingBinding => {
                default_match_resources(spec, "matchResources");
            }
        }
    }

    fn validate(&self, _cx: &OpCx, obj: &Value) -> ErrorList {
        validate(self.0, obj, None)
    }

    fn validate_update(&self, _cx: &OpCx, new: &Value, old: &Value) -> ErrorList {
        validate(self.0, new, Some(old))
    }
}

fn default_match_resources(spec: &mut Value, key: &str) {
    let Some(m) = spec.get_mut(key).filter(|m| m.is_object()) else {
        return;
    };
    default_field(m, "matchPolicy", json!("Equivalent"));
    default_field(m, "namespaceSelector", json!({}));
    default_field(m, "objectSelector", json!({}));
    for rules in ["resourceRules", "excludeResourceRules"] {
        each_mut(m, rules, |r| default_field(r, "scope", json!("*")));
    }
}

fn validate(kind: Kind, obj: &Value, old: Option<&Value>) -> ErrorList {
    let mut errs = ErrorList::new();
    let spec = obj.get("spec").unwrap_or(&Value::Null);
    let path = Path::new("spec");
    match kind {
        Kind::ValidatingPolicy | Kind::MutatingPolicy => {
            let old_spec = old.and_then(|o| o.get("spec"));
            policy_spec(kind, obj, spec, old_spec, &path, &mut errs);
        }
        Kind::ValidatingBinding | Kind::MutatingBinding => {
            binding_spec(kind, spec, &path, &mut errs)
        }
    }
    errs
}

const FAILURE_POLICIES: [&str; 2] = ["Fail", "Ignore"];
const MATCH_POLICIES: [&str; 2] = ["Equivalent", "Exact"];
const OPERATIONS: [&str; 5] = ["*", "CONNECT", "CREATE", "DELETE", "UPDATE"];
/// A mutation cannot apply to a delete (upstream's `supportedMutatingOperations`).
const MUTATING_OPERATIONS: [&str; 4] = ["*", "CONNECT", "CREATE", "UPDATE"];
const SCOPES: [&str; 3] = ["*", "Cluster", "Namespaced"];
const VALIDATION_REASONS: [&str; 3] = ["Forbidden", "Invalid", "RequestEntityTooLarge"];
const VALIDATION_ACTIONS: [&str; 3] = ["Audit", "Deny", "Warn"];
const MAX_AUDIT_ANNOTATIONS: usize = 20;
const MAX_AUDIT_ANNOTATION_VALUE_EXPRESSION_LENGTH: usize = 5 * 1024;

/// The variables an expression of a policy may read: upstream's admission CEL environment
/// always declares `object`, `oldObject`, `request` and `namespaceObject`; `params` when the
/// policy has a paramKind, `authorizer` where the expression kind allows it, and `variables`
/// when the expression is compiled with the policy's composition variables.
#[derive(Clone, Copy)]
struct Declared {
    params: bool,
    authorizer: bool,
    variables: bool,
    /// The mutation library's types (`Object{...}`, `JSONPatch{...}`), which only a
    /// MutatingAdmissionPolicy's mutations construct.
    objects: bool,
}

impl Declared {
    fn names(self) -> Vec<&'static str> {
        let mut names = vec!["object", "oldObject", "request", "namespaceObject"];
        if self.params {
            names.push("params");
        }
        if self.authorizer {
            names.push("authorizer");
        }
        if self.variables {
            names.push("variables");
        }
        if self.objects {
            names.extend(["Object", "JSONPatch"]);
        }
        names
    }
}

/// Upstream `validateCELCondition`: the expression compiles in its environment.
fn compile(expr: &str, declared: Declared, path: &Path, errs: &mut ErrorList) {
    if let Err(e) = rudder_cel::Program::compile_with(expr, &declared.names()) {
        errs.push(FieldError::invalid(
            path,
            expr,
            format!("compilation failed: {e}"),
        ));
    }
}

fn policy_spec(
    kind: Kind,
    obj: &Value,
    spec: &Value,
    old_spec: Option<&Value>,
    path: &Path,
    errs: &mut ErrorList,
) {
    match spec.get("failurePolicy").filter(|v| !v.is_null()) {
        None => errs.push(FieldError::required(&path.child("failurePolicy"), "")),
        Some(v) if !FAILURE_POLICIES.contains(&v.as_str().unwrap_or("")) => {
            errs.push(FieldError::not_supported(
                &path.child("failurePolicy"),
                bad_value(Some(v)),
                &FAILURE_POLICIES,
            ))
        }
        Some(_) => {}
    }
    let has_params = spec.get("paramKind").is_some_and(|p| !p.is_null());
    if let Some(pk) = spec.get("paramKind").filter(|p| !p.is_null()) {
        param_kind(pk, &path.child("paramKind"), errs);
    }
    let mc_path = path.child("matchConstraints");
    match spec.get("matchConstraints").filter(|m| !m.is_null()) {
        None => errs.push(FieldError::required(&mc_path, "")),
        Some(mc) => {
            match_resources(mc, &mc_path, errs);
            // The rules give the expressions their types upstream.
            if list_at(mc, "resourceRules").is_empty() {
                errs.push(FieldError::required(&mc_path.child("resourceRules"), ""));
            }
            if kind == Kind::MutatingPolicy {
                mutable_operations(mc, &mc_path, errs);
            }
        }
    }
    // Unchanged conditions (and paramKind) are not checked again on update, so a policy stored
    // before a check existed can still be updated (upstream's `ignoreMatchConditions`).
    let conditions_unchanged = old_spec.is_some_and(|o| {
        o.get("matchConditions") == spec.get("matchConditions")
            && o.get("paramKind") == spec.get("paramKind")
    });
    if !conditions_unchanged {
        match_conditions(spec, has_params, &path.child("matchConditions"), errs);
    }
    let composition = !list_at(spec, "variables").is_empty();
    let env = Declared {
        params: has_params,
        authorizer: true,
        variables: composition,
        objects: false,
    };
    for (i, v) in list_at(spec, "variables").iter().enumerate() {
        variable(v, env, &path.child("variables").index(i), errs);
    }
    match kind {
        Kind::ValidatingPolicy => {
            validations_and_annotations(obj, spec, env, path, errs);
        }
        Kind::MutatingPolicy => {
            let mutations = list_at(spec, "mutations");
            if mutations.is_empty() {
                errs.push(FieldError::required(
                    &path.child("mutations"),
                    "mutations must contain at least one item",
                ));
            }
            for (i, m) in mutations.iter().enumerate() {
                mutation(m, env, &path.child("mutations").index(i), errs);
            }
            let rp = path.child("reinvocationPolicy");
            match spec.get("reinvocationPolicy").filter(|v| !v.is_null()) {
                None => errs.push(FieldError::required(&rp, "")),
                Some(v) if !matches!(v.as_str(), Some("Never" | "IfNeeded")) => errs.push(
                    FieldError::not_supported(&rp, bad_value(Some(v)), &["IfNeeded", "Never"]),
                ),
                Some(_) => {}
            }
        }
        Kind::ValidatingBinding | Kind::MutatingBinding => {}
    }
}

fn validations_and_annotations(
    obj: &Value,
    spec: &Value,
    env: Declared,
    path: &Path,
    errs: &mut ErrorList,
) {
    let validations = list_at(spec, "validations");
    let annotations = list_at(spec, "auditAnnotations");
    if validations.is_empty() && annotations.is_empty() {
        let msg = "validations or auditAnnotations must contain at least one item";
        errs.push(FieldError::required(&path.child("validations"), msg));
        errs.push(FieldError::required(&path.child("auditAnnotations"), msg));
        return;
    }
    for (i, v) in validations.iter().enumerate() {
        validation(v, env, &path.child("validations").index(i), errs);
    }
    let ap = path.child("auditAnnotations");
    if annotations.len() > MAX_AUDIT_ANNOTATIONS {
        errs.push(FieldError::invalid(
            &ap,
            bad_value(spec.get("auditAnnotations")),
            format!("must not have more than {MAX_AUDIT_ANNOTATIONS} auditAnnotations"),
        ));
    }
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    let mut keys: Vec<&str> = Vec::new();
    for (i, a) in annotations.iter().enumerate() {
        let at = ap.index(i);
        let key = str_at(a, "key");
        if name.is_empty() {
            errs.push(FieldError::invalid(
                &at.child("key"),
                key,
                "requires metadata.name be non-empty",
            ));
        } else {
            // The annotation is published as `<policy name>/<key>`.
            let full = format!("{name}/{key}");
            for msg in is_qualified_name(&full) {
                errs.push(FieldError::invalid(&at.child("key"), full.as_str(), msg));
            }
        }
        let value = str_at(a, "valueExpression");
        let vp = at.child("valueExpression");
        if value.trim().is_empty() {
            errs.push(FieldError::required(
                &vp,
                "valueExpression is not specified",
            ));
        } else if value.trim().len() > MAX_AUDIT_ANNOTATION_VALUE_EXPRESSION_LENGTH {
            errs.push(FieldError::required(
                &vp,
                format!(
                    "must not exceed {MAX_AUDIT_ANNOTATION_VALUE_EXPRESSION_LENGTH} bytes in length"
                ),
            ));
        } else {
            compile(value.trim(), env, &vp, errs);
        }
        if keys.contains(&key) {
            errs.push(FieldError::duplicate(&at.child("key"), key));
        }
        keys.push(key);
    }
}

/// Upstream `validateValidation`.
fn validation(v: &Value, env: Declared, path: &Path, errs: &mut ErrorList) {
    let expr = str_at(v, "expression");
    if expr.trim().is_empty() {
        errs.push(FieldError::required(
            &path.child("expression"),
            "expression is not specified",
        ));
    } else {
        compile(expr, env, &path.child("expression"), errs);
    }
    let me = str_at(v, "messageExpression");
    if !me.is_empty() && me.trim().is_empty() {
        errs.push(FieldError::invalid(
            &path.child("messageExpression"),
            me,
            "must be non-empty if specified",
        ));
    } else if !me.trim().is_empty() {
        // The authorizer is not declared for messages.
        let message_env = Declared {
            authorizer: false,
            ..env
        };
        compile(me, message_env, &path.child("messageExpression"), errs);
    }
    let msg = str_at(v, "message");
    if !msg.is_empty() && msg.trim().is_empty() {
        errs.push(FieldError::invalid(
            &path.child("message"),
            msg,
            "message must be non-empty if specified",
        ));
    } else if msg.trim().contains(['\n', '\r']) {
        errs.push(FieldError::invalid(
            &path.child("message"),
            msg,
            "message must not contain line breaks",
        ));
    }
    if let Some(r) = v.get("reason").filter(|r| !r.is_null()) {
        if !VALIDATION_REASONS.contains(&r.as_str().unwrap_or("")) {
            errs.push(FieldError::not_supported(
                &path.child("reason"),
                bad_value(Some(r)),
                &VALIDATION_REASONS,
            ));
        }
    }
}

/// Upstream `validateVariable`.
fn variable(v: &Value, env: Declared, path: &Path, errs: &mut ErrorList) {
    let name = str_at(v, "name");
    if name.trim().is_empty() {
        errs.push(FieldError::required(
            &path.child("name"),
            "name is not specified",
        ));
    } else if !is_cel_identifier(name) {
        errs.push(FieldError::invalid(
            &path.child("name"),
            name,
            "name is not a valid CEL identifier",
        ));
    }
    let expr = str_at(v, "expression");
    if expr.trim().is_empty() {
        errs.push(FieldError::required(
            &path.child("expression"),
            "expression is not specified",
        ));
    } else {
        compile(expr, env, &path.child("expression"), errs);
    }
}

/// Upstream `isCELIdentifier`: `[_a-zA-Z][_a-zA-Z0-9]*`, not a reserved word.
fn is_cel_identifier(name: &str) -> bool {
    const RESERVED: [&str; 21] = [
        "true",
        "false",
        "null",
        "in",
        "as",
        "break",
        "const",
        "continue",
        "else",
        "for",
        "function",
        "if",
        "import",
        "let",
        "loop",
        "package",
        "namespace",
        "return",
        "var",
        "void",
        "while",
    ];
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
        && !RESERVED.contains(&name)
}

/// Upstream `validateMatchConditions`: at most 64, named uniquely, each compiling in the
/// environment without composition variables.
fn match_conditions(spec: &Value, has_params: bool, path: &Path, errs: &mut ErrorList) {
    let conditions = list_at(spec, "matchConditions");
    if conditions.len() > 64 {
        errs.push(FieldError::too_many(
            path,
            Some(conditions.len() as i64),
            64,
        ));
    }
    let env = Declared {
        params: has_params,
        authorizer: true,
        variables: false,
        objects: false,
    };
    let mut names: Vec<&str> = Vec::new();
    for (i, c) in conditions.iter().enumerate() {
        let at = path.index(i);
        let expr = str_at(c, "expression");
        if expr.trim().is_empty() {
            errs.push(FieldError::required(&at.child("expression"), ""));
        } else {
            compile(expr.trim(), env, &at.child("expression"), errs);
        }
        let name = str_at(c, "name");
        if name.is_empty() {
            errs.push(FieldError::required(&at.child("name"), ""));
        } else {
            for msg in is_qualified_name(name) {
                errs.push(FieldError::invalid(&at.child("name"), name, msg));
            }
            if names.contains(&name) {
                errs.push(FieldError::duplicate(&at.child("name"), name));
            }
            names.push(name);
        }
    }
}

/// Upstream `validateMutation`: the patchType union and its expression.
fn mutation(m: &Value, env: Declared, path: &Path, errs: &mut ErrorList) {
    let apply = m.get("applyConfiguration").filter(|v| !v.is_null());
    let json_patch = m.get("jsonPatch").filter(|v| !v.is_null());
    let (ap, jp) = (path.child("applyConfiguration"), path.child("jsonPatch"));
    let expression = |v: &Value, at: &Path, errs: &mut ErrorList| {
        let expr = str_at(v, "expression");
        if expr.trim().is_empty() {
            errs.push(FieldError::required(&at.child("expression"), ""));
        } else {
            let env = Declared {
                objects: true,
                ..env
            };
            compile(expr, env, &at.child("expression"), errs);
        }
    };
    match m.get("patchType").and_then(Value::as_str) {
        None | Some("") => errs.push(FieldError::required(&path.child("patchType"), "")),
        Some(kind @ ("ApplyConfiguration" | "JSONPatch")) => {
            // The field the patch type names must be set, the other one must not.
            let (wanted, wanted_at, other, other_at) = if kind == "ApplyConfiguration" {
                (apply, &ap, json_patch, &jp)
            } else {
                (json_patch, &jp, apply, &ap)
            };
            match wanted {
                None => errs.push(FieldError::required(
                    wanted_at,
                    format!("must be specified when patchType is {kind}"),
                )),
                Some(w) => expression(w, wanted_at, errs),
            }
            if other.is_some() {
                errs.push(FieldError::invalid(
                    other_at,
                    BadValue::Raw("{}".into()),
                    format!("must not be specified when patchType is {kind}"),
                ));
            }
        }
        Some(other) => errs.push(FieldError::not_supported(
            &path.child("patchType"),
            other,
            &["ApplyConfiguration", "JSONPatch"],
        )),
    }
}

/// Upstream `validateParamKind`.
fn param_kind(pk: &Value, path: &Path, errs: &mut ErrorList) {
    let api_version = str_at(pk, "apiVersion");
    let ap = path.child("apiVersion");
    if api_version.is_empty() {
        errs.push(FieldError::required(&ap, ""));
    } else if api_version.matches('/').count() > 1 {
        errs.push(FieldError::invalid(
            &ap,
            api_version,
            format!("unexpected GroupVersion string: {api_version}"),
        ));
    } else {
        let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
        if !group.is_empty() {
            let e = is_dns1123_subdomain(group);
            if !e.is_empty() {
                errs.push(FieldError::invalid(&ap, group, e.join(",")));
            }
        }
        if version.is_empty() {
            errs.push(FieldError::invalid(
                &ap,
                api_version,
                "version must be specified",
            ));
        } else {
            let e = is_dns1035_label(version);
            if !e.is_empty() {
                errs.push(FieldError::invalid(&ap, version, e.join(",")));
            }
        }
    }
    let kind = str_at(pk, "kind");
    if kind.is_empty() {
        errs.push(FieldError::required(&path.child("kind"), ""));
    } else {
        let e = is_dns1035_label(&kind.to_lowercase());
        if !e.is_empty() {
            errs.push(FieldError::invalid(
                &path.child("kind"),
                kind,
                format!(
                    "may have mixed case, but should otherwise match: {}",
                    e.join(",")
                ),
            ));
        }
    }
}

/// Upstream `validateMatchResources` (after defaulting, so the selectors and matchPolicy are
/// set unless a client sent them null).
fn match_resources(m: &Value, path: &Path, errs: &mut ErrorList) {
    match m.get("matchPolicy").filter(|v| !v.is_null()) {
        None => errs.push(FieldError::required(&path.child("matchPolicy"), "")),
        Some(v) if !MATCH_POLICIES.contains(&v.as_str().unwrap_or("")) => {
            errs.push(FieldError::not_supported(
                &path.child("matchPolicy"),
                bad_value(Some(v)),
                &MATCH_POLICIES,
            ))
        }
        Some(_) => {}
    }
    for key in ["namespaceSelector", "objectSelector"] {
        match m.get(key).filter(|v| !v.is_null()) {
            None => errs.push(FieldError::required(&path.child(key), "")),
            Some(s) => match label_selector(Some(s)) {
                Some(ls) => errs.extend(validate_label_selector(Some(&ls), &path.child(key))),
                None => errs.push(FieldError::invalid(
                    &path.child(key),
                    bad_value(Some(s)),
                    "must be a label selector",
                )),
            },
        }
    }
    for key in ["resourceRules", "excludeResourceRules"] {
        for (i, r) in list_at(m, key).iter().enumerate() {
            named_rule(r, &path.child(key).index(i), errs);
        }
    }
}

/// Upstream `validateNamedRuleWithOperations` and `validateRuleWithOperations`.
fn named_rule(r: &Value, path: &Path, errs: &mut ErrorList) {
    let mut names: Vec<&str> = Vec::new();
    for (i, n) in strings(r, "resourceNames").into_iter().enumerate() {
        let at = path.child("resourceNames").index(i);
        for msg in path_segment_errors(n) {
            errs.push(FieldError::invalid(&at, n, msg));
        }
        if names.contains(&n) {
            errs.push(FieldError::duplicate(&at, n));
        }
        names.push(n);
    }
    let ops = wildcard_list(r, "operations", "operations", path, errs);
    for (i, op) in ops.iter().enumerate() {
        if !OPERATIONS.contains(op) {
            errs.push(FieldError::not_supported(
                &path.child("operations").index(i),
                *op,
                &OPERATIONS,
            ));
        }
    }
    wildcard_list(r, "apiGroups", "API groups", path, errs);
    let versions = wildcard_list(r, "apiVersions", "API versions", path, errs);
    for (i, v) in versions.iter().enumerate() {
        if v.is_empty() {
            errs.push(FieldError::required(
                &path.child("apiVersions").index(i),
                "",
            ));
        }
    }
    resources(&strings(r, "resources"), &path.child("resources"), errs);
    if let Some(s) = r.get("scope").filter(|s| !s.is_null()) {
        if !SCOPES.contains(&s.as_str().unwrap_or("")) {
            errs.push(FieldError::not_supported(
                &path.child("scope"),
                bad_value(Some(s)),
                &SCOPES,
            ));
        }
    }
}

/// A rule's list `key`: required, and `*` only alone (upstream's messages name the list as
/// `what`).
fn wildcard_list<'a>(
    r: &'a Value,
    key: &str,
    what: &str,
    path: &Path,
    errs: &mut ErrorList,
) -> Vec<&'a str> {
    let items = strings(r, key);
    if items.is_empty() {
        errs.push(FieldError::required(&path.child(key), ""));
    }
    if items.len() > 1 && items.contains(&"*") {
        errs.push(FieldError::invalid(
            &path.child(key),
            owned(&items).as_slice(),
            format!("if '*' is present, must not specify other {what}"),
        ));
    }
    items
}

/// Upstream `validateResources`: `x`, `x/y`, `x/*`, `*/y`, `*` and `*/*` without overlaps.
fn resources(resources: &[&str], path: &Path, errs: &mut ErrorList) {
    if resources.is_empty() {
        errs.push(FieldError::required(path, ""));
    }
    let mut with_wildcard_sub: Vec<&str> = Vec::new();
    let mut sub_with_wildcard_res: Vec<&str> = Vec::new();
    let (mut double, mut single, mut plain) = (false, false, false);
    for (i, rs) in resources.iter().enumerate() {
        if rs.is_empty() {
            errs.push(FieldError::required(&path.index(i), ""));
            continue;
        }
        double |= *rs == "*/*";
        single |= *rs == "*";
        let Some((res, sub)) = rs.split_once('/') else {
            plain = *rs != "*";
            continue;
        };
        if with_wildcard_sub.contains(&res) {
            errs.push(FieldError::invalid(
                &path.index(i),
                *rs,
                format!("if '{res}/*' is present, must not specify {rs}"),
            ));
        }
        if sub_with_wildcard_res.contains(&sub) {
            errs.push(FieldError::invalid(
                &path.index(i),
                *rs,
                format!("if '*/{sub}' is present, must not specify {rs}"),
            ));
        }
        if sub == "*" {
            with_wildcard_sub.push(res);
        }
        if res == "*" {
            sub_with_wildcard_res.push(sub);
        }
    }
    if resources.len() > 1 && double {
        errs.push(FieldError::invalid(
            path,
            owned(resources).as_slice(),
            "if '*/*' is present, must not specify other resources",
        ));
    }
    if single && plain {
        errs.push(FieldError::invalid(
            path,
            owned(resources).as_slice(),
            "if '*' is present, must not specify other resources without subresources",
        ));
    }
}

/// "It is only possible to mutate create and update requests": a mutating policy's (or
/// binding's) rules may not name DELETE. Upstream reports it on the list, without an index.
fn mutable_operations(m: &Value, path: &Path, errs: &mut ErrorList) {
    let at = path.child("resourceRules").child("operations");
    for r in list_at(m, "resourceRules") {
        for op in strings(r, "operations") {
            if !MUTATING_OPERATIONS.contains(&op) {
                errs.push(FieldError::not_supported(&at, op, &MUTATING_OPERATIONS));
            }
        }
    }
}

fn binding_spec(kind: Kind, spec: &Value, path: &Path, errs: &mut ErrorList) {
    let name = str_at(spec, "policyName");
    if name.is_empty() {
        errs.push(FieldError::required(&path.child("policyName"), ""));
    } else {
        for msg in is_dns1123_subdomain(name) {
            errs.push(FieldError::invalid(&path.child("policyName"), name, msg));
        }
    }
    if let Some(r) = spec.get("paramRef").filter(|r| !r.is_null()) {
        param_ref(r, &path.child("paramRef"), errs);
    }
    if let Some(m) = spec.get("matchResources").filter(|m| !m.is_null()) {
        match kind {
            // Upstream validates the validating binding's field under this misspelt path.
            Kind::ValidatingBinding => match_resources(m, &path.child("matchResouces"), errs),
            _ => {
                let at = path.child("matchResources");
                match_resources(m, &at, errs);
                mutable_operations(m, &at, errs);
            }
        }
    }
    if kind == Kind::ValidatingBinding {
        validation_actions(spec, &path.child("validationActions"), errs);
    }
}

/// Upstream `validateParamRef`.
fn param_ref(r: &Value, path: &Path, errs: &mut ErrorList) {
    let name = str_at(r, "name");
    let selector = r.get("selector").filter(|s| !s.is_null());
    if !name.is_empty() {
        for msg in path_segment_errors(name) {
            errs.push(FieldError::invalid(&path.child("name"), name, msg));
        }
        if selector.is_some() {
            errs.push(FieldError::forbidden(
                &path.child("name"),
                "name and selector are mutually exclusive",
            ));
        }
    }
    if let Some(s) = selector {
        if let Some(ls) = label_selector(Some(s)) {
            errs.extend(validate_label_selector(Some(&ls), &path.child("selector")));
        }
        if !name.is_empty() {
            errs.push(FieldError::forbidden(
                &path.child("selector"),
                "name and selector are mutually exclusive",
            ));
        }
    }
    if name.is_empty() && selector.is_none() {
        errs.push(FieldError::required(
            path,
            "one of name or selector must be specified",
        ));
    }
    match str_at(r, "parameterNotFoundAction") {
        "" => errs.push(FieldError::required(
            &path.child("parameterNotFoundAction"),
            "",
        )),
        "Deny" | "Allow" => {}
        other => errs.push(FieldError::not_supported(
            &path.child("parameterNotFoundAction"),
            other,
            &["Deny", "Allow"],
        )),
    }
}

/// Upstream `validateValidationActions`.
fn validation_actions(spec: &Value, path: &Path, errs: &mut ErrorList) {
    let actions = strings(spec, "validationActions");
    let mut seen: Vec<&str> = Vec::new();
    for (i, a) in actions.iter().enumerate() {
        if !VALIDATION_ACTIONS.contains(a) {
            errs.push(FieldError::not_supported(
                &path.index(i),
                *a,
                &VALIDATION_ACTIONS,
            ));
        }
        if seen.contains(a) {
            errs.push(FieldError::duplicate(&path.index(i), *a));
        }
        seen.push(a);
    }
    if seen.contains(&"Deny") && seen.contains(&"Warn") {
        errs.push(FieldError::invalid(
            path,
            owned(&actions).as_slice(),
            "must not contain both Deny and Warn (repeating the same validation failure information in the API response and headers serves no purpose)",
        ));
    }
    if seen.is_empty() {
        errs.push(FieldError::required(
            path,
            "at least one validation action is required",
        ));
    }
}

/// Upstream `path.ValidatePathSegmentName`: a name that can be a URL path segment.
fn path_segment_errors(name: &str) -> Vec<String> {
    if name == "." || name == ".." {
        return vec![format!("may not be '{name}'")];
    }
    ["/", "%"]
        .iter()
        .filter(|bad| name.contains(*bad))
        .map(|bad| format!("may not contain '{bad}'"))
        .collect()
}

fn strings<'a>(v: &'a Value, key: &str) -> Vec<&'a str> {
    list_at(v, key).iter().filter_map(Value::as_str).collect()
}

fn owned(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(kind: Kind, mut obj: Value) -> Vec<String> {
        let s = AdmissionPolicyStrategy(kind);
        s.default(&mut obj);
        validate(kind, &obj, None)
            .0
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    fn vap(spec: Value) -> Value {
        json!({"metadata": {"name": "demo"}, "spec": spec})
    }

    fn rules() -> Value {
        json!({"resourceRules": [{"apiGroups": [""], "apiVersions": ["v1"],
            "operations": ["CREATE", "UPDATE"], "resources": ["configmaps"]}]})
    }

    #[test]
    fn a_valid_policy_is_defaulted_and_accepted() {
        let mut obj = vap(json!({"matchConstraints": rules(),
            "variables": [{"name": "n", "expression": "object.metadata.name"}],
            "validations": [{"expression": "variables.n.all(c, c != 'x') && authorizer.group('').resource('pods').check('get').allowed()",
                "messageExpression": "'bad ' + variables.n"}],
            "auditAnnotations": [{"key": "name", "valueExpression": "object.metadata.name"}]}));
        AdmissionPolicyStrategy(Kind::ValidatingPolicy).default(&mut obj);
        assert_eq!(obj["spec"]["failurePolicy"], "Fail");
        assert_eq!(obj["spec"]["matchConstraints"]["matchPolicy"], "Equivalent");
        assert_eq!(
            obj["spec"]["matchConstraints"]["namespaceSelector"],
            json!({})
        );
        assert_eq!(
            obj["spec"]["matchConstraints"]["resourceRules"][0]["scope"],
            "*"
        );
        assert!(validate(Kind::ValidatingPolicy, &obj, None).0.is_empty());
    }

    #[test]
    fn undeclared_references_are_refused_on_their_field() {
        let errs = errors(
            Kind::ValidatingPolicy,
            vap(json!({"matchConstraints": rules(),
                "matchConditions": [{"name": "c", "expression": "variables.x == 1"}],
                "validations": [
                    {"expression": "x == 1"},
                    {"expression": "params.a == 1"},
                    {"expression": "true", "messageExpression": "authorizer.path('/').check('get').reason()"},
                    {"expression": "object.all(k, k != '')"}]})),
        );
        assert_eq!(
            errs,
            [
                "spec.matchConditions[0].expression: Invalid value: \"variables.x == 1\": compilation failed: \
                 ERROR: <input>:1:1: undeclared reference to 'variables' (in container '')\n | variables.x == 1\n | ^",
                "spec.validations[0].expression: Invalid value: \"x == 1\": compilation failed: \
                 ERROR: <input>:1:1: undeclared reference to 'x' (in container '')\n | x == 1\n | ^",
                "spec.validations[1].expression: Invalid value: \"params.a == 1\": compilation failed: \
                 ERROR: <input>:1:1: undeclared reference to 'params' (in container '')\n | params.a == 1\n | ^",
                "spec.validations[2].messageExpression: Invalid value: \"authorizer.path('/').check('get').reason()\": \
                 compilation failed: ERROR: <input>:1:1: undeclared reference to 'authorizer' (in container '')\
                 \n | authorizer.path('/').check('get').reason()\n | ^",
            ]
        );
        // With a paramKind, params are declared.
        let errs = errors(
            Kind::ValidatingPolicy,
            vap(json!({"matchConstraints": rules(),
                "paramKind": {"apiVersion": "v1", "kind": "ConfigMap"},
                "validations": [{"expression": "params.data.a == object.data.a"}]})),
        );
        assert!(errs.is_empty(), "{errs:?}");
    }

    #[test]
    fn required_fields_and_enums_read_as_upstream() {
        let errs = errors(
            Kind::ValidatingPolicy,
            json!({"metadata": {"name": "p"}, "spec": {"failurePolicy": "Maybe"}}),
        );
        assert_eq!(
            errs,
            [
                "spec.failurePolicy: Unsupported value: \"Maybe\": supported values: \"Fail\", \"Ignore\"",
                "spec.matchConstraints: Required value",
                "spec.validations: Required value: validations or auditAnnotations must contain at least one item",
                "spec.auditAnnotations: Required value: validations or auditAnnotations must contain at least one item",
            ]
        );
        let errs = errors(
            Kind::ValidatingBinding,
            json!({"metadata": {"name": "b"}, "spec": {"policyName": "p",
                "paramRef": {"name": "a", "selector": {}},
                "validationActions": ["Deny", "Warn", "Deny"]}}),
        );
        assert_eq!(
            errs,
            [
                "spec.paramRef.name: Forbidden: name and selector are mutually exclusive",
                "spec.paramRef.selector: Forbidden: name and selector are mutually exclusive",
                "spec.paramRef.parameterNotFoundAction: Required value",
                "spec.validationActions[2]: Duplicate value: \"Deny\"",
                "spec.validationActions: Invalid value: [\"Deny\",\"Warn\",\"Deny\"]: must not contain both \
                 Deny and Warn (repeating the same validation failure information in the API response and headers \
                 serves no purpose)",
            ]
        );
        // A rule's lists: required, and `*` only alone.
        let errs = errors(
            Kind::ValidatingPolicy,
            vap(
                json!({"matchConstraints": {"resourceRules": [{"apiGroups": ["*", "apps"],
                "apiVersions": ["v1", "*"], "operations": [], "resources": ["pods"]}]},
                "validations": [{"expression": "true"}]}),
            ),
        );
        assert_eq!(
            errs,
            [
                "spec.matchConstraints.resourceRules[0].operations: Required value",
                "spec.matchConstraints.resourceRules[0].apiGroups: Invalid value: [\"*\",\"apps\"]: if '*' is \
                 present, must not specify other API groups",
                "spec.matchConstraints.resourceRules[0].apiVersions: Invalid value: [\"v1\",\"*\"]: if '*' is \
                 present, must not specify other API versions",
            ]
        );
    }

    #[test]
    fn mutating_policies_check_their_mutations() {
        let errs = errors(
            Kind::MutatingPolicy,
            vap(
                json!({"matchConstraints": {"resourceRules": [{"apiGroups": [""], "apiVersions": ["v1"],
                    "operations": ["CREATE", "DELETE"], "resources": ["pods"]}]},
                "reinvocationPolicy": "Sometimes",
                "mutations": [
                    {"patchType": "ApplyConfiguration", "applyConfiguration": {"expression":
                        "Object{metadata: Object.metadata{labels: {'a': string(params)}}}"}},
                    {"patchType": "JSONPatch", "jsonPatch": {"expression":
                        "[JSONPatch{op: 'add', path: '/metadata/labels/' + jsonpatch.escapeKey('a/b'), value: variables.v}]"}},
                    {"patchType": "JSONPatch"},
                    {"patchType": "Strategic"},
                    {"patchType": "ApplyConfiguration", "applyConfiguration": {"expression":
                        "Object{metadata: Object.metadata{labels: {'a': 'b'}}}"},
                        "jsonPatch": {"expression": "[]"}}]}),
            ),
        );
        assert_eq!(
            errs,
            [
                "spec.matchConstraints.resourceRules.operations: Unsupported value: \"DELETE\": supported values: \
                 \"*\", \"CONNECT\", \"CREATE\", \"UPDATE\"",
                "spec.mutations[0].applyConfiguration.expression: Invalid value: \"Object{metadata: \
                 Object.metadata{labels: {'a': string(params)}}}\": compilation failed: ERROR: <input>:1:55: \
                 undeclared reference to 'params' (in container '')\n | Object{metadata: Object.metadata{labels: \
                 {'a': string(params)}}}\n | ......................................................^",
                "spec.mutations[1].jsonPatch.expression: Invalid value: \"[JSONPatch{op: 'add', path: \
                 '/metadata/labels/' + jsonpatch.escapeKey('a/b'), value: variables.v}]\": compilation failed: \
                 ERROR: <input>:1:86: undeclared reference to 'variables' (in container '')\n | [JSONPatch{op: \
                 'add', path: '/metadata/labels/' + jsonpatch.escapeKey('a/b'), value: variables.v}]\n | \
                 .....................................................................................^",
                "spec.mutations[2].jsonPatch: Required value: must be specified when patchType is JSONPatch",
                "spec.mutations[3].patchType: Unsupported value: \"Strategic\": supported values: \
                 \"ApplyConfiguration\", \"JSONPatch\"",
                "spec.mutations[4].jsonPatch: Invalid value: {}: must not be specified when patchType is \
                 ApplyConfiguration",
                "spec.reinvocationPolicy: Unsupported value: \"Sometimes\": supported values: \"IfNeeded\", \"Never\"",
            ]
        );
    }

    #[test]
    fn unchanged_match_conditions_are_not_checked_again_on_update() {
        let old = vap(json!({"failurePolicy": "Fail", "matchConstraints": rules(),
            "matchConditions": [{"name": "c", "expression": "legacy == 1"}],
            "validations": [{"expression": "true"}]}));
        let mut new = old.clone();
        new["spec"]["validations"][0]["expression"] = json!("false");
        let s = AdmissionPolicyStrategy(Kind::ValidatingPolicy);
        s.default(&mut new);
        let mut old_d = old.clone();
        s.default(&mut old_d);
        assert!(validate(Kind::ValidatingPolicy, &new, Some(&old_d))
            .0
            .is_empty());
        assert_eq!(validate(Kind::ValidatingPolicy, &new, None).0.len(), 1);
    }
}
