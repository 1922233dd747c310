//! The pods bound to simulated nodes, moved as a kubelet reports them (`generateAPIPodStatus`,
//! `status/generate.go`): Running with an IP and ready containers; Succeeded or Failed when
//! their containers are marked to finish; on graceful deletion, terminated containers and then
//! the kubelet's final delete (grace 0, UID precondition). One watch serves every node.

use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use kube::runtime::watcher;
use serde_json::{json, Value};

use crate::util::{hex64, image_refs, now, parse_duration, with_retries};
use crate::{Shared, COMPLETE_AFTER_ANNOTATION, EXIT_CODE_ANNOTATION, STOP_AFTER_ANNOTATION};

/// What the simulation remembers of a pod on one of its nodes.
struct Entry {
    node: usize,
    /// Taken from the node's pool (released when the pod is gone).
    ip: Option<Ipv4Addr>,
    /// Its containers run (or ran): a status was reported, by us or before a restart.
    started: bool,
    finishing: bool,
    terminating: bool,
}

#[derive(Default)]
struct Table {
    pods: HashMap<String, Entry>,
    /// UIDs seen since the watch (re)started listing, to forget pods deleted meanwhile.
    listing: Option<HashSet<String>>,
}

/// The facts a status is computed from, taken from the pod when it starts.
#[derive(Clone)]
struct Facts {
    namespace: String,
    name: String,
    uid: String,
    generation: i64,
    host_ip: String,
    pod_ip: String,
    started_at: String,
    /// (name, image) of the regular containers.
    containers: Vec<(String, String)>,
    /// (name, image, restartable) of the init containers.
    init_containers: Vec<(String, String, bool)>,
    had_scheduled: bool,
}

