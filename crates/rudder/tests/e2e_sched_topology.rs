//! End to end: InterPodAffinity and PodTopologySpread in the scheduler of `rudder server`, driven
//! by the real kubectl against Node objects created with kubectl (no node agent), on both store
//! backends.

mod support;

use support::{wait_for, Backend, Cluster};

fn node(name: &str, zone: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Node\nmetadata:\n  name: {name}\n  labels: {{kubernetes.io/hostname: {name}, topology.kubernetes.io/zone: {zone}}}\nstatus:\n  capacity: {{cpu: \"4\", memory: 8Gi, pods: \"110\"}}\n  allocatable: {{cpu: \"4\", memory: 8Gi, pods: \"110\"}}\n---\n"
    )
}

/// Nodes n1 and n2 in zone z1, n3 in zone z2.
fn three_nodes(c: &Cluster) {
    let nodes = node("n1", "z1") + &node("n2", "z1") + &node("n3", "z2");
    c.ok_stdin(&["apply", "-f", "-"], &nodes);
}

fn pod(name: &str, ns: &str, labels: &str, spec_extra: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: {ns}\n  labels: {{{labels}}}\nspec:\n{spec_extra}  containers:\n  - name: c\n    image: busybox\n    resources: {{requests: {{cpu: 100m}}}}\n---\n"
    )
}

fn wait_bound(c: &Cluster, ns: &str, pod: &str) -> String {
    wait_for(&format!("{pod} to be bound"), || {
        Some(c.ok(&[
            "get",
            "pod",
            "-n",
            ns,
            pod,
            "-o",
            "jsonpath={.spec.nodeName}",
        ]))
        .filter(|n| !n.is_empty())
    })
}

fn unschedulable_message(c: &Cluster, pod: &str) -> String {
    let cond = "jsonpath={.status.conditions[?(@.type==\"PodScheduled\")].message}";
    wait_for(&format!("{pod}'s PodScheduled condition"), || {
        Some(c.ok(&["get", "pod", pod, "-o", cond])).filter(|m| !m.is_empty())
    })
}

fn zone_of(node: &str) -> &'static str {
    if node == "n3" {
        "z2"
    } else {
        "z1"
    }
}

const ANTI_WEB: &str = "  affinity:\n    podAntiAffinity:\n      requiredDuringSchedulingIgnoredDuringExecution:\n      - labelSelector: {matchLabels: {app: web}}\n        topologyKey: kubernetes.io/hostname\n";

fn anti_affinity_spreads_pods_and_affinity_follows_them(b: Backend) {
    let c = Cluster::start(b);
    three_nodes(&c);
    let set = (1..=3)
        .map(|i| pod(&format!("web-{i}"), "default", "app: web", ANTI_WEB))
        .collect::<String>();
    c.ok_stdin(&["apply", "-f", "-"], &set);
    let mut placed: Vec<String> = (1..=3)
        .map(|i| wait_bound(&c, "default", &format!("web-{i}")))
        .collect();
    placed.sort();
    assert_eq!(placed, vec!["n1", "n2", "n3"], "one web pod per node");

    // A fourth has nowhere to go: every node holds a pod its anti-affinity selects.
    c.ok_stdin(
        &["apply", "-f", "-"],
        &pod("web-4", "default", "app: web", ANTI_WEB),
    );
    let msg = unschedulable_message(&c, "web-4");
    assert!(
        msg.starts_with("0/3 nodes are available: 3 node(s) didn't match pod anti-affinity rules."),
        "{msg}"
    );
    // A pod without anti-affinity of its own is kept off by the existing pods' terms.
    c.ok_stdin(
        &["apply", "-f", "-"],
        &pod("plain-web", "default", "app: web", ""),
    );
    let msg = unschedulable_message(&c, "plain-web");
    assert!(
        msg.starts_with(
            "0/3 nodes are available: 3 node(s) didn't satisfy existing pods anti-affinity rules."
        ),
        "{msg}"
    );
    // Deleting one of the set frees its node for the waiting pods (one of them).
    let freed = c.ok(&["get", "pod", "web-1", "-o", "jsonpath={.spec.nodeName}"]);
    // (No kubelet finishes a graceful deletion here, so delete at once.)
    c.ok(&["delete", "pod", "web-1", "--grace-period=0", "--force"]);
    let took = wait_for("a waiting pod to take the freed node", || {
        ["web-4", "plain-web"].into_iter().find_map(|p| {
            let n = c.ok(&["get", "pod", p, "-o", "jsonpath={.spec.nodeName}"]);
            (!n.is_empty()).then_some(n)
        })
    });
    assert_eq!(took, freed);

    // Required affinity through a namespaceSelector: near a db pod of a namespace labelled
    // team=a, in the same zone.
    c.ok_stdin(
        &["apply", "-f", "-"],
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: team-a\n  labels: {team: a}\n",
    );
    c.ok_stdin(
        &["apply", "-f", "-"],
        &pod("db", "team-a", "app: db", "  nodeName: n3\n"),
    );
    let near = "  affinity:\n    podAffinity:\n      requiredDuringSchedulingIgnoredDuringExecution:\n      - labelSelector: {matchLabels: {app: db}}\n        namespaceSelector: {matchLabels: {team: a}}\n        topologyKey: topology.kubernetes.io/zone\n";
    c.ok_stdin(
        &["apply", "-f", "-"],
        &pod("near-db", "default", "app: client", near),
    );
    assert_eq!(zone_of(&wait_bound(&c, "default", "near-db")), "z2");
    // The same term without the namespace selector means the pod's own namespace, where no
    // db pod runs (and the pod does not select itself): it stays Pending.
    let own_ns = "  affinity:\n    podAffinity:\n      requiredDuringSchedulingIgnoredDuringExecution:\n      - labelSelector: {matchLabels: {app: db}}\n        topologyKey: topology.kubernetes.io/zone\n";
    c.ok_stdin(
        &["apply", "-f", "-"],
        &pod("no-db-here", "default", "app: client", own_ns),
    );
    let msg = unschedulable_message(&c, "no-db-here");
    assert_eq!(
        msg,
        "0/3 nodes are available: 3 node(s) didn't match pod affinity rules. preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling.."
    );
}

