//! One pod's sync (upstream's `SyncPod`/`SyncTerminatingPod`: `computePodActions` then the
//! actions): volumes, the sandbox, init containers in order, app containers by restart policy
//! with back-off, then the status; and termination with the grace period.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use k8s_openapi::api::core::v1::{
    Container, ContainerStatus, LifecycleHandler, ObjectReference, Pod,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};

use super::backoff::{go_duration, INITIAL};
use super::runtime::{self as rtm, pod_full_name, pod_uid};
use super::status::{self, PodRuntime, RunState, RuntimeContainer, WaitingReasons};
use super::volumes::{self, Mounted};
use super::{PodManager, PodUpdate};
use crate::cri::{api as cri, Cri, CriError};

pub enum Next {
    Done,
    After(Duration),
}

#[derive(Default)]
pub struct WorkerState {
    waiting: WaitingReasons,
    last_status: Option<serde_json::Value>,
    volumes_at: Option<Instant>,
    mounted: Option<Mounted>,
    delete_sent: Option<Instant>,
    start_time: Option<Time>,
}

/// How often a running pod is re-synced without an event (volumes refreshed, back-offs
/// rechecked); upstream's `syncFrequency` is 1 min, its configMap/secret caches are fresher.
const RESYNC: Duration = Duration::from_secs(10);
const VOLUME_REFRESH: Duration = Duration::from_secs(10);
const MAX_TERMINATION_MESSAGE: usize = 4096;

fn container_ref(pod: &Pod, c: &str, init: bool) -> ObjectReference {
    let mut r = rudder_component::events::object_reference(pod);
    let kind = if init { "initContainers" } else { "containers" };
    r.field_path = Some(format!("spec.{kind}{{{c}}}"));
    r
}

/// A pod's ephemeral containers as containers (the same fields, without their target).
pub(crate) fn ephemeral_as_containers(
    spec: &k8s_openapi::api::core::v1::PodSpec,
) -> Vec<Container> {
    spec.ephemeral_containers
        .iter()
        .flatten()
        .filter_map(|e| serde_json::to_value(e).ok())
        .filter_map(|mut v| {
            if let Some(o) = v.as_object_mut() {
                o.remove("targetContainerName");
            }
            serde_json::from_value(v).ok()
        })
        .collect()
}

/// The event reference of a container (init containers by their own path).
pub fn container_ref_pub(pod: &Pod, c: &str) -> ObjectReference {
    let init = pod
        .spec
        .as_ref()
        .is_some_and(|s| s.init_containers.iter().flatten().any(|i| i.name == c));
    container_ref(pod, c, init)
}

fn ns_of(pod: &Pod) -> String {
    pod.metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".into())
}

fn nanos_to_system(ns: i64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_nanos(ns.max(0) as u64)
}

/// Stops (with `timeout` seconds of grace) and removes every container and sandbox of a pod.
pub async fn remove_all(cri: &Cri, uid: &str, timeout: i64) -> Result<(), CriError> {
    let rt = rtm::pod_runtime(cri, uid, None).await?;
    for c in &rt.containers {
        if c.state == RunState::Running {
            let _ = cri
                .runtime()
                .stop_container(cri::StopContainerRequest {
                    container_id: c.id.clone(),
                    timeout,
                })
                .await;
        }
        cri.runtime()
            .remove_container(cri::RemoveContainerRequest {
                container_id: c.id.clone(),
            })
            .await
            .map_err(CriError::rpc("RemoveContainer"))?;
    }
    for s in &rt.sandboxes {
        cri.runtime()
            .stop_pod_sandbox(cri::StopPodSandboxRequest {
                pod_sandbox_id: s.id.clone(),
            })
            .await
            .map_err(CriError::rpc("StopPodSandbox"))?;
        cri.runtime()
            .remove_pod_sandbox(cri::RemovePodSandboxRequest {
                pod_sandbox_id: s.id.clone(),
            })
            .await
            .map_err(CriError::rpc("RemovePodSandbox"))?;
    }
    Ok(())
}

/// The tail of a CRI log file as text (for `FallbackToLogsOnError`): the last 80 lines,
/// at most 2 KiB, as upstream.
fn log_tail(path: &str) -> String {
    let Ok(text) = std::fs::read_to_string(path) else {
        return String::new();
    };
    let mut out = String::new();
    for line in text.lines() {
        // <timestamp> <stream> <P|F> <content>
        let mut parts = line.splitn(4, ' ');
        let (_, _, tag, content) = (parts.next(), parts.next(), parts.next(), parts.next());
        out.push_str(content.unwrap_or(""));
        if tag != Some("P") {
            out.push('\n');
        }
    }
    let lines: Vec<&str> = out.lines().collect();
    let start = lines.len().saturating_sub(80);
    let mut tail = lines[start..].join("\n");
    if !tail.is_empty() {
        tail.push('\n');
    }
    if tail.len() > 2048 {
        let cut = tail.len() - 2048;
        let cut = (cut..tail.len())
            .find(|i| tail.is_char_boundary(*i))
            .unwrap_or(cut);
        tail = tail[cut..].to_string();
    }
    tail
}

impl PodManager {
    /// The pod's IP as its status reports it, which probes and hooks address: the node's for
    /// host-network pods, whose sandbox has none (upstream probes `status.podIP`).
    pub(super) fn pod_ip(&self, pod: &Pod, sandbox_ip: Option<&str>) -> Option<String> {
        let host_network = pod.spec.as_ref().and_then(|s| s.host_network) == Some(true);
        if host_network {
            Some(self.cfg.node_ip.to_string())
        } else {
            sandbox_ip.map(str::to_string)
        }
    }

    fn pod_dir(&self, uid: &str) -> PathBuf {
        self.cfg.pods_dir().join(uid)
    }

    fn termination_log(&self, uid: &str, name: &str, restart: i32) -> PathBuf {
        self.pod_dir(uid)
            .join("containers")
            .join(name)
            .join(format!("{restart}.termination-log"))
    }

