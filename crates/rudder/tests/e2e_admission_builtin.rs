//! Built-in admission plugins seen through kubectl: `DefaultIngressClass` and
//! `PersistentVolumeClaimResize`, with upstream's messages. Admission sits above the store, so
//! one backend is enough.

mod support;

use support::{jp, wait_for, Backend, Cluster};

#[test]
fn default_ingress_class_and_claim_resize() {
    let c = Cluster::start(Backend::Redb);

    // DefaultIngressClass: the newest class annotated default is set on a new Ingress.
    c.ok_stdin(
        &["apply", "-f", "-"],
        r#"apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata:
  name: fallback
  annotations: {ingressclass.kubernetes.io/is-default-class: "true"}
spec: {controller: example.com/ingress}
"#,
    );
    c.ok(&["create", "ingress", "web", "--rule=web.example/=web:80"]);
    assert_eq!(
        jp(&c, "ingress/web", "{.spec.ingressClassName}"),
        "fallback"
    );
    c.ok(&[
        "create",
        "ingress",
        "mine",
        "--class=other",
        "--rule=mine.example/=web:80",
    ]);
    assert_eq!(jp(&c, "ingress/mine", "{.spec.ingressClassName}"), "other");

    // PersistentVolumeClaimResize: a bound claim grows only if its class allows expansion.
    let objects = |class: &str, expand: bool| {
        format!(
            r#"apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {{name: {class}}}
provisioner: example.com/none
allowVolumeExpansion: {expand}
---
apiVersion: v1
kind: PersistentVolume
metadata: {{name: pv-{class}}}
spec:
  capacity: {{storage: 1Gi}}
  accessModes: [ReadWriteOnce]
  storageClassName: {class}
  hostPath: {{path: /tmp/pv-{class}}}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {{name: claim-{class}}}
spec:
  accessModes: [ReadWriteOnce]
  storageClassName: {class}
  resources: {{requests: {{storage: 1Gi}}}}
"#
        )
    };
    c.ok_stdin(&["apply", "-f", "-"], &objects("fixed", false));
    c.ok_stdin(&["apply", "-f", "-"], &objects("expandable", true));
    for class in ["fixed", "expandable"] {
        wait_for(&format!("claim-{class} bound"), || {
            (jp(&c, &format!("pvc/claim-{class}"), "{.status.phase}") == "Bound").then_some(())
        });
    }
    let grow = r#"{"spec":{"resources":{"requests":{"storage":"2Gi"}}}}"#;
    let err = c.fails(&["patch", "pvc", "claim-fixed", "-p", grow]);
    assert!(
        err.contains(
            r#"persistentvolumeclaims "claim-fixed" is forbidden: only dynamically provisioned pvc can be resized and the storageclass that provisions the pvc must support resize"#
        ),
        "{err}"
    );
    c.ok(&["patch", "pvc", "claim-expandable", "-p", grow]);
    assert_eq!(
        jp(
            &c,
            "pvc/claim-expandable",
            "{.spec.resources.requests.storage}"
        ),
        "2Gi"
    );
}