impl Facts {
    fn of(pod: &Pod, host_ip: Ipv4Addr, pod_ip: Ipv4Addr, started_at: String) -> Facts {
        let spec = pod.spec.clone().unwrap_or_default();
        let had_scheduled = pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "PodScheduled"));
        Facts {
            namespace: pod.metadata.namespace.clone().unwrap_or_default(),
            name: pod.metadata.name.clone().unwrap_or_default(),
            uid: pod.metadata.uid.clone().unwrap_or_default(),
            generation: pod.metadata.generation.unwrap_or(1),
            host_ip: host_ip.to_string(),
            pod_ip: pod_ip.to_string(),
            started_at,
            containers: spec
                .containers
                .iter()
                .map(|c| (c.name.clone(), c.image.clone().unwrap_or_default()))
                .collect(),
            init_containers: spec
                .init_containers
                .unwrap_or_default()
                .iter()
                .map(|c| {
                    (
                        c.name.clone(),
                        c.image.clone().unwrap_or_default(),
                        c.restart_policy.as_deref() == Some("Always"),
                    )
                })
                .collect(),
            had_scheduled,
        }
    }

    fn container_id(&self, name: &str) -> String {
        format!("containerd://{}", hex64(&[&self.uid, name]))
    }

    fn running(&self, name: &str, image: &str) -> Value {
        let (image, image_id) = image_refs(image);
        json!({
            "name": name, "image": image, "imageID": image_id,
            "containerID": self.container_id(name),
            "state": {"running": {"startedAt": self.started_at}},
            "lastState": {}, "ready": true, "started": true, "restartCount": 0,
        })
    }

    fn terminated(&self, name: &str, image: &str, exit: i64, reason: &str, at: &str) -> Value {
        let (image, image_id) = image_refs(image);
        json!({
            "name": name, "image": image, "imageID": image_id,
            "containerID": self.container_id(name),
            "state": {"terminated": {
                "exitCode": exit, "reason": reason,
                "startedAt": self.started_at, "finishedAt": at,
                "containerID": self.container_id(name),
            }},
            "lastState": {}, "ready": false, "started": false, "restartCount": 0,
        })
    }

    /// Completed regular init containers are reported ready (that is what Initialized reads).
    fn init_statuses(&self, terminal: Option<(i64, &str, &str)>) -> Vec<Value> {
        self.init_containers
            .iter()
            .map(|(name, image, restartable)| match (restartable, terminal) {
                (true, None) => self.running(name, image),
                (true, Some((exit, reason, at))) => self.terminated(name, image, exit, reason, at),
                (false, _) => {
                    let mut s = self.terminated(name, image, 0, "Completed", &self.started_at);
                    s["ready"] = json!(true);
                    s
                }
            })
            .collect()
    }

    fn condition(&self, kind: &str, status: bool, reason: Option<&str>, at: &str) -> Value {
        let mut c = json!({
            "type": kind, "status": if status { "True" } else { "False" },
            "observedGeneration": self.generation,
            "lastProbeTime": null, "lastTransitionTime": at,
        });
        if let Some(r) = reason {
            c["reason"] = json!(r);
        }
        c
    }

    fn patch(
        &self,
        phase: &str,
        conditions: Vec<Value>,
        statuses: Vec<Value>,
        inits: Vec<Value>,
    ) -> Value {
        let mut conditions = conditions;
        if !self.had_scheduled {
            // Bound without the scheduler (spec.nodeName at create): the kubelet adds it.
            conditions.push(self.condition("PodScheduled", true, None, &self.started_at));
        }
        let order: Vec<Value> = [
            "PodReadyToStartContainers",
            "Initialized",
            "Ready",
            "ContainersReady",
            "PodScheduled",
        ]
        .iter()
        .map(|t| json!({"type": t}))
        .collect();
        let mut status = json!({
            "$setElementOrder/conditions": order,
            "observedGeneration": self.generation,
            "phase": phase,
            "conditions": conditions,
            "hostIP": self.host_ip,
            "hostIPs": [{"ip": self.host_ip}],
            "podIP": self.pod_ip,
            "podIPs": [{"ip": self.pod_ip}],
            "startTime": self.started_at,
            "containerStatuses": statuses,
        });
        if !inits.is_empty() {
            status["initContainerStatuses"] = Value::Array(inits);
        }
        // The UID makes the patch a precondition: a new pod of the same name is left alone.
        json!({"metadata": {"uid": self.uid}, "status": status})
    }

    /// Running, ready, every container started.
    fn running_patch(&self) -> Value {
        let at = &self.started_at;
        self.patch(
            "Running",
            vec![
                self.condition("PodReadyToStartContainers", true, None, at),
                self.condition("Initialized", true, None, at),
                self.condition("Ready", true, None, at),
                self.condition("ContainersReady", true, None, at),
            ],
            self.containers
                .iter()
                .map(|(n, i)| self.running(n, i))
                .collect(),
            self.init_statuses(None),
        )
    }

    /// Every container terminated with `exit` (the pod Succeeds on 0, Fails otherwise).
    fn terminal_patch(&self, exit: i64, reason: &str) -> Value {
        let at = now();
        let (phase, why) = if exit == 0 {
            ("Succeeded", "PodCompleted")
        } else {
            ("Failed", "PodFailed")
        };
        let initialized_reason = (exit == 0).then_some("PodCompleted");
        self.patch(
            phase,
            vec![
                self.condition("PodReadyToStartContainers", false, None, &at),
                self.condition("Initialized", true, initialized_reason, &self.started_at),
                self.condition("Ready", false, Some(why), &at),
                self.condition("ContainersReady", false, Some(why), &at),
            ],
            self.containers
                .iter()
                .map(|(n, i)| self.terminated(n, i, exit, reason, &at))
                .collect(),
            self.init_statuses(Some((exit, reason, &at))),
        )
    }
}

fn annotation<'a>(pod: &'a Pod, key: &str) -> Option<&'a str> {
    pod.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(key))
        .map(String::as_str)
}

