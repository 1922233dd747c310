//! End to end: the OpenAPI v3 documents as the real kubectl (v1.37) uses them, on both backends.
//! `explain` renders them; `create -f`, `replace -f` and `apply` refuse to run (without
//! `--validate=false`) unless the document of the kind's group/version has a PATCH operation
//! with a `fieldValidation` parameter.

mod support;

use support::{Backend, Cluster};

const MANIFEST: &str = "\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 1
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: nginx
        image: nginx:1.27
        ports:
        - containerPort: 80
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
data:
  mode: one
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: reader
rules:
- apiGroups: [\"\"]
  resources: [pods]
  verbs: [get, list]
";

fn has_line(out: &str, line: &str) -> bool {
    out.lines().any(|l| l == line)
}

fn explain(b: Backend) {
    let c = Cluster::start(b);
    let out = c.ok(&["explain", "deployment.spec.template.spec.containers"]);
    for line in [
        "GROUP:      apps",
        "KIND:       Deployment",
        "VERSION:    v1",
        "FIELD: containers <[]Container>",
        "DESCRIPTION:",
        "FIELDS:",
        "  args\t<[]string>",
        "  env\t<[]EnvVar>",
        "  image\t<string>",
        "  name\t<string> -required-",
        "  ports\t<[]ContainerPort>",
        "  resources\t<ResourceRequirements>",
    ] {
        assert!(has_line(&out, line), "{line:?} missing:\n{out}");
    }
    assert!(
        out.contains("DESCRIPTION:\n    List of containers belonging to the pod."),
        "{out}"
    );
    assert!(
        out.contains(
            "  name\t<string> -required-\n    Name of the container specified as a DNS_LABEL."
        ),
        "{out}"
    );
    // Fields after the header, in order.
    let fields = out.split("FIELDS:\n").nth(1).unwrap_or_default();
    let args = fields.find("  args\t").unwrap();
    let volume_mounts = fields.find("  volumeMounts\t").unwrap();
    assert!(args < volume_mounts);

    let recursive = c.ok(&[
        "explain",
        "deployment.spec.template.spec.containers",
        "--recursive",
    ]);
    assert!(
        recursive.contains("  ports\t<[]ContainerPort>\n    containerPort\t<integer> -required-\n"),
        "{recursive}"
    );
    for line in [
        "  env\t<[]EnvVar>",
        "    valueFrom\t<EnvVarSource>",
        "      configMapKeyRef\t<ConfigMapKeySelector>",
        "        key\t<string> -required-",
        "  resources\t<ResourceRequirements>",
        "    limits\t<map[string]Quantity>",
    ] {
        assert!(has_line(&recursive, line), "{line:?} missing:\n{recursive}");
    }
    // --recursive prints no descriptions of the fields.
    assert!(!recursive.contains("Name of the container specified as a DNS_LABEL"));

    let pods = c.ok(&["explain", "pods"]);
    for line in [
        "KIND:       Pod",
        "VERSION:    v1",
        "  apiVersion\t<string>",
        "  kind\t<string>",
        // Upstream requires neither (k8s-openapi's Rust types do).
        "  metadata\t<ObjectMeta>",
        "  spec\t<PodSpec>",
        "  status\t<PodStatus>",
    ] {
        assert!(has_line(&pods, line), "{line:?} missing:\n{pods}");
    }
    assert!(
        pods.contains(
            "DESCRIPTION:\n    Pod is a collection of containers that can run on a host."
        ),
        "{pods}"
    );
    let deployment = c.ok(&["explain", "deployment"]);
    assert!(
        has_line(&deployment, "  spec\t<DeploymentSpec>"),
        "{deployment}"
    );
    let surge = c.ok(&["explain", "deployment.spec.strategy.rollingUpdate.maxSurge"]);
    assert!(has_line(&surge, "FIELD: maxSurge <IntOrString>"), "{surge}");
    let svc = c.ok(&["explain", "service.spec.ports.targetPort"]);
    assert!(has_line(&svc, "FIELD: targetPort <IntOrString>"), "{svc}");
    // Another group, a cluster-scoped kind.
    let crb = c.ok(&["explain", "clusterrolebinding.roleRef"]);
    assert!(
        has_line(&crb, "GROUP:      rbac.authorization.k8s.io"),
        "{crb}"
    );
    assert!(has_line(&crb, "  kind\t<string> -required-"), "{crb}");
    let nope = c.fails(&["explain", "pods.spec.nope"]);
    assert!(nope.contains("field \"nope\" does not exist"), "{nope}");
}

fn create_replace_and_apply_validate_against_openapi(b: Backend) {
    let c = Cluster::start(b);
    // No --validate=false: kubectl first checks the fieldValidation parameter in /openapi/v3.
    let r = c.kubectl_stdin(&["create", "-f", "-", "-v=6"], MANIFEST);
    assert_eq!(r.code, 0, "{}\n{}", r.stderr, r.stdout);
    assert_eq!(
        r.stdout,
        "deployment.apps/web created\nconfigmap/settings created\nclusterrole.rbac.authorization.k8s.io/reader created\n"
    );
    assert!(
        r.stderr.contains("/openapi/v3/apis/apps/v1?hash="),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("fieldValidation=Strict"), "{}", r.stderr);
    // It never had to fall back to /openapi/v2.
    assert!(!r.stderr.contains("/openapi/v2"), "{}", r.stderr);

    let replaced = MANIFEST
        .replace("mode: one", "mode: two")
        .replace("replicas: 1", "replicas: 2");
    assert_eq!(
        c.ok_stdin(&["replace", "-f", "-"], &replaced),
        "deployment.apps/web replaced\nconfigmap/settings replaced\nclusterrole.rbac.authorization.k8s.io/reader replaced\n"
    );
    assert_eq!(
        c.ok(&["get", "cm", "settings", "-o", "jsonpath={.data.mode}"]),
        "two"
    );
    assert_eq!(
        c.ok(&["get", "deploy", "web", "-o", "jsonpath={.spec.replicas}"]),
        "2"
    );

    // apply of new objects (a create carrying the last-applied annotation).
    let applied = "\
apiVersion: v1
kind: Namespace
metadata:
  name: applied
---
apiVersion: batch/v1
kind: CronJob
metadata:
  name: tick
  namespace: applied
spec:
  schedule: '*/5 * * * *'
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: Never
          containers:
          - name: c
            image: busybox
";
    assert_eq!(
        c.ok_stdin(&["apply", "-f", "-"], applied),
        "namespace/applied created\ncronjob.batch/tick created\n"
    );
    let last = c.ok(&[
        "get",
        "cronjob",
        "tick",
        "-n",
        "applied",
        "-o",
        "jsonpath={.metadata.annotations.kubectl\\.kubernetes\\.io/last-applied-configuration}",
    ]);
    assert!(last.contains("\"schedule\":\"*/5 * * * *\""), "{last}");
    // Client-side apply to an existing object: kubectl computes the strategic merge patch from
    // the v3 schemas' merge keys (containers by name, ports by containerPort) and never asks for
    // /openapi/v2. (Only the request is checked here: applying it is the patch engine's job.)
    let deployment = MANIFEST
        .split("---")
        .next()
        .unwrap()
        .replace("name: web", "name: api");
    assert_eq!(
        c.ok_stdin(&["apply", "-f", "-"], &deployment),
        "deployment.apps/api created\n"
    );
    let changed = deployment.replace("containerPort: 80", "containerPort: 8080");
    let r = c.kubectl_stdin(&["apply", "-f", "-", "-v=8"], &changed);
    let patch = r
        .stderr
        .lines()
        .find(|l| l.contains("\"Request Body\"") && l.contains("$setElementOrder/containers"))
        .unwrap_or_else(|| panic!("no strategic merge patch sent:\n{}", r.stderr));
    assert!(patch.contains("$setElementOrder/ports"), "{patch}");
    assert!(patch.contains("$patch\\\":\\\"delete"), "{patch}");
    assert!(!r.stderr.contains("/openapi/v2"), "{}", r.stderr);

    // The server-side dry run path validates the same way.
    let other = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: other\n";
    assert_eq!(
        c.ok_stdin(&["create", "--dry-run=server", "-f", "-"], other),
        "configmap/other created (server dry run)\n"
    );
}

fn documents_over_http(b: Backend) {
    let c = Cluster::start(b);
    let root: serde_json::Value =
        serde_json::from_str(&c.ok(&["get", "--raw", "/openapi/v3"])).unwrap();
    let paths = root["paths"].as_object().unwrap();
    for gv in [
        "api/v1",
        "apis/apps/v1",
        "apis/batch/v1",
        "apis/autoscaling/v2",
        "apis/rbac.authorization.k8s.io/v1",
    ] {
        let url = paths[gv]["serverRelativeURL"].as_str().unwrap();
        let hash = url
            .strip_prefix(&format!("/openapi/v3/{gv}?hash="))
            .unwrap_or_else(|| panic!("{url}"));
        assert_eq!(hash.len(), 128, "{url}");
        assert!(hash
            .chars()
            .all(|ch| ch.is_ascii_digit() || ch.is_ascii_uppercase()));
    }
    let url = paths["apis/apps/v1"]["serverRelativeURL"].as_str().unwrap();
    let doc: serde_json::Value = serde_json::from_str(&c.ok(&["get", "--raw", url])).unwrap();
    assert_eq!(doc["openapi"], "3.0.0");
    let patch = &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
    assert_eq!(patch["operationId"], "patchAppsV1NamespacedDeployment");
    assert_eq!(
        patch["x-kubernetes-group-version-kind"],
        serde_json::json!({"group": "apps", "kind": "Deployment", "version": "v1"})
    );
    let ports =
        &doc["components"]["schemas"]["io.k8s.api.core.v1.Container"]["properties"]["ports"];
    assert_eq!(ports["x-kubernetes-patch-merge-key"], "containerPort");
    assert_eq!(
        ports["x-kubernetes-list-map-keys"],
        serde_json::json!(["containerPort", "protocol"])
    );
    // v2 is served too (kubectl falls back to it only when v3 is unusable).
    let v2: serde_json::Value =
        serde_json::from_str(&c.ok(&["get", "--raw", "/openapi/v2"])).unwrap();
    assert_eq!(v2["swagger"], "2.0");
    assert!(v2["definitions"]["io.k8s.api.apps.v1.Deployment"].is_object());
}

on_both_backends!(
    explain,
    create_replace_and_apply_validate_against_openapi,
    documents_over_http,
);
