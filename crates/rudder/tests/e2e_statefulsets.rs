//! End to end: the StatefulSet controller in `rudder server` with simulated nodes, driven by the
//! real kubectl on both store backends — OrderedReady creation (pod i+1 only once pod i is
//! Ready, at every observed moment) and reverse-order scale-down, stable identity, claims from
//! volumeClaimTemplates with the retention policy (bound by hand, and provisioned in the default
//! local-path class), a partitioned RollingUpdate, and
//! `rollout status/history/undo` over the ControllerRevisions. Pods stop 100 ms after SIGTERM
//! (the sim's stop-after annotation) so ordered deletions do not each wait out the grace period.

mod support;

use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::{jp, wait_described, Backend, Cluster};

fn wait_until(c: &Cluster, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(90);
    while !f() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}\n{}\n{}",
            c.ok(&["get", "sts,pods,pvc,controllerrevisions", "-o", "wide"]),
            c.ok(&["get", "events"])
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// (name, ready, terminating) of each pod of app=`app`, as one `kubectl get` sees them.
type Seen = Vec<(String, bool, bool)>;

const POD_STATES: &str = "jsonpath={range .items[*]}{.metadata.name} {.status.conditions[?(@.type==\"Ready\")].status} {.metadata.deletionTimestamp}{\"\\n\"}{end}";

fn parse_pods(s: &str) -> Seen {
    s.lines()
        .filter(|l| !l.is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            (
                f[0].to_string(),
                f.get(1) == Some(&"True"),
                f.get(2).is_some_and(|t| !t.is_empty()),
            )
        })
        .collect()
}

/// Lists the pods of app=`app` over and over while `f` runs; `check` returns a complaint about
/// any list that breaks the ordering guarantee. Returns how many lists were seen.
fn observing(
    c: &Cluster,
    app: &str,
    check: fn(&Seen) -> Option<String>,
    f: impl FnOnce(),
) -> usize {
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (stop, kubeconfig) = (stop.clone(), c.kubeconfig.clone());
        let (app, kubectl) = (app.to_string(), support::kubectl_bin());
        std::thread::spawn(move || {
            let (mut seen, mut violations) = (0, Vec::new());
            while !stop.load(Ordering::SeqCst) {
                let out = Command::new(&kubectl)
                    .arg("--kubeconfig")
                    .arg(&kubeconfig)
                    .args(["get", "pods", "-l", &format!("app={app}"), "-o", POD_STATES])
                    .output()
                    .unwrap();
                if out.status.success() {
                    seen += 1;
                    let pods = parse_pods(&String::from_utf8_lossy(&out.stdout));
                    if let Some(v) = check(&pods) {
                        violations.push(v);
                    }
                }
                std::thread::sleep(Duration::from_millis(30));
            }
            (seen, violations)
        })
    };
    f();
    stop.store(true, Ordering::SeqCst);
    let (seen, violations) = watcher.join().unwrap();
    assert!(violations.is_empty(), "ordering broken: {violations:?}");
    seen
}

fn ordinal(name: &str) -> usize {
    name.rsplit('-').next().unwrap().parse().unwrap()
}

/// OrderedReady creation: a pod exists only if every lower ordinal exists and is Ready.
fn created_in_order(pods: &Seen) -> Option<String> {
    for (name, _, _) in pods {
        let o = ordinal(name);
        for below in 0..o {
            let ok = pods
                .iter()
                .any(|(n, ready, _)| ordinal(n) == below && *ready);
            if !ok {
                return Some(format!(
                    "{name} exists while ordinal {below} is not Ready: {pods:?}"
                ));
            }
        }
    }
    None
}