fn exit_code(pod: &Pod) -> i64 {
    annotation(pod, EXIT_CODE_ANNOTATION)
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

fn parse_ts(s: &str) -> Option<jiff::Timestamp> {
    s.parse().ok()
}

/// How long from now until `at` (zero if past).
fn until(at: jiff::Timestamp) -> Duration {
    let d = at.duration_since(jiff::Timestamp::now());
    Duration::try_from(d).unwrap_or(Duration::ZERO)
}

struct Runner {
    shared: Arc<Shared>,
    table: Mutex<Table>,
    /// Closed when the simulation stops.
    alive: tokio::sync::watch::Receiver<()>,
}

impl Runner {
    fn api(&self, ns: &str) -> Api<Pod> {
        Api::namespaced(self.shared.client.clone(), ns)
    }

    /// Runs an API call with a concurrency permit, off the watch loop.
    fn spawn<F>(self: &Arc<Self>, after: Duration, f: F)
    where
        F: FnOnce(Arc<Runner>) -> futures::future::BoxFuture<'static, ()> + Send + 'static,
    {
        let me = self.clone();
        let mut alive = self.alive.clone();
        tokio::spawn(async move {
            let work = async {
                if !after.is_zero() {
                    tokio::time::sleep(after).await;
                }
                let Ok(_permit) = me.shared.permits.clone().acquire_owned().await else {
                    return;
                };
                f(me.clone()).await;
            };
            // Pending timers and calls end with the simulation (its sender is gone).
            tokio::select! {
                _ = work => {}
                _ = alive.changed() => {}
            }
        });
    }

    fn count_error(&self, what: &str, pod: &str, e: &kube::Error) {
        self.shared.stats.api_errors.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(pod, error = %e, "{what} failed");
    }

    async fn patch_status(&self, f: &Facts, body: &Value) -> bool {
        let api = self.api(&f.namespace);
        let (pp, patch) = (PatchParams::default(), Patch::Strategic(body));
        match with_retries(|| api.patch_status(&f.name, &pp, &patch)).await {
            Ok(_) => true,
            Err(e) => {
                self.count_error("pod status update", &f.name, &e);
                false
            }
        }
    }

    /// The kubelet's final delete once nothing runs: grace 0, only this incarnation (UID).
    async fn final_delete(&self, ns: &str, name: &str, uid: &str) {
        let dp = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions {
                uid: Some(uid.to_string()),
                resource_version: None,
            }),
            ..Default::default()
        };
        let api = self.api(ns);
        match with_retries(|| api.delete(name, &dp)).await {
            Ok(_) => {
                self.shared
                    .stats
                    .pods_deleted
                    .fetch_add(1, Ordering::Relaxed);
            }
            Err(kube::Error::Api(s)) if s.is_not_found() => {}
            Err(e) => self.count_error("final delete", name, &e),
        }
    }

    fn forget(&self, table: &mut Table, uid: &str) {
        if let Some(e) = table.pods.remove(uid) {
            if let (Some(ip), Ok(mut pool)) = (e.ip, self.shared.nodes[e.node].pool.lock()) {
                pool.release(ip);
            }
        }
    }

    fn on_pod(self: &Arc<Self>, pod: &Pod) {
        let Some(node) = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.as_ref())
            .and_then(|n| self.shared.by_name.get(n).copied())
        else {
            return;
        };
        let Some(uid) = pod.metadata.uid.clone() else {
            return;
        };
        let status = pod.status.clone().unwrap_or_default();
        let phase = status.phase.as_deref().unwrap_or("Pending");
        let terminal = matches!(phase, "Succeeded" | "Failed");
        let Ok(mut table) = self.table.lock() else {
            return;
        };
        if let Some(seen) = table.listing.as_mut() {
            seen.insert(uid.clone());
        }
        let entry = table.pods.entry(uid.clone()).or_insert_with(|| {
            // Reported before (a restart of the simulation): keep its address taken.
            let reported = status.container_statuses.is_some() || terminal;
            let ip = status
                .pod_ip
                .as_deref()
                .and_then(|ip| ip.parse::<Ipv4Addr>().ok())
                .filter(|ip| {
                    reported
                        && self.shared.nodes[node]
                            .pool
                            .lock()
                            .is_ok_and(|mut p| p.reserve(*ip))
                });
            Entry {
                node,
                ip,
                started: reported,
                finishing: false,
                terminating: false,
            }
        });
        let name = pod.metadata.name.clone().unwrap_or_default();
        let ns = pod.metadata.namespace.clone().unwrap_or_default();

        if let Some(deleted) = &pod.metadata.deletion_timestamp {
            if entry.terminating {
                return;
            }
            entry.terminating = true;
            if terminal || !entry.started {
                // Nothing runs: the kubelet deletes it right away.
                self.spawn(Duration::ZERO, move |r| {
                    Box::pin(async move { r.final_delete(&ns, &name, &uid).await })
                });
                return;
            }
            // Containers get the grace period to stop (SIGKILL at its end), or stop earlier
            // when the pod says how long they take after SIGTERM.
            let deadline = deleted.0;
            let grace = pod
                .metadata
                .deletion_grace_period_seconds
                .unwrap_or(0)
                .max(0);
            let began = deadline
                .checked_sub(jiff::SignedDuration::from_secs(grace))
                .unwrap_or(deadline);
            let stop_after = annotation(pod, STOP_AFTER_ANNOTATION).and_then(parse_duration);
            let (stop_at, exit, reason) = match stop_after {
                Some(d) if d < Duration::from_secs(grace as u64) => (
                    began
                        .checked_add(jiff::SignedDuration::try_from(d).unwrap_or_default())
                        .unwrap_or(deadline),
                    0,
                    "Completed",
                ),
                _ => (deadline, 137, "Error"),
            };
            let facts = self.facts_of_running(pod, entry);
            self.spawn(until(stop_at), move |r| {
                Box::pin(async move {
                    if let Some(f) = facts {
                        r.patch_status(&f, &f.terminal_patch(exit, reason)).await;
                    }
                    r.final_delete(&ns, &name, &uid).await;
                })
            });
            return;
        }
        if terminal {
            entry.started = true;
            return;
        }
        let complete_after = annotation(pod, COMPLETE_AFTER_ANNOTATION).and_then(parse_duration);
        if !entry.started {
            entry.started = true;
            let host_ip = self.shared.nodes[node].ip;
            let pod_ip = if pod.spec.as_ref().and_then(|s| s.host_network) == Some(true) {
                host_ip
            } else {
                let ip = self.shared.nodes[node]
                    .pool
                    .lock()
                    .ok()
                    .and_then(|mut p| p.allocate());
                let Some(ip) = ip else {
                    tracing::warn!(pod = %name, node = %self.shared.nodes[node].name, "no pod IP left on the node");
                    entry.started = false;
                    return;
                };
                entry.ip = Some(ip);
                ip
            };
            let facts = Facts::of(pod, host_ip, pod_ip, now());
            let exit = exit_code(pod);
            if complete_after.is_some() {
                entry.finishing = true;
            }
            self.spawn(Duration::ZERO, move |r| {
                Box::pin(async move {
                    if r.patch_status(&facts, &facts.running_patch()).await {
                        r.shared.stats.pods_started.fetch_add(1, Ordering::Relaxed);
                    }
                    if let Some(after) = complete_after {
                        r.finish_later(facts, after, exit);
                    }
                })
            });
            return;
        }
        // Running before a restart, and marked to finish: finish relative to its start.
        if let (Some(after), false) = (complete_after, entry.finishing) {
            entry.finishing = true;
            if let Some(facts) = self.facts_of_running(pod, entry) {
                let started = parse_ts(&facts.started_at).unwrap_or_else(jiff::Timestamp::now);
                let left = until(
                    started
                        .checked_add(jiff::SignedDuration::try_from(after).unwrap_or_default())
                        .unwrap_or(started),
                );
                self.finish_later(facts, left, exit_code(pod));
            }
        }
    }

    /// The facts of a pod whose Running status is already reported (its IPs and start time).
    fn facts_of_running(&self, pod: &Pod, entry: &Entry) -> Option<Facts> {
        let status = pod.status.as_ref()?;
        let host_ip = self.shared.nodes[entry.node].ip;
        let pod_ip = status
            .pod_ip
            .as_deref()
            .and_then(|ip| ip.parse().ok())
            .or(entry.ip)?;
        let started = status
            .start_time
            .as_ref()
            .map(|t| crate::util::time(t.0))
            .unwrap_or_else(now);
        Some(Facts::of(pod, host_ip, pod_ip, started))
    }

    fn finish_later(self: &Arc<Self>, facts: Facts, after: Duration, exit: i64) {
        self.spawn(after, move |r| {
            Box::pin(async move {
                // Not if it is being deleted meanwhile (that path reports its own end).
                let go = r
                    .table
                    .lock()
                    .is_ok_and(|t| t.pods.get(&facts.uid).is_some_and(|e| !e.terminating));
                if !go {
                    return;
                }
                let reason = if exit == 0 { "Completed" } else { "Error" };
                if r.patch_status(&facts, &facts.terminal_patch(exit, reason))
                    .await
                {
                    r.shared.stats.pods_finished.fetch_add(1, Ordering::Relaxed);
                }
            })
        });
    }

    fn on_deleted(&self, pod: &Pod) {
        if let (Some(uid), Ok(mut t)) = (pod.metadata.uid.as_deref(), self.table.lock()) {
            self.forget(&mut t, uid);
        }
    }

    fn on_list_start(&self) {
        if let Ok(mut t) = self.table.lock() {
            t.listing = Some(HashSet::new());
        }
    }

    /// After a re-list: pods not in it were deleted while the watch was down.
    fn on_list_done(&self) {
        if let Ok(mut t) = self.table.lock() {
            let Some(seen) = t.listing.take() else {
                return;
            };
            let gone: Vec<String> = t
                .pods
                .keys()
                .filter(|uid| !seen.contains(*uid))
                .cloned()
                .collect();
            for uid in gone {
                self.forget(&mut t, &uid);
            }
        }
    }
}