    fn event(&self, pod: &Pod, type_: &str, reason: &str, msg: String) {
        self.recorder.event(pod, type_, reason, msg);
    }

    fn container_event(
        &self,
        pod: &Pod,
        c: &str,
        init: bool,
        type_: &str,
        reason: &str,
        msg: String,
    ) {
        self.recorder
            .event_for(container_ref(pod, c, init), ns_of(pod), type_, reason, msg);
    }

    pub(super) async fn sync_pod(self: &Arc<Self>, u: &PodUpdate, st: &mut WorkerState) -> Next {
        let pod = &u.pod;
        let uid = pod_uid(pod);
        if self.take_rewrite(&uid) {
            st.last_status = None;
        }
        if u.removed {
            self.cleanup(pod, &uid).await;
            return Next::Done;
        }
        let rt = match rtm::pod_runtime(&self.cri, &uid, None).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(pod = %pod_full_name(pod), error = %e, "reading the runtime state failed");
                return Next::After(Duration::from_secs(2));
            }
        };
        let terminal_api = matches!(
            pod.status.as_ref().and_then(|s| s.phase.as_deref()),
            Some("Succeeded" | "Failed")
        );
        let evicted = self
            .evicted
            .lock()
            .map(|e| e.contains_key(&uid))
            .unwrap_or(false);
        if pod.metadata.deletion_timestamp.is_some() || terminal_api || evicted {
            self.probe_workers.stop_pod(&uid);
            return self.terminate(pod, &uid, rt, st).await;
        }
        let wake = self.run_pod(pod, &uid, &rt, st).await;
        let rt = match rtm::pod_runtime(&self.cri, &uid, None).await {
            Ok(r) => r,
            Err(_) => rt,
        };
        self.write_status(pod, &uid, &rt, st, false).await;
        self.sync_probes(pod, &rt);
        if rt.containers.iter().any(|c| c.reason_pending) {
            return Next::After(Duration::from_secs(1));
        }
        Next::After(wake.unwrap_or(RESYNC).min(RESYNC))
    }

    async fn cleanup(&self, pod: &Pod, uid: &str) {
        if let Err(e) = remove_all(&self.cri, uid, 2).await {
            tracing::warn!(pod = %pod_full_name(pod), error = %e, "removing the pod's containers failed");
        }
        let _ = volumes::teardown(&self.pod_dir(uid));
        let qos = pod
            .status
            .as_ref()
            .and_then(|s| s.qos_class.clone())
            .unwrap_or_else(|| {
                pod.spec
                    .as_ref()
                    .map(status::qos_class)
                    .unwrap_or("BestEffort")
                    .to_string()
            });
        tokio::spawn(rtm::remove_pod_cgroup_eventually(rtm::cgroup_parent(
            &self.cfg.cgroup_root,
            &qos,
            uid,
        )));
        let logs = self.cfg.logs_dir().join(format!(
            "{}_{}_{}",
            ns_of(pod),
            pod.metadata.name.as_deref().unwrap_or_default(),
            uid
        ));
        let _ = std::fs::remove_dir_all(logs);
        self.tokens.forget_pod(uid);
        self.probe_workers.stop_pod(uid);
        if let Ok(mut e) = self.evicted.lock() {
            e.remove(uid);
        }
        self.backoff.forget_prefix(&format!("{uid}/"));
        if let Ok(mut p) = self.probes.lock() {
            p.retain(|k, _| k.0 != uid);
        }
    }

    /// Brings the runtime towards the spec; returns when the worker should look again.
    async fn run_pod(
        &self,
        pod: &Pod,
        uid: &str,
        rt: &PodRuntime,
        st: &mut WorkerState,
    ) -> Option<Duration> {
        let spec = pod.spec.clone().unwrap_or_default();
        // Volumes first: a container never starts without its mounts.
        if st.mounted.is_none() || st.volumes_at.is_none_or(|t| t.elapsed() >= VOLUME_REFRESH) {
            let allocatable = self
                .allocatable
                .lock()
                .map(|a| a.clone())
                .unwrap_or_default();
            let host_ip = self.cfg.node_ip.to_string();
            let ctx = volumes::Ctx {
                client: &self.client,
                pod_dir: self.pod_dir(uid),
                node_name: &self.cfg.node_name,
                host_ip: &host_ip,
                allocatable: &allocatable,
                tokens: &self.tokens,
            };
            match volumes::setup(&ctx, pod).await {
                Ok(m) => {
                    st.mounted = Some(m);
                    st.volumes_at = Some(Instant::now());
                }
                Err(e) => {
                    self.event(
                        pod,
                        "Warning",
                        "FailedMount",
                        format!("MountVolume.SetUp failed: {e}"),
                    );
                    if st.mounted.is_none() {
                        return Some(Duration::from_secs(2));
                    }
                }
            }
        }
        let mounted = st.mounted.clone().unwrap_or_default();
        // The sandbox.
        let sandbox = match rt.ready_sandbox() {
            Some(s) => s.clone(),
            None => {
                let policy = spec.restart_policy.as_deref().unwrap_or("Always");
                let app_ran = spec.containers.iter().any(|c| rt.latest(&c.name).is_some());
                if !rt.sandboxes.is_empty() {
                    if policy == "Never" && app_ran {
                        // The pod will not run again: its status goes terminal.
                        return None;
                    }
                    self.event(
                        pod,
                        "Normal",
                        "SandboxChanged",
                        "Pod sandbox changed, it will be killed and re-created.".into(),
                    );
                    for c in rt.running() {
                        let _ = self
                            .cri
                            .runtime()
                            .stop_container(cri::StopContainerRequest {
                                container_id: c.id.clone(),
                                timeout: 2,
                            })
                            .await;
                    }
                    for s in &rt.sandboxes {
                        let _ = self
                            .cri
                            .runtime()
                            .stop_pod_sandbox(cri::StopPodSandboxRequest {
                                pod_sandbox_id: s.id.clone(),
                            })
                            .await;
                    }
                }
                let attempt = rt.sandboxes.first().map(|s| s.attempt + 1).unwrap_or(0);
                match self.create_sandbox(pod, uid, attempt).await {
                    Ok(s) => s,
                    Err(e) => {
                        self.event(
                            pod,
                            "Warning",
                            "FailedCreatePodSandBox",
                            format!("Failed to create pod sandbox: {}", e.message()),
                        );
                        return Some(Duration::from_secs(5));
                    }
                }
            }
        };
        let pod_ip = self.pod_ip(pod, sandbox.ip.as_deref());
        let hosts = rtm::hosts_file(pod, pod_ip.as_deref(), &self.cfg.cluster_domain);
        let hosts_path = self.pod_dir(uid).join("etc-hosts");
        if std::fs::read_to_string(&hosts_path).ok().as_deref() != Some(hosts.as_str()) {
            if let Err(e) = std::fs::create_dir_all(self.pod_dir(uid))
                .and_then(|_| std::fs::write(&hosts_path, &hosts))
            {
                tracing::warn!(error = %e, "writing the pod's hosts file failed");
            }
        }
        // Only containers of the current sandbox count for init progress (a new sandbox runs
        // the init containers again, as upstream).
        let current: Vec<&RuntimeContainer> = rt
            .containers
            .iter()
            .filter(|c| c.sandbox_id == sandbox.id)
            .collect();
        let latest_here = |name: &str| current.iter().find(|c| c.name == name).copied();
        let ctx = StartCtx {
            pod,
            uid,
            sandbox: &sandbox,
            mounted: &mounted,
            hosts_path: &hosts_path,
        };
        let mut wake: Option<Duration> = None;
        let mut merge_wake = |d: Option<Duration>| {
            if let Some(d) = d {
                wake = Some(wake.map_or(d, |w: Duration| w.min(d)));
            }
        };
        for c in spec.init_containers.iter().flatten() {
            let latest = latest_here(&c.name);
            let sidecar = status::is_restartable_init(c);
            match latest.map(|l| (l.state, l.exit_code)) {
                Some((RunState::Running, _)) => {
                    if sidecar && self.started(uid, c) {
                        continue;
                    }
                    return wake;
                }
                Some((RunState::Exited, 0)) if !sidecar => continue,
                Some((RunState::Exited, _))
                    if !sidecar && spec.restart_policy.as_deref() == Some("Never") =>
                {
                    // A failed init container fails a pod that never restarts.
                    return wake;
                }
                _ => {
                    merge_wake(self.start_container(&ctx, c, true, rt, st).await);
                    return wake;
                }
            }
        }
        for c in &spec.containers {
            if status::should_restart(c, pod, rt) {
                merge_wake(self.start_container(&ctx, c, false, rt, st).await);
            }
        }
        // Ephemeral containers (`kubectl debug`) run once, never restarted.
        for c in ephemeral_as_containers(&spec) {
            if rt.latest(&c.name).is_none() && !st.waiting.contains_key(&c.name) {
                merge_wake(self.start_container(&ctx, &c, false, rt, st).await);
            }
        }
        wake
    }

    async fn create_sandbox(
        &self,
        pod: &Pod,
        uid: &str,
        attempt: u32,
    ) -> Result<status::RuntimeSandbox, CriError> {
        let log_dir = self.cfg.logs_dir().join(format!(
            "{}_{}_{}",
            ns_of(pod),
            pod.metadata.name.as_deref().unwrap_or_default(),
            uid
        ));
        let _ = std::fs::create_dir_all(&log_dir);
        let qos = pod
            .spec
            .as_ref()
            .map(status::qos_class)
            .unwrap_or("BestEffort");
        let input = rtm::SandboxInput {
            pod,
            attempt,
            log_dir,
            cgroup_parent: rtm::cgroup_parent(&self.cfg.cgroup_root, qos, uid),
            cluster_dns: &self.cfg.cluster_dns,
            domain: &self.cfg.cluster_domain,
        };
        if let Some(spec) = pod.spec.as_ref() {
            if let Err(e) = rtm::setup_pod_cgroup(&input.cgroup_parent, spec) {
                tracing::warn!(pod = %pod_full_name(pod), error = %e, "setting the pod cgroup's limits failed");
            }
        }
        let config = rtm::sandbox_config(&input);
        let r = self
            .cri
            .runtime()
            .run_pod_sandbox(cri::RunPodSandboxRequest {
                config: Some(config),
                runtime_handler: String::new(),
            })
            .await;
        let id = match r {
            Ok(r) => r.into_inner().pod_sandbox_id,
            Err(status) => {
                // A failed RunPodSandbox can leave a NotReady sandbox behind (spike): remove it.
                if let Ok(rt) = rtm::pod_runtime(&self.cri, uid, None).await {
                    for s in rt
                        .sandboxes
                        .iter()
                        .filter(|s| !s.ready && s.attempt == attempt)
                    {
                        let _ = self
                            .cri
                            .runtime()
                            .stop_pod_sandbox(cri::StopPodSandboxRequest {
                                pod_sandbox_id: s.id.clone(),
                            })
                            .await;
                        let _ = self
                            .cri
                            .runtime()
                            .remove_pod_sandbox(cri::RemovePodSandboxRequest {
                                pod_sandbox_id: s.id.clone(),
                            })
                            .await;
                    }
                }
                return Err(CriError::Rpc {
                    op: "RunPodSandbox",
                    status,
                });
            }
        };
        let ip = self
            .cri
            .sandbox_status(&id)
            .await
            .ok()
            .and_then(|s| s.network)
            .map(|n| n.ip)
            .filter(|ip| !ip.is_empty());
        Ok(status::RuntimeSandbox {
            id,
            attempt,
            ready: true,
            ip,
            created_at: 0,
        })
    }

    /// Pulls the image as `imagePullPolicy` says; Err is the waiting (reason, message).
    async fn ensure_image(
        &self,
        pod: &Pod,
        c: &Container,
        init: bool,
        sandbox: &cri::PodSandboxConfig,
    ) -> Result<String, (String, String)> {
        let image = c.image.clone().unwrap_or_default();
        let uid = pod_uid(pod);
        let tagged_latest = !image.contains('@')
            && image
                .rsplit('/')
                .next()
                .is_none_or(|last| !last.contains(':') || last.ends_with(":latest"));
        let policy = c.image_pull_policy.clone().unwrap_or_else(|| {
            if tagged_latest {
                "Always"
            } else {
                "IfNotPresent"
            }
            .to_string()
        });
        let spec = cri::ImageSpec {
            image: image.clone(),
            ..Default::default()
        };
        let present = self
            .cri
            .images()
            .image_status(cri::ImageStatusRequest {
                image: Some(spec.clone()),
                verbose: false,
            })
            .await
            .ok()
            .and_then(|r| r.into_inner().image);
        if let Some(img) = &present {
            if policy != "Always" {
                self.container_event(
                    pod,
                    &c.name,
                    init,
                    "Normal",
                    "Pulled",
                    format!("Container image {image:?} already present on machine"),
                );
                return Ok(img.id.clone());
            }
        }
        if policy == "Never" {
            let msg = format!("Container image {image:?} is not present with pull policy of Never");
            self.container_event(
                pod,
                &c.name,
                init,
                "Warning",
                "ErrImageNeverPull",
                msg.clone(),
            );
            return Err(("ErrImageNeverPull".into(), msg));
        }
        let key = format!("{uid}/image/{image}");
        if let Some((_, _)) = self.backoff.in_backoff_since(&key, SystemTime::now()) {
            let msg = format!("Back-off pulling image {image:?}");
            self.container_event(pod, &c.name, init, "Normal", "BackOff", msg.clone());
            return Err(("ImagePullBackOff".into(), msg));
        }
        self.container_event(
            pod,
            &c.name,
            init,
            "Normal",
            "Pulling",
            format!("Pulling image {image:?}"),
        );
        let auth = rtm::pull_auth(&self.client, pod, &image).await;
        let t0 = Instant::now();
        let r = self
            .cri
            .images()
            .pull_image(cri::PullImageRequest {
                image: Some(spec.clone()),
                auth,
                sandbox_config: Some(sandbox.clone()),
            })
            .await;
        match r {
            Ok(r) => {
                let image_ref = r.into_inner().image_ref;
                let took = t0.elapsed();
                let size = self
                    .cri
                    .images()
                    .image_status(cri::ImageStatusRequest {
                        image: Some(spec),
                        verbose: false,
                    })
                    .await
                    .ok()
                    .and_then(|r| r.into_inner().image)
                    .map(|i| i.size)
                    .unwrap_or(0);
                let ms = format!("{}ms", took.as_millis());
                self.container_event(
                    pod,
                    &c.name,
                    init,
                    "Normal",
                    "Pulled",
                    format!("Successfully pulled image {image:?} in {ms} ({ms} including waiting). Image size: {size} bytes."),
                );
                Ok(image_ref)
            }
            Err(e) => {
                self.backoff.next(&key, SystemTime::now());
                let msg = format!("Failed to pull image {image:?}: {}", e.message());
                self.container_event(pod, &c.name, init, "Warning", "Failed", msg.clone());
                self.container_event(
                    pod,
                    &c.name,
                    init,
                    "Warning",
                    "Failed",
                    "Error: ErrImagePull".into(),
                );
                Err(("ErrImagePull".into(), msg))
            }
        }
    }

    /// A container that could not be created or started: upstream's `Failed` event
    /// (`Error: …`) and the waiting reason the status shows until the next attempt.
    fn start_failed(
        &self,
        pod: &Pod,
        c: &Container,
        init: bool,
        st: &mut WorkerState,
        reason: &str,
        msg: String,
    ) -> Duration {
        self.container_event(
            pod,
            &c.name,
            init,
            "Warning",
            "Failed",
            format!("Error: {msg}"),
        );
        st.waiting.insert(c.name.clone(), (reason.to_string(), msg));
        Duration::from_secs(5)
    }

    /// Starts (or restarts, honouring the crash-loop back-off) one container. Returns when to
    /// look again if it is backing off.
    async fn start_container(
        &self,
        ctx: &StartCtx<'_>,
        c: &Container,
        init: bool,
        rt: &PodRuntime,
        st: &mut WorkerState,
    ) -> Option<Duration> {
        let pod = ctx.pod;
        let uid = ctx.uid;
        let latest = rt.latest(&c.name);
        let key = format!("{uid}/{}", c.name);
        if let Some(l) = latest.filter(|l| l.state == RunState::Exited) {
            let finished = nanos_to_system(l.finished_at);
            if let Some((delay, remaining)) = self.backoff.in_backoff_since(&key, finished) {
                let full = pod_full_name(pod);
                st.waiting.insert(
                    c.name.clone(),
                    (
                        "CrashLoopBackOff".into(),
                        format!(
                            "back-off {} restarting failed container={} pod={full}",
                            go_duration(delay),
                            c.name
                        ),
                    ),
                );
                self.container_event(
                    pod,
                    &c.name,
                    init,
                    "Warning",
                    "BackOff",
                    format!(
                        "Back-off restarting failed container {} in pod {full}",
                        c.name
                    ),
                );
                return Some(remaining.max(Duration::from_millis(100)));
            }
            self.backoff.next(&key, finished);
        }
        let sandbox_config = {
            let qos = pod
                .spec
                .as_ref()
                .map(status::qos_class)
                .unwrap_or("BestEffort");
            rtm::sandbox_config(&rtm::SandboxInput {
                pod,
                attempt: ctx.sandbox.attempt,
                log_dir: self.cfg.logs_dir().join(format!(
                    "{}_{}_{}",
                    ns_of(pod),
                    pod.metadata.name.as_deref().unwrap_or_default(),
                    uid
                )),
                cgroup_parent: rtm::cgroup_parent(&self.cfg.cgroup_root, qos, uid),
                cluster_dns: &self.cfg.cluster_dns,
                domain: &self.cfg.cluster_domain,
            })
        };
        let image_ref = match self.ensure_image(pod, c, init, &sandbox_config).await {
            Ok(r) => r,
            Err((reason, msg)) => {
                st.waiting.insert(c.name.clone(), (reason, msg));
                return Some(INITIAL);
            }
        };
        let restart_count = latest.map(|l| l.restart_count + 1).unwrap_or(0);
        let config = match self
            .container_config(ctx, c, restart_count, &image_ref)
            .await
        {
            Ok(cfg) => cfg,
            Err(msg) => {
                return Some(self.start_failed(
                    pod,
                    c,
                    init,
                    st,
                    "CreateContainerConfigError",
                    msg,
                ));
            }
        };
        let created = self
            .cri
            .runtime()
            .create_container(cri::CreateContainerRequest {
                pod_sandbox_id: ctx.sandbox.id.clone(),
                config: Some(config),
                sandbox_config: Some(sandbox_config),
            })
            .await;
        let id = match created {
            Ok(r) => r.into_inner().container_id,
            Err(e) => {
                let msg = e.message().to_string();
                return Some(self.start_failed(pod, c, init, st, "CreateContainerError", msg));
            }
        };
        self.container_event(
            pod,
            &c.name,
            init,
            "Normal",
            "Created",
            format!("Created container: {}", c.name),
        );
        if let Err(e) = self
            .cri
            .runtime()
            .start_container(cri::StartContainerRequest {
                container_id: id.clone(),
            })
            .await
        {
            let msg = e.message().to_string();
            return Some(self.start_failed(pod, c, init, st, "RunContainerError", msg));
        }
        self.container_event(
            pod,
            &c.name,
            init,
            "Normal",
            "Started",
            format!("Started container {}", c.name),
        );
        st.waiting.remove(&c.name);
        if let Some(h) = c.lifecycle.as_ref().and_then(|l| l.post_start.as_ref()) {
            if let Err(msg) = self
                .run_hook(pod, &id, h, ctx.sandbox.ip.as_deref(), 30)
                .await
            {
                self.container_event(
                    pod,
                    &c.name,
                    init,
                    "Warning",
                    "FailedPostStartHook",
                    format!("PostStartHook failed: {msg}"),
                );
                let _ = self
                    .cri
                    .runtime()
                    .stop_container(cri::StopContainerRequest {
                        container_id: id.clone(),
                        timeout: 2,
                    })
                    .await;
            }
        }
        // Keep one dead instance per container (upstream's MaxPerPodContainer) for lastState
        // and `logs --previous`.
        for old in rt
            .containers
            .iter()
            .filter(|o| o.name == c.name && o.state != RunState::Running)
            .skip(1)
        {
            let _ = self
                .cri
                .runtime()
                .remove_container(cri::RemoveContainerRequest {
                    container_id: old.id.clone(),
                })
                .await;
        }
        None
    }

    async fn container_config(
        &self,
        ctx: &StartCtx<'_>,
        c: &Container,
        restart_count: i32,
        image_ref: &str,
    ) -> Result<cri::ContainerConfig, String> {
        let pod = ctx.pod;
        let uid = ctx.uid;
        let ns = ns_of(pod);
        let services = self.services.state();
        let svc_list: Vec<k8s_openapi::api::core::v1::Service> = services
            .iter()
            .filter(|s| {
                s.metadata.namespace.as_deref() == Some(ns.as_str())
                    || (s.metadata.namespace.as_deref() == Some("default")
                        && s.metadata.name.as_deref() == Some("kubernetes"))
            })
            .map(|s| (**s).clone())
            .collect();
        let allocatable = self
            .allocatable
            .lock()
            .map(|a| a.clone())
            .unwrap_or_default();
        let mut sources = super::env::Sources::new(&self.client, &ns);
        let host_ip = self.cfg.node_ip.to_string();
        // status.podIP for the env is the sandbox's address, which the API may not know yet.
        let mut pod_for_env = pod.clone();
        if let Some(ip) = &ctx.sandbox.ip {
            let s = pod_for_env.status.get_or_insert_with(Default::default);
            s.pod_ip = Some(ip.clone());
            s.pod_ips = Some(vec![k8s_openapi::api::core::v1::PodIP { ip: ip.clone() }]);
        }
        let env = super::env::container_env(
            &pod_for_env,
            c,
            &svc_list,
            &mut sources,
            &self.cfg.node_name,
            &host_ip,
            &allocatable,
        )
        .await
        .map_err(|e| e.to_string())?;
        let lookup: BTreeMap<String, String> = env.iter().cloned().collect();
        let expand = |s: &str| super::env::expand(s, &|n| lookup.get(n).cloned());
        let mut mounts = Vec::new();
        for vm in c.volume_mounts.iter().flatten() {
            let Some(base) = ctx.mounted.paths.get(&vm.name) else {
                return Err(format!(
                    "cannot find volume {:?} to mount into container {:?}",
                    vm.name, c.name
                ));
            };
            let sub = match (&vm.sub_path, &vm.sub_path_expr) {
                (Some(s), _) if !s.is_empty() => Some(s.clone()),
                (_, Some(e)) if !e.is_empty() => Some(expand(e)),
                _ => None,
            };
            let host = match sub {
                Some(s) => {
                    if s.split('/').any(|p| p == "..") || s.starts_with('/') {
                        return Err(format!("invalid subpath {s:?}"));
                    }
                    let p = base.join(&s);
                    if !p.exists() {
                        std::fs::create_dir_all(&p).map_err(|e| e.to_string())?;
                    }
                    p
                }
                None => base.clone(),
            };
            mounts.push(cri::Mount {
                container_path: vm.mount_path.clone(),
                host_path: host.to_string_lossy().into_owned(),
                readonly: vm.read_only.unwrap_or(false),
                propagation: match vm.mount_propagation.as_deref() {
                    Some("HostToContainer") => {
                        cri::MountPropagation::PropagationHostToContainer as i32
                    }
                    Some("Bidirectional") => cri::MountPropagation::PropagationBidirectional as i32,
                    _ => cri::MountPropagation::PropagationPrivate as i32,
                },
                ..Default::default()
            });
        }
        if !mounts.iter().any(|m| m.container_path == "/etc/hosts") {
            mounts.push(cri::Mount {
                container_path: "/etc/hosts".into(),
                host_path: ctx.hosts_path.to_string_lossy().into_owned(),
                ..Default::default()
            });
        }
        let term_path = c
            .termination_message_path
            .clone()
            .unwrap_or_else(|| "/dev/termination-log".into());
        let term_host = self.termination_log(uid, &c.name, restart_count);
        if let Some(parent) = term_host.parent() {
            std::fs::create_dir_all(parent).map_err(|e| e.to_string())?;
        }
        std::fs::write(&term_host, b"").map_err(|e| e.to_string())?;
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(&term_host, std::fs::Permissions::from_mode(0o666));
        }
        mounts.push(cri::Mount {
            container_path: term_path.clone(),
            host_path: term_host.to_string_lossy().into_owned(),
            ..Default::default()
        });
        let mut labels = std::collections::HashMap::new();
        labels.insert(
            crate::cri::labels::CONTAINER_NAME.to_string(),
            c.name.clone(),
        );
        labels.insert(
            crate::cri::labels::POD_NAME.to_string(),
            pod.metadata.name.clone().unwrap_or_default(),
        );
        labels.insert(crate::cri::labels::POD_NAMESPACE.to_string(), ns.clone());
        labels.insert(crate::cri::labels::POD_UID.to_string(), uid.to_string());
        let mut annotations = std::collections::HashMap::new();
        annotations.insert(rtm::RESTART_COUNT.to_string(), restart_count.to_string());
        annotations.insert(rtm::TERMINATION_MESSAGE_PATH.to_string(), term_path);
        let grace = pod
            .spec
            .as_ref()
            .and_then(|s| s.termination_grace_period_seconds)
            .unwrap_or(30);
        annotations.insert(rtm::TERMINATION_GRACE.to_string(), grace.to_string());
        let qos = pod
            .spec
            .as_ref()
            .map(status::qos_class)
            .unwrap_or("BestEffort");
        let mut security = rtm::security_context(pod, c);
        // `kubectl debug --target`: the ephemeral container joins the target's PID namespace.
        let target = pod
            .spec
            .as_ref()
            .and_then(|s| s.ephemeral_containers.as_ref())
            .and_then(|e| e.iter().find(|e| e.name == c.name))
            .and_then(|e| e.target_container_name.clone());
        if let Some(target) = target {
            if let Ok(rt) = rtm::pod_runtime(&self.cri, uid, None).await {
                if let Some(t) = rt
                    .latest(&target)
                    .filter(|t| t.state == status::RunState::Running)
                {
                    if let Some(ns) = security.namespace_options.as_mut() {
                        ns.pid = cri::NamespaceMode::Target as i32;
                        ns.target_id = t.id.clone();
                    }
                }
            }
        }
        Ok(cri::ContainerConfig {
            metadata: Some(cri::ContainerMetadata {
                name: c.name.clone(),
                attempt: restart_count as u32,
            }),
            image: Some(cri::ImageSpec {
                image: image_ref.to_string(),
                user_specified_image: c.image.clone().unwrap_or_default(),
                ..Default::default()
            }),
            command: c.command.iter().flatten().map(|s| expand(s)).collect(),
            args: c.args.iter().flatten().map(|s| expand(s)).collect(),
            working_dir: c.working_dir.clone().unwrap_or_default(),
            envs: env
                .into_iter()
                .map(|(key, value)| cri::KeyValue { key, value })
                .collect(),
            mounts,
            labels,
            annotations,
            log_path: format!("{}/{restart_count}.log", c.name),
            stdin: c.stdin.unwrap_or(false),
            stdin_once: c.stdin_once.unwrap_or(false),
            tty: c.tty.unwrap_or(false),
            linux: Some(cri::LinuxContainerConfig {
                resources: Some(rtm::linux_resources(c, qos, self.memory_capacity)),
                security_context: Some(security),
            }),
            ..Default::default()
        })
    }

    /// Runs a lifecycle hook (exec, httpGet, sleep) within `timeout` seconds.
    pub(crate) async fn run_hook(
        &self,
        pod: &Pod,
        container_id: &str,
        h: &LifecycleHandler,
        pod_ip: Option<&str>,
        timeout: i64,
    ) -> Result<(), String> {
        if let Some(e) = &h.exec {
            let r = self
                .cri
                .runtime()
                .exec_sync(cri::ExecSyncRequest {
                    container_id: container_id.to_string(),
                    cmd: e.command.clone().unwrap_or_default(),
                    timeout: timeout.max(1),
                })
                .await
                .map_err(|e| e.message().to_string())?
                .into_inner();
            if r.exit_code != 0 {
                return Err(format!(
                    "command '{}' exited with {}: {}",
                    e.command.clone().unwrap_or_default().join(" "),
                    r.exit_code,
                    String::from_utf8_lossy(&r.stderr)
                ));
            }
            return Ok(());
        }
        if let Some(s) = &h.sleep {
            tokio::time::sleep(Duration::from_secs(
                s.seconds.clamp(0, timeout.max(0)) as u64
            ))
            .await;
            return Ok(());
        }
        if let Some(g) = &h.http_get {
            let host = g
                .host
                .clone()
                .or(pod_ip.map(str::to_string))
                .unwrap_or_else(|| "127.0.0.1".into());
            let port = match &g.port {
                k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(p) => *p,
                k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String(name) => pod
                    .spec
                    .as_ref()
                    .and_then(|s| {
                        s.containers
                            .iter()
                            .flat_map(|c| c.ports.iter().flatten())
                            .find(|p| p.name.as_deref() == Some(name.as_str()))
                            .map(|p| p.container_port)
                    })
                    .ok_or_else(|| format!("unknown port name {name:?}"))?,
            };
            let path = g.path.clone().unwrap_or_else(|| "/".into());
            let fut = crate::probe::http_get(
                &host,
                port as u16,
                &path,
                g.http_headers.as_deref().unwrap_or_default(),
                g.scheme.as_deref() == Some("HTTPS"),
                crate::probe::Agent::Lifecycle,
            );
            return match tokio::time::timeout(Duration::from_secs(timeout.max(1) as u64), fut).await {
                Ok(Ok(code)) if (200..400).contains(&code) => Ok(()),
                Ok(Ok(code)) => Err(format!("HTTP lifecycle hook ({path}) for Container in Pod {} failed - error: HTTP status code {code}", pod_full_name(pod))),
                Ok(Err(e)) => Err(e),
                Err(_) => Err("hook timed out".into()),
            };
        }
        Ok(())
    }

    /// Kills the pod's containers with its grace period (preStop first), stops its sandbox,
    /// reports the final status and, for a deleted pod, deletes the object.
    async fn terminate(&self, pod: &Pod, uid: &str, rt: PodRuntime, st: &mut WorkerState) -> Next {
        let spec = pod.spec.clone().unwrap_or_default();
        // Hard eviction kills at once (upstream's grace period override of 0).
        let evicted = self
            .evicted
            .lock()
            .map(|e| e.contains_key(uid))
            .unwrap_or(false);
        let grace = if evicted {
            0
        } else if pod.metadata.deletion_timestamp.is_some() {
            pod.metadata
                .deletion_grace_period_seconds
                .or(spec.termination_grace_period_seconds)
                .unwrap_or(30)
        } else {
            spec.termination_grace_period_seconds.unwrap_or(30)
        };
        let running: Vec<RuntimeContainer> = rt.running().cloned().collect();
        if !running.is_empty() {
            let kills = running.iter().map(|c| {
                let init = spec
                    .init_containers
                    .iter()
                    .flatten()
                    .any(|i| i.name == c.name);
                let container = spec
                    .containers
                    .iter()
                    .chain(spec.init_containers.iter().flatten())
                    .find(|s| s.name == c.name)
                    .cloned();
                let ip = self.pod_ip(pod, rt.ready_sandbox().and_then(|s| s.ip.as_deref()));
                async move {
                    self.container_event(
                        pod,
                        &c.name,
                        init,
                        "Normal",
                        "Killing",
                        format!("Stopping container {}", c.name),
                    );
                    let t0 = Instant::now();
                    if let Some(h) = container
                        .as_ref()
                        .and_then(|s| s.lifecycle.as_ref())
                        .and_then(|l| l.pre_stop.as_ref())
                    {
                        if grace > 0 {
                            if let Err(msg) =
                                self.run_hook(pod, &c.id, h, ip.as_deref(), grace).await
                            {
                                self.container_event(
                                    pod,
                                    &c.name,
                                    init,
                                    "Warning",
                                    "FailedPreStopHook",
                                    format!("PreStopHook failed: {msg}"),
                                );
                            }
                        }
                    }
                    let left =
                        (grace - t0.elapsed().as_secs() as i64).max(if grace > 0 { 2 } else { 0 });
                    let _ = self
                        .cri
                        .runtime()
                        .stop_container(cri::StopContainerRequest {
                            container_id: c.id.clone(),
                            timeout: left,
                        })
                        .await;
                }
            });
            futures::future::join_all(kills).await;
        }
        for s in rt.sandboxes.iter().filter(|s| s.ready) {
            let _ = self
                .cri
                .runtime()
                .stop_pod_sandbox(cri::StopPodSandboxRequest {
                    pod_sandbox_id: s.id.clone(),
                })
                .await;
        }
        let rt = rtm::pod_runtime(&self.cri, uid, None).await.unwrap_or(rt);
        self.write_status(pod, uid, &rt, st, true).await;
        if pod.metadata.deletion_timestamp.is_none() {
            let pending = rt.containers.iter().any(|c| c.reason_pending);
            return Next::After(Duration::from_secs(if pending { 1 } else { 60 }));
        }
        if st
            .delete_sent
            .is_none_or(|t| t.elapsed() > Duration::from_secs(5))
        {
            let api: Api<Pod> = Api::namespaced(self.client.clone(), &ns_of(pod));
            let dp = DeleteParams {
                grace_period_seconds: Some(0),
                preconditions: Some(Preconditions {
                    uid: Some(uid.to_string()),
                    resource_version: None,
                }),
                ..Default::default()
            };
            match api
                .delete(pod.metadata.name.as_deref().unwrap_or_default(), &dp)
                .await
            {
                Ok(_) => st.delete_sent = Some(Instant::now()),
                Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {
                    st.delete_sent = Some(Instant::now());
                }
                Err(e) => {
                    tracing::warn!(pod = %pod_full_name(pod), error = %e, "deleting the terminated pod failed")
                }
            }
        }
        Next::After(Duration::from_secs(5))
    }

    fn fill_termination_messages(
        &self,
        pod: &Pod,
        uid: &str,
        rt: &PodRuntime,
        statuses: &mut [ContainerStatus],
        specs: &[Container],
    ) {
        for s in statuses.iter_mut() {
            let spec = specs.iter().find(|c| c.name == s.name);
            let fallback = spec.and_then(|c| c.termination_message_policy.as_deref())
                == Some("FallbackToLogsOnError");
            for state in [s.state.as_mut(), s.last_state.as_mut()]
                .into_iter()
                .flatten()
            {
                let Some(t) = state.terminated.as_mut() else {
                    continue;
                };
                if t.message.as_deref().is_some_and(|m| !m.is_empty()) {
                    continue;
                }
                let Some(rc) = rt
                    .containers
                    .iter()
                    .find(|c| Some(c.container_id()) == t.container_id)
                else {
                    continue;
                };
                let file = self.termination_log(uid, &rc.name, rc.restart_count);
                let mut msg = std::fs::read(&file)
                    .map(|b| {
                        String::from_utf8_lossy(&b[..b.len().min(MAX_TERMINATION_MESSAGE)])
                            .into_owned()
                    })
                    .unwrap_or_default();
                if msg.is_empty() && fallback && t.exit_code != 0 {
                    msg = log_tail(&rc.log_path);
                }
                if !msg.is_empty() {
                    t.message = Some(msg);
                }
            }
        }
        let _ = pod;
    }

    async fn write_status(
        &self,
        pod: &Pod,
        uid: &str,
        rt: &PodRuntime,
        st: &mut WorkerState,
        terminal: bool,
    ) {
        let spec = pod.spec.clone().unwrap_or_default();
        let old = pod.status.clone().unwrap_or_default();
        let probes: status::ProbeResults = self
            .probes
            .lock()
            .map(|p| {
                p.iter()
                    .filter(|(k, _)| k.0 == uid)
                    .map(|(k, v)| (k.1.clone(), *v))
                    .collect()
            })
            .unwrap_or_default();
        let inits = spec.init_containers.clone().unwrap_or_default();
        let has_init = !inits.is_empty();
        let mut init = status::container_statuses(
            pod,
            rt,
            old.init_container_statuses.as_deref().unwrap_or_default(),
            &inits,
            has_init,
            true,
            &st.waiting,
            &probes,
        );
        let mut app = status::container_statuses(
            pod,
            rt,
            old.container_statuses.as_deref().unwrap_or_default(),
            &spec.containers,
            has_init,
            false,
            &st.waiting,
            &probes,
        );
        self.fill_termination_messages(pod, uid, rt, &mut init, &inits);
        self.fill_termination_messages(pod, uid, rt, &mut app, &spec.containers);
        let all: Vec<ContainerStatus> = init.iter().chain(app.iter()).cloned().collect();
        let computed = status::phase(pod, &all, terminal);
        let phase = status::settle_phase(pod, computed);
        let sandbox = rt.ready_sandbox();
        let now = Time(
            jiff::Timestamp::now()
                .round(jiff::Unit::Second)
                .unwrap_or_else(|_| jiff::Timestamp::now()),
        );
        let mut conditions = status::conditions(
            &spec,
            old.conditions.as_deref().unwrap_or_default(),
            &init,
            &app,
            &phase,
            sandbox.is_some(),
        );
        status::stamp_transitions(
            &mut conditions,
            old.conditions.as_deref().unwrap_or_default(),
            &now,
        );
        let host_ip = self.cfg.node_ip.to_string();
        let pod_ip = if spec.host_network == Some(true) {
            Some(host_ip.clone())
        } else {
            sandbox.and_then(|s| s.ip.clone()).or(old.pod_ip.clone())
        };
        if st.start_time.is_none() {
            st.start_time = old.start_time.clone().or(Some(now.clone()));
        }
        let mut status = old.clone();
        status.phase = Some(phase);
        status.conditions = Some(conditions);
        status.host_ip = Some(host_ip.clone());
        status.host_ips = Some(vec![k8s_openapi::api::core::v1::HostIP { ip: host_ip }]);
        if let Some(ip) = &pod_ip {
            status.pod_ip = Some(ip.clone());
            status.pod_ips = Some(vec![k8s_openapi::api::core::v1::PodIP { ip: ip.clone() }]);
        }
        status.start_time = st.start_time.clone();
        status.qos_class = Some(status::qos_class(&spec).to_string());
        status.container_statuses = Some(app);
        let eviction = self.evicted.lock().ok().and_then(|e| e.get(uid).cloned());
        if let Some(message) = eviction {
            status.phase = Some("Failed".into());
            status.reason = Some("Evicted".into());
            status.message = Some(message.clone());
            let conds = status.conditions.get_or_insert_with(Vec::new);
            if !conds.iter().any(|c| c.type_ == "DisruptionTarget") {
                conds.push(k8s_openapi::api::core::v1::PodCondition {
                    type_: "DisruptionTarget".into(),
                    status: "True".into(),
                    reason: Some("TerminationByKubelet".into()),
                    message: Some(message),
                    last_transition_time: Some(now.clone()),
                    ..Default::default()
                });
            }
        }
        status.init_container_statuses = has_init.then_some(init);
        let eph = ephemeral_as_containers(&spec);
        if !eph.is_empty() {
            let mut es = status::container_statuses(
                pod,
                rt,
                old.ephemeral_container_statuses
                    .as_deref()
                    .unwrap_or_default(),
                &eph,
                false,
                false,
                &st.waiting,
                &probes,
            );
            self.fill_termination_messages(pod, uid, rt, &mut es, &eph);
            status.ephemeral_container_statuses = Some(es);
        }
        let value = match serde_json::to_value(&status) {
            Ok(v) => v,
            Err(_) => return,
        };
        if st.last_status.as_ref() == Some(&value) {
            return;
        }
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &ns_of(pod));
        let patch = serde_json::json!({"status": value});
        match api
            .patch_status(
                pod.metadata.name.as_deref().unwrap_or_default(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
        {
            Ok(_) => st.last_status = Some(value),
            Err(e) => {
                tracing::warn!(pod = %pod_full_name(pod), error = %e, "updating pod status failed")
            }
        }
    }
}

pub(super) struct StartCtx<'a> {
    pod: &'a Pod,
    uid: &'a str,
    sandbox: &'a status::RuntimeSandbox,
    mounted: &'a Mounted,
    hosts_path: &'a Path,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_tail_joins_partial_records() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("0.log");
        std::fs::write(&p, "2026-01-01T00:00:00.1Z stdout P part\n2026-01-01T00:00:00.2Z stdout F ial\n2026-01-01T00:00:00.3Z stderr F boom\n").unwrap();
        assert_eq!(log_tail(p.to_str().unwrap()), "partial\nboom\n");
    }
}