/// Ordered scale-down: the live pods are always ordinals 0..n (the highest goes first), and at
/// most one is terminating.
fn deleted_in_reverse(pods: &Seen) -> Option<String> {
    let mut ords: Vec<usize> = pods.iter().map(|(n, _, _)| ordinal(n)).collect();
    ords.sort();
    let gapless = ords.iter().enumerate().all(|(i, o)| i == *o);
    let terminating = pods.iter().filter(|(_, _, t)| *t).count();
    let top_only = pods
        .iter()
        .filter(|(_, _, t)| *t)
        .all(|(n, _, _)| Some(&ordinal(n)) == ords.last());
    (!gapless || terminating > 1 || !top_only).then(|| format!("{pods:?}"))
}

const WEB: &str = "apiVersion: v1
kind: Service
metadata: {name: nginx}
spec:
  clusterIP: None
  selector: {app: web}
  ports: [{port: 80}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: web}
spec:
  serviceName: nginx
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}, annotations: {sim.rudder.dev/stop-after: 100ms}}
    spec: {containers: [{name: c, image: 'nginx:1'}]}
";

fn ordered_create_and_scale_down(b: Backend) {
    let c = Cluster::start(b);
    let _sim = c.sim(&["--nodes", "2"]);
    let seen = observing(&c, "web", created_in_order, || {
        c.ok_stdin(&["apply", "-f", "-"], WEB);
        wait_until(&c, "3 ready", || {
            jp(&c, "sts/web", "{.status.readyReplicas}") == "3"
        });
    });
    assert!(seen > 3, "only {seen} observations");
    let out = c.ok(&["rollout", "status", "statefulset/web", "--timeout=60s"]);
    assert!(
        out.contains("partitioned roll out complete: 3 new pods have been updated..."),
        "{out}"
    );
    let rev = jp(&c, "sts/web", "{.status.updateRevision}");
    assert!(rev.starts_with("web-"), "{rev}");
    assert_eq!(
        jp(&c, "sts/web", "{.status.replicas}/{.status.readyReplicas}/{.status.currentReplicas}/{.status.updatedReplicas}/{.status.availableReplicas}/{.status.observedGeneration}/{.status.currentRevision}/{.status.collisionCount}"),
        format!("3/3/3/3/3/1/{rev}/0")
    );
    // Stable identity.
    assert_eq!(
        jp(&c, "pod/web-1", "{.spec.hostname}/{.spec.subdomain}/{.metadata.labels.statefulset\\.kubernetes\\.io/pod-name}/{.metadata.labels.apps\\.kubernetes\\.io/pod-index}/{.metadata.labels.controller-revision-hash}"),
        format!("web-1/nginx/web-1/1/{rev}")
    );
    assert_eq!(
        jp(&c, "pod/web-1", "{.metadata.ownerReferences[0].kind}/{.metadata.ownerReferences[0].name}/{.metadata.generateName}"),
        "StatefulSet/web/web-"
    );
    // The revision: owned by the set, named by its hash, numbered 1.
    assert_eq!(
        jp(&c, &format!("controllerrevision/{rev}"), "{.revision}/{.metadata.ownerReferences[0].kind}/{.metadata.labels.app}/{.data.spec.template.spec.containers[0].image}"),
        "1/StatefulSet/web/nginx:1"
    );
    let hash = jp(
        &c,
        &format!("controllerrevision/{rev}"),
        "{.metadata.labels.controller\\.kubernetes\\.io/hash}",
    );
    assert_eq!(rev, format!("web-{hash}"));
    wait_described(
        &c,
        &["sts", "web"],
        &[
            "SuccessfulCreate",
            "create Pod web-0 in StatefulSet web successful",
            "create Pod web-2 in StatefulSet web successful",
        ],
    );
    // A deleted pod comes back with the same name.
    let uid = jp(&c, "pod/web-1", "{.metadata.uid}");
    c.ok(&["delete", "pod", "web-1", "--wait=false"]);
    wait_until(&c, "web-1 back", || {
        let now = c.kubectl(&[
            "get",
            "pod",
            "web-1",
            "-o",
            "jsonpath={.metadata.uid} {.status.phase}",
        ]);
        now.code == 0 && !now.stdout.starts_with(&uid) && now.stdout.ends_with("Running")
    });
    wait_until(&c, "3 ready again", || {
        jp(&c, "sts/web", "{.status.readyReplicas}") == "3"
    });
    observing(&c, "web", deleted_in_reverse, || {
        c.ok(&["scale", "sts", "web", "--replicas=1"]);
        wait_until(&c, "1 replica", || {
            c.ok(&["get", "pods", "-l", "app=web", "-o", "name"]).trim() == "pod/web-0"
                && jp(&c, "sts/web", "{.status.replicas}") == "1"
        });
    });
    wait_described(
        &c,
        &["sts", "web"],
        &[
            "SuccessfulDelete",
            "delete Pod web-2 in StatefulSet web successful",
            "delete Pod web-1 in StatefulSet web successful",
        ],
    );
}

