//! End to end: ResourceQuota (status from the resourcequota controller, admission refusing
//! over-quota writes) and LimitRange (defaults and limits), driven by the real kubectl on both
//! store backends. Messages are upstream's, as kubectl prints them.

mod support;

use support::{wait_for, Backend, Cluster};

/// The `Used` and `Hard` columns of a resource in `kubectl describe quota`.
fn described(c: &Cluster, ns: &str, quota: &str, resource: &str) -> Option<(String, String)> {
    let d = c.ok(&["describe", "quota", quota, "-n", ns]);
    d.lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.len() == 3 && f[0] == resource).then(|| (f[1].to_string(), f[2].to_string()))
    })
}

fn used(c: &Cluster, ns: &str, quota: &str, resource: &str) -> String {
    let r = resource.replace('.', "\\.");
    c.ok(&[
        "get",
        "quota",
        quota,
        "-n",
        ns,
        "-o",
        &format!("jsonpath={{.status.used.{r}}}"),
    ])
}

fn wait_used(c: &Cluster, ns: &str, quota: &str, resource: &str, want: &str) {
    wait_for(&format!("{quota} used {resource}={want}"), || {
        (used(c, ns, quota, resource) == want).then_some(())
    });
}

fn pod_manifest(name: &str, resources: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  containers:\n  - name: {name}\n    image: busybox\n    resources: {resources}\n"
    )
}

fn object_count_quota_and_admission(b: Backend) {
    let c = Cluster::start(b);
    c.ok(&[
        "create",
        "quota",
        "q",
        "--hard=pods=2,services=1,count/deployments.apps=1",
    ]);
    wait_used(&c, "default", "q", "pods", "0");
    // The `kubernetes` service is in default already.
    wait_used(&c, "default", "q", "services", "1");
    wait_used(&c, "default", "q", "count/deployments.apps", "0");
    assert_eq!(
        c.ok(&["get", "quota", "q", "-o", "jsonpath={.status.hard.pods}"]),
        "2"
    );
    c.ok(&["run", "a", "--image=busybox"]);
    c.ok(&["run", "b", "--image=busybox"]);
    // Admission charged both creates itself.
    assert_eq!(used(&c, "default", "q", "pods"), "2");
    let err = c.fails(&["run", "c", "--image=busybox"]);
    assert_eq!(
        err,
        "Error from server (Forbidden): pods \"c\" is forbidden: exceeded quota: q, requested: pods=1, used: pods=2, limited: pods=2\n"
    );
    let err = c.fails(&["create", "service", "clusterip", "s", "--tcp=80"]);
    assert_eq!(
        err,
        "error: failed to create ClusterIP service: services \"s\" is forbidden: exceeded quota: q, requested: services=1, used: services=1, limited: services=1\n"
    );
    assert_eq!(
        described(&c, "default", "q", "pods"),
        Some(("2".into(), "2".into()))
    );
    assert_eq!(
        described(&c, "default", "q", "services"),
        Some(("1".into(), "1".into()))
    );
    // The generic object count, for a kind without its own evaluator.
    c.ok(&[
        "create",
        "deployment",
        "d1",
        "--image=busybox",
        "--replicas=0",
    ]);
    let err = c.fails(&[
        "create",
        "deployment",
        "d2",
        "--image=busybox",
        "--replicas=0",
    ]);
    assert_eq!(
        err,
        "error: failed to create deployment: deployments.apps \"d2\" is forbidden: exceeded quota: q, requested: count/deployments.apps=1, used: count/deployments.apps=1, limited: count/deployments.apps=1\n"
    );
    // Deleting releases: the controller recalculates.
    c.ok(&["delete", "pod", "a", "--wait=false"]);
    wait_used(&c, "default", "q", "pods", "1");
    c.ok(&["run", "c", "--image=busybox"]);
    // Raising the hard limit shows in the status.
    c.ok(&[
        "patch",
        "quota",
        "q",
        "--type=merge",
        "-p",
        "{\"spec\":{\"hard\":{\"pods\":\"5\"}}}",
    ]);
    wait_for("status.hard follows spec", || {
        (described(&c, "default", "q", "pods") == Some(("2".into(), "5".into()))).then_some(())
    });
}

