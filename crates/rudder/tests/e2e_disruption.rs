//! End to end: PodDisruptionBudgets (the disruption controller's status), the `pods/eviction`
//! subresource honouring them, `kubectl drain`, and the HorizontalPodAutoscaler's status without
//! a metrics API; real kubectl against `rudder server` with simulated nodes, on both backends.

mod support;

use std::time::{Duration, Instant};

use support::{Backend, Cluster};

/// Waits up to `secs` for `f`.
fn wait_secs<T>(secs: u64, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn jp(c: &Cluster, what: &[&str], path: &str) -> String {
    let mut args = vec!["get"];
    args.extend_from_slice(what);
    let jsonpath = format!("jsonpath={path}");
    args.extend_from_slice(&["-o", &jsonpath]);
    c.kubectl(&args).stdout
}

/// Names of the app=web pods that are Ready and not being deleted.
fn ready_pods(c: &Cluster) -> Vec<String> {
    jp(
        c,
        &["pods", "-l", "app=web"],
        r#"{range .items[*]}{.metadata.name} {.metadata.deletionTimestamp} {.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}"#,
    )
    .lines()
    .filter_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.len() == 2 && f[1] == "True").then(|| f[0].to_string())
    })
    .collect()
}

/// `POST pods/<name>/eviction` with curl: (HTTP code, body).
fn evict(c: &Cluster, pod: &str) -> (String, String) {
    evict_as(c, pod, "policy/v1")
}