const DB: &str = "apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  serviceName: db
  replicas: 2
  selector: {matchLabels: {app: db}}
  persistentVolumeClaimRetentionPolicy: {whenDeleted: Delete, whenScaled: Delete}
  template:
    metadata: {labels: {app: db}, annotations: {sim.rudder.dev/stop-after: 100ms}}
    spec: {containers: [{name: c, image: 'postgres:16'}]}
  volumeClaimTemplates:
  - metadata: {name: data, labels: {tier: storage}}
    spec:
      accessModes: [ReadWriteOnce]
      storageClassName: manual
      resources: {requests: {storage: 1Gi}}
";

/// A PV for the claim, pre-bound to it, and the claim bound to it as the PV controller would
/// (the class `manual` has no provisioner, so nothing else binds these claims first).
fn bind(c: &Cluster, claim: &str) {
    let pv = format!(
        "apiVersion: v1\nkind: PersistentVolume\nmetadata: {{name: pv-{claim}}}\nspec:\n  storageClassName: manual\n  capacity: {{storage: 1Gi}}\n  accessModes: [ReadWriteOnce]\n  hostPath: {{path: /tmp/{claim}}}\n  claimRef: {{namespace: default, name: {claim}}}\n"
    );
    c.ok_stdin(&["apply", "-f", "-"], &pv);
    c.ok(&[
        "patch",
        "pvc",
        claim,
        "--type=merge",
        "-p",
        &format!("{{\"metadata\":{{\"annotations\":{{\"pv.kubernetes.io/bind-completed\":\"yes\"}}}},\"spec\":{{\"volumeName\":\"pv-{claim}\"}}}}"),
    ]);
}

fn claims_from_templates(b: Backend) {
    let c = Cluster::start(b);
    let _sim = c.sim(&["--nodes", "1"]);
    c.ok_stdin(&["apply", "-f", "-"], DB);
    wait_until(&c, "claim data-db-0", || {
        c.kubectl(&["get", "pvc", "data-db-0"]).code == 0
    });
    assert_eq!(
        jp(&c, "pvc/data-db-0", "{.metadata.labels.app}/{.metadata.labels.tier}/{.spec.resources.requests.storage}/{.spec.accessModes[0]}"),
        "db/storage/1Gi/ReadWriteOnce"
    );
    wait_until(&c, "pod db-0", || {
        c.kubectl(&["get", "pod", "db-0"]).code == 0
    });
    assert_eq!(
        jp(
            &c,
            "pod/db-0",
            "{.spec.volumes[0].name}/{.spec.volumes[0].persistentVolumeClaim.claimName}"
        ),
        "data/data-db-0"
    );
    // Unbound, the claim keeps db-0 from scheduling, and OrderedReady holds db-1 back.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(jp(&c, "pod/db-0", "{.status.phase}"), "Pending");
    assert_ne!(c.kubectl(&["get", "pod", "db-1"]).code, 0);
    wait_described(
        &c,
        &["sts", "db"],
        &["create Claim data-db-0 Pod db-0 in StatefulSet db success"],
    );
    // WhenDeleted=Delete: the set owns its claims.
    wait_until(&c, "claim owned by the set", || {
        jp(&c, "pvc/data-db-0", "{.metadata.ownerReferences[*].kind}") == "StatefulSet"
    });
    bind(&c, "data-db-0");
    wait_until(&c, "claim data-db-1", || {
        c.kubectl(&["get", "pvc", "data-db-1"]).code == 0
    });
    bind(&c, "data-db-1");
    wait_until(&c, "2 ready", || {
        jp(&c, "sts/db", "{.status.readyReplicas}") == "2"
    });
    // WhenScaled=Delete: the scaled-down pod's claim goes with it (via the pod's ownerReference
    // and the garbage collector); the remaining one stays. The claim may stay Terminating on its
    // `kubernetes.io/pvc-protection` finalizer: removing that is the pvc-protection
    // controller's job, not this one's.
    c.ok(&["scale", "sts", "db", "--replicas=1"]);
    wait_until(&c, "data-db-1 deleted", || {
        let r = c.kubectl(&[
            "get",
            "pvc",
            "data-db-1",
            "-o",
            "jsonpath={.metadata.deletionTimestamp}",
        ]);
        r.code != 0 || !r.stdout.is_empty()
    });
    assert_eq!(jp(&c, "pvc/data-db-0", "{.metadata.deletionTimestamp}"), "");
}

