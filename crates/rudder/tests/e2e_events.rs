//! End to end: Events through the real kubectl (v1.37) against `rudder server` on both backends.
//! core/v1 and events.k8s.io/v1 events are one resource stored in the core form; describe,
//! `kubectl events` and `kubectl get events` find them by upstream's selectable fields.

mod support;

use serde_json::Value;
use support::{Backend, Cluster};

/// The whitespace-separated cells of each line.
fn rows(s: &str) -> Vec<Vec<&str>> {
    s.lines().map(|l| l.split_whitespace().collect()).collect()
}

/// A ConfigMap to report on: its uid and creation time (the events' timestamps, so that
/// LAST SEEN / Age are a few seconds).
fn configmap(c: &Cluster, name: &str) -> (String, String) {
    c.ok(&["create", "configmap", name, "--from-literal=k=v"]);
    let out = c.ok(&[
        "get",
        "cm",
        name,
        "-o",
        "jsonpath={.metadata.uid} {.metadata.creationTimestamp}",
    ]);
    let (uid, ts) = out.split_once(' ').expect("uid and timestamp");
    (uid.to_string(), ts.to_string())
}

/// A core/v1 event about ConfigMap `cm` in `default`, as a recorder built on client-go's
/// `tools/record` writes it.
fn core_event(
    name: &str,
    cm: &str,
    uid: &str,
    ts: &str,
    type_: &str,
    reason: &str,
    msg: &str,
) -> String {
    format!(
        r#"apiVersion: v1
kind: Event
metadata:
  name: {name}
involvedObject:
  apiVersion: v1
  kind: ConfigMap
  name: {cm}
  namespace: default
  uid: {uid}
reason: {reason}
message: {msg}
type: {type_}
source:
  component: tester
  host: node-1
firstTimestamp: "{ts}"
lastTimestamp: "{ts}"
count: 2
"#
    )
}

/// An events.k8s.io/v1 event, as `tools/events` writes it (eventTime is a MicroTime).
fn new_event(name: &str, cm: &str, uid: &str, ts: &str, reason: &str, note: &str) -> String {
    let micro = format!("{}.250000Z", ts.trim_end_matches('Z'));
    format!(
        r#"apiVersion: events.k8s.io/v1
kind: Event
metadata:
  name: {name}
eventTime: "{micro}"
regarding:
  apiVersion: v1
  kind: ConfigMap
  name: {cm}
  namespace: default
  uid: {uid}
reason: {reason}
note: {note}
type: Normal
reportingController: example.com/tester
reportingInstance: tester-1
action: Reconcile
"#
    )
}

fn create(c: &Cluster, yaml: &str) -> String {
    c.ok_stdin(&["create", "-f", "-", "--validate=false"], yaml)
}

fn json(c: &Cluster, args: &[&str]) -> Value {
    let mut a = args.to_vec();
    a.extend(["-o", "json"]);
    serde_json::from_str(&c.ok(&a)).expect("kubectl printed JSON")
}