fn evict_as(c: &Cluster, pod: &str, api_version: &str) -> (String, String) {
    let body = format!(
        r#"{{"apiVersion":"{api_version}","kind":"Eviction","metadata":{{"name":"{pod}","namespace":"default"}}}}"#
    );
    let out = c.curl(&[
        "-H",
        &format!("Authorization: Bearer {}", c.admin_token()),
        "-H",
        "Content-Type: application/json",
        "-X",
        "POST",
        "--data",
        &body,
        "-w",
        "\n%{http_code}",
        &format!("{}/api/v1/namespaces/default/pods/{pod}/eviction", c.url()),
    ]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or((&text, ""));
    (code.to_string(), body.to_string())
}

fn merge_patch(c: &Cluster, kind: &str, name: &str, patch: &str) {
    c.ok(&["patch", kind, name, "--type=merge", "-p", patch]);
}

/// Waits until the `web` budget's `path` reads `want`.
fn wait_pdb(c: &Cluster, path: &str, want: &str) {
    wait_secs(30, &format!("pdb {path} = {want}"), || {
        (jp(c, &["pdb", "web"], path) == want).then_some(())
    });
}

fn deployment_with_ready_pods(c: &Cluster, replicas: usize) -> Vec<String> {
    c.ok(&[
        "create",
        "deployment",
        "web",
        "--image=busybox",
        &format!("--replicas={replicas}"),
    ]);
    wait_secs(60, "ready pods", || {
        let p = ready_pods(c);
        (p.len() == replicas).then_some(p)
    })
}

fn pdb_status_and_eviction(b: Backend) {
    let c = Cluster::start(b);
    let _sim = c.sim(&["--nodes", "2"]);
    let pods = deployment_with_ready_pods(&c, 3);

    // No healthy pod may go: every eviction is refused with upstream's 429.
    c.ok(&[
        "create",
        "pdb",
        "web",
        "--selector=app=web",
        "--min-available=3",
    ]);
    wait_pdb(
        &c,
        "{.status.currentHealthy}/{.status.desiredHealthy}/{.status.expectedPods}/{.status.disruptionsAllowed}/{.status.observedGeneration}",
        "3/3/3/0/1",
    );
    let cond = jp(
        &c,
        &["pdb", "web"],
        r#"{.status.conditions[?(@.type=="DisruptionAllowed")].status}/{.status.conditions[?(@.type=="DisruptionAllowed")].reason}"#,
    );
    assert_eq!(cond, "False/InsufficientPods");
    // policy/v1beta1 Evictions are accepted too, as upstream.
    let (code, v1beta1) = evict_as(&c, &pods[0], "policy/v1beta1");
    assert_eq!(code, "429", "{v1beta1}");
    let (code, body) = evict(&c, &pods[0]);
    assert_eq!(code, "429", "{body}");
    assert_eq!(body, v1beta1);
    let status: serde_json::Value = serde_json::from_str(&body).expect("a Status body");
    assert_eq!(
        status,
        serde_json::json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": "Cannot evict pod as it would violate the pod's disruption budget.",
            "reason": "TooManyRequests",
            "details": {"causes": [{"reason": "DisruptionBudget",
                "message": "The disruption budget web needs 3 healthy pods and has 3 currently"}]},
            "code": 429})
    );

    // One disruption allowed: `get pdb` shows it.
    merge_patch(&c, "pdb", "web", r#"{"spec":{"minAvailable":2}}"#);
    wait_pdb(
        &c,
        "{.status.disruptionsAllowed}/{.status.observedGeneration}",
        "1/2",
    );
    let table = c.ok(&["get", "pdb", "web"]);
    let mut lines = table.lines();
    let header: Vec<&str> = lines
        .next()
        .unwrap_or("")
        .split("  ")
        .filter(|s| !s.is_empty())
        .map(str::trim)
        .collect();
    assert_eq!(
        header,
        [
            "NAME",
            "MIN AVAILABLE",
            "MAX UNAVAILABLE",
            "ALLOWED DISRUPTIONS",
            "AGE"
        ],
        "{table}"
    );
    let row: Vec<&str> = lines.next().unwrap_or("").split_whitespace().collect();
    assert_eq!(&row[..4], ["web", "2", "N/A", "1"], "{table}");

    // A second budget over the same pods: upstream refuses with a 500.
    c.ok(&[
        "create",
        "pdb",
        "web2",
        "--selector=app=web",
        "--max-unavailable=1",
    ]);
    let (code, body) = evict(&c, &pods[0]);
    assert_eq!(code, "500", "{body}");
    let status: serde_json::Value = serde_json::from_str(&body).expect("a Status body");
    assert_eq!(
        status,
        serde_json::json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.",
            "code": 500})
    );
    c.ok(&["delete", "pdb", "web2"]);

    // The eviction takes the disruption, marks the pod and deletes it (a finalizer holds it so
    // the condition can be seen).
    merge_patch(
        &c,
        "pod",
        &pods[0],
        r#"{"metadata":{"finalizers":["example.com/hold"]}}"#,
    );
    let (code, body) = evict(&c, &pods[0]);
    assert_eq!(code, "201", "{body}");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&body).expect("a Status body"),
        serde_json::json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201})
    );
    let marked = jp(
        &c,
        &["pod", &pods[0]],
        r#"{.metadata.deletionTimestamp!=""}{.status.conditions[?(@.type=="DisruptionTarget")].status}/{.status.conditions[?(@.type=="DisruptionTarget")].reason}/{.status.conditions[?(@.type=="DisruptionTarget")].message}"#,
    );
    assert!(
        marked.ends_with("True/EvictionByEvictionAPI/Eviction API: evicting"),
        "{marked}"
    );
    assert!(!jp(&c, &["pod", &pods[0]], "{.metadata.deletionTimestamp}").is_empty());
    merge_patch(&c, "pod", &pods[0], r#"{"metadata":{"finalizers":null}}"#);
    // The replacement becomes ready and the budget recovers.
    wait_secs(60, "budget recovered", || {
        let s = jp(
            &c,
            &["pdb", "web"],
            "{.status.currentHealthy}/{.status.disruptionsAllowed}",
        );
        (s == "3/1" && ready_pods(&c).len() == 3).then_some(())
    });
    let d = c.ok(&["describe", "pdb", "web"]);
    assert!(d.contains("Allowed disruptions:  1"), "{d}");
}

