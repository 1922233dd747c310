//! PodSecurity admission (upstream's `k8s.io/pod-security-admission`): a namespace's
//! `pod-security.kubernetes.io/{enforce,audit,warn}[-version]` labels pick a Pod Security
//! Standard (privileged, baseline, restricted) per mode. Pods that violate the `enforce` level
//! are refused with upstream's message (`pods "x" is forbidden: violates PodSecurity
//! "restricted:latest": privileged (container "c" must not set
//! securityContext.privileged=true), ...`); the `warn` level adds a warning to the response,
//! for pods and for the pod templates of workload resources (which are never refused).
//! Changing a namespace's enforce label warns about the existing pods that violate it. No
//! exemptions are configured (upstream's default).
//!
//! Every version label value is evaluated with the latest checks (Rudder carries one policy
//! version). The checks and their messages follow upstream's `policy/check_*.go`; the AppArmor
//! and Windows hostProcess checks are not carried (no AppArmor or Windows nodes). The `audit`
//! level's violations and the enforced policy go to the request's audit event
//! (`pod-security.kubernetes.io/audit-violations`, `.../enforce-policy`).

use std::collections::BTreeSet;
use std::sync::Arc;

use rudder_api::status::ApiError;
use rudder_registry::{object, Admission, Attributes, Entry, Operation, WatchCache};
use serde_json::Value;

const LABEL: &str = "pod-security.kubernetes.io/";

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Privileged,
    Baseline,
    Restricted,
}

impl Level {
    fn parse(s: &str) -> Option<Level> {
        match s {
            "privileged" => Some(Level::Privileged),
            "baseline" => Some(Level::Baseline),
            "restricted" => Some(Level::Restricted),
            _ => None,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Level::Privileged => "privileged",
            Level::Baseline => "baseline",
            Level::Restricted => "restricted",
        }
    }
}

/// A mode's level and the version it names (shown in messages as `level:version`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    pub level: Level,
    pub version: String,
}

impl Policy {
    fn display(&self) -> String {
        format!("{}:{}", self.level.as_str(), self.version)
    }
}

/// The policy of `mode` (`enforce`, `audit`, `warn`) from namespace labels; unset or invalid
/// levels are privileged (upstream defaults to privileged:latest).
pub fn policy(labels: &serde_json::Map<String, Value>, mode: &str) -> Policy {
    let get = |k: &str| labels.get(&format!("{LABEL}{k}")).and_then(Value::as_str);
    let level = get(mode)
        .and_then(Level::parse)
        .unwrap_or(Level::Privileged);
    let version = match get(&format!("{mode}-version")) {
        Some(v) if v == "latest" || v.starts_with("v1.") => v.to_string(),
        _ => "latest".to_string(),
    };
    Policy { level, version }
}

/// One failed check: upstream's `ForbiddenReason` and `ForbiddenDetail`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    pub reason: &'static str,
    pub detail: String,
}

fn pluralize(single: &str, plural: &str, n: usize) -> String {
    if n == 1 { single } else { plural }.to_string()
}

