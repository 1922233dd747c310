//! The pod status the kubelet reports, computed from what the runtime says (upstream's
//! `generateAPIPodStatus`, `convertToAPIContainerStatuses`, `getPhase` and the condition
//! generators in `pkg/kubelet/status`). Pure functions over a runtime snapshot.

use std::collections::{BTreeMap, HashMap};

use k8s_openapi::api::core::v1::{
    Container, ContainerState, ContainerStateRunning, ContainerStateTerminated,
    ContainerStateWaiting, ContainerStatus, Pod, PodCondition, PodSpec, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

/// The runtime's state of one container instance.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunState {
    Created,
    Running,
    Exited,
    Unknown,
}

/// One container instance as CRI reports it (plus the kubelet's own annotations).
#[derive(Clone, Debug)]
pub struct RuntimeContainer {
    pub id: String,
    pub sandbox_id: String,
    pub name: String,
    pub attempt: u32,
    pub restart_count: i32,
    pub state: RunState,
    /// Nanoseconds since the epoch (CRI's unit).
    pub created_at: i64,
    pub started_at: i64,
    pub finished_at: i64,
    pub exit_code: i32,
    pub reason: String,
    pub message: String,
    pub image: String,
    pub image_ref: String,
    pub log_path: String,
    /// The runtime may still report a reason for this exit (an OOM kill seen late).
    pub reason_pending: bool,
}

impl RuntimeContainer {
    pub fn container_id(&self) -> String {
        format!("containerd://{}", self.id)
    }
}

#[derive(Clone, Debug)]
pub struct RuntimeSandbox {
    pub id: String,
    pub attempt: u32,
    pub ready: bool,
    pub ip: Option<String>,
    pub created_at: i64,
}

/// Everything the runtime holds for one pod, newest first.
#[derive(Clone, Debug, Default)]
pub struct PodRuntime {
    pub sandboxes: Vec<RuntimeSandbox>,
    pub containers: Vec<RuntimeContainer>,
}

impl PodRuntime {
    /// The newest instance of a container (upstream's `FindContainerStatusByName`).
    pub fn latest(&self, name: &str) -> Option<&RuntimeContainer> {
        self.containers.iter().find(|c| c.name == name)
    }

    pub fn running(&self) -> impl Iterator<Item = &RuntimeContainer> {
        self.containers
            .iter()
            .filter(|c| c.state == RunState::Running)
    }

    pub fn ready_sandbox(&self) -> Option<&RuntimeSandbox> {
        self.sandboxes.first().filter(|s| s.ready)
    }
}

pub fn time_from_nanos(ns: i64) -> Option<Time> {
    if ns <= 0 {
        return None;
    }
    jiff::Timestamp::from_nanosecond(ns as i128)
        .ok()
        .map(|t| Time(t.round(jiff::Unit::Second).unwrap_or(t)))
}

pub fn is_restartable_init(c: &Container) -> bool {
    c.restart_policy.as_deref() == Some("Always")
}

fn restart_policy(spec: &PodSpec) -> &str {
    spec.restart_policy.as_deref().unwrap_or("Always")
}

/// Upstream's `ShouldContainerBeRestarted`.
pub fn should_restart(c: &Container, pod: &Pod, rt: &PodRuntime) -> bool {
    if pod.metadata.deletion_timestamp.is_some() {
        return false;
    }
    let Some(status) = rt.latest(&c.name) else {
        return true;
    };
    match status.state {
        RunState::Running => return false,
        RunState::Unknown | RunState::Created => return true,
        RunState::Exited => {}
    }
    if is_restartable_init(c) {
        return true;
    }
    let spec = pod.spec.as_ref();
    match spec.map(restart_policy).unwrap_or("Always") {
        "Never" => false,
        "OnFailure" => status.exit_code != 0,
        _ => true,
    }
}

/// Why a container that should run is not running (image pull errors, back-off): upstream's
/// reason cache.
pub type WaitingReasons = HashMap<String, (String, String)>;

/// Probe results: (ready, started) per container name; absent = no probe result yet.
pub type ProbeResults = HashMap<String, (Option<bool>, Option<bool>)>;