fn topology_spread_constraints_are_honoured(b: Backend) {
    let c = Cluster::start(b);
    three_nodes(&c);
    let spread = "  topologySpreadConstraints:\n  - maxSkew: 1\n    topologyKey: topology.kubernetes.io/zone\n    whenUnsatisfiable: DoNotSchedule\n    labelSelector: {matchLabels: {app: spread}}\n";
    // One at a time, so every placement is a decision on the previous ones.
    let mut zones = Vec::new();
    for i in 1..=4 {
        let name = format!("s-{i}");
        c.ok_stdin(
            &["apply", "-f", "-"],
            &pod(&name, "default", "app: spread", spread),
        );
        zones.push(zone_of(&wait_bound(&c, "default", &name)));
        let z1 = zones.iter().filter(|z| **z == "z1").count();
        let z2 = zones.len() - z1;
        assert!(
            z1.abs_diff(z2) <= 1,
            "skew above 1 after {i} pods: {zones:?}"
        );
    }
    // z2 has only n3: it now holds 2 of 4, as z1 does.
    assert_eq!(zones.iter().filter(|z| **z == "z2").count(), 2);

    // A constraint on a key no node has: unresolvable, with upstream's reason.
    let missing = "  topologySpreadConstraints:\n  - maxSkew: 1\n    topologyKey: rack\n    whenUnsatisfiable: DoNotSchedule\n    labelSelector: {matchLabels: {app: spread}}\n";
    c.ok_stdin(
        &["apply", "-f", "-"],
        &pod("no-rack", "default", "app: spread", missing),
    );
    assert_eq!(
        unschedulable_message(&c, "no-rack"),
        "0/3 nodes are available: 3 node(s) didn't match pod topology spread constraints (missing required label). preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling.."
    );
    // minDomains 3 with two zones: the global minimum counts as 0, so a zone already holding 2
    // matching pods exceeds maxSkew 1 everywhere.
    let min_domains = "  topologySpreadConstraints:\n  - maxSkew: 1\n    minDomains: 3\n    topologyKey: topology.kubernetes.io/zone\n    whenUnsatisfiable: DoNotSchedule\n    labelSelector: {matchLabels: {app: spread}}\n";
    c.ok_stdin(
        &["apply", "-f", "-"],
        &pod("three-zones", "default", "app: spread", min_domains),
    );
    let msg = unschedulable_message(&c, "three-zones");
    assert!(
        msg.starts_with(
            "0/3 nodes are available: 3 node(s) didn't match pod topology spread constraints."
        ),
        "{msg}"
    );
}

/// The cluster default constraints (`System`: hostname maxSkew 3, zone maxSkew 5, both
/// ScheduleAnyway) spread the pods a Service selects, against the resource scores that alone
/// would stack them all on the larger node.
fn a_services_pods_are_spread_by_the_default_constraints(b: Backend) {
    let c = Cluster::start(b);
    let sized = |name: &str, cpu: &str, mem: &str| {
        format!(
            "apiVersion: v1\nkind: Node\nmetadata:\n  name: {name}\n  labels: {{kubernetes.io/hostname: {name}}}\nstatus:\n  capacity: {{cpu: \"{cpu}\", memory: {mem}, pods: \"110\"}}\n  allocatable: {{cpu: \"{cpu}\", memory: {mem}, pods: \"110\"}}\n---\n"
        )
    };
    c.ok_stdin(
        &["apply", "-f", "-"],
        &(sized("big", "64", "256Gi") + &sized("small", "4", "8Gi")),
    );
    c.ok_stdin(
        &["apply", "-f", "-"],
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: svc\nspec:\n  selector: {app: svc}\n  ports: [{port: 80}]\n",
    );
    let mut placed = Vec::new();
    for i in 1..=4 {
        let name = format!("svc-{i}");
        c.ok_stdin(
            &["apply", "-f", "-"],
            &pod(&name, "default", "app: svc", ""),
        );
        placed.push(wait_bound(&c, "default", &name));
    }
    // The first goes to the larger node (resources decide between equally spread nodes); from
    // then on the spreading score outweighs the small resource difference.
    assert_eq!(placed, vec!["big", "small", "big", "small"]);
    // A pod no Service selects is not spread: it follows the resource scores.
    c.ok_stdin(
        &["apply", "-f", "-"],
        &pod("loner", "default", "app: other", ""),
    );
    assert_eq!(wait_bound(&c, "default", "loner"), "big");
}

on_both_backends!(
    anti_affinity_spreads_pods_and_affinity_follows_them,
    topology_spread_constraints_are_honoured,
    a_services_pods_are_spread_by_the_default_constraints,
);