const DAEMONSET: &str = "apiVersion: apps/v1\nkind: DaemonSet\nmetadata:\n  name: agent\nspec:\n  selector: {matchLabels: {app: agent}}\n  template:\n    metadata: {labels: {app: agent}}\n    spec: {containers: [{name: c, image: busybox}]}\n";

/// A pod the DaemonSet controls, placed on sim-node-0 (whether or not a DaemonSet controller
/// runs, the node then has a DaemonSet-managed pod).
const DAEMON_POD: &str = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: agent-manual\n  labels: {app: agent}\n  ownerReferences: [{apiVersion: apps/v1, kind: DaemonSet, name: agent, uid: UID, controller: true}]\nspec:\n  nodeName: sim-node-0\n  containers: [{name: c, image: busybox}]\n";

fn drain_honours_the_budget(b: Backend) {
    let c = Cluster::start(b);
    let _sim = c.sim(&["--nodes", "2"]);
    wait_secs(30, "2 nodes", || {
        (c.kubectl(&["get", "nodes", "-o", "name"])
            .stdout
            .lines()
            .count()
            == 2)
            .then_some(())
    });
    // Every pod on sim-node-0 first.
    c.ok(&["cordon", "sim-node-1"]);
    deployment_with_ready_pods(&c, 3);
    c.ok(&["uncordon", "sim-node-1"]);
    c.ok(&[
        "create",
        "pdb",
        "web",
        "--selector=app=web",
        "--min-available=2",
    ]);
    wait_pdb(&c, "{.status.disruptionsAllowed}", "1");
    // A DaemonSet's pod on the node: drain refuses without --ignore-daemonsets.
    c.ok_stdin(&["apply", "-f", "-"], DAEMONSET);
    let uid = jp(&c, &["daemonset", "agent"], "{.metadata.uid}");
    c.ok_stdin(&["apply", "-f", "-"], &DAEMON_POD.replace("UID", &uid));
    wait_secs(30, "a DaemonSet pod on sim-node-0", || {
        jp(
            &c,
            &["pods", "-l", "app=agent"],
            "{.items[*].spec.nodeName}",
        )
        .contains("sim-node-0")
        .then_some(())
    });
    let refused = c.kubectl(&["drain", "sim-node-0", "--timeout=10s"]);
    assert_ne!(refused.code, 0);
    assert!(
        refused.stderr.contains("cannot delete DaemonSet-managed Pods (use --ignore-daemonsets to ignore): default/agent-"),
        "{}",
        refused.stderr
    );
    // The refused drain had cordoned it already.
    assert!(
        refused.stdout.contains("node/sim-node-0 cordoned"),
        "{}",
        refused.stdout
    );
    // A short timeout: the budget lets one pod go, the others are refused and retried after
    // 5 s; the drain reports them (and the evicted pod still terminating) when time runs out.
    let partial = c.kubectl(&["drain", "sim-node-0", "--ignore-daemonsets", "--timeout=4s"]);
    assert_ne!(partial.code, 0);
    let err = &partial.stderr;
    assert_eq!(
        err.matches("(will retry after 5s): Cannot evict pod as it would violate the pod's disruption budget.").count(),
        2,
        "{err}"
    );
    let reported = err
        .lines()
        .find(|l| l.starts_with(r#"error: unable to drain node "sim-node-0" due to error: ["#))
        .unwrap_or_else(|| panic!("no drain error in {err}"));
    assert_eq!(
        reported
            .matches(r#" -n "default": global timeout reached: 4s"#)
            .count(),
        2,
        "{err}"
    );
    assert_eq!(
        reported
            .matches(r#"error when waiting for pod "web-"#)
            .count(),
        1,
        "{err}"
    );
    // Without a short timeout the drain completes once each replacement is ready elsewhere.
    let run = c.kubectl(&[
        "drain",
        "sim-node-0",
        "--ignore-daemonsets",
        "--timeout=120s",
    ]);
    let out = format!("{}{}", run.stdout, run.stderr);
    assert_eq!(run.code, 0, "{out}");
    assert!(out.contains("node/sim-node-0 already cordoned"), "{out}");
    assert_eq!(run.stdout.matches(" evicted").count(), 3, "{out}");
    assert!(out.contains("node/sim-node-0 drained"), "{out}");
    assert!(
        out.contains("Warning: ignoring DaemonSet-managed Pods: default/agent-"),
        "{out}"
    );
    // Every replacement runs on the other node.
    let nodes = jp(&c, &["pods", "-l", "app=web"], "{.items[*].spec.nodeName}");
    assert_eq!(nodes, "sim-node-1 sim-node-1 sim-node-1");
    assert_eq!(
        jp(&c, &["node", "sim-node-0"], "{.spec.unschedulable}"),
        "true"
    );
}

/// The conditions block of `kubectl describe hpa <name>`, once it holds every `want`.
fn wait_described_hpa(c: &Cluster, name: &str, want: &[&str]) -> String {
    let deadline = Instant::now() + Duration::from_secs(75);
    loop {
        let d = c.kubectl(&["describe", "hpa", name]).stdout;
        if want.iter().all(|w| d.contains(w)) {
            return d;
        }
        assert!(
            Instant::now() < deadline,
            "describe hpa {name} never showed {want:?}:\n{d}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn autoscaler_without_metrics(b: Backend) {
    let c = Cluster::start(b);
    c.ok(&[
        "create",
        "deployment",
        "web",
        "--image=busybox",
        "--replicas=1",
    ]);
    c.ok(&[
        "autoscale",
        "deployment",
        "web",
        "--min=2",
        "--max=5",
        "--cpu=50%",
    ]);
    // The first sync (a sync period after creation) raises the target to minReplicas.
    let d = wait_described_hpa(
        &c,
        "web",
        &[
            "SuccessfulRescale",
            "New size: 2; reason: Current number of replicas below Spec.MinReplicas",
        ],
    );
    assert!(d.contains("horizontal-pod-autoscaler"), "{d}");
    assert_eq!(jp(&c, &["deployment", "web"], "{.spec.replicas}"), "2");
    // The next one finds no metrics API: ScalingActive=False with upstream's reason and text.
    let unavailable = "failed to get cpu utilization: unable to get metrics for resource cpu: unable to fetch metrics from resource metrics API: the server could not find the requested resource (get pods.metrics.k8s.io)";
    let d = wait_described_hpa(
        &c,
        "web",
        &[
            "AbleToScale    True    SucceededGetScale        the HPA controller was able to get the target's current scale",
            &format!("ScalingActive  False   FailedGetResourceMetric  the HPA was unable to compute the replica count: {unavailable}"),
            "FailedComputeMetricsReplicas",
            &format!("invalid metrics (1 invalid out of 1), first error is: failed to get cpu resource metric value: {unavailable}"),
        ],
    );
    assert!(
        d.contains(&format!("FailedGetResourceMetric       {unavailable}"))
            || d.contains(unavailable),
        "{d}"
    );
    let status = jp(
        &c,
        &["hpa", "web"],
        "{.status.currentReplicas}/{.status.desiredReplicas}/{.status.currentMetrics[0].type}",
    );
    assert_eq!(status, "2/2/");
    let table = c.ok(&["get", "hpa", "web"]);
    assert!(table.contains("cpu: <unknown>/50%"), "{table}");

    // A target that does not exist.
    c.ok_stdin(
        &["apply", "-f", "-"],
        "apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata:\n  name: nope\nspec:\n  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: nope}\n  maxReplicas: 3\n",
    );
    let d = wait_described_hpa(
        &c,
        "nope",
        &[
            "AbleToScale  False   FailedGetScale  the HPA controller was unable to get the target's current scale: deployments.apps \"nope\" not found",
            "FailedGetScale",
        ],
    );
    assert!(d.contains("Warning  FailedGetScale"), "{d}");
}

on_both_backends!(
    pdb_status_and_eviction,
    drain_honours_the_budget,
    autoscaler_without_metrics
);
