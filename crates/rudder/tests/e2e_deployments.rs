//! End to end: the Deployment controller in `rudder server` with simulated nodes, driven by the
//! real kubectl on both store backends — `create deployment` + `rollout status`, `set image`
//! rolling within maxSurge/maxUnavailable at every observed moment, `rollout history/undo`
//! (also `--to-revision`), `pause/resume`, `scale`, `rollout restart`, Recreate and the
//! progress deadline; and ReplicationControllers, which run the ReplicaSet code.

mod support;

use std::time::Duration;

use support::{jp, wait_described, Backend, Cluster};

fn wait_until(c: &Cluster, what: &str, f: impl FnMut() -> bool) {
    c.wait_until(what, "deploy,rs,pods", f)
}

/// `kubectl rollout status` to completion.
fn rollout_status(c: &Cluster, name: &str) -> String {
    c.ok(&[
        "rollout",
        "status",
        &format!("deployment/{name}"),
        "--timeout=90s",
    ])
}

/// (name, spec.replicas, status.availableReplicas, revision) of each ReplicaSet of app=`app`.
fn sets(c: &Cluster, app: &str) -> Vec<(String, i32, i32, String)> {
    c.ok(&["get", "rs", "-l", &format!("app={app}"), "-o",
        "jsonpath={range .items[*]}{.metadata.name} {.spec.replicas} {.status.availableReplicas} {.metadata.annotations.deployment\\.kubernetes\\.io/revision}{\"\\n\"}{end}"])
    .lines()
    .map(|l| {
        let f: Vec<&str> = l.split(' ').collect();
        let n = |s: &str| s.parse::<i32>().unwrap_or(0);
        (f[0].to_string(), n(f[1]), n(f[2]), f[3].to_string())
    })
    .collect()
}