fn join_quote<S: AsRef<str>>(items: &[S]) -> String {
    items
        .iter()
        .map(|s| format!("{:?}", s.as_ref()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Every container of a pod spec: init, regular and ephemeral, as upstream's `visitContainers`.
fn containers(spec: &Value) -> impl Iterator<Item = &Value> {
    ["initContainers", "containers", "ephemeralContainers"]
        .into_iter()
        .flat_map(move |k| spec.get(k).and_then(Value::as_array).into_iter().flatten())
}

fn name_of(c: &Value) -> &str {
    c.get("name").and_then(Value::as_str).unwrap_or("")
}

fn sc<'a>(c: &'a Value, field: &str) -> Option<&'a Value> {
    c.get("securityContext").and_then(|s| s.get(field))
}

/// `container "a"` / `containers "a", "b"` followed by `rest`.
fn containers_detail(names: &[String], rest: &str) -> String {
    format!(
        "{} {} {rest}",
        pluralize("container", "containers", names.len()),
        join_quote(names)
    )
}

const BASELINE_CAPS: &[&str] = &[
    "AUDIT_WRITE",
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "MKNOD",
    "NET_BIND_SERVICE",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
];

const SAFE_SYSCTLS: &[&str] = &[
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
];

const RESTRICTED_VOLUME_TYPES: &[&str] = &[
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "image",
    "persistentVolumeClaim",
    "projected",
    "secret",
];

fn strs(v: Option<&Value>) -> Vec<&str> {
    v.and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect()
}

/// The checks of `level`, in upstream's order (sorted by check ID, restricted checks replacing
/// the baseline ones they override).
pub fn check(level: Level, spec: &Value) -> Vec<Violation> {
    if level == Level::Privileged {
        return vec![];
    }
    let restricted = level == Level::Restricted;
    let mut out = Vec::new();
    let mut push = |v: Option<Violation>| out.extend(v);
    if restricted {
        push(allow_privilege_escalation(spec));
    }
    push(if restricted {
        capabilities_restricted(spec)
    } else {
        capabilities_baseline(spec)
    });
    push(host_namespaces(spec));
    if !restricted {
        push(host_path_volumes(spec));
    }
    push(host_ports(spec));
    push(privileged(spec));
    push(proc_mount(spec));
    if restricted {
        push(restricted_volumes(spec));
        push(run_as_non_root(spec));
        push(run_as_user(spec));
    }
    push(se_linux_options(spec));
    push(if restricted {
        seccomp_restricted(spec)
    } else {
        seccomp_baseline(spec)
    });
    push(sysctls(spec));
    out
}

fn allow_privilege_escalation(spec: &Value) -> Option<Violation> {
    let bad: Vec<String> = containers(spec)
        .filter(|c| sc(c, "allowPrivilegeEscalation") != Some(&Value::Bool(false)))
        .map(|c| name_of(c).to_string())
        .collect();
    (!bad.is_empty()).then(|| Violation {
        reason: "allowPrivilegeEscalation != false",
        detail: containers_detail(
            &bad,
            "must set securityContext.allowPrivilegeEscalation=false",
        ),
    })
}

fn capabilities_baseline(spec: &Value) -> Option<Violation> {
    let mut bad = Vec::new();
    let mut caps = BTreeSet::new();
    for c in containers(spec) {
        let added: Vec<&str> = strs(sc(c, "capabilities").and_then(|k| k.get("add")))
            .into_iter()
            .filter(|a| !BASELINE_CAPS.contains(a))
            .collect();
        if !added.is_empty() {
            bad.push(name_of(c).to_string());
            caps.extend(added.into_iter().map(str::to_string));
        }
    }
    (!bad.is_empty()).then(|| Violation {
        reason: "non-default capabilities",
        detail: containers_detail(
            &bad,
            &format!(
                "must not include {} in securityContext.capabilities.add",
                join_quote(&caps.into_iter().collect::<Vec<_>>())
            ),
        ),
    })
}

fn capabilities_restricted(spec: &Value) -> Option<Violation> {
    let mut missing_drop = Vec::new();
    let mut adding = Vec::new();
    let mut caps = BTreeSet::new();
    for c in containers(spec) {
        let k = sc(c, "capabilities");
        if !strs(k.and_then(|k| k.get("drop"))).contains(&"ALL") {
            missing_drop.push(name_of(c).to_string());
        }
        let added: Vec<&str> = strs(k.and_then(|k| k.get("add")))
            .into_iter()
            .filter(|a| *a != "NET_BIND_SERVICE")
            .collect();
        if !added.is_empty() {
            adding.push(name_of(c).to_string());
            caps.extend(added.into_iter().map(str::to_string));
        }
    }
    let mut details = Vec::new();
    if !missing_drop.is_empty() {
        details.push(containers_detail(
            &missing_drop,
            "must set securityContext.capabilities.drop=[\"ALL\"]",
        ));
    }
    if !adding.is_empty() {
        details.push(containers_detail(
            &adding,
            &format!(
                "must not include {} in securityContext.capabilities.add",
                join_quote(&caps.into_iter().collect::<Vec<_>>())
            ),
        ));
    }
    (!details.is_empty()).then(|| Violation {
        reason: "unrestricted capabilities",
        detail: details.join("; "),
    })
}

fn host_namespaces(spec: &Value) -> Option<Violation> {
    let set: Vec<String> = ["hostNetwork", "hostPID", "hostIPC"]
        .into_iter()
        .filter(|k| spec.get(*k) == Some(&Value::Bool(true)))
        .map(|k| format!("{k}=true"))
        .collect();
    (!set.is_empty()).then(|| Violation {
        reason: "host namespaces",
        detail: set.join(", "),
    })
}

fn volumes(spec: &Value) -> impl Iterator<Item = &Value> {
    spec.get("volumes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

fn host_path_volumes(spec: &Value) -> Option<Violation> {
    let bad: Vec<String> = volumes(spec)
        .filter(|v| v.get("hostPath").is_some_and(|h| !h.is_null()))
        .map(|v| name_of(v).to_string())
        .collect();
    (!bad.is_empty()).then(|| Violation {
        reason: "hostPath volumes",
        detail: format!(
            "{} {}",
            pluralize("volume", "volumes", bad.len()),
            join_quote(&bad)
        ),
    })
}

fn host_ports(spec: &Value) -> Option<Violation> {
    let mut bad = Vec::new();
    let mut ports = BTreeSet::new();
    for c in containers(spec) {
        let used: Vec<i64> = c
            .get("ports")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|p| p.get("hostPort").and_then(Value::as_i64))
            .filter(|p| *p != 0)
            .collect();
        if !used.is_empty() {
            bad.push(name_of(c).to_string());
            ports.extend(used);
        }
    }
    (!bad.is_empty()).then(|| Violation {
        reason: "hostPort",
        detail: format!(
            "{} {} {} {}",
            pluralize("container", "containers", bad.len()),
            join_quote(&bad),
            pluralize("uses", "use", bad.len()),
            format_args!(
                "{} {}",
                pluralize("hostPort", "hostPorts", ports.len()),
                ports
                    .iter()
                    .map(i64::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        ),
    })
}

fn privileged(spec: &Value) -> Option<Violation> {
    let bad: Vec<String> = containers(spec)
        .filter(|c| sc(c, "privileged") == Some(&Value::Bool(true)))
        .map(|c| name_of(c).to_string())
        .collect();
    (!bad.is_empty()).then(|| Violation {
        reason: "privileged",
        detail: containers_detail(&bad, "must not set securityContext.privileged=true"),
    })
}

fn proc_mount(spec: &Value) -> Option<Violation> {
    let mut bad = Vec::new();
    let mut values = BTreeSet::new();
    for c in containers(spec) {
        match sc(c, "procMount").and_then(Value::as_str) {
            None | Some("Default") => {}
            Some(v) => {
                bad.push(name_of(c).to_string());
                values.insert(v.to_string());
            }
        }
    }
    (!bad.is_empty()).then(|| Violation {
        reason: "procMount",
        detail: containers_detail(
            &bad,
            &format!(
                "must not set securityContext.procMount to {}",
                join_quote(&values.into_iter().collect::<Vec<_>>())
            ),
        ),
    })
}

fn restricted_volumes(spec: &Value) -> Option<Violation> {
    let mut bad = Vec::new();
    let mut types = BTreeSet::new();
    for v in volumes(spec) {
        let Some(m) = v.as_object() else { continue };
        let kind = m
            .iter()
            .find(|(k, val)| *k != "name" && !val.is_null())
            .map(|(k, _)| k.as_str());
        if let Some(kind) = kind.filter(|k| !RESTRICTED_VOLUME_TYPES.contains(k)) {
            bad.push(name_of(v).to_string());
            types.insert(kind.to_string());
        }
    }
    (!bad.is_empty()).then(|| Violation {
        reason: "restricted volume types",
        detail: format!(
            "{} {} {} restricted volume {} {}",
            pluralize("volume", "volumes", bad.len()),
            join_quote(&bad),
            pluralize("uses", "use", bad.len()),
            pluralize("type", "types", types.len()),
            join_quote(&types.into_iter().collect::<Vec<_>>())
        ),
    })
}

fn pod_sc<'a>(spec: &'a Value, field: &str) -> Option<&'a Value> {
    spec.get("securityContext").and_then(|s| s.get(field))
}

fn run_as_non_root(spec: &Value) -> Option<Violation> {
    let pod = pod_sc(spec, "runAsNonRoot").and_then(Value::as_bool);
    let mut explicitly_bad = Vec::new();
    let mut implicitly_bad = Vec::new();
    for c in containers(spec) {
        match sc(c, "runAsNonRoot").and_then(Value::as_bool) {
            Some(false) => explicitly_bad.push(name_of(c).to_string()),
            Some(true) => {}
            None if pod != Some(true) => implicitly_bad.push(name_of(c).to_string()),
            None => {}
        }
    }
    let mut details = Vec::new();
    if pod == Some(false) {
        details.push("pod must not set securityContext.runAsNonRoot=false".to_string());
    }
    if !explicitly_bad.is_empty() {
        details.push(containers_detail(
            &explicitly_bad,
            "must not set securityContext.runAsNonRoot=false",
        ));
    }
    if !implicitly_bad.is_empty() {
        details.push(format!(
            "pod or {} {} must set securityContext.runAsNonRoot=true",
            pluralize("container", "containers", implicitly_bad.len()),
            join_quote(&implicitly_bad)
        ));
    }
    (!details.is_empty()).then(|| Violation {
        reason: "runAsNonRoot != true",
        detail: details.join("; "),
    })
}

fn run_as_user(spec: &Value) -> Option<Violation> {
    let mut details = Vec::new();
    if pod_sc(spec, "runAsUser").and_then(Value::as_i64) == Some(0) {
        details.push("pod must not set runAsUser=0".to_string());
    }
    let bad: Vec<String> = containers(spec)
        .filter(|c| sc(c, "runAsUser").and_then(Value::as_i64) == Some(0))
        .map(|c| name_of(c).to_string())
        .collect();
    if !bad.is_empty() {
        details.push(containers_detail(&bad, "must not set runAsUser=0"));
    }
    (!details.is_empty()).then(|| Violation {
        reason: "runAsUser=0",
        detail: details.join("; "),
    })
}

fn se_linux_options(spec: &Value) -> Option<Violation> {
    const TYPES: &[&str] = &[
        "",
        "container_t",
        "container_init_t",
        "container_kvm_t",
        "container_engine_t",
    ];
    let mut bad_types = BTreeSet::new();
    let mut user = false;
    let mut role = false;
    let mut bad_pod = false;
    let mut bad_containers = Vec::new();
    let mut inspect = |opts: Option<&Value>| -> bool {
        let Some(o) = opts.filter(|o| o.is_object()) else {
            return false;
        };
        let s = |k: &str| o.get(k).and_then(Value::as_str).unwrap_or("");
        let mut bad = false;
        if !TYPES.contains(&s("type")) {
            bad_types.insert(s("type").to_string());
            bad = true;
        }
        if !s("user").is_empty() {
            user = true;
            bad = true;
        }
        if !s("role").is_empty() {
            role = true;
            bad = true;
        }
        bad
    };
    if inspect(pod_sc(spec, "seLinuxOptions")) {
        bad_pod = true;
    }
    for c in containers(spec) {
        if inspect(sc(c, "seLinuxOptions")) {
            bad_containers.push(name_of(c).to_string());
        }
    }
    if !bad_pod && bad_containers.is_empty() {
        return None;
    }
    let mut who = Vec::new();
    if bad_pod {
        who.push("pod".to_string());
    }
    if !bad_containers.is_empty() {
        who.push(format!(
            "{} {}",
            pluralize("container", "containers", bad_containers.len()),
            join_quote(&bad_containers)
        ));
    }
    let mut what = Vec::new();
    if !bad_types.is_empty() {
        what.push(format!(
            "{} {}",
            pluralize("type", "types", bad_types.len()),
            join_quote(&bad_types.into_iter().collect::<Vec<_>>())
        ));
    }
    if user {
        what.push("user may not be set".to_string());
    }
    if role {
        what.push("role may not be set".to_string());
    }
    Some(Violation {
        reason: "seLinuxOptions",
        detail: format!(
            "{} set forbidden securityContext.seLinuxOptions: {}",
            who.join(" and "),
            what.join("; ")
        ),
    })
}

fn seccomp_type(v: Option<&Value>) -> Option<&str> {
    v.and_then(|p| p.get("type")).and_then(Value::as_str)
}

fn seccomp_baseline(spec: &Value) -> Option<Violation> {
    let mut details = Vec::new();
    if seccomp_type(pod_sc(spec, "seccompProfile")) == Some("Unconfined") {
        details
            .push("pod must not set securityContext.seccompProfile.type to \"Unconfined\"".into());
    }
    let bad: Vec<String> = containers(spec)
        .filter(|c| seccomp_type(sc(c, "seccompProfile")) == Some("Unconfined"))
        .map(|c| name_of(c).to_string())
        .collect();
    if !bad.is_empty() {
        details.push(containers_detail(
            &bad,
            "must not set securityContext.seccompProfile.type to \"Unconfined\"",
        ));
    }
    (!details.is_empty()).then(|| Violation {
        reason: "seccompProfile",
        detail: details.join("; "),
    })
}

fn seccomp_restricted(spec: &Value) -> Option<Violation> {
    let ok = |t: &str| t == "RuntimeDefault" || t == "Localhost";
    let pod = seccomp_type(pod_sc(spec, "seccompProfile"));
    let mut details = Vec::new();
    if let Some(t) = pod.filter(|t| !ok(t)) {
        details.push(format!(
            "pod must not set securityContext.seccompProfile.type to {t:?}"
        ));
    }
    let mut explicit = Vec::new();
    let mut explicit_types = BTreeSet::new();
    let mut implicit = Vec::new();
    for c in containers(spec) {
        match seccomp_type(sc(c, "seccompProfile")) {
            Some(t) if ok(t) => {}
            Some(t) => {
                explicit.push(name_of(c).to_string());
                explicit_types.insert(t.to_string());
            }
            None if pod.is_none() => implicit.push(name_of(c).to_string()),
            None => {}
        }
    }
    if !explicit.is_empty() {
        details.push(containers_detail(
            &explicit,
            &format!(
                "must not set securityContext.seccompProfile.type to {}",
                join_quote(&explicit_types.into_iter().collect::<Vec<_>>())
            ),
        ));
    }
    if !implicit.is_empty() {
        details.push(format!(
            "pod or {} {} must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\"",
            pluralize("container", "containers", implicit.len()),
            join_quote(&implicit)
        ));
    }
    (!details.is_empty()).then(|| Violation {
        reason: "seccompProfile",
        detail: details.join("; "),
    })
}

fn sysctls(spec: &Value) -> Option<Violation> {
    let bad: Vec<&str> = pod_sc(spec, "sysctls")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|s| s.get("name").and_then(Value::as_str))
        .filter(|n| !SAFE_SYSCTLS.contains(n))
        .collect();
    (!bad.is_empty()).then(|| Violation {
        reason: "forbidden sysctls",
        detail: bad.join(", "),
    })
}

/// Upstream's aggregate: `reason (detail), reason (detail)`.
pub fn describe(violations: &[Violation]) -> String {
    violations
        .iter()
        .map(|v| {
            if v.detail.is_empty() {
                v.reason.to_string()
            } else {
                format!("{} ({})", v.reason, v.detail)
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The pod spec a resource carries, and whether it is a pod (templates only warn).
fn pod_spec<'a>(entry: &Entry, obj: &'a Value) -> Option<(&'a Value, bool)> {
    let (g, r) = (entry.info.group.as_str(), entry.info.plural.as_str());
    match (g, r) {
        ("", "pods") => obj.get("spec").map(|s| (s, true)),
        ("", "replicationcontrollers" | "podtemplates")
        | ("apps", "deployments" | "replicasets" | "statefulsets" | "daemonsets")
        | ("batch", "jobs") => {
            let t = if r == "podtemplates" {
                obj.get("template")
            } else {
                obj.pointer("/spec/template")
            };
            t.and_then(|t| t.get("spec")).map(|s| (s, false))
        }
        ("batch", "cronjobs") => obj
            .pointer("/spec/jobTemplate/spec/template/spec")
            .map(|s| (s, false)),
        _ => None,
    }
}

pub struct PodSecurityAdmission {
    cache: Arc<WatchCache>,
    namespaces_prefix: String,
    pods_prefix: String,
}

impl PodSecurityAdmission {
    pub fn new(
        cache: Arc<WatchCache>,
        namespaces_prefix: String,
        pods_prefix: String,
    ) -> PodSecurityAdmission {
        PodSecurityAdmission {
            cache,
            namespaces_prefix,
            pods_prefix,
        }
    }

    fn namespace_labels(&self, ns: &str) -> serde_json::Map<String, Value> {
        let key = format!("{}/{ns}", self.namespaces_prefix);
        self.cache
            .get(&self.namespaces_prefix, &key)
            .and_then(|o| o.value().pointer("/metadata/labels").cloned())
            .and_then(|l| match l {
                Value::Object(m) => Some(m),
                _ => None,
            })
            .unwrap_or_default()
    }

    /// A namespace whose enforce level changes: warn about its pods that violate the new one.
    fn warn_existing_pods(&self, attrs: &Attributes<'_>, ns: &Value) {
        let labels = ns
            .pointer("/metadata/labels")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let new = policy(&labels, "enforce");
        let old = attrs
            .old
            .and_then(|o| o.pointer("/metadata/labels"))
            .and_then(Value::as_object)
            .map(|l| policy(l, "enforce"));
        if new.level == Level::Privileged || old.as_ref() == Some(&new) {
            return;
        }
        let name = object::name(ns);
        let (pods, _) = self
            .cache
            .list(&self.pods_prefix, &format!("{}/{name}/", self.pods_prefix));
        let mut lines = Vec::new();
        for p in pods {
            let p = p.value();
            let Some(spec) = p.get("spec") else { continue };
            let v = check(new.level, spec);
            if !v.is_empty() {
                let reasons: Vec<&str> = v.iter().map(|v| v.reason).collect();
                lines.push(format!("{}: {}", object::name(&p), reasons.join(", ")));
            }
        }
        if !lines.is_empty() {
            attrs.warnings.push(format!(
                "existing pods in namespace {name:?} violate the new PodSecurity enforce level {:?}",
                new.display()
            ));
            lines.into_iter().for_each(|l| attrs.warnings.push(l));
        }
    }
}

#[async_trait::async_trait]
impl Admission for PodSecurityAdmission {
    fn handles(&self, entry: &Entry) -> bool {
        matches!(
            (entry.info.group.as_str(), entry.info.plural.as_str()),
            (
                "",
                "namespaces" | "pods" | "replicationcontrollers" | "podtemplates"
            ) | (
                "apps",
                "deployments" | "replicasets" | "statefulsets" | "daemonsets"
            ) | ("batch", "jobs" | "cronjobs")
        )
    }

    async fn validate(&self, attrs: &Attributes<'_>, obj: &Value) -> Result<(), ApiError> {
        let entry = attrs.entry;
        if !matches!(attrs.operation, Operation::Create | Operation::Update) {
            return Ok(());
        }
        if entry.info.group.is_empty() && entry.info.plural == "namespaces" {
            if attrs.is_main_resource() {
                self.warn_existing_pods(attrs, obj);
            }
            return Ok(());
        }
        // Pods are checked on create and when an update changes their spec (upstream
        // ignores metadata and status writes); `ephemeralcontainers` is such an update.
        let sub_ok = attrs.is_main_resource()
            || (entry.info.plural == "pods" && attrs.subresource == "ephemeralcontainers");
        if !sub_ok {
            return Ok(());
        }
        let Some((spec, is_pod)) = pod_spec(entry, obj) else {
            return Ok(());
        };
        if let Some(old) = attrs.old {
            if pod_spec(entry, old).map(|(s, _)| s) == Some(spec) {
                return Ok(());
            }
        }
        let labels = self.namespace_labels(attrs.namespace);
        let enforce = policy(&labels, "enforce");
        let warn = policy(&labels, "warn");
        let audit = policy(&labels, "audit");
        // The audit level's findings go to the request's audit event, denied or not.
        if is_pod && attrs.audit.enabled() {
            attrs.audit.add(
                "pod-security.kubernetes.io/enforce-policy",
                enforce.display(),
            );
        }
        if attrs.audit.enabled() && audit.level != Level::Privileged {
            let v = check(audit.level, spec);
            if !v.is_empty() {
                attrs.audit.add(
                    "pod-security.kubernetes.io/audit-violations",
                    format!(
                        "would violate PodSecurity {:?}: {}",
                        audit.display(),
                        describe(&v)
                    ),
                );
            }
        }
        if is_pod && enforce.level != Level::Privileged {
            let v = check(enforce.level, spec);
            if !v.is_empty() {
                return Err(ApiError::forbidden(
                    &entry.info.group_resource(),
                    attrs.name,
                    format!(
                        "violates PodSecurity {:?}: {}",
                        enforce.display(),
                        describe(&v)
                    ),
                ));
            }
        }
        // Templates are warned about against the stricter of enforce and warn, as upstream.
        let warn = if !is_pod && enforce.level > warn.level {
            enforce
        } else {
            warn
        };
        if warn.level != Level::Privileged {
            let v = check(warn.level, spec);
            if !v.is_empty() {
                attrs.warnings.push(format!(
                    "would violate PodSecurity {:?}: {}",
                    warn.display(),
                    describe(&v)
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn restricted_lists_what_upstream_lists_for_a_plain_container() {
        let spec = json!({"containers": [{"name": "nginx", "image": "nginx"}]});
        assert_eq!(
            describe(&check(Level::Restricted, &spec)),
            "allowPrivilegeEscalation != false (container \"nginx\" must set securityContext.allowPrivilegeEscalation=false), \
unrestricted capabilities (container \"nginx\" must set securityContext.capabilities.drop=[\"ALL\"]), \
runAsNonRoot != true (pod or container \"nginx\" must set securityContext.runAsNonRoot=true), \
seccompProfile (pod or container \"nginx\" must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\")"
        );
        assert!(check(Level::Baseline, &spec).is_empty());
    }

    #[test]
    fn baseline_violations() {
        let spec = json!({
            "hostNetwork": true, "hostPID": true,
            "volumes": [{"name": "h", "hostPath": {"path": "/"}}, {"name": "e", "emptyDir": {}}],
            "securityContext": {"sysctls": [{"name": "kernel.msgmax", "value": "1"}]},
            "containers": [
                {"name": "a", "securityContext": {"privileged": true,
                    "capabilities": {"add": ["NET_ADMIN", "CHOWN"]}},
                 "ports": [{"containerPort": 80, "hostPort": 8080}]},
                {"name": "b", "securityContext": {"privileged": true}}
            ]
        });
        assert_eq!(
            describe(&check(Level::Baseline, &spec)),
            "non-default capabilities (container \"a\" must not include \"NET_ADMIN\" in securityContext.capabilities.add), \
host namespaces (hostNetwork=true, hostPID=true), hostPath volumes (volume \"h\"), \
hostPort (container \"a\" uses hostPort 8080), \
privileged (containers \"a\", \"b\" must not set securityContext.privileged=true), \
forbidden sysctls (kernel.msgmax)"
        );
    }

    #[test]
    fn a_compliant_restricted_pod_passes() {
        let spec = json!({
            "securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
            "volumes": [{"name": "c", "configMap": {"name": "x"}}],
            "containers": [{"name": "c", "securityContext": {
                "allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}}}]
        });
        assert_eq!(check(Level::Restricted, &spec), vec![]);
    }

    #[test]
    fn labels_pick_level_and_version() {
        let labels = json!({"pod-security.kubernetes.io/enforce": "baseline",
            "pod-security.kubernetes.io/enforce-version": "v1.30",
            "pod-security.kubernetes.io/warn": "bogus"});
        let m = labels.as_object().unwrap();
        assert_eq!(policy(m, "enforce").display(), "baseline:v1.30");
        assert_eq!(policy(m, "warn").display(), "privileged:latest");
    }
}