fn core_events_in_describe_events_and_get(b: Backend) {
    let c = Cluster::start(b);
    let (uid, ts) = configmap(&c, "app-config");
    let (other_uid, _) = configmap(&c, "other");
    let out = create(
        &c,
        &[
            core_event(
                "app-config.1",
                "app-config",
                &uid,
                &ts,
                "Warning",
                "Boom",
                "config reload failed",
            ),
            core_event(
                "app-config.2",
                "app-config",
                &uid,
                &ts,
                "Normal",
                "Loaded",
                "config loaded",
            ),
            core_event(
                "other.1",
                "other",
                &other_uid,
                &ts,
                "Normal",
                "Elsewhere",
                "about another object",
            ),
        ]
        .join("---\n"),
    );
    assert_eq!(
        out,
        "event/app-config.1 created\nevent/app-config.2 created\nevent/other.1 created\n"
    );

    // describe lists the object's events (fieldSelector on involvedObject name, namespace,
    // kind and uid) in its Events section.
    let d = c.ok(&["describe", "configmap", "app-config"]);
    let events = d
        .split_once("\nEvents:\n")
        .map(|(_, e)| e)
        .unwrap_or_else(|| panic!("no Events section:\n{d}"));
    let ev = rows(events);
    assert_eq!(ev[0], ["Type", "Reason", "Age", "From", "Message"], "{d}");
    assert!(
        ev.iter().any(|r| r.starts_with(&["Warning", "Boom"])
            && r.contains(&"tester")
            && r.ends_with(&["config", "reload", "failed"])
            && r.contains(&"(x2")),
        "{d}"
    );
    assert!(
        ev.iter()
            .any(|r| r.starts_with(&["Normal", "Loaded"]) && r.ends_with(&["config", "loaded"])),
        "{d}"
    );
    assert!(!d.contains("Elsewhere"), "{d}");
    let event_rows = ev
        .iter()
        .filter(|r| r.first().is_some_and(|t| *t == "Normal" || *t == "Warning"))
        .count();
    assert_eq!(event_rows, 2, "{d}");

    // kubectl events: the namespace's events, and --for one object's.
    let all = c.ok(&["events"]);
    let r = rows(&all);
    assert_eq!(
        r[0],
        ["LAST", "SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"],
        "{all}"
    );
    for (reason, object) in [
        ("Boom", "ConfigMap/app-config"),
        ("Loaded", "ConfigMap/app-config"),
        ("Elsewhere", "ConfigMap/other"),
    ] {
        assert!(
            r.iter().any(|l| l.contains(&reason) && l.contains(&object)),
            "{reason} {object}:\n{all}"
        );
    }
    let boom = r.iter().find(|l| l.contains(&"Boom")).expect("Boom row");
    assert!(
        boom.ends_with(&[
            "Warning",
            "Boom",
            "ConfigMap/app-config",
            "config",
            "reload",
            "failed"
        ]),
        "{all}"
    );
    let for_cm = c.ok(&["events", "--for", "configmap/app-config"]);
    assert!(
        for_cm.contains("Boom") && for_cm.contains("Loaded") && !for_cm.contains("Elsewhere"),
        "{for_cm}"
    );
    let warnings = c.ok(&["events", "--types=Warning"]);
    assert!(
        warnings.contains("Boom") && !warnings.contains("Loaded"),
        "{warnings}"
    );

    // kubectl get events: upstream's columns.
    let got = c.ok(&["get", "events"]);
    let r = rows(&got);
    assert_eq!(
        r[0],
        ["LAST", "SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"],
        "{got}"
    );
    assert!(
        r.iter().any(|l| l.get(1..)
            == Some(
                &[
                    "Warning",
                    "Boom",
                    "configmap/app-config",
                    "config",
                    "reload",
                    "failed"
                ][..]
            )
            && l[0] != "<unknown>"),
        "{got}"
    );
    assert_eq!(r.len(), 4, "{got}");
    let wide = c.ok(&["get", "events", "-o", "wide"]);
    assert!(
        rows(&wide)[0].ends_with(&[
            "SUBOBJECT",
            "SOURCE",
            "MESSAGE",
            "FIRST",
            "SEEN",
            "COUNT",
            "NAME"
        ]),
        "{wide}"
    );
    assert!(wide.contains("tester, node-1"), "{wide}");

    // Field selectors: upstream's selectable fields.
    for (selector, want) in [
        ("type=Warning", "event/app-config.1\n"),
        ("reason=Loaded", "event/app-config.2\n"),
        ("involvedObject.name=other", "event/other.1\n"),
        (
            "involvedObject.kind=ConfigMap,involvedObject.name=app-config,type!=Warning",
            "event/app-config.2\n",
        ),
        ("source=nobody", ""),
    ] {
        let r = c.kubectl(&["get", "events", "--field-selector", selector, "-o", "name"]);
        assert_eq!(r.code, 0, "{selector}: {}", r.stderr);
        assert_eq!(r.stdout, want, "{selector}");
    }
    let warn = c.ok(&["get", "events", "--field-selector", "type=Warning"]);
    assert!(warn.contains("Boom") && !warn.contains("Loaded"), "{warn}");
    let uid_sel = format!("involvedObject.uid={other_uid}");
    assert_eq!(
        c.ok(&["get", "ev", "--field-selector", &uid_sel, "-o", "name"]),
        "event/other.1\n"
    );

    // Upstream's validation of core events: the involved object's namespace must match.
    let err = c.kubectl_stdin(
        &["create", "-f", "-", "--validate=false"],
        "apiVersion: v1\nkind: Event\nmetadata: {name: stray}\n\
         involvedObject: {kind: ConfigMap, name: x, namespace: team}\nreason: X\n",
    );
    assert_ne!(err.code, 0);
    assert!(
        err.stderr.contains(
            "The Event \"stray\" is invalid: involvedObject.namespace: Invalid value: \"team\": does not match event.namespace"
        ),
        "{}",
        err.stderr
    );
    // core/v1 events stay mutable (recorders bump count and lastTimestamp).
    c.ok(&[
        "patch",
        "event",
        "app-config.1",
        "--type=merge",
        "-p",
        r#"{"count":3}"#,
    ]);
    assert_eq!(
        c.ok(&["get", "event", "app-config.1", "-o", "jsonpath={.count}"]),
        "3"
    );
}