/// One watch of every pod bound to some node (`spec.nodeName!=`: a field selector cannot name
/// a set of nodes), filtered here to the simulated ones.
pub(crate) async fn run(shared: Arc<Shared>) {
    let api: Api<Pod> = Api::all(shared.client.clone());
    let (_alive, alive) = tokio::sync::watch::channel(());
    let runner = Arc::new(Runner {
        shared,
        table: Mutex::new(Table::default()),
        alive,
    });
    let stream = watcher(
        api,
        watcher::Config::default()
            .fields("spec.nodeName!=")
            .any_semantic(),
    );
    futures::pin_mut!(stream);
    while let Some(ev) = stream.next().await {
        match ev {
            Ok(watcher::Event::Init) => runner.on_list_start(),
            Ok(watcher::Event::InitApply(p) | watcher::Event::Apply(p)) => runner.on_pod(&p),
            Ok(watcher::Event::InitDone) => runner.on_list_done(),
            Ok(watcher::Event::Delete(p)) => runner.on_deleted(&p),
            Err(e) => tracing::debug!(error = %e, "pod watch error"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> Facts {
        Facts {
            namespace: "ns".into(),
            name: "p".into(),
            uid: "u1".into(),
            generation: 1,
            host_ip: "10.127.0.1".into(),
            pod_ip: "10.128.0.2".into(),
            started_at: "2026-01-01T00:00:00Z".into(),
            containers: vec![("app".into(), "nginx".into())],
            init_containers: vec![
                ("setup".into(), "busybox".into(), false),
                ("sidecar".into(), "envoy".into(), true),
            ],
            had_scheduled: true,
        }
    }

    fn types(p: &Value) -> Vec<String> {
        p["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                format!(
                    "{}={}",
                    c["type"].as_str().unwrap(),
                    c["status"].as_str().unwrap()
                )
            })
            .collect()
    }

    #[test]
    fn running_status_is_the_kubelets() {
        let p = facts().running_patch();
        assert_eq!(p["metadata"]["uid"], "u1");
        let s = &p["status"];
        assert_eq!(s["phase"], "Running");
        assert_eq!(s["podIPs"], json!([{"ip": "10.128.0.2"}]));
        assert_eq!(s["hostIPs"], json!([{"ip": "10.127.0.1"}]));
        assert_eq!(
            types(&p),
            [
                "PodReadyToStartContainers=True",
                "Initialized=True",
                "Ready=True",
                "ContainersReady=True"
            ]
        );
        let c = &s["containerStatuses"][0];
        assert_eq!(c["ready"], true);
        assert_eq!(c["started"], true);
        assert_eq!(c["restartCount"], 0);
        assert_eq!(c["image"], "docker.io/library/nginx:latest");
        assert_eq!(c["state"]["running"]["startedAt"], "2026-01-01T00:00:00Z");
        // A finished init container is ready; a sidecar runs.
        assert_eq!(
            s["initContainerStatuses"][0]["state"]["terminated"]["reason"],
            "Completed"
        );
        assert_eq!(s["initContainerStatuses"][0]["ready"], true);
        assert!(s["initContainerStatuses"][1]["state"]["running"].is_object());
    }

    #[test]
    fn terminal_status_follows_the_exit_code() {
        let ok = facts().terminal_patch(0, "Completed");
        assert_eq!(ok["status"]["phase"], "Succeeded");
        assert_eq!(
            types(&ok),
            [
                "PodReadyToStartContainers=False",
                "Initialized=True",
                "Ready=False",
                "ContainersReady=False"
            ]
        );
        assert_eq!(ok["status"]["conditions"][2]["reason"], "PodCompleted");
        assert_eq!(ok["status"]["conditions"][1]["reason"], "PodCompleted");
        let t = &ok["status"]["containerStatuses"][0]["state"]["terminated"];
        assert_eq!(
            (t["exitCode"].as_i64(), t["reason"].as_str()),
            (Some(0), Some("Completed"))
        );

        let bad = facts().terminal_patch(3, "Error");
        assert_eq!(bad["status"]["phase"], "Failed");
        assert_eq!(bad["status"]["conditions"][2]["reason"], "PodFailed");
        assert!(bad["status"]["conditions"][1].get("reason").is_none());
    }

    #[test]
    fn pod_scheduled_is_added_when_missing() {
        let mut f = facts();
        f.had_scheduled = false;
        let p = f.running_patch();
        assert_eq!(
            types(&p).last().map(String::as_str),
            Some("PodScheduled=True")
        );
    }
}