const KV: &str = "apiVersion: apps/v1
kind: StatefulSet
metadata: {name: kv}
spec:
  serviceName: kv
  replicas: 2
  selector: {matchLabels: {app: kv}}
  template:
    metadata: {labels: {app: kv}, annotations: {sim.rudder.dev/stop-after: 100ms}}
    spec: {containers: [{name: c, image: 'redis:7'}]}
  volumeClaimTemplates:
  - metadata: {name: data}
    spec:
      accessModes: [ReadWriteOnce]
      resources: {requests: {storage: 1Gi}}
";

/// Claims in the default class (k3s's local-path) are provisioned and bound on the node the
/// scheduler picks, so the set comes up without help; with the default Retain policy the
/// claims outlive the set.
fn claims_in_the_default_class(b: Backend) {
    let c = Cluster::start(b);
    let _sim = c.sim(&["--nodes", "2"]);
    c.ok_stdin(&["apply", "-f", "-"], KV);
    wait_until(&c, "2 ready", || {
        jp(&c, "sts/kv", "{.status.readyReplicas}") == "2"
    });
    for claim in ["data-kv-0", "data-kv-1"] {
        wait_until(&c, "bound", || {
            jp(
                &c,
                &format!("pvc/{claim}"),
                "{.status.phase}/{.spec.storageClassName}",
            ) == "Bound/local-path"
        });
        assert_eq!(
            jp(&c, &format!("pvc/{claim}"), "{.metadata.ownerReferences}"),
            ""
        );
    }
    c.ok(&["delete", "sts", "kv", "--wait=true", "--timeout=60s"]);
    wait_until(&c, "pods gone", || {
        c.ok(&["get", "pods", "-l", "app=kv", "-o", "name"])
            .is_empty()
    });
    assert_eq!(
        jp(
            &c,
            "pvc/data-kv-0",
            "{.status.phase}/{.metadata.deletionTimestamp}"
        ),
        "Bound/"
    );
}

const PART: &str = "apiVersion: apps/v1
kind: StatefulSet
metadata: {name: web}
spec:
  serviceName: web
  replicas: 3
  podManagementPolicy: Parallel
  updateStrategy: {type: RollingUpdate, rollingUpdate: {partition: 2}}
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}, annotations: {sim.rudder.dev/stop-after: 100ms}}
    spec: {containers: [{name: c, image: 'nginx:1'}]}
";

