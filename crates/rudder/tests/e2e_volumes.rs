//! End to end: persistent volumes in `rudder server` with simulated nodes, driven by the real
//! kubectl, on both store backends: the default `local-path` StorageClass and its provisioner,
//! the PV controller's binding, the DefaultStorageClass and StorageObjectInUseProtection
//! admission plugins and the protection controllers.

mod support;

use support::{wait_for, Backend, Cluster};

fn jp(c: &Cluster, args: &[&str], path: &str) -> String {
    let mut a = vec!["get"];
    a.extend_from_slice(args);
    let jp = format!("jsonpath={path}");
    a.extend_from_slice(&["-o", &jp]);
    c.ok(&a)
}

fn events_of(c: &Cluster, name: &str) -> String {
    c.ok(&[
        "get",
        "events",
        "--field-selector",
        &format!("involvedObject.name={name}"),
        "-o",
        "jsonpath={range .items[*]}{.reason}: {.message}{\"\\n\"}{end}",
    ])
}

fn claim(name: &str, class: Option<&str>) -> String {
    let class = class
        .map(|c| format!("  storageClassName: \"{c}\"\n"))
        .unwrap_or_default();
    format!("apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata:\n  name: {name}\nspec:\n{class}  accessModes: [ReadWriteOnce]\n  resources: {{requests: {{storage: 1Gi}}}}\n---\n")
}

fn pod_with(name: &str, claim: &str) -> String {
    format!("apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  terminationGracePeriodSeconds: 0\n  containers:\n  - name: c\n    image: busybox\n  volumes:\n  - name: data\n    persistentVolumeClaim: {{claimName: {claim}}}\n---\n")
}

fn local_path_provisions_on_the_pods_node(b: Backend) {
    let c = Cluster::start(b);
    let _sim = c.sim(&["--nodes", "2"]);
    // The default class, as k3s ships it.
    let sc = wait_for("the local-path StorageClass", || {
        let r = c.kubectl(&["get", "storageclass"]);
        (r.code == 0 && r.stdout.contains("local-path")).then_some(r.stdout)
    });
    let row = sc
        .lines()
        .find(|l| l.starts_with("local-path"))
        .unwrap_or("");
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(
        cols[..6],
        [
            "local-path",
            "(default)",
            "rancher.io/local-path",
            "Delete",
            "WaitForFirstConsumer",
            "false"
        ],
        "{sc}"
    );

    // A claim naming no class gets the default one, and the protection finalizer.
    c.ok_stdin(&["apply", "-f", "-"], &claim("data", None));
    assert_eq!(
        jp(&c, &["pvc", "data"], "{.spec.storageClassName}"),
        "local-path"
    );
    assert_eq!(
        jp(&c, &["pvc", "data"], "{.metadata.finalizers}"),
        "[\"kubernetes.io/pvc-protection\"]"
    );
    wait_for("WaitForFirstConsumer", || {
        events_of(&c, "data")
            .contains(
                "WaitForFirstConsumer: waiting for first consumer to be created before binding",
            )
            .then_some(())
    });
    assert_eq!(jp(&c, &["pvc", "data"], "{.status.phase}"), "Pending");

    // A pod using it: the scheduler picks a node, the volume is made there and bound.
    c.ok_stdin(&["apply", "-f", "-"], &pod_with("app", "data"));
    wait_for("the claim to be Bound", || {
        (jp(&c, &["pvc", "data"], "{.status.phase}") == "Bound").then_some(())
    });
    let node = wait_for("the pod to run", || {
        (jp(&c, &["pod", "app"], "{.status.phase}") == "Running")
            .then(|| jp(&c, &["pod", "app"], "{.spec.nodeName}"))
    });
    let uid = jp(&c, &["pvc", "data"], "{.metadata.uid}");
    let pv = format!("pvc-{uid}");
    assert_eq!(jp(&c, &["pvc", "data"], "{.spec.volumeName}"), pv);
    assert_eq!(
        jp(&c, &["pvc", "data"], "{.status.capacity.storage}"),
        "1Gi"
    );
    assert_eq!(
        jp(&c, &["pv", &pv], "{.spec.hostPath.path}"),
        // k3s's layout: <data-dir>/storage unless --default-local-storage-path says otherwise.
        format!("{}/data/storage/{pv}_default_data", c.dir.path().display())
    );
    assert_eq!(
        jp(
            &c,
            &["pv", &pv],
            "{.spec.nodeAffinity.required.nodeSelectorTerms[0].matchExpressions[0].values[0]}"
        ),
        node
    );
    assert_eq!(jp(&c, &["pv", &pv], "{.status.phase}"), "Bound");
    assert_eq!(
        jp(&c, &["pv", &pv], "{.metadata.finalizers}"),
        "[\"kubernetes.io/pv-protection\"]"
    );
    let ev = events_of(&c, "data");
    for want in [
        "ExternalProvisioning: Waiting for a volume to be created either by the external provisioner 'rancher.io/local-path' or manually by the system administrator. If volume creation is delayed, please verify that the provisioner is running and correctly registered.",
        "Provisioning: External provisioner is provisioning volume for claim \"default/data\"",
        &format!("ProvisioningSucceeded: Successfully provisioned volume {pv}"),
    ] {
        assert!(ev.contains(want), "{want:?} not in\n{ev}");
    }

    // Deleting the claim while the pod uses it: it stays, Terminating, until the pod is gone;
    // then the Released volume is deleted by its provisioner (reclaim policy Delete).
    c.ok(&["delete", "pvc", "data", "--wait=false"]);
    std::thread::sleep(std::time::Duration::from_secs(2));
    assert_eq!(
        jp(&c, &["pvc", "data"], "{.metadata.finalizers}"),
        "[\"kubernetes.io/pvc-protection\"]"
    );
    assert!(c.ok(&["get", "pvc", "data"]).contains("Terminating"));
    c.ok(&["delete", "pod", "app"]);
    wait_for("the claim to go", || {
        (c.kubectl(&["get", "pvc", "data"]).code != 0).then_some(())
    });
    wait_for("the volume to go", || {
        (c.kubectl(&["get", "pv", &pv]).code != 0).then_some(())
    });
}