fn compute_quota_and_scopes(b: Backend) {
    let c = Cluster::start(b);
    c.ok(&["create", "namespace", "compute"]);
    c.ok(&[
        "create",
        "quota",
        "compute",
        "-n",
        "compute",
        "--hard=requests.cpu=1,limits.memory=1Gi",
    ]);
    // BestEffort pods only.
    c.ok(&[
        "create",
        "quota",
        "be",
        "-n",
        "compute",
        "--hard=pods=1",
        "--scopes=BestEffort",
    ]);
    wait_used(&c, "compute", "compute", "requests.cpu", "0");
    wait_used(&c, "compute", "be", "pods", "0");
    let err = c.fails(&["run", "bare", "-n", "compute", "--image=busybox"]);
    assert_eq!(
        err,
        "Error from server (Forbidden): pods \"bare\" is forbidden: failed quota: compute: must specify limits.memory for: bare; requests.cpu for: bare\n"
    );
    c.ok_stdin(
        &["apply", "-n", "compute", "-f", "-"],
        &pod_manifest(
            "p1",
            "{requests: {cpu: 600m, memory: 100Mi}, limits: {memory: 512Mi}}",
        ),
    );
    assert_eq!(
        described(&c, "compute", "compute", "requests.cpu"),
        Some(("600m".into(), "1".into()))
    );
    assert_eq!(
        described(&c, "compute", "compute", "limits.memory"),
        Some(("512Mi".into(), "1Gi".into()))
    );
    // Not BestEffort: the scoped quota did not count it.
    assert_eq!(used(&c, "compute", "be", "pods"), "0");
    let err = c
        .kubectl_stdin(
            &["create", "-n", "compute", "-f", "-"],
            &pod_manifest("p2", "{requests: {cpu: 500m}, limits: {memory: 512Mi}}"),
        )
        .stderr;
    assert_eq!(
        err,
        "Error from server (Forbidden): error when creating \"STDIN\": pods \"p2\" is forbidden: exceeded quota: compute, requested: requests.cpu=500m, used: requests.cpu=600m, limited: requests.cpu=1\n"
    );
    // The controller agrees with what admission charged.
    c.ok(&["delete", "pod", "p1", "-n", "compute", "--wait=false"]);
    wait_used(&c, "compute", "compute", "requests.cpu", "0");
    wait_used(&c, "compute", "compute", "limits.memory", "0");
}

fn deployment_beyond_quota_reports_failed_create(b: Backend) {
    let c = Cluster::start(b);
    c.ok(&["create", "quota", "q", "--hard=pods=2"]);
    wait_used(&c, "default", "q", "pods", "0");
    c.ok(&[
        "create",
        "deployment",
        "web",
        "--image=busybox",
        "--replicas=3",
    ]);
    let msg = wait_for("ReplicaFailure on the ReplicaSet", || {
        let m = c.ok(&[
            "get",
            "rs",
            "-l",
            "app=web",
            "-o",
            "jsonpath={.items[0].status.conditions[?(@.type==\"ReplicaFailure\")].reason}|{.items[0].status.conditions[?(@.type==\"ReplicaFailure\")].message}",
        ]);
        m.starts_with("FailedCreate|").then_some(m)
    });
    let rs = c.ok(&[
        "get",
        "rs",
        "-l",
        "app=web",
        "-o",
        "jsonpath={.items[0].metadata.name}",
    ]);
    let prefix = format!("FailedCreate|pods \"{rs}-");
    assert!(msg.starts_with(&prefix), "{msg}");
    assert!(
        msg.ends_with(
            "\" is forbidden: exceeded quota: q, requested: pods=1, used: pods=2, limited: pods=2"
        ),
        "{msg}"
    );
    assert_eq!(used(&c, "default", "q", "pods"), "2");
    let events = c.ok(&["describe", "rs", &rs]);
    assert!(
        events.contains("FailedCreate") && events.contains("exceeded quota: q"),
        "{events}"
    );
}