/// (name, revision label, image) of each pod of the set.
fn pods(c: &Cluster) -> Vec<(String, String, String)> {
    c.ok(&["get", "pods", "-l", "app=web", "-o",
        "jsonpath={range .items[*]}{.metadata.name} {.metadata.labels.controller-revision-hash} {.spec.containers[0].image}{\"\\n\"}{end}"])
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            (f[0].to_string(), f[1].to_string(), f[2].to_string())
        })
        .collect()
}

fn history(c: &Cluster) -> Vec<String> {
    c.ok(&["rollout", "history", "statefulset/web"])
        .lines()
        .skip(2)
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

fn all_at(c: &Cluster, rev: &str, image: &str) -> bool {
    let p = pods(c);
    p.len() == 3
        && p.iter().all(|(_, r, i)| r == rev && i == image)
        && jp(
            c,
            "sts/web",
            "{.status.readyReplicas}/{.status.currentRevision}/{.status.updateRevision}",
        ) == format!("3/{rev}/{rev}")
}

fn partitioned_update_and_undo(b: Backend) {
    let c = Cluster::start(b);
    let _sim = c.sim(&["--nodes", "2"]);
    c.ok_stdin(&["apply", "-f", "-"], PART);
    wait_until(&c, "3 ready", || {
        jp(&c, "sts/web", "{.status.readyReplicas}") == "3"
    });
    let rev1 = jp(&c, "sts/web", "{.status.updateRevision}");
    c.ok(&["set", "image", "sts/web", "c=nginx:2"]);
    wait_until(&c, "web-2 updated", || {
        let p = pods(&c);
        p.len() == 3
            && p.iter()
                .any(|(n, r, i)| n == "web-2" && *r != rev1 && i == "nginx:2")
            && jp(
                &c,
                "sts/web",
                "{.status.readyReplicas}/{.status.updatedReplicas}",
            ) == "3/1"
    });
    let rev2 = jp(&c, "sts/web", "{.status.updateRevision}");
    assert_ne!(rev1, rev2);
    // Only ordinals >= the partition move.
    std::thread::sleep(Duration::from_secs(2));
    for (n, r, i) in pods(&c) {
        if n != "web-2" {
            assert_eq!((r.as_str(), i.as_str()), (rev1.as_str(), "nginx:1"), "{n}");
        }
    }
    assert_eq!(
        jp(
            &c,
            "sts/web",
            "{.status.currentRevision}/{.status.currentReplicas}"
        ),
        format!("{rev1}/2")
    );
    let out = c.ok(&["rollout", "status", "statefulset/web", "--timeout=60s"]);
    assert!(
        out.contains("partitioned roll out complete: 1 new pods have been updated..."),
        "{out}"
    );
    // Partition 0: the rest follow, and the update revision becomes current.
    c.ok(&[
        "patch",
        "sts",
        "web",
        "-p",
        "{\"spec\":{\"updateStrategy\":{\"rollingUpdate\":{\"partition\":0}}}}",
    ]);
    wait_until(&c, "all at rev2", || all_at(&c, &rev2, "nginx:2"));
    assert_eq!(
        jp(&c, &format!("controllerrevision/{rev2}"), "{.revision}"),
        "2"
    );
    assert_eq!(history(&c), ["1", "2"]);
    // Undo: the first revision's template comes back under its old name, renumbered 3.
    let out = c.ok(&["rollout", "undo", "statefulset/web"]);
    assert!(out.contains("statefulset.apps/web rolled back"), "{out}");
    wait_until(&c, "all back at rev1", || all_at(&c, &rev1, "nginx:1"));
    assert_eq!(
        jp(&c, &format!("controllerrevision/{rev1}"), "{.revision}"),
        "3"
    );
    assert_eq!(history(&c), ["2", "3"]);
    let out = c.ok(&["rollout", "history", "statefulset/web", "--revision=3"]);
    assert!(out.contains("nginx:1"), "{out}");
}

on_both_backends!(
    ordered_create_and_scale_down,
    claims_from_templates,
    claims_in_the_default_class,
    partitioned_update_and_undo
);
