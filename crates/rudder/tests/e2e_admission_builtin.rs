//! Built-in admission plugins seen through kubectl: `CertificateApproval`,
//! `CertificateSigning`, `CertificateSubjectRestriction`, `RuntimeClass`, `TaintNodesByCondition`,
//! `DefaultIngressClass` and `PersistentVolumeClaimResize`, with upstream's messages. Admission sits above the store, so
//! one backend is enough.

mod support;

use support::{jp, wait_for, Backend, Cluster};

#[test]
fn default_ingress_class_and_claim_resize() {
    let c = Cluster::start(Backend::Redb);

    // RuntimeClass: a pod naming a class gets its overhead and scheduling constraints; a
    // class that does not exist, or a conflicting node selector, is refused.
    c.ok_stdin(
        &["apply", "-f", "-"],
        "apiVersion: node.k8s.io/v1\nkind: RuntimeClass\nmetadata: {name: sandboxed}\nhandler: runc\noverhead: {podFixed: {cpu: 250m, memory: 64Mi}}\nscheduling:\n  nodeSelector: {sandbox: \"yes\"}\n  tolerations: [{key: sandbox, operator: Exists, effect: NoSchedule}]\n",
    );
    let pod = |class: &str, selector: &str| {
        format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: rc}}\nspec:\n  runtimeClassName: {class}\n  nodeSelector: {{{selector}}}\n  containers: [{{name: c, image: busybox}}]\n")
    };
    let admitted: serde_json::Value = support::wait_for("the RuntimeClass in the cache", || {
        let r = c.kubectl_stdin(
            &["create", "--dry-run=server", "-o", "json", "-f", "-"],
            &pod("sandboxed", "zone: a"),
        );
        (r.code == 0).then(|| serde_json::from_str(&r.stdout).unwrap())
    });
    assert_eq!(
        admitted["spec"]["overhead"],
        serde_json::json!({"cpu": "250m", "memory": "64Mi"})
    );
    assert_eq!(
        admitted["spec"]["nodeSelector"],
        serde_json::json!({"zone": "a", "sandbox": "yes"})
    );
    assert!(admitted["spec"]["tolerations"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["key"] == "sandbox"));
    let err = c
        .kubectl_stdin(&["create", "-f", "-"], &pod("missing", "zone: a"))
        .stderr;
    assert!(
        err.contains("pods \"rc\" is forbidden: pod rejected: RuntimeClass \"missing\" not found"),
        "{err}"
    );
    let err = c
        .kubectl_stdin(&["create", "-f", "-"], &pod("sandboxed", "sandbox: \"no\""))
        .stderr;
    assert!(
        err.contains("conflict: runtimeClass.scheduling.nodeSelector[sandbox] = yes; pod.spec.nodeSelector[sandbox] = no"),
        "{err}"
    );

    // TaintNodesByCondition: a new Node starts tainted not-ready (a dry run shows what
    // admission made of it), keeping its own taints.
    let taints = c.ok_stdin(
        &["create", "--dry-run=server", "-o", "jsonpath={.spec.taints}", "-f", "-"],
        "apiVersion: v1\nkind: Node\nmetadata: {name: fresh}\nspec:\n  taints: [{key: dedicated, value: db, effect: NoExecute}]\n",
    );
    let taints: serde_json::Value = serde_json::from_str(&taints).unwrap();
    assert_eq!(
        taints,
        serde_json::json!([
            {"key": "dedicated", "value": "db", "effect": "NoExecute"},
            {"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"}
        ])
    );

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

/// A CertificateSigningRequest for `signer`, its request for `cn` in `orgs`.
fn csr(name: &str, signer: &str, cn: &str, orgs: &[&str]) -> String {
    use base64::Engine as _;
    let (request, _) = support::tlsserver::certificate_request(cn, orgs, &[]);
    let pem = request.pem().unwrap();
    serde_json::json!({
        "apiVersion": "certificates.k8s.io/v1",
        "kind": "CertificateSigningRequest",
        "metadata": {"name": name},
        "spec": {"request": base64::engine::general_purpose::STANDARD.encode(pem),
                 "signerName": signer, "usages": ["client auth"]},
    })
    .to_string()
}

#[test]
fn certificate_requests_need_approve_and_sign_on_their_signer() {
    let c = Cluster::start(Backend::Redb);
    // CertificateSubjectRestriction.
    let err = c
        .kubectl_stdin(
            &["create", "-f", "-"],
            &csr(
                "masters",
                "kubernetes.io/kube-apiserver-client",
                "eve",
                &["system:masters"],
            ),
        )
        .stderr;
    assert!(
        err.contains("certificatesigningrequests.certificates.k8s.io \"masters\" is forbidden: use of kubernetes.io/kube-apiserver-client signer with system:masters group is not allowed"),
        "{err}"
    );
    c.ok_stdin(
        &["create", "-f", "-"],
        &csr(
            "dev",
            "kubernetes.io/kube-apiserver-client",
            "dev",
            &["devs"],
        ),
    );

    // CertificateApproval: updating the approval subresource is not enough, the user needs
    // `approve` on the signer (or its domain's wildcard).
    c.ok_stdin(
        &["create", "-f", "-"],
        &csr("custom", "example.com/issuer", "app", &[]),
    );
    c.ok(&[
        "create",
        "clusterrole",
        "csr-approver",
        "--verb=get,list,update,patch",
        "--resource=certificatesigningrequests,certificatesigningrequests/approval,certificatesigningrequests/status",
    ]);
    c.ok(&[
        "create",
        "clusterrolebinding",
        "csr-approver",
        "--clusterrole=csr-approver",
        "--user=approver",
    ]);
    let err = wait_for("the approver's RBAC to apply", || {
        let r = c.kubectl(&["certificate", "approve", "custom", "--as=approver"]);
        r.stderr
            .contains("is forbidden: user not permitted")
            .then_some(r.stderr)
    });
    assert!(
        err.contains("certificatesigningrequests.certificates.k8s.io \"custom\" is forbidden: user not permitted to approve requests with signerName \"example.com/issuer\""),
        "{err}"
    );
    c.ok_stdin(
        &["apply", "-f", "-"],
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: example-signer}\nrules:\n- {apiGroups: [certificates.k8s.io], resources: [signers], resourceNames: [example.com/*], verbs: [approve]}\n",
    );
    c.ok(&[
        "create",
        "clusterrolebinding",
        "example-signer",
        "--clusterrole=example-signer",
        "--user=approver",
    ]);
    wait_for("the wildcard grant to allow approval", || {
        let r = c.kubectl(&["certificate", "approve", "custom", "--as=approver"]);
        (r.code == 0).then_some(())
    });
    assert_eq!(
        jp(&c, "csr/custom", "{.status.conditions[0].type}"),
        "Approved"
    );

    // CertificateSigning: setting the certificate needs `sign` on the signer.
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["app".to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let patch = serde_json::json!({"status": {"certificate": base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD, cert.pem())}})
    .to_string();
    let sign = |user: &str| {
        c.kubectl(&[
            "patch",
            "csr",
            "custom",
            "--subresource=status",
            "--type=merge",
            "-p",
            &patch,
            &format!("--as={user}"),
        ])
    };
    let err = sign("approver").stderr;
    assert!(
        err.contains("user not permitted to sign requests with signerName \"example.com/issuer\""),
        "{err}"
    );
    // The admin (system:masters) may.
    let r = c.kubectl(&[
        "patch",
        "csr",
        "custom",
        "--subresource=status",
        "--type=merge",
        "-p",
        &patch,
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(!jp(&c, "csr/custom", "{.status.certificate}").is_empty());
}
