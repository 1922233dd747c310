//! End to end: the controller manager in `rudder server` and standalone
//! (`rudder controller-manager`), driven by the real kubectl, on both store backends.

mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::{Backend, Cluster};

fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

const RS: &str = "apiVersion: apps/v1\nkind: ReplicaSet\nmetadata:\n  name: web\nspec:\n  replicas: 3\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n    spec: {containers: [{name: c, image: busybox}]}\n";

/// Names of the app=web pods not being deleted.
fn pods(c: &Cluster) -> Vec<String> {
    c.ok(&[
        "get",
        "pods",
        "-l",
        "app=web",
        "-o",
        "jsonpath={range .items[*]}{.metadata.name}{\" \"}{.metadata.deletionTimestamp}{\"\\n\"}{end}",
    ])
    .lines()
    .filter(|l| l.split_whitespace().count() == 1)
    .map(|l| l.trim().to_string())
    .collect()
}

fn live_pods(c: &Cluster) -> usize {
    pods(c).len()
}

fn replicasets_create_scale_and_adopt(b: Backend) {
    let c = Cluster::start(b);
    // An orphan with matching labels is adopted: the ReplicaSet creates only two more.
    c.ok(&["run", "orphan", "--image=busybox", "--labels=app=web"]);
    // Pods and ReplicaSets come on separate watches: were the ReplicaSet seen first, the
    // controller would rightly create three pods and then delete one of four. The scheduler's
    // verdict on the orphan (no nodes here) shows the pod has reached the watchers.
    wait_for("the scheduler to have seen the orphan", || {
        let r = c.ok(&[
            "get",
            "pod",
            "orphan",
            "-o",
            "jsonpath={.status.conditions[?(@.type==\"PodScheduled\")].reason}",
        ]);
        (r == "Unschedulable").then_some(())
    });
    c.ok_stdin(&["apply", "-f", "-"], RS);
    wait_for("3 pods", || (live_pods(&c) == 3).then_some(()));
    assert_eq!(
        c.ok(&[
            "get",
            "pod",
            "orphan",
            "-o",
            "jsonpath={.metadata.ownerReferences[0].name}"
        ]),
        "web"
    );
    let status = wait_for("status.replicas=3", || {
        let s = c.ok(&["get", "rs", "web", "-o", "jsonpath={.status.replicas}/{.status.fullyLabeledReplicas}/{.status.observedGeneration}"]);
        (s == "3/3/1").then_some(s)
    });
    assert_eq!(status, "3/3/1");
    // Every pod is controlled by the ReplicaSet.
    let owners = c.ok(&[
        "get",
        "pods",
        "-l",
        "app=web",
        "-o",
        "jsonpath={.items[*].metadata.ownerReferences[0].kind}",
    ]);
    assert_eq!(owners, "ReplicaSet ReplicaSet ReplicaSet");
    let d = c.ok(&["describe", "rs", "web"]);
    assert!(
        d.contains("SuccessfulCreate")
            && d.contains("replicaset-controller")
            && d.contains("Created pod: web-"),
        "{d}"
    );
    c.ok(&["scale", "rs", "web", "--replicas=1"]);
    wait_for("1 live pod", || (live_pods(&c) == 1).then_some(()));
    let d = c.ok(&["describe", "rs", "web"]);
    assert!(
        d.contains("SuccessfulDelete") && d.contains("Deleted pod: web-"),
        "{d}"
    );
    c.ok(&["scale", "rs", "web", "--replicas=2"]);
    wait_for("2 live pods", || (live_pods(&c) == 2).then_some(()));
    // Deleting a pod: the ReplicaSet replaces it.
    let victim = pods(&c)[0].clone();
    c.ok(&["delete", "pod", &victim, "--grace-period=0", "--force"]);
    wait_for("a replacement", || {
        let names = pods(&c);
        (names.len() == 2 && !names.contains(&victim)).then_some(())
    });
}

fn the_controller_manager_runs_standalone(b: Backend) {
    let c = Cluster::start_with(b, &["--disable-controllers"]);
    c.ok_stdin(&["apply", "-f", "-"], RS);
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(live_pods(&c), 0, "no controllers run in the server");
    let log = c.dir.path().join("kcm.log");
    let mut kcm = Command::new(env!("CARGO_BIN_EXE_rudder"))
        .args(["controller-manager", "--health-port", "0", "--kubeconfig"])
        .arg(&c.kubeconfig)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    wait_for("3 pods", || (live_pods(&c) == 3).then_some(()));
    let holder = c.ok(&[
        "get",
        "lease",
        "-n",
        "kube-system",
        "kube-controller-manager",
        "-o",
        "jsonpath={.spec.holderIdentity}",
    ]);
    assert!(!holder.is_empty());
    let _ = kcm.kill();
    let _ = kcm.wait();
    // An unknown controller name is refused at start, as upstream.
    let out = Command::new(env!("CARGO_BIN_EXE_rudder"))
        .args([
            "controller-manager",
            "--controllers",
            "*,bogus",
            "--kubeconfig",
        ])
        .arg(&c.kubeconfig)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("\"bogus\" is not in the list of known controllers"));
}

on_both_backends!(
    replicasets_create_scale_and_adopt,
    the_controller_manager_runs_standalone
);