/// The REVISION column of `kubectl rollout history`.
fn history(c: &Cluster, name: &str) -> Vec<String> {
    c.ok(&["rollout", "history", &format!("deployment/{name}")])
        .lines()
        .skip(2)
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

fn image(c: &Cluster, name: &str) -> String {
    jp(
        c,
        &format!("deploy/{name}"),
        "{.spec.template.spec.containers[0].image}",
    )
}

/// Watches the ReplicaSets while `f` runs; every list seen keeps the rollout inside
/// `replicas + maxSurge` pods and `replicas - maxUnavailable` available.
fn observing<T>(
    c: &Cluster,
    app: &str,
    max_total: i32,
    min_available: i32,
    f: impl FnOnce() -> T,
) -> (T, usize) {
    let selector = format!("app={app}");
    let args = [
        "get",
        "rs",
        "-l",
        &selector,
        "-o",
        "jsonpath={range .items[*]}{.spec.replicas} {.status.availableReplicas}{\"\\n\"}{end}",
    ];
    let (r, seen, violations) = c.observing(
        &args,
        move |s| {
            let (mut total, mut available) = (0, 0);
            for l in s.lines() {
                let mut f = l.split(' ').map(|v| v.parse::<i32>().unwrap_or(0));
                total += f.next().unwrap_or(0);
                available += f.next().unwrap_or(0);
            }
            total <= max_total && available >= min_available
        },
        f,
    );
    assert!(
        violations.is_empty(),
        "rollout broke maxSurge/maxUnavailable: {violations:?}"
    );
    (r, seen)
}

fn create_roll_undo_and_history(b: Backend) {
    let c = Cluster::start(b);
    let _sim = c.sim(&["--nodes", "2"]);
    c.ok(&[
        "create",
        "deployment",
        "web",
        "--image=busybox",
        "--replicas=3",
    ]);
    let out = rollout_status(&c, "web");
    assert!(
        out.contains("deployment \"web\" successfully rolled out"),
        "{out}"
    );
    let rs = sets(&c, "web");
    assert_eq!(rs.len(), 1, "{rs:?}");
    let (first, replicas, available, rev) = rs[0].clone();
    assert_eq!((replicas, available, rev.as_str()), (3, 3, "1"));
    let hash = jp(
        &c,
        &format!("rs/{first}"),
        "{.metadata.labels.pod-template-hash}",
    );
    assert_eq!(first, format!("web-{hash}"));
    assert_eq!(
        jp(
            &c,
            &format!("rs/{first}"),
            "{.spec.selector.matchLabels.pod-template-hash}"
        ),
        hash
    );
    assert_eq!(
        jp(
            &c,
            &format!("rs/{first}"),
            "{.metadata.ownerReferences[0].kind}/{.metadata.ownerReferences[0].name}"
        ),
        "Deployment/web"
    );
    let ann = jp(&c, &format!("rs/{first}"), "{.metadata.annotations}");
    assert!(
        ann.contains("\"deployment.kubernetes.io/desired-replicas\":\"3\"")
            && ann.contains("\"deployment.kubernetes.io/max-replicas\":\"4\""),
        "{ann}"
    );
    assert_eq!(
        jp(
            &c,
            "deploy/web",
            "{.metadata.annotations.deployment\\.kubernetes\\.io/revision}"
        ),
        "1"
    );
    assert_eq!(
        jp(&c, "deploy/web", "{.status.replicas}/{.status.updatedReplicas}/{.status.readyReplicas}/{.status.availableReplicas}/{.status.observedGeneration}"),
        "3/3/3/3/1"
    );
    let conds = jp(
        &c,
        "deploy/web",
        "{range .status.conditions[*]}{.type}={.status}:{.reason}:{.message}{\"\\n\"}{end}",
    );
    assert!(
        conds.contains(
            "Available=True:MinimumReplicasAvailable:Deployment has minimum availability."
        ),
        "{conds}"
    );
    assert!(conds.contains(&format!("Progressing=True:NewReplicaSetAvailable:ReplicaSet \"{first}\" has successfully progressed.")), "{conds}");

    // maxSurge 1, maxUnavailable 0, pods available 1 s after ready: a step-by-step roll.
    c.ok(&["patch", "deploy", "web", "-p",
        r#"{"spec":{"minReadySeconds":1,"strategy":{"rollingUpdate":{"maxSurge":1,"maxUnavailable":0}}}}"#]);
    rollout_status(&c, "web");
    let (_, seen) = observing(&c, "web", 4, 3, || {
        c.ok(&["set", "image", "deployment/web", "busybox=busybox:1.36"]);
        rollout_status(&c, "web")
    });
    assert!(seen > 3, "the ReplicaSets were observed {seen} times");
    let rs = sets(&c, "web");
    assert_eq!(rs.len(), 2, "{rs:?}");
    let second = rs.iter().find(|r| r.0 != first).unwrap().clone();
    assert_eq!((second.1, second.3.as_str()), (3, "2"));
    assert_eq!(rs.iter().find(|r| r.0 == first).unwrap().1, 0);
    wait_described(
        &c,
        &["deploy", "web"],
        &[
            &format!("Scaled up replica set {} from 0 to 1", second.0),
            &format!("Scaled down replica set {first} from 3 to 2"),
            "deployment-controller",
        ],
    );

    // maxSurge 0, maxUnavailable 1 (percent, rounded down): never more than 3 pods.
    c.ok(&[
        "patch",
        "deploy",
        "web",
        "-p",
        r#"{"spec":{"strategy":{"rollingUpdate":{"maxSurge":0,"maxUnavailable":"34%"}}}}"#,
    ]);
    rollout_status(&c, "web");
    observing(&c, "web", 3, 2, || {
        c.ok(&["set", "image", "deployment/web", "busybox=busybox:1.37"]);
        rollout_status(&c, "web")
    });

    assert_eq!(history(&c, "web"), ["1", "2", "3"]);
    let h2 = c.ok(&["rollout", "history", "deployment/web", "--revision=2"]);
    assert!(
        h2.contains("busybox:1.36") && h2.contains("pod-template-hash="),
        "{h2}"
    );

    // Undo: back to revision 2's template, whose ReplicaSet comes back as revision 4.
    let out = c.ok(&["rollout", "undo", "deployment/web"]);
    assert!(out.contains("rolled back"), "{out}");
    rollout_status(&c, "web");
    assert_eq!(image(&c, "web"), "busybox:1.36");
    assert_eq!(jp(&c, &format!("rs/{}", second.0), "{.metadata.annotations.deployment\\.kubernetes\\.io/revision}/{.metadata.annotations.deployment\\.kubernetes\\.io/revision-history}/{.spec.replicas}"), "4/2/3");
    assert_eq!(sets(&c, "web").len(), 3, "no new ReplicaSet for a rollback");
    c.ok(&["rollout", "undo", "deployment/web", "--to-revision=1"]);
    rollout_status(&c, "web");
    assert_eq!(image(&c, "web"), "busybox");
    assert_eq!(
        jp(
            &c,
            &format!("rs/{first}"),
            "{.metadata.annotations.deployment\\.kubernetes\\.io/revision}/{.spec.replicas}"
        ),
        "5/3"
    );
    assert_eq!(
        jp(
            &c,
            "deploy/web",
            "{.metadata.annotations.deployment\\.kubernetes\\.io/revision}"
        ),
        "5"
    );
    assert_eq!(history(&c, "web"), ["3", "4", "5"]);
    let out = c.fails(&["rollout", "undo", "deployment/web", "--to-revision=9"]);
    assert!(
        out.contains("unable to find specified revision 9 in history"),
        "{out}"
    );
}

fn pause_resume_scale_restart_and_history_limit(b: Backend) {
    let c = Cluster::start(b);
    let _sim = c.sim(&["--nodes", "2"]);
    c.ok(&[
        "create",
        "deployment",
        "app",
        "--image=busybox",
        "--replicas=2",
    ]);
    c.ok(&[
        "patch",
        "deploy",
        "app",
        "-p",
        r#"{"spec":{"revisionHistoryLimit":1}}"#,
    ]);
    rollout_status(&c, "app");

    c.ok(&["rollout", "pause", "deployment/app"]);
    c.ok(&["set", "image", "deployment/app", "busybox=busybox:1.36"]);
    wait_until(&c, "the paused condition", || {
        jp(
            &c,
            "deploy/app",
            "{.status.conditions[?(@.type==\"Progressing\")].reason}",
        ) == "DeploymentPaused"
    });
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        sets(&c, "app").len(),
        1,
        "a paused Deployment does not roll"
    );
    // Scaling still applies while paused.
    c.ok(&["scale", "deployment/app", "--replicas=4"]);
    wait_until(&c, "4 replicas while paused", || sets(&c, "app")[0].2 == 4);
    assert_eq!(
        jp(
            &c,
            &format!("rs/{}", sets(&c, "app")[0].0),
            "{.metadata.annotations.deployment\\.kubernetes\\.io/desired-replicas}"
        ),
        "4"
    );
    let out = c.fails(&["rollout", "undo", "deployment/app"]);
    // kubectl looks for the previous revision first: a paused set-image made none.
    assert!(
        out.contains("no rollout history found for deployment \"app\""),
        "{out}"
    );
    c.ok(&["rollout", "resume", "deployment/app"]);
    rollout_status(&c, "app");
    assert_eq!(
        jp(
            &c,
            "deploy/app",
            "{.status.updatedReplicas}/{.status.availableReplicas}"
        ),
        "4/4"
    );
    // revisionHistoryLimit 1: one old ReplicaSet is kept.
    wait_until(&c, "history pruned to 1", || sets(&c, "app").len() == 2);

    c.ok(&["scale", "deployment/app", "--replicas=1"]);
    wait_until(&c, "1 replica", || {
        jp(
            &c,
            "deploy/app",
            "{.status.replicas}/{.status.availableReplicas}",
        ) == "1/1"
    });
    let before: Vec<String> = sets(&c, "app").into_iter().map(|r| r.0).collect();
    c.ok(&["rollout", "restart", "deployment/app"]);
    rollout_status(&c, "app");
    assert!(!jp(
        &c,
        "deploy/app",
        "{.spec.template.metadata.annotations.kubectl\\.kubernetes\\.io/restartedAt}"
    )
    .is_empty());
    let after = sets(&c, "app");
    let new: Vec<_> = after.iter().filter(|r| !before.contains(&r.0)).collect();
    assert_eq!(new.len(), 1, "{after:?}");
    assert_eq!((new[0].1, new[0].3.as_str()), (1, "3"));
    wait_until(&c, "history limit keeps one old set", || {
        sets(&c, "app").len() == 2
    });
}

fn recreate_and_progress_deadline(b: Backend) {
    let c = Cluster::start(b);
    let _sim = c.sim(&["--nodes", "2"]);
    c.ok(&[
        "create",
        "deployment",
        "re",
        "--image=busybox",
        "--replicas=2",
    ]);
    c.ok(&[
        "patch",
        "deploy",
        "re",
        "--type=json",
        "-p",
        r#"[{"op":"replace","path":"/spec/strategy","value":{"type":"Recreate"}}]"#,
    ]);
    rollout_status(&c, "re");
    let old = sets(&c, "re")[0].0.clone();
    // Recreate: never old and new pods at once.
    observing(&c, "re", 2, 0, || {
        c.ok(&["set", "image", "deployment/re", "busybox=busybox:1.36"]);
        rollout_status(&c, "re")
    });
    wait_described(
        &c,
        &["deploy", "re"],
        &[&format!("Scaled down replica set {old} from 2 to 0")],
    );

    // Pods that never schedule: the rollout times out.
    c.ok(&[
        "create",
        "deployment",
        "stuck",
        "--image=busybox",
        "--replicas=1",
    ]);
    c.ok(&["patch", "deploy", "stuck", "-p",
        r#"{"spec":{"progressDeadlineSeconds":2,"template":{"spec":{"nodeSelector":{"no":"such-node"}}}}}"#]);
    wait_until(&c, "ProgressDeadlineExceeded", || {
        jp(
            &c,
            "deploy/stuck",
            "{.status.conditions[?(@.type==\"Progressing\")].reason}",
        ) == "ProgressDeadlineExceeded"
    });
    let conds = jp(
        &c,
        "deploy/stuck",
        "{range .status.conditions[*]}{.type}={.status}:{.reason}:{.message}{\"\\n\"}{end}",
    );
    assert!(
        conds.contains("Progressing=False:ProgressDeadlineExceeded:ReplicaSet \"stuck-"),
        "{conds}"
    );
    assert!(conds.contains("has timed out progressing."), "{conds}");
    let r = c.kubectl(&["rollout", "status", "deployment/stuck", "--timeout=20s"]);
    assert_ne!(r.code, 0);
    assert!(
        r.stderr
            .contains("deployment \"stuck\" exceeded its progress deadline"),
        "{}",
        r.stderr
    );
}

/// Spec sizes of the old and the new ReplicaSet of `app`, once both are settled at these.
fn wait_sizes(c: &Cluster, app: &str, old: &str, want_old: i32, want_new: i32) {
    wait_until(c, &format!("old {want_old} / new {want_new}"), || {
        let rs = sets(c, app);
        rs.len() == 2
            && rs.iter().any(|r| r.0 == old && r.1 == want_old)
            && rs.iter().any(|r| r.0 != old && r.1 == want_new)
    });
}

fn proportional_scaling_mid_rollout(b: Backend) {
    let c = Cluster::start(b);
    let _sim = c.sim(&["--nodes", "2"]);
    c.ok(&[
        "create",
        "deployment",
        "prop",
        "--image=busybox",
        "--replicas=10",
    ]);
    c.ok(&[
        "patch",
        "deploy",
        "prop",
        "-p",
        r#"{"spec":{"strategy":{"rollingUpdate":{"maxSurge":3,"maxUnavailable":2}}}}"#,
    ]);
    rollout_status(&c, "prop");
    let old = sets(&c, "prop")[0].0.clone();
    // The new pods never schedule: the rollout stalls at 8 old + 5 new (10 + 3 surge, 8
    // available).
    c.ok(&[
        "patch",
        "deploy",
        "prop",
        "-p",
        r#"{"spec":{"template":{"spec":{"nodeSelector":{"no":"such-node"}}}}}"#,
    ]);
    wait_sizes(&c, "prop", &old, 8, 5);
    // Scaling to 20 mid-rollout spreads the 10 more pods by size (upstream's GetProportion:
    // 8·23/13 → 14, 5·23/13 → 9).
    c.ok(&["scale", "deployment/prop", "--replicas=20"]);
    wait_sizes(&c, "prop", &old, 14, 9);
    wait_until(&c, "14 old pods available", || {
        sets(&c, "prop").iter().any(|r| r.0 == old && r.2 == 14)
    });
    for r in sets(&c, "prop") {
        let ann = jp(&c, &format!("rs/{}", r.0), "{.metadata.annotations}");
        assert!(
            ann.contains("\"deployment.kubernetes.io/desired-replicas\":\"20\"")
                && ann.contains("\"deployment.kubernetes.io/max-replicas\":\"23\""),
            "{ann}"
        );
    }
    wait_described(
        &c,
        &["deploy", "prop"],
        &[&format!("Scaled up replica set {old} from 8 to 14")],
    );
    // And down to 5: 23 → 8 (5 + 3 surge) proportionally (14 → 5, 9 → 3), then the stalled
    // rollout goes on within maxUnavailable 2: old 3 (3 available), new 5 (8 in all).
    c.ok(&["scale", "deployment/prop", "--replicas=5"]);
    wait_sizes(&c, "prop", &old, 3, 5);
    wait_described(
        &c,
        &["deploy", "prop"],
        &[&format!("Scaled down replica set {old} from 14 to 5")],
    );
}

/// Deleting Deployments with each propagation: the garbage collector takes the ReplicaSets
/// and pods (background, foreground) or leaves them ownerless (orphan), and the Deployment
/// controller never recreates a set for a Deployment being deleted.
fn delete_with_cascade(b: Backend) {
    let c = Cluster::start(b);
    let _sim = c.sim(&["--nodes", "2"]);
    for name in ["bg", "fg", "or"] {
        c.ok(&[
            "create",
            "deployment",
            name,
            "--image=busybox",
            "--replicas=2",
        ]);
    }
    for name in ["bg", "fg", "or"] {
        rollout_status(&c, name);
    }
    let live = |app: &str| {
        c.ok(&["get", "pods", "-l", &format!("app={app}"), "-o",
            "jsonpath={range .items[*]}{.metadata.name} {.metadata.deletionTimestamp}{\"\\n\"}{end}"])
        .lines()
        .filter(|l| l.split_whitespace().count() == 1)
        .count()
    };
    c.ok(&["delete", "deployment", "bg", "--cascade=background"]);
    wait_until(&c, "bg's sets and pods gone", || {
        sets(&c, "bg").is_empty() && live("bg") == 0
    });
    c.ok(&[
        "delete",
        "deployment",
        "fg",
        "--cascade=foreground",
        "--timeout=60s",
    ]);
    wait_until(&c, "fg's sets and pods gone", || {
        sets(&c, "fg").is_empty() && live("fg") == 0
    });
    let rs = sets(&c, "or");
    c.ok(&[
        "delete",
        "deployment",
        "or",
        "--cascade=orphan",
        "--timeout=60s",
    ]);
    std::thread::sleep(Duration::from_secs(1));
    let after = sets(&c, "or");
    assert_eq!(after.len(), 1, "{after:?}");
    assert_eq!((after[0].0.as_str(), after[0].1), (rs[0].0.as_str(), 2));
    assert_eq!(
        jp(
            &c,
            &format!("rs/{}", after[0].0),
            "{.metadata.ownerReferences}"
        ),
        ""
    );
    assert_eq!(live("or"), 2);
}

const RC: &str = "apiVersion: v1\nkind: ReplicationController\nmetadata:\n  name: legacy\nspec:\n  replicas: 3\n  selector: {app: legacy}\n  template:\n    metadata: {labels: {app: legacy}}\n    spec: {containers: [{name: c, image: busybox}]}\n";

fn replication_controllers(b: Backend) {
    let c = Cluster::start(b);
    let _sim = c.sim(&["--nodes", "2"]);
    // An orphan pod with the labels is adopted.
    c.ok(&["run", "stray", "--image=busybox", "--labels=app=legacy"]);
    c.ok_stdin(&["apply", "-f", "-"], RC);
    wait_until(&c, "3 available", || {
        jp(&c, "rc/legacy", "{.status.replicas}/{.status.fullyLabeledReplicas}/{.status.readyReplicas}/{.status.availableReplicas}/{.status.observedGeneration}") == "3/3/3/3/1"
    });
    assert_eq!(
        jp(
            &c,
            "pod/stray",
            "{.metadata.ownerReferences[0].kind}/{.metadata.ownerReferences[0].name}"
        ),
        "ReplicationController/legacy"
    );
    wait_described(
        &c,
        &["rc", "legacy"],
        &[
            "SuccessfulCreate",
            "Created pod: legacy-",
            "replication-controller",
        ],
    );
    c.ok(&["scale", "rc", "legacy", "--replicas=1"]);
    wait_until(&c, "1 replica", || {
        jp(
            &c,
            "rc/legacy",
            "{.status.replicas}/{.status.availableReplicas}",
        ) == "1/1"
    });
    wait_described(
        &c,
        &["rc", "legacy"],
        &["SuccessfulDelete", "Deleted pod: "],
    );
}

on_both_backends!(
    delete_with_cascade,
    proportional_scaling_mid_rollout,
    replication_controllers,
    create_roll_undo_and_history,
    pause_resume_scale_restart_and_history_limit,
    recreate_and_progress_deadline
);
