//! OpenAPI documents of custom resources: once a CRD is established, `/openapi/v3` lists its
//! group/version and `kubectl explain` prints its schema's descriptions and types; deleting
//! the CRD removes the document, without a restart.

mod support;

use support::{jp, wait_for, Backend, Cluster};

const CRD: &str = r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.demo.rudder.dev
spec:
  group: demo.rudder.dev
  scope: Namespaced
  names:
    plural: widgets
    kind: Widget
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        description: A Widget is a thing the demo operator builds.
        type: object
        properties:
          spec:
            description: What the widget should look like.
            type: object
            properties:
              size:
                description: How many sprockets the widget has.
                type: integer
              color:
                description: The paint colour.
                type: string
"#;

/// `out` with every run of whitespace (kubectl aligns with tabs) as one space.
fn words(out: &str) -> String {
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn index(c: &Cluster) -> serde_json::Value {
    serde_json::from_str(&c.ok(&["get", "--raw", "/openapi/v3"])).unwrap()
}

#[test]
fn kubectl_explain_describes_custom_resources_from_their_crd_schema() {
    let c = Cluster::start(Backend::Redb);
    assert!(index(&c)["paths"].get("apis/demo.rudder.dev/v1").is_none());
    c.ok_stdin(&["apply", "-f", "-"], CRD);
    wait_for("widgets Established", || {
        let s = jp(
            &c,
            "crd/widgets.demo.rudder.dev",
            "{.status.conditions[?(@.type==\"Established\")].status}",
        );
        (s == "True").then_some(())
    });

    let out = wait_for("kubectl explain widgets", || {
        let r = c.kubectl(&["explain", "widgets"]);
        (r.code == 0).then_some(r.stdout)
    });
    assert!(out.contains("GROUP:      demo.rudder.dev"), "{out}");
    assert!(out.contains("KIND:       Widget"), "{out}");
    assert!(out.contains("VERSION:    v1"), "{out}");
    assert!(
        out.contains("A Widget is a thing the demo operator builds."),
        "{out}"
    );
    assert!(words(&out).contains("metadata <ObjectMeta>"), "{out}");
    assert!(
        words(&out).contains("spec <Object> What the widget should look like."),
        "{out}"
    );

    let out = c.ok(&["explain", "widgets.spec.size"]);
    assert!(words(&out).contains("FIELD: size <integer>"), "{out}");
    assert!(out.contains("How many sprockets the widget has."), "{out}");
    let out = c.ok(&["explain", "widgets.metadata.name"]);
    assert!(words(&out).contains("FIELD: name <string>"), "{out}");

    // The Swagger 2.0 document (kubectl's fallback) has the definition too.
    let out = c.ok(&[
        "explain",
        "widgets.spec.color",
        "--output=plaintext-openapiv2",
    ]);
    assert!(out.contains("The paint colour."), "{out}");

    // apply (strict validation, no --validate=false) finds the kind's PATCH operation.
    c.ok_stdin(
        &["apply", "-f", "-"],
        "apiVersion: demo.rudder.dev/v1\nkind: Widget\nmetadata:\n  name: w\n  namespace: default\nspec:\n  size: 3\n",
    );

    c.ok(&["delete", "crd", "widgets.demo.rudder.dev"]);
    wait_for("the widgets document to go", || {
        index(&c)["paths"]
            .get("apis/demo.rudder.dev/v1")
            .is_none()
            .then_some(())
    });
    let out = c.ok(&["get", "--raw", "/openapi/v2"]);
    assert!(!out.contains("dev.rudder.demo.v1.Widget"));
}