/// Admission charges each create into `status.used` with a compare-and-swap, so racing creates
/// cannot all see the same free room.
fn concurrent_creates_do_not_overshoot(b: Backend) {
    let c = Cluster::start(b);
    c.ok(&["create", "quota", "q", "--hard=count/deployments.apps=3"]);
    wait_used(&c, "default", "q", "count/deployments.apps", "0");
    let children: Vec<_> = (0..8)
        .map(|i| {
            c.command(&[
                "create",
                "deployment",
                &format!("d{i}"),
                "--image=busybox",
                "--replicas=0",
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("run kubectl")
        })
        .collect();
    let created = children
        .into_iter()
        .filter_map(|mut ch| ch.wait().ok())
        .filter(|s| s.success())
        .count();
    assert_eq!(created, 3);
    assert_eq!(used(&c, "default", "q", "count/deployments.apps"), "3");
    assert_eq!(
        c.ok(&["get", "deployments", "-o", "name"]).lines().count(),
        3
    );
}

/// A pod that finished (Succeeded) no longer counts against `pods`, but still against
/// `count/pods` (upstream counts every stored pod there).
fn finished_pods_are_released(b: Backend) {
    let c = Cluster::start(b);
    let _sim = c.sim(&["--nodes", "1"]);
    c.ok(&["create", "quota", "q", "--hard=pods=1,count/pods=5"]);
    wait_used(&c, "default", "q", "pods", "0");
    c.ok_stdin(
        &["apply", "-f", "-"],
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: done\n  annotations: {sim.rudder.dev/complete-after: 1s}\nspec:\n  restartPolicy: Never\n  containers: [{name: c, image: busybox}]\n",
    );
    assert_eq!(used(&c, "default", "q", "pods"), "1");
    wait_for("the pod to succeed", || {
        (c.ok(&["get", "pod", "done", "-o", "jsonpath={.status.phase}"]) == "Succeeded")
            .then_some(())
    });
    wait_used(&c, "default", "q", "pods", "0");
    assert_eq!(used(&c, "default", "q", "count/pods"), "1");
    c.ok(&["run", "next", "--image=busybox"]);
}

const LIMIT_RANGE: &str = "apiVersion: v1\nkind: LimitRange\nmetadata:\n  name: limits\nspec:\n  limits:\n  - type: Container\n    default: {cpu: 500m, memory: 256Mi}\n    defaultRequest: {cpu: 100m}\n    max: {cpu: \"1\"}\n";

fn limit_range_defaults_and_max(b: Backend) {
    let c = Cluster::start(b);
    c.ok_stdin(&["apply", "-f", "-"], LIMIT_RANGE);
    c.ok(&["run", "p", "--image=busybox"]);
    assert_eq!(
        c.ok(&["get", "pod", "p", "-o", "jsonpath={.spec.containers[0].resources}"]),
        "{\"limits\":{\"cpu\":\"500m\",\"memory\":\"256Mi\"},\"requests\":{\"cpu\":\"100m\",\"memory\":\"256Mi\"}}"
    );
    assert_eq!(
        c.ok(&[
            "get",
            "pod",
            "p",
            "-o",
            "jsonpath={.metadata.annotations.kubernetes\\.io/limit-ranger}"
        ]),
        "LimitRanger plugin set: cpu, memory request for container p; cpu, memory limit for container p"
    );
    let err = c
        .kubectl_stdin(
            &["create", "-f", "-"],
            &pod_manifest("big", "{limits: {cpu: \"2\"}}"),
        )
        .stderr;
    assert_eq!(
        err,
        "Error from server (Forbidden): error when creating \"STDIN\": pods \"big\" is forbidden: maximum cpu usage per Container is 1, but limit is 2\n"
    );
    // Defaults are what a quota then counts.
    c.ok(&["create", "quota", "q", "--hard=limits.cpu=1"]);
    wait_used(&c, "default", "q", "limits.cpu", "500m");
}

on_both_backends!(
    object_count_quota_and_admission,
    compute_quota_and_scopes,
    deployment_beyond_quota_reports_failed_create,
    concurrent_creates_do_not_overshoot,
    finished_pods_are_released,
    limit_range_defaults_and_max
);
