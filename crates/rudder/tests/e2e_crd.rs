//! Custom resources served from CustomResourceDefinitions, driven with kubectl: a CRD is
//! established at run time and its resources are served through the generic REST path
//! (every verb, watch, selectors, discovery with short names and categories), and deleting the
//! CRD deletes its objects first.

mod support;

use std::io::{BufRead, BufReader};
use std::process::Stdio;

use support::{jp, wait_for, Backend, Cluster};

const CRD: &str = r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  scope: Namespaced
  names:
    plural: widgets
    kind: Widget
    shortNames: [wd]
    categories: [all]
  versions:
  - name: v1
    served: true
    storage: true
    selectableFields:
    - jsonPath: .spec.color
    additionalPrinterColumns:
    - name: Color
      type: string
      jsonPath: .spec.color
    - name: Size
      type: integer
      priority: 1
      jsonPath: .spec.size
    - name: Age
      type: date
      jsonPath: .metadata.creationTimestamp
    subresources:
      status: {}
      scale:
        specReplicasPath: .spec.replicas
        statusReplicasPath: .status.replicas
        labelSelectorPath: .status.selector
    schema:
      openAPIV3Schema:
        type: object
        x-kubernetes-preserve-unknown-fields: true
"#;

fn widget(name: &str, color: &str) -> String {
    format!(
        "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: {name}\n  labels:\n    color: {color}\nspec:\n  color: {color}\n  size: 3\n"
    )
}

fn established(c: &Cluster, crd: &str) {
    wait_for(&format!("{crd} Established"), || {
        let s = jp(
            c,
            &format!("crd/{crd}"),
            "{.status.conditions[?(@.type==\"Established\")].status}",
        );
        (s == "True").then_some(())
    });
}