fn convert(cs: &RuntimeContainer, old: Option<&ContainerStatus>) -> ContainerStatus {
    let mut status = ContainerStatus {
        name: cs.name.clone(),
        restart_count: cs.restart_count,
        image: cs.image.clone(),
        image_id: cs.image_ref.clone(),
        container_id: Some(cs.container_id()),
        ..Default::default()
    };
    if let Some(old) = old {
        status.volume_mounts = old.volume_mounts.clone();
    }
    status.state = Some(match cs.state {
        RunState::Running => ContainerState {
            running: Some(ContainerStateRunning {
                started_at: time_from_nanos(cs.started_at),
            }),
            ..Default::default()
        },
        RunState::Exited => ContainerState {
            terminated: Some(ContainerStateTerminated {
                exit_code: cs.exit_code,
                reason: (!cs.reason.is_empty()).then(|| cs.reason.clone()),
                message: (!cs.message.is_empty()).then(|| cs.message.clone()),
                started_at: time_from_nanos(cs.started_at),
                finished_at: time_from_nanos(cs.finished_at),
                container_id: Some(cs.container_id()),
                signal: None,
            }),
            ..Default::default()
        },
        RunState::Unknown
            if old.is_some_and(|o| o.state.as_ref().is_some_and(|s| s.running.is_some())) =>
        {
            status.restart_count = old.map(|o| o.restart_count + 1).unwrap_or(0);
            ContainerState {
                terminated: Some(ContainerStateTerminated {
                    exit_code: 137,
                    reason: Some("ContainerStatusUnknown".into()),
                    message: Some(
                        "The container could not be located when the pod was terminated".into(),
                    ),
                    ..Default::default()
                }),
                ..Default::default()
            }
        }
        _ => ContainerState {
            waiting: Some(ContainerStateWaiting::default()),
            ..Default::default()
        },
    });
    status
}

