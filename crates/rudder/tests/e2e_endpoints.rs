//! End to end: the service-related controllers in `rudder server` (serviceaccount-controller),
//! driven by the real kubectl, on both store backends.

mod support;

use support::{wait_for, Backend, Cluster};

/// The `default` ServiceAccount's name in `ns`, once it exists.
fn default_sa(c: &Cluster, ns: &str) -> Option<String> {
    let r = c.kubectl(&[
        "get",
        "sa",
        "default",
        "-n",
        ns,
        "-o",
        "jsonpath={.metadata.name}",
    ]);
    (r.code == 0 && r.stdout == "default").then_some(r.stdout)
}

fn default_service_account_in_new_namespace(b: Backend) {
    let c = Cluster::start(b);
    c.ok(&["create", "ns", "team-a"]);
    let name = wait_for("default ServiceAccount in team-a", || {
        default_sa(&c, "team-a")
    });
    assert_eq!(name, "default");
    // Deleted, it comes back (upstream's serviceAccountDeleted handler).
    c.ok(&["delete", "sa", "default", "-n", "team-a"]);
    wait_for("default ServiceAccount recreated", || {
        default_sa(&c, "team-a")
    });
}

on_both_backends!(default_service_account_in_new_namespace);