#[test]
fn custom_resources_are_served_from_crds() {
    let c = Cluster::start(Backend::Redb);
    // Before the CRD, kubectl knows no such kind.
    let err = c.fails(&["get", "widgets"]);
    assert!(
        err.contains("the server doesn't have a resource type \"widgets\""),
        "{err}"
    );
    c.ok_stdin(&["apply", "-f", "-"], CRD);
    established(&c, "widgets.example.com");
    assert_eq!(
        jp(
            &c,
            "crd/widgets.example.com",
            "{.status.acceptedNames.kind} {.status.acceptedNames.singular} {.status.storedVersions}"
        ),
        "Widget widget [\"v1\"]"
    );
    assert_eq!(
        jp(
            &c,
            "crd/widgets.example.com",
            "{.status.conditions[?(@.type==\"NamesAccepted\")].reason}"
        ),
        "NoConflicts"
    );

    // Discovery: api-resources lists it with its short name; every name kubectl resolves works.
    let resources = c.ok(&["api-resources", "--api-group=example.com"]);
    assert!(
        resources.contains("widgets") && resources.contains("wd") && resources.contains("Widget"),
        "{resources}"
    );

    // The watch below must not start before kubectl's discovery finds the resource.
    wait_for("widgets served", || {
        (c.kubectl(&["get", "widgets"]).code == 0).then_some(())
    });
    let watch = c
        .command(&["get", "widgets", "--watch", "-o", "name"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut watch = KillOnDrop(watch);

    assert_eq!(
        c.ok_stdin(&["create", "-f", "-"], &widget("red-one", "red")),
        "widget.example.com/red-one created\n"
    );
    c.ok_stdin(&["create", "-f", "-"], &widget("blue-one", "blue"));
    // The watch sees both.
    let mut lines = BufReader::new(watch.0.stdout.take().unwrap()).lines();
    let mut seen = Vec::new();
    while seen.len() < 2 {
        seen.push(lines.next().unwrap().unwrap());
    }
    seen.sort();
    assert_eq!(
        seen,
        vec!["widget.example.com/blue-one", "widget.example.com/red-one"]
    );
    drop(watch);

    for name in ["widgets", "widget", "wd", "Widget", "widgets.example.com"] {
        let out = c.ok(&["get", name, "-o", "name"]);
        assert_eq!(
            out, "widget.example.com/blue-one\nwidget.example.com/red-one\n",
            "kubectl get {name}"
        );
    }
    // Table output from additionalPrinterColumns; priority 1 only with -o wide.
    let table = c.ok(&["get", "wd", "blue-one"]);
    let words: Vec<&str> = table.split_whitespace().collect();
    assert_eq!(&words[..4], ["NAME", "COLOR", "AGE", "blue-one"], "{table}");
    assert_eq!(words[4], "blue", "{table}");
    let wide = c.ok(&["get", "wd", "blue-one", "-o", "wide"]);
    let words: Vec<&str> = wide.split_whitespace().collect();
    assert_eq!(
        &words[..6],
        ["NAME", "COLOR", "SIZE", "AGE", "blue-one", "blue"],
        "{wide}"
    );
    assert_eq!(words[6], "3", "{wide}");
    // The `all` category.
    let all = c.ok(&["get", "all", "-o", "name"]);
    assert!(all.contains("widget.example.com/red-one"), "{all}");
    // Label and field selectors, including the CRD's selectable field.
    assert_eq!(
        c.ok(&["get", "wd", "-l", "color=red", "-o", "name"]),
        "widget.example.com/red-one\n"
    );
    assert_eq!(
        c.ok(&[
            "get",
            "wd",
            "--field-selector",
            "spec.color=blue",
            "-o",
            "name"
        ]),
        "widget.example.com/blue-one\n"
    );
    assert_eq!(
        c.ok(&[
            "get",
            "wd",
            "--field-selector",
            "metadata.name=red-one",
            "-o",
            "name"
        ]),
        "widget.example.com/red-one\n"
    );
    let bad = c.fails(&["get", "wd", "--field-selector", "spec.size=3"]);
    assert!(
        bad.contains("field label not supported: spec.size"),
        "{bad}"
    );

    // Patches: merge and JSON; generation follows spec changes.
    c.ok(&[
        "patch",
        "wd",
        "red-one",
        "--type=merge",
        "-p",
        r#"{"spec":{"size":5}}"#,
    ]);
    c.ok(&[
        "patch",
        "wd",
        "red-one",
        "--type=json",
        "-p",
        r#"[{"op":"replace","path":"/spec/color","value":"crimson"}]"#,
    ]);
    assert_eq!(
        jp(
            &c,
            "wd/red-one",
            "{.spec.size} {.spec.color} {.metadata.generation}"
        ),
        "5 crimson 3"
    );
    // Strategic merge needs Go structs upstream has not got for custom resources.
    let smp = c.fails(&["patch", "wd", "red-one", "-p", r#"{"spec":{"size":6}}"#]);
    assert!(
        smp.contains("application/strategic-merge-patch+json is not supported by example.com/v1, Kind=Widget: ")
            && smp.contains("the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml"),
        "{smp}"
    );
    // Server-side apply: a second manager's field is kept beside the first's.
    c.ok_stdin(
        &["apply", "--server-side", "--field-manager=tool", "-f", "-"],
        "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: red-one\nspec:\n  owner: tool\n",
    );
    assert_eq!(
        jp(
            &c,
            "wd/red-one",
            "{.spec.owner} {.spec.size} {.metadata.generation}"
        ),
        "tool 5 4"
    );
    let managers = jp(&c, "wd/red-one", "{.metadata.managedFields[*].manager}");
    assert!(managers.contains("tool"), "{managers}");

    // Status is written only through its subresource.
    for (via, ready) in [(None, ""), (Some("--subresource=status"), "true")] {
        let mut args = vec!["patch", "wd", "red-one", "--type=merge"];
        args.extend(via);
        args.extend(["-p", r#"{"status":{"ready":true}}"#]);
        c.ok(&args);
        assert_eq!(jp(&c, "wd/red-one", "{.status.ready}"), ready, "{via:?}");
    }

    // The scale subresource reads and writes the CRD's paths.
    assert_eq!(
        c.ok(&["scale", "wd", "red-one", "--replicas=4"]),
        "widget.example.com/red-one scaled\n"
    );
    assert_eq!(jp(&c, "wd/red-one", "{.spec.replicas}"), "4");
    c.ok(&[
        "patch",
        "wd",
        "red-one",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"replicas":2,"selector":"color=red"}}"#,
    ]);
    let scale = c.ok(&[
        "get",
        "--raw",
        "/apis/example.com/v1/namespaces/default/widgets/red-one/scale",
    ]);
    let scale: serde_json::Value = serde_json::from_str(&scale).unwrap();
    assert_eq!(
        (
            &scale["spec"]["replicas"],
            &scale["status"]["replicas"],
            &scale["status"]["selector"]
        ),
        (
            &serde_json::json!(4),
            &serde_json::json!(2),
            &serde_json::json!("color=red")
        ),
        "{scale}"
    );

    // A cluster-scoped CRD whose names clash with the first is not accepted.
    let clash = CRD
        .replace("widgets.example.com", "gizmos.example.com")
        .replace("plural: widgets", "plural: gizmos")
        .replace("scope: Namespaced", "scope: Cluster");
    c.ok_stdin(&["apply", "-f", "-"], &clash);
    wait_for("NamesAccepted=False", || {
        let s = jp(
            &c,
            "crd/gizmos.example.com",
            "{.status.conditions[?(@.type==\"NamesAccepted\")].message}",
        );
        (!s.is_empty()).then_some(())
    });
    assert_eq!(
        jp(
            &c,
            "crd/gizmos.example.com",
            "{.status.conditions[?(@.type==\"NamesAccepted\")].status} {.status.conditions[?(@.type==\"NamesAccepted\")].message}"
        ),
        "False \"widget\" is already in use"
    );
    c.ok(&["delete", "crd", "gizmos.example.com"]);

    // Deleting the CRD deletes its objects, then the CRD; the resource is no longer served.
    assert_eq!(
        c.ok(&["delete", "crd", "widgets.example.com"]),
        "customresourcedefinition.apiextensions.k8s.io \"widgets.example.com\" deleted\n"
    );
    wait_for("widgets no longer served", || {
        let r = c.kubectl(&["get", "crd", "widgets.example.com"]);
        (r.code != 0).then_some(())
    });
    let err = c.fails(&["get", "widgets.v1.example.com"]);
    assert!(
        err.contains("doesn't have a resource type")
            || err.contains("could not find the requested resource"),
        "{err}"
    );
    // Re-created, it starts empty.
    c.ok_stdin(&["apply", "-f", "-"], CRD);
    established(&c, "widgets.example.com");
    wait_for("widgets served again", || {
        let r = c.kubectl(&["get", "widgets", "-o", "name"]);
        (r.code == 0).then_some(r.stdout)
    });
    assert_eq!(c.ok(&["get", "widgets", "-o", "name"]), "");
}

#[test]
fn custom_resources_survive_a_restart() {
    let mut c = Cluster::start(Backend::Redb);
    c.ok_stdin(
        &["apply", "-f", "-"],
        &CRD.replace("scope: Namespaced", "scope: Cluster"),
    );
    established(&c, "widgets.example.com");
    c.ok_stdin(&["create", "-f", "-"], &widget("kept", "green"));
    c.restart();
    assert_eq!(
        c.ok(&["get", "widgets", "-o", "name"]),
        "widget.example.com/kept\n"
    );
    assert_eq!(jp(&c, "widget/kept", "{.metadata.namespace}"), "");
}

fn gadget(name: &str, spec: &str) -> String {
    format!("apiVersion: example.com/v1\nkind: Gadget\nmetadata:\n  name: {name}\nspec:\n{spec}")
}

/// Structural schemas: a non-structural one refused, then defaults applied, unknown fields
/// pruned (refused under strict field validation, kubectl's default), and invalid objects
/// refused with upstream's messages.
#[test]
fn custom_resources_are_defaulted_pruned_and_validated_by_their_schema() {
    let c = Cluster::start(Backend::Redb);
    let bad = support::GADGETS_CRD.replace(
        "          spec:\n            type: object\n",
        "          spec:\n",
    );
    let err = c.kubectl_stdin(&["apply", "-f", "-"], &bad).stderr;
    assert!(
        err.contains("The CustomResourceDefinition \"gadgets.example.com\" is invalid: spec.versions[0].schema.openAPIV3Schema.properties[spec].type: Required value: must not be empty for specified object fields"),
        "{err}"
    );
    let bad_default = support::GADGETS_CRD.replace("default: 1", "default: one");
    let err = c.kubectl_stdin(&["apply", "-f", "-"], &bad_default).stderr;
    assert!(
        err.contains(r#"spec.versions[0].schema.openAPIV3Schema.properties[spec].properties[replicas].default: Invalid value: "string":  in body must be of type integer: "string""#),
        "{err}"
    );
    c.ok_stdin(&["apply", "-f", "-"], support::GADGETS_CRD);
    established(&c, "gadgets.example.com");
    assert_eq!(
        jp(
            &c,
            "crd/gadgets.example.com",
            "{.spec.names.listKind} {.spec.conversion.strategy}"
        ),
        "GadgetList None"
    );
    wait_for("gadgets served", || {
        (c.kubectl(&["get", "gadgets"]).code == 0).then_some(())
    });

    // Defaults, also inside list items.
    c.ok_stdin(
        &["create", "-f", "-"],
        &gadget("plain", "  color: red\n  ports:\n  - name: http\n"),
    );
    assert_eq!(
        jp(&c, "gadget/plain", "{.spec.replicas} {.spec.ports[0].port}"),
        "1 80"
    );

    // Unknown fields: refused by kubectl's default strict validation, pruned with a warning
    // otherwise; x-kubernetes-preserve-unknown-fields keeps them.
    let unknown = gadget(
        "loose",
        "  color: blue\n  bogus: 1\n  extra:\n    anything: [1, 2]\n",
    );
    let err = c.kubectl_stdin(&["create", "-f", "-"], &unknown).stderr;
    assert!(
        err.contains(r#"strict decoding error: unknown field "spec.bogus""#),
        "{err}"
    );
    let r = c.kubectl_stdin(&["create", "--validate=warn", "-f", "-"], &unknown);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr.contains(r#"unknown field "spec.bogus""#),
        "{}",
        r.stderr
    );
    assert_eq!(
        jp(&c, "gadget/loose", "{.spec}"),
        r#"{"color":"blue","extra":{"anything":[1,2]},"replicas":1}"#
    );
    c.ok_stdin(
        &["create", "--validate=false", "-f", "-"],
        &gadget("quiet", "  color: blue\n  bogus: 1\n"),
    );
    assert_eq!(jp(&c, "gadget/quiet", "{.spec.bogus}"), "");

    // Invalid objects are refused with upstream's messages.
    let cases = [
        (
            "  color: green\n",
            r#"spec.color: Unsupported value: "green": supported values: "red", "blue""#,
        ),
        (
            "  color: red\n  replicas: 11\n",
            "spec.replicas: Invalid value: 11: spec.replicas in body should be less than or equal to 10",
        ),
        (
            "  color: red\n  replicas: many\n",
            r#"spec.replicas: Invalid value: "string": spec.replicas in body must be of type integer: "string""#,
        ),
        (
            "  color: red\n  name: Bad\n",
            r#"spec.name: Invalid value: "Bad": spec.name in body should match '^[a-z]+$'"#,
        ),
        ("  replicas: 2\n", "spec.color: Required value"),
        (
            "  color: red\n  ports:\n  - name: a\n  - name: a\n",
            r#"spec.ports[1]: Duplicate value: {"name":"a"}"#,
        ),
    ];
    for (spec, want) in cases {
        let err = c
            .kubectl_stdin(
                &["create", "--validate=false", "-f", "-"],
                &gadget("bad", spec),
            )
            .stderr;
        assert!(
            err.contains("The Gadget \"bad\" is invalid") && err.contains(want),
            "{spec}: want {want}, got {err}"
        );
    }
    // The 422 Status names the kind with its group, as upstream.
    let body = c.ok_stdin(
        &[
            "create",
            "--validate=false",
            "--dry-run=server",
            "-o",
            "name",
            "-f",
            "-",
        ],
        &gadget("dry", "  color: red\n"),
    );
    assert_eq!(body, "gadget.example.com/dry\n");

    // CEL rules: on create, and transition rules (oldSelf) on update only.
    let err = c
        .kubectl_stdin(
            &["create", "-f", "-"],
            &gadget("crowded", "  color: red\n  replicas: 6\n  name: first\n"),
        )
        .stderr;
    assert!(
        err.contains(r#"The Gadget "crowded" is invalid: spec: Invalid value: "object": red gadgets have at most 5 replicas"#),
        "{err}"
    );
    c.ok_stdin(
        &["create", "-f", "-"],
        &gadget("named", "  color: blue\n  replicas: 6\n  name: first\n"),
    );
    let err = c.fails(&[
        "patch",
        "gadget",
        "named",
        "--type=merge",
        "-p",
        r#"{"spec":{"name":"second"}}"#,
    ]);
    assert!(
        err.contains(r#"spec.name: Invalid value: "object": name is immutable"#),
        "{err}"
    );
    c.ok(&[
        "patch",
        "gadget",
        "named",
        "--type=merge",
        "-p",
        r#"{"spec":{"replicas":7}}"#,
    ]);

    // Updates are validated too; status writes only check status.
    let err = c.fails(&[
        "patch",
        "gadget",
        "plain",
        "--type=merge",
        "-p",
        r#"{"spec":{"replicas":0}}"#,
    ]);
    assert!(
        err.contains("spec.replicas: Invalid value: 0: spec.replicas in body should be greater than or equal to 1"),
        "{err}"
    );
    let err = c.fails(&[
        "patch",
        "gadget",
        "plain",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"ready":"yes"}}"#,
    ]);
    assert!(
        err.contains(r#"status.ready: Invalid value: "string": status.ready in body must be of type boolean: "string""#),
        "{err}"
    );
    c.ok(&[
        "patch",
        "gadget",
        "plain",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"ready":true}}"#,
    ]);
    assert_eq!(jp(&c, "gadget/plain", "{.status.ready}"), "true");
}

struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn versions_convert_with_the_none_strategy() {
    let c = Cluster::start(Backend::Redb);
    c.ok_stdin(
        &["apply", "-f", "-"],
        r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: sprockets.example.com}
spec:
  group: example.com
  scope: Namespaced
  names: {plural: sprockets, singular: sprocket, kind: Sprocket}
  versions:
  - name: v1beta1
    served: true
    storage: false
    schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}
  - name: v1
    served: true
    storage: true
    schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}
"#,
    );
    established(&c, "sprockets.example.com");
    wait_for("sprockets served", || {
        (c.kubectl(&["get", "sprockets.v1beta1.example.com"]).code == 0).then_some(())
    });
    // Written through the old version, stored in the storage version, read in either.
    c.ok_stdin(
        &["create", "-f", "-"],
        "apiVersion: example.com/v1beta1\nkind: Sprocket\nmetadata: {name: s1}\nspec: {teeth: 12}\n",
    );
    let via = |version: &str| {
        c.ok(&[
            "get",
            &format!("sprockets.{version}.example.com"),
            "s1",
            "-o",
            "jsonpath={.apiVersion} {.spec.teeth}",
        ])
    };
    assert_eq!(via("v1"), "example.com/v1 12");
    assert_eq!(via("v1beta1"), "example.com/v1beta1 12");
    let raw = c.ok(&[
        "get",
        "--raw",
        "/apis/example.com/v1beta1/namespaces/default/sprockets",
    ]);
    assert!(
        raw.contains(r#""apiVersion":"example.com/v1beta1""#),
        "{raw}"
    );
    assert!(!raw.contains(r#""apiVersion":"example.com/v1","#), "{raw}");
    let crd = c.ok(&[
        "get",
        "crd",
        "sprockets.example.com",
        "-o",
        "jsonpath={.status.storedVersions}",
    ]);
    assert_eq!(crd, r#"["v1"]"#);
}