fn static_volumes_bind_and_are_retained(b: Backend) {
    let c = Cluster::start(b);
    // Two volumes without a class; the claim gets the smallest that fits.
    for (name, size) in [("big", "10Gi"), ("fits", "2Gi"), ("small", "500Mi")] {
        c.ok_stdin(
            &["apply", "-f", "-"],
            &format!("apiVersion: v1\nkind: PersistentVolume\nmetadata:\n  name: {name}\nspec:\n  capacity: {{storage: {size}}}\n  accessModes: [ReadWriteOnce]\n  persistentVolumeReclaimPolicy: Retain\n  hostPath: {{path: /tmp/{name}}}\n"),
        );
    }
    wait_for("the volumes to be Available", || {
        (jp(&c, &["pv"], "{.items[*].status.phase}") == "Available Available Available")
            .then_some(())
    });
    // An explicit "" is no class: DefaultStorageClass leaves it alone.
    c.ok_stdin(&["apply", "-f", "-"], &claim("static", Some("")));
    wait_for("the claim to be Bound", || {
        (jp(&c, &["pvc", "static"], "{.status.phase}") == "Bound").then_some(())
    });
    assert_eq!(jp(&c, &["pvc", "static"], "{.spec.volumeName}"), "fits");
    assert_eq!(
        jp(&c, &["pvc", "static"], "{.status.capacity.storage}"),
        "2Gi"
    );
    assert_eq!(
        jp(
            &c,
            &["pvc", "static"],
            "{.metadata.annotations.pv\\.kubernetes\\.io/bind-completed}"
        ),
        "yes"
    );
    assert_eq!(jp(&c, &["pv", "fits"], "{.status.phase}"), "Bound");
    assert_eq!(jp(&c, &["pv", "fits"], "{.spec.claimRef.name}"), "static");
    let out = c.ok(&["get", "pvc", "static"]);
    assert!(out.contains("Bound") && out.contains("fits"), "{out}");

    // A claim nothing fits waits, and says why.
    c.ok_stdin(
        &["apply", "-f", "-"],
        &claim("static", Some(""))
            .replace("static", "huge")
            .replace("1Gi", "100Gi"),
    );
    wait_for("FailedBinding", || {
        events_of(&c, "huge")
            .contains("FailedBinding: no persistent volumes available for this claim and no storage class is set")
            .then_some(())
    });
    assert_eq!(jp(&c, &["pvc", "huge"], "{.status.phase}"), "Pending");

    // The claim goes: a Retain volume is Released and kept.
    c.ok(&["delete", "pvc", "static"]);
    wait_for("the volume to be Released", || {
        (jp(&c, &["pv", "fits"], "{.status.phase}") == "Released").then_some(())
    });
    // Deleting a volume nothing binds: the protection finalizer is removed and it goes.
    c.ok(&["delete", "pv", "fits", "--timeout=30s"]);
    assert_ne!(c.kubectl(&["get", "pv", "fits"]).code, 0);
}

on_both_backends!(
    local_path_provisions_on_the_pods_node,
    static_volumes_bind_and_are_retained,
);