/// Upstream's `convertToAPIContainerStatuses` (without in-place resize and user fields).
#[allow(clippy::too_many_arguments)]
pub fn container_statuses(
    pod: &Pod,
    rt: &PodRuntime,
    previous: &[ContainerStatus],
    containers: &[Container],
    has_init: bool,
    is_init: bool,
    waiting: &WaitingReasons,
    probes: &ProbeResults,
) -> Vec<ContainerStatus> {
    let old: HashMap<&str, &ContainerStatus> =
        previous.iter().map(|s| (s.name.as_str(), s)).collect();
    let default_reason = if has_init {
        "PodInitializing"
    } else {
        "ContainerCreating"
    };
    let mut statuses: BTreeMap<String, ContainerStatus> = BTreeMap::new();
    for c in containers {
        let mut s = ContainerStatus {
            name: c.name.clone(),
            image: c.image.clone().unwrap_or_default(),
            state: Some(ContainerState {
                waiting: Some(ContainerStateWaiting {
                    reason: Some(default_reason.into()),
                    message: None,
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        if let Some(o) = old.get(c.name.as_str()) {
            if o.state.as_ref().is_some_and(|st| st.terminated.is_some()) {
                s = (*o).clone();
            } else {
                s.restart_count = o.restart_count;
                s.last_state = o.last_state.clone();
            }
        }
        statuses.insert(c.name.clone(), s);
    }
    // A container that was running and vanished from the runtime: terminated, not waiting.
    for c in containers {
        if rt.latest(&c.name).is_some() {
            continue;
        }
        let Some(o) = old.get(c.name.as_str()) else {
            continue;
        };
        let was_running = o.state.as_ref().is_some_and(|s| s.running.is_some());
        if !was_running {
            continue;
        }
        if let Some(s) = statuses.get_mut(&c.name) {
            let is_default = s
                .state
                .as_ref()
                .and_then(|st| st.waiting.as_ref())
                .is_some_and(|w| w.reason.as_deref() == Some(default_reason));
            if !is_default
                || s.last_state
                    .as_ref()
                    .is_some_and(|l| l.terminated.is_some())
            {
                continue;
            }
            s.last_state = Some(ContainerState {
                terminated: Some(ContainerStateTerminated {
                    exit_code: 137,
                    reason: Some("ContainerStatusUnknown".into()),
                    message: Some("The container could not be located when the pod was deleted.  The container used to be Running".into()),
                    ..Default::default()
                }),
                ..Default::default()
            });
            if pod.metadata.deletion_timestamp.is_none() {
                s.restart_count += 1;
            }
        }
    }
    // The newest instance is the state, the one before it the last state.
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for cs in &rt.containers {
        if !statuses.contains_key(&cs.name) {
            continue;
        }
        let n = seen.entry(cs.name.as_str()).or_default();
        if *n >= 2 {
            continue;
        }
        let status = convert(cs, old.get(cs.name.as_str()).copied());
        if *n == 0 {
            statuses.insert(cs.name.clone(), status);
        } else if let Some(s) = statuses.get_mut(&cs.name) {
            s.last_state = status.state;
        }
        *n += 1;
    }
    // Containers that should run but do not: waiting with the recorded reason.
    for c in containers {
        if is_init {
            if let Some(s) = rt.latest(&c.name) {
                if s.state == RunState::Exited && s.exit_code == 0 {
                    continue;
                }
            }
        }
        if !should_restart(c, pod, rt) {
            continue;
        }
        let Some((reason, message)) = waiting.get(&c.name) else {
            continue;
        };
        if let Some(s) = statuses.get_mut(&c.name) {
            if s.state.as_ref().is_some_and(|st| st.terminated.is_some()) {
                s.last_state = s.state.take();
            }
            s.state = Some(ContainerState {
                waiting: Some(ContainerStateWaiting {
                    reason: Some(reason.clone()),
                    message: (!message.is_empty()).then(|| message.clone()),
                }),
                ..Default::default()
            });
        }
    }
    // Ready and started: running, and the probes (if any) say so.
    for c in containers {
        if let Some(s) = statuses.get_mut(&c.name) {
            let running = s.state.as_ref().is_some_and(|st| st.running.is_some());
            let (ready, started) = probes.get(&c.name).copied().unwrap_or((None, None));
            let started = running && started.unwrap_or(c.startup_probe.is_none());
            s.started = Some(started);
            s.ready = running
                && started
                && ready.unwrap_or(c.readiness_probe.is_none())
                && (!is_init || is_restartable_init(c) || c.readiness_probe.is_none());
            if is_init && !is_restartable_init(c) {
                // A regular init container is ready once it has completed.
                s.ready = s
                    .state
                    .as_ref()
                    .and_then(|st| st.terminated.as_ref())
                    .is_some_and(|t| t.exit_code == 0);
            }
        }
    }
    // Spec order (upstream sorts init statuses by spec order and app statuses by name).
    if is_init {
        containers
            .iter()
            .filter_map(|c| statuses.remove(&c.name))
            .collect()
    } else {
        statuses.into_values().collect()
    }
}

/// Upstream's `getPhase`.
pub fn phase(pod: &Pod, info: &[ContainerStatus], pod_is_terminal: bool) -> &'static str {
    let Some(spec) = pod.spec.as_ref() else {
        return "Pending";
    };
    let find = |name: &str| info.iter().find(|s| s.name == name);
    let state = |s: &ContainerStatus| s.state.clone().unwrap_or_default();
    let last_terminated = |s: &ContainerStatus| {
        s.last_state
            .as_ref()
            .and_then(|l| l.terminated.as_ref())
            .map(|t| t.exit_code)
    };
    let inits = spec.init_containers.as_deref().unwrap_or_default();
    let mut pending_init = 0;
    let mut failed_init = 0;
    for c in inits.iter().filter(|c| !is_restartable_init(c)) {
        let Some(s) = find(&c.name) else {
            pending_init += 1;
            continue;
        };
        let st = state(s);
        if st.running.is_some() {
            pending_init += 1;
        } else if let Some(t) = &st.terminated {
            if t.exit_code != 0 {
                failed_init += 1;
            }
        } else if st.waiting.is_some() {
            match last_terminated(s) {
                Some(code) if code != 0 => failed_init += 1,
                Some(_) => {}
                None => pending_init += 1,
            }
        } else {
            pending_init += 1;
        }
    }
    let (mut unknown, mut running, mut waiting, mut stopped, mut succeeded) = (0, 0, 0, 0, 0);
    for c in inits.iter().filter(|c| is_restartable_init(c)) {
        let Some(s) = find(&c.name) else {
            unknown += 1;
            continue;
        };
        let st = state(s);
        if st.running.is_some() {
            if s.started != Some(true) {
                pending_init += 1;
            }
            running += 1;
        } else if st.terminated.is_some() {
        } else if st.waiting.is_some() {
            if last_terminated(s).is_none() {
                pending_init += 1;
                waiting += 1;
            }
        } else {
            pending_init += 1;
            unknown += 1;
        }
    }
    for c in &spec.containers {
        let Some(s) = find(&c.name) else {
            unknown += 1;
            continue;
        };
        let st = state(s);
        if st.running.is_some() {
            running += 1;
        } else if let Some(t) = &st.terminated {
            stopped += 1;
            if t.exit_code == 0 {
                succeeded += 1;
            }
        } else if st.waiting.is_some() {
            if last_terminated(s).is_some() {
                stopped += 1;
            } else {
                waiting += 1;
            }
        } else {
            unknown += 1;
        }
    }
    let policy = restart_policy(spec);
    if failed_init > 0 && policy == "Never" {
        return "Failed";
    }
    let any_regular_started = spec.containers.iter().any(|c| {
        find(&c.name).is_some_and(|s| {
            let st = state(s);
            st.running.is_some() || st.terminated.is_some() || last_terminated(s).is_some()
        })
    });
    if (pending_init > 0 && !any_regular_started) || waiting > 0 {
        return "Pending";
    }
    if running > 0 && unknown == 0 {
        return "Running";
    }
    if running == 0 && stopped > 0 && unknown == 0 {
        if pod_is_terminal {
            return if stopped == succeeded {
                "Succeeded"
            } else {
                "Failed"
            };
        }
        if policy == "Always" {
            return "Running";
        }
        if stopped == succeeded {
            return "Succeeded";
        }
        if policy == "Never" {
            return "Failed";
        }
        return "Running";
    }
    "Pending"
}

fn condition(type_: &str, ok: bool, reason: Option<&str>, message: Option<String>) -> PodCondition {
    PodCondition {
        type_: type_.into(),
        status: if ok { "True" } else { "False" }.into(),
        reason: reason.map(str::to_string),
        message,
        ..Default::default()
    }
}

fn names_list(names: &[String]) -> String {
    format!("[{}]", names.join(" "))
}

/// Initialized, ContainersReady and Ready as upstream's generators write them.
pub fn conditions(
    spec: &PodSpec,
    existing: &[PodCondition],
    init: &[ContainerStatus],
    app: &[ContainerStatus],
    phase: &str,
    sandbox_ready: bool,
) -> Vec<PodCondition> {
    let mut out: Vec<PodCondition> = existing
        .iter()
        .filter(|c| {
            !matches!(
                c.type_.as_str(),
                "PodScheduled"
                    | "Ready"
                    | "Initialized"
                    | "ContainersReady"
                    | "PodReadyToStartContainers"
            )
        })
        .cloned()
        .collect();
    out.push(condition(
        "PodReadyToStartContainers",
        sandbox_ready,
        None,
        None,
    ));
    // Initialized.
    let inits = spec.init_containers.as_deref().unwrap_or_default();
    let mut incomplete = Vec::new();
    for c in inits {
        let s = init.iter().find(|s| s.name == c.name);
        let done = if is_restartable_init(c) {
            s.is_some_and(|s| s.started == Some(true))
        } else {
            s.is_some_and(|s| s.ready)
        };
        if !done {
            incomplete.push(c.name.clone());
        }
    }
    let any_app_started = app.iter().any(|s| {
        s.state
            .as_ref()
            .is_some_and(|st| st.running.is_some() || st.terminated.is_some())
            || s.last_state
                .as_ref()
                .is_some_and(|l| l.terminated.is_some())
    });
    let initialized = incomplete.is_empty() || phase == "Succeeded" || any_app_started;
    out.push(if initialized {
        condition("Initialized", true, None, None)
    } else {
        condition(
            "Initialized",
            false,
            Some("ContainersNotInitialized"),
            Some(format!(
                "containers with incomplete status: {}",
                names_list(&incomplete)
            )),
        )
    });
    // ContainersReady (restartable init containers count as containers).
    let mut unready = Vec::new();
    for c in inits.iter().filter(|c| is_restartable_init(c)) {
        if !init.iter().any(|s| s.name == c.name && s.ready) {
            unready.push(c.name.clone());
        }
    }
    for c in &spec.containers {
        if !app.iter().any(|s| s.name == c.name && s.ready) {
            unready.push(c.name.clone());
        }
    }
    let containers_ready = if phase == "Succeeded" {
        condition("ContainersReady", false, Some("PodCompleted"), None)
    } else if unready.is_empty() {
        condition("ContainersReady", true, None, None)
    } else {
        condition(
            "ContainersReady",
            false,
            Some("ContainersNotReady"),
            Some(format!(
                "containers with unready status: {}",
                names_list(&unready)
            )),
        )
    };
    // Ready: ContainersReady plus the readiness gates.
    let mut ready = containers_ready.clone();
    ready.type_ = "Ready".into();
    if ready.status == "True" {
        let missing: Vec<String> = spec
            .readiness_gates
            .iter()
            .flatten()
            .filter(|g| {
                !existing
                    .iter()
                    .any(|c| c.type_ == g.condition_type && c.status == "True")
            })
            .map(|g| g.condition_type.clone())
            .collect();
        if !missing.is_empty() {
            ready = condition(
                "Ready",
                false,
                Some("ReadinessGatesNotReady"),
                Some(format!(
                    "corresponding condition of pod readiness gate {:?} does not exist.",
                    missing[0]
                )),
            );
        }
    }
    out.push(ready);
    out.push(containers_ready);
    out.push(condition("PodScheduled", true, None, None));
    out
}

/// Keeps each condition's lastTransitionTime unless its status changed (the status manager's
/// rule), and stamps new ones.
pub fn stamp_transitions(new: &mut [PodCondition], old: &[PodCondition], now: &Time) {
    for c in new.iter_mut() {
        match old.iter().find(|o| o.type_ == c.type_) {
            Some(o) if o.status == c.status => {
                c.last_transition_time = o.last_transition_time.clone();
                c.last_probe_time = o.last_probe_time.clone();
            }
            _ => {
                if c.last_transition_time.is_none() {
                    c.last_transition_time = Some(now.clone());
                }
            }
        }
    }
}

/// Upstream's QoS class (`GetPodQOS`) over regular and init containers.
pub fn qos_class(spec: &PodSpec) -> &'static str {
    let all: Vec<&Container> = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .collect();
    let mut any = false;
    let mut guaranteed = true;
    for c in &all {
        let res = c.resources.as_ref();
        let req = res.and_then(|r| r.requests.as_ref());
        let lim = res.and_then(|r| r.limits.as_ref());
        for m in [req, lim].into_iter().flatten() {
            if m.iter().any(|(k, v)| {
                matches!(k.as_str(), "cpu" | "memory")
                    && rudder_api::quantity::parse(&v.0).is_ok_and(|q| q != 0)
            }) {
                any = true;
            }
        }
        for r in ["cpu", "memory"] {
            let l = lim.and_then(|m| m.get(r));
            let q = req.and_then(|m| m.get(r)).or(l);
            match (q, l) {
                (Some(q), Some(l)) if q.0 == l.0 || parse_eq(&q.0, &l.0) => {}
                _ => guaranteed = false,
            }
        }
    }
    if !any {
        "BestEffort"
    } else if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

fn parse_eq(a: &str, b: &str) -> bool {
    match (
        rudder_api::quantity::parse(a),
        rudder_api::quantity::parse(b),
    ) {
        (Ok(a), Ok(b)) => a.milli_value() == b.milli_value(),
        _ => false,
    }
}

/// Completes a status for writing: phase-preserving rules of `generateAPIPodStatus`.
pub fn settle_phase(pod: &Pod, computed: &'static str) -> String {
    let api = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    match api {
        Some(p @ ("Failed" | "Succeeded")) => p.to_string(),
        _ => computed.to_string(),
    }
}

pub fn empty_status() -> PodStatus {
    PodStatus::default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(v: serde_json::Value) -> Pod {
        serde_json::from_value(v).unwrap()
    }

    fn rc(name: &str, attempt: u32, state: RunState, exit: i32, t: i64) -> RuntimeContainer {
        RuntimeContainer {
            id: format!("{name}-{attempt}"),
            sandbox_id: "s".into(),
            name: name.into(),
            attempt,
            restart_count: attempt as i32,
            state,
            created_at: t,
            started_at: t,
            finished_at: if state == RunState::Exited { t + 1 } else { 0 },
            exit_code: exit,
            reason: if state == RunState::Exited {
                if exit == 0 { "Completed" } else { "Error" }.into()
            } else {
                String::new()
            },
            message: String::new(),
            image: "busybox".into(),
            image_ref: "sha256:x".into(),
            log_path: String::new(),
            reason_pending: false,
        }
    }

    fn statuses(p: &Pod, rt: &PodRuntime, waiting: &WaitingReasons) -> Vec<ContainerStatus> {
        let spec = p.spec.as_ref().unwrap();
        container_statuses(
            p,
            rt,
            &[],
            &spec.containers,
            false,
            false,
            waiting,
            &HashMap::new(),
        )
    }

    fn one(policy: &str) -> Pod {
        pod(
            json!({"metadata": {"name": "p"}, "spec": {"restartPolicy": policy,
            "containers": [{"name": "a", "image": "busybox"}]}}),
        )
    }

    #[test]
    fn restart_policy_table() {
        // (policy, exit code) → restarted?, phase once the container exited.
        for (policy, exit, restart, ph) in [
            ("Always", 0, true, "Running"),
            ("Always", 1, true, "Running"),
            ("OnFailure", 0, false, "Succeeded"),
            ("OnFailure", 1, true, "Running"),
            ("Never", 0, false, "Succeeded"),
            ("Never", 1, false, "Failed"),
        ] {
            let p = one(policy);
            let rt = PodRuntime {
                containers: vec![rc("a", 0, RunState::Exited, exit, 10)],
                ..Default::default()
            };
            let c = &p.spec.as_ref().unwrap().containers[0];
            assert_eq!(should_restart(c, &p, &rt), restart, "{policy} {exit}");
            let st = statuses(&p, &rt, &WaitingReasons::new());
            assert_eq!(phase(&p, &st, false), ph, "{policy} {exit}");
        }
    }

    #[test]
    fn two_containers_one_failed_never_is_running_then_failed() {
        let p = pod(
            json!({"metadata": {"name": "p"}, "spec": {"restartPolicy": "Never",
            "containers": [{"name": "a", "image": "x"}, {"name": "b", "image": "x"}]}}),
        );
        let mut rt = PodRuntime {
            containers: vec![
                rc("a", 0, RunState::Exited, 1, 10),
                rc("b", 0, RunState::Running, 0, 10),
            ],
            ..Default::default()
        };
        let st = statuses(&p, &rt, &WaitingReasons::new());
        assert_eq!(phase(&p, &st, false), "Running");
        rt.containers[1] = rc("b", 0, RunState::Exited, 0, 10);
        let st = statuses(&p, &rt, &WaitingReasons::new());
        assert_eq!(phase(&p, &st, false), "Failed");
    }

    #[test]
    fn crash_loop_shows_waiting_with_last_state() {
        let p = one("Always");
        let rt = PodRuntime {
            containers: vec![
                rc("a", 1, RunState::Exited, 2, 20),
                rc("a", 0, RunState::Exited, 2, 10),
            ],
            ..Default::default()
        };
        let mut w = WaitingReasons::new();
        w.insert(
            "a".into(),
            (
                "CrashLoopBackOff".into(),
                "back-off 10s restarting failed container=a pod=p_default(u)".into(),
            ),
        );
        let st = statuses(&p, &rt, &w);
        let s = &st[0];
        assert_eq!(s.restart_count, 1);
        assert_eq!(
            s.state
                .as_ref()
                .unwrap()
                .waiting
                .as_ref()
                .unwrap()
                .reason
                .as_deref(),
            Some("CrashLoopBackOff")
        );
        let last = s.last_state.as_ref().unwrap().terminated.as_ref().unwrap();
        assert_eq!(last.exit_code, 2);
        assert_eq!(last.reason.as_deref(), Some("Error"));
        // Waiting after a termination counts as stopped: Running for Always.
        assert_eq!(phase(&p, &st, false), "Running");
    }

    #[test]
    fn not_started_container_is_pending_container_creating() {
        let p = one("Always");
        let st = statuses(&p, &PodRuntime::default(), &WaitingReasons::new());
        let w = st[0].state.as_ref().unwrap().waiting.as_ref().unwrap();
        assert_eq!(w.reason.as_deref(), Some("ContainerCreating"));
        assert_eq!(phase(&p, &st, false), "Pending");
        assert!(!st[0].ready);
    }

    #[test]
    fn init_containers_gate_initialized_and_phase() {
        let p = pod(json!({"metadata": {"name": "p"}, "spec": {
            "initContainers": [{"name": "i1", "image": "x"}, {"name": "i2", "image": "x"}],
            "containers": [{"name": "a", "image": "x"}]}}));
        let spec = p.spec.as_ref().unwrap();
        let rt = PodRuntime {
            containers: vec![
                rc("i1", 0, RunState::Exited, 0, 10),
                rc("i2", 0, RunState::Running, 0, 11),
            ],
            ..Default::default()
        };
        let w = WaitingReasons::new();
        let probes = HashMap::new();
        let init = container_statuses(
            &p,
            &rt,
            &[],
            spec.init_containers.as_ref().unwrap(),
            true,
            true,
            &w,
            &probes,
        );
        let app = container_statuses(&p, &rt, &[], &spec.containers, true, false, &w, &probes);
        assert_eq!(
            app[0]
                .state
                .as_ref()
                .unwrap()
                .waiting
                .as_ref()
                .unwrap()
                .reason
                .as_deref(),
            Some("PodInitializing")
        );
        let all: Vec<ContainerStatus> = init.iter().chain(app.iter()).cloned().collect();
        let ph = phase(&p, &all, false);
        assert_eq!(ph, "Pending");
        let conds = conditions(spec, &[], &init, &app, ph, true);
        let initialized = conds.iter().find(|c| c.type_ == "Initialized").unwrap();
        assert_eq!(initialized.status, "False");
        assert_eq!(
            initialized.reason.as_deref(),
            Some("ContainersNotInitialized")
        );
        assert_eq!(
            initialized.message.as_deref(),
            Some("containers with incomplete status: [i2]")
        );
        let ready = conds.iter().find(|c| c.type_ == "Ready").unwrap();
        assert_eq!(
            ready.message.as_deref(),
            Some("containers with unready status: [a]")
        );
        // A failed init container with restartPolicy Never fails the pod.
        let mut pn = p.clone();
        pn.spec.as_mut().unwrap().restart_policy = Some("Never".into());
        let rt = PodRuntime {
            containers: vec![rc("i1", 0, RunState::Exited, 1, 10)],
            ..Default::default()
        };
        let init = container_statuses(
            &pn,
            &rt,
            &[],
            spec.init_containers.as_ref().unwrap(),
            true,
            true,
            &w,
            &probes,
        );
        assert_eq!(phase(&pn, &init, false), "Failed");
    }

    #[test]
    fn running_pod_is_ready_unless_a_probe_says_no() {
        let p = pod(json!({"metadata": {"name": "p"}, "spec": {
            "containers": [{"name": "a", "image": "x", "readinessProbe": {"exec": {"command": ["true"]}}}]}}));
        let spec = p.spec.as_ref().unwrap();
        let rt = PodRuntime {
            containers: vec![rc("a", 0, RunState::Running, 0, 10)],
            ..Default::default()
        };
        let w = WaitingReasons::new();
        let mut probes = ProbeResults::new();
        let st = container_statuses(&p, &rt, &[], &spec.containers, false, false, &w, &probes);
        assert!(!st[0].ready, "no readiness result yet");
        probes.insert("a".into(), (Some(true), None));
        let st = container_statuses(&p, &rt, &[], &spec.containers, false, false, &w, &probes);
        assert!(st[0].ready);
        assert_eq!(st[0].started, Some(true));
        let conds = conditions(spec, &[], &[], &st, "Running", true);
        assert!(conds.iter().all(|c| c.status == "True"), "{conds:?}");
    }

    #[test]
    fn qos_classes() {
        let mk = |res: serde_json::Value| {
            pod(
                json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a", "resources": res}]}}),
            )
        };
        assert_eq!(
            qos_class(mk(json!({})).spec.as_ref().unwrap()),
            "BestEffort"
        );
        assert_eq!(
            qos_class(
                mk(json!({"limits": {"cpu": "1", "memory": "1Gi"}}))
                    .spec
                    .as_ref()
                    .unwrap()
            ),
            "Guaranteed"
        );
        assert_eq!(
            qos_class(
                mk(json!({"requests": {"cpu": "100m"}}))
                    .spec
                    .as_ref()
                    .unwrap()
            ),
            "Burstable"
        );
    }
}