fn events_k8s_io_and_core_are_one_resource(b: Backend) {
    let c = Cluster::start(b);
    let (uid, ts) = configmap(&c, "app-config");
    assert_eq!(
        create(
            &c,
            &new_event(
                "synced.1",
                "app-config",
                &uid,
                &ts,
                "Synced",
                "synced by the new API"
            )
        ),
        "event.events.k8s.io/synced.1 created\n"
    );
    assert_eq!(
        create(
            &c,
            &core_event(
                "legacy.1",
                "app-config",
                &uid,
                &ts,
                "Warning",
                "Boom",
                "config reload failed"
            )
        ),
        "event/legacy.1 created\n"
    );

    // The events.k8s.io event through the core API: message, involvedObject, Go's zero fields.
    let got = c.ok(&["get", "events"]);
    assert!(
        rows(&got).iter().any(|l| l.get(1..)
            == Some(
                &[
                    "Normal",
                    "Synced",
                    "configmap/app-config",
                    "synced",
                    "by",
                    "the",
                    "new",
                    "API"
                ][..]
            )),
        "{got}"
    );
    let core = json(&c, &["get", "event", "synced.1"]);
    assert_eq!(core["apiVersion"], "v1");
    assert_eq!(core["message"], "synced by the new API");
    assert_eq!(core["involvedObject"]["name"], "app-config");
    assert_eq!(core["involvedObject"]["uid"], uid.as_str());
    assert_eq!(core["reportingComponent"], "example.com/tester");
    assert_eq!(core["reportingInstance"], "tester-1");
    assert_eq!(core["action"], "Reconcile");
    assert_eq!(
        core["eventTime"],
        format!("{}.250000Z", ts.trim_end_matches('Z'))
    );
    assert_eq!(core["firstTimestamp"], Value::Null);
    assert_eq!(core["source"], serde_json::json!({}));
    for f in ["note", "regarding", "reportingController"] {
        assert!(core.get(f).is_none(), "{f} in {core}");
    }

    // And in its own shape.
    let yaml = c.ok(&["get", "events.v1.events.k8s.io", "synced.1", "-o", "yaml"]);
    for line in [
        "apiVersion: events.k8s.io/v1",
        "note: synced by the new API",
        "regarding:",
        "reportingController: example.com/tester",
        "deprecatedSource: {}",
    ] {
        assert!(yaml.lines().any(|l| l == line), "{line}:\n{yaml}");
    }
    assert!(
        !yaml.contains("message:") && !yaml.contains("involvedObject"),
        "{yaml}"
    );

    // Vice versa: the core event as events.k8s.io/v1.
    let list = json(&c, &["get", "events.v1.events.k8s.io"]);
    let items = list["items"].as_array().expect("items");
    assert_eq!(items.len(), 2, "{list}");
    let legacy = items
        .iter()
        .find(|i| i["metadata"]["name"] == "legacy.1")
        .expect("legacy.1 listed");
    assert_eq!(legacy["apiVersion"], "events.k8s.io/v1");
    assert_eq!(legacy["note"], "config reload failed");
    assert_eq!(legacy["regarding"]["kind"], "ConfigMap");
    assert_eq!(legacy["deprecatedSource"]["component"], "tester");
    assert_eq!(legacy["deprecatedSource"]["host"], "node-1");
    assert_eq!(legacy["deprecatedCount"], 2);
    assert_eq!(legacy["deprecatedFirstTimestamp"], ts.as_str());
    assert_eq!(legacy["eventTime"], Value::Null);
    for f in [
        "message",
        "involvedObject",
        "source",
        "count",
        "firstTimestamp",
    ] {
        assert!(legacy.get(f).is_none(), "{f} in {legacy}");
    }
    let table = c.ok(&["get", "events.v1.events.k8s.io"]);
    assert_eq!(
        rows(&table)[0],
        ["LAST", "SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"],
        "{table}"
    );
    assert!(table.contains("config reload failed") && table.contains("synced by the new API"));

    // describe and kubectl events find both.
    let d = c.ok(&["describe", "cm", "app-config"]);
    assert!(
        rows(&d)
            .iter()
            .any(|r| r.starts_with(&["Normal", "Synced"]) && r.contains(&"example.com/tester")),
        "{d}"
    );
    assert!(
        rows(&d).iter().any(|r| r.starts_with(&["Warning", "Boom"])),
        "{d}"
    );
    let ev = c.ok(&["events", "--for", "cm/app-config"]);
    assert!(ev.contains("Synced") && ev.contains("Boom"), "{ev}");

    // Selectable fields for events reported through the new API: `source` falls back to the
    // reporting controller.
    assert_eq!(
        c.ok(&[
            "get",
            "events",
            "--field-selector",
            "source=example.com/tester",
            "-o",
            "name"
        ]),
        "event/synced.1\n"
    );
    assert_eq!(
        c.ok(&[
            "get",
            "events.v1.events.k8s.io",
            "--field-selector",
            "reportingComponent=example.com/tester",
            "-o",
            "name"
        ]),
        "event.events.k8s.io/synced.1\n"
    );

    // events.k8s.io/v1 is strict: required fields, types, MicroTime with six digits.
    let err = c.kubectl_stdin(
        &["create", "-f", "-", "--validate=false"],
        &new_event("bad.1", "app-config", &uid, &ts, "Synced", "x")
            .replace("action: Reconcile\n", "")
            .replace("type: Normal", "type: Weird"),
    );
    assert_ne!(err.code, 0);
    assert!(
        err.stderr.contains("The Event \"bad.1\" is invalid:")
            && err.stderr.contains("action: Required value")
            && err
                .stderr
                .contains("type: Invalid value: \"\": has invalid value: Weird"),
        "{}",
        err.stderr
    );
    let err = c.kubectl_stdin(
        &["create", "-f", "-", "--validate=false"],
        &new_event("bad.2", "app-config", &uid, &ts, "Synced", "x").replace(".250000Z", "Z"),
    );
    assert!(
        err.stderr.contains(
            "Event.events.k8s.io in version \"v1\" cannot be handled as a Event: parsing time"
        ) && err.stderr.contains("cannot parse \"Z\" as \".000000\""),
        "{}",
        err.stderr
    );
    // Updates through events.k8s.io/v1 may change the series, not what happened.
    c.ok(&[
        "patch",
        "events.v1.events.k8s.io",
        "synced.1",
        "--type=merge",
        "-p",
        &format!(
            r#"{{"series":{{"count":2,"lastObservedTime":"{}.500000Z"}}}}"#,
            ts.trim_end_matches('Z')
        ),
    ]);
    assert_eq!(
        c.ok(&["get", "event", "synced.1", "-o", "jsonpath={.series.count}"]),
        "2"
    );
    let err = c.kubectl(&[
        "patch",
        "events.v1.events.k8s.io",
        "synced.1",
        "--type=merge",
        "-p",
        r#"{"note":"rewritten"}"#,
    ]);
    assert!(
        err.stderr
            .contains("message: Invalid value: \"rewritten\": field is immutable"),
        "{}",
        err.stderr
    );

    // Deleting through either API deletes the one object.
    c.ok(&["delete", "events.v1.events.k8s.io", "legacy.1"]);
    c.ok(&["delete", "event", "synced.1"]);
    assert_eq!(c.ok(&["get", "events", "-o", "name"]), "");
    assert_eq!(c.ok(&["get", "events.v1.events.k8s.io", "-o", "name"]), "");
}

on_both_backends!(
    core_events_in_describe_events_and_get,
    events_k8s_io_and_core_are_one_resource,
);
