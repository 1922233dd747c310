use std::collections::BTreeSet;
use std::sync::Arc;

use rudder_registry::{DefaultStrategy, Registry};
use serde_json::json;

use super::*;

fn entry() -> Arc<Entry> {
    let reg = Registry::builtin(|_| {
        Arc::new(DefaultStrategy {
            tracks_generation: false,
        })
    })
    .unwrap();
    reg.get("", "v1", "services").unwrap().clone()
}

fn config(cidr: &str, ports: &str) -> ServiceAllocatorConfig {
    ServiceAllocatorConfig {
        service_cidr: cidr.parse().unwrap(),
        node_port_range: ports.parse().unwrap(),
    }
}

fn svc(name: &str, spec: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Service",
           "metadata": {"name": name, "namespace": "default"}, "spec": spec})
}

fn clusterip(name: &str) -> Value {
    svc(
        name,
        json!({"type": "ClusterIP", "selector": {"app": name}, "ports": [{"port": 80, "protocol": "TCP"}]}),
    )
}

fn nodeport(name: &str, ports: Value) -> Value {
    svc(
        name,
        json!({"type": "NodePort", "selector": {"app": name}, "ports": ports}),
    )
}

fn ip_of(obj: &Value) -> Ipv4Addr {
    obj["spec"]["clusterIP"].as_str().unwrap().parse().unwrap()
}

fn node_ports(obj: &Value) -> Vec<i64> {
    obj["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["nodePort"].as_i64().unwrap_or(0))
        .collect()
}

/// Admit and persist a create, as the generic store does; the stored object.
fn create(a: &ServiceAllocator, e: &Entry, mut obj: Value) -> Result<Value, ApiError> {
    a.admit_create(e, &mut obj, false)?;
    a.committed(e, Some(&obj), None);
    Ok(obj)
}

/// Admit and persist an update.
fn update(a: &ServiceAllocator, e: &Entry, mut new: Value, old: &Value) -> Result<Value, ApiError> {
    a.admit_update(e, &mut new, old, false)?;
    a.committed(e, Some(&new), Some(old));
    Ok(new)
}

fn delete(a: &ServiceAllocator, e: &Entry, obj: &Value) {
    a.committed(e, None, Some(obj));
}

#[test]
fn cluster_ip_services_get_a_free_ip_above_the_static_range() {
    let (a, e) = (ServiceAllocator::new(Default::default()), entry());
    let s = create(&a, &e, clusterip("web")).unwrap();
    let ip = ip_of(&s);
    let cidr = a.config().service_cidr;
    let index = cidr.index_of(ip).unwrap();
    assert!(index >= 256, "{ip} is in the static part");
    assert_eq!(s["spec"]["clusterIPs"], json!([ip.to_string()]));
    assert_eq!(s["spec"]["ipFamilies"], json!(["IPv4"]));
    assert_eq!(s["spec"]["ipFamilyPolicy"], json!("SingleStack"));
    assert!(a.ip_in_use(ip));
    // A missing type is ClusterIP.
    let s = create(&a, &e, svc("untyped", json!({"ports": [{"port": 80}]}))).unwrap();
    assert!(cidr.contains(ip_of(&s)));
    assert!(
        s["spec"].get("type").is_none(),
        "defaulting is the strategy's"
    );
}

#[test]
fn requested_ips_must_be_in_range_and_free() {
    let (a, e) = (ServiceAllocator::new(Default::default()), entry());
    let mut first = clusterip("first");
    first["spec"]["clusterIP"] = json!("10.43.0.5");
    let first = create(&a, &e, first).unwrap();
    assert_eq!(first["spec"]["clusterIPs"], json!(["10.43.0.5"]));
    let cases = [
        ("10.43.0.5", "failed to allocate IP 10.43.0.5: provided IP is already allocated"),
        ("10.44.0.5", "failed to allocate IP 10.44.0.5: the provided network does not match the current range"),
        ("10.43.255.255", "failed to allocate IP 10.43.255.255: the provided IP (10.43.255.255) is not in the valid range. The range of valid IPs is 10.43.0.0/16"),
        ("10.43.0.0", "failed to allocate IP 10.43.0.0: the provided IP (10.43.0.0) is not in the valid range. The range of valid IPs is 10.43.0.0/16"),
    ];
    for (ip, why) in cases {
        let mut s = clusterip("second");
        s["spec"]["clusterIP"] = json!(ip);
        let err = create(&a, &e, s).unwrap_err();
        assert_eq!(err.code, 422);
        assert_eq!(
            err.message,
            format!(
                r#"Service "second" is invalid: spec.clusterIPs: Invalid value: ["{ip}"]: {why}"#
            )
        );
    }
    assert_eq!(a.used(), (1, 0), "failed creates keep nothing");
}

#[test]
fn exhaustion_release_and_reuse() {
    let (a, e) = (
        ServiceAllocator::new(config("192.168.7.0/29", "30000-30001")),
        entry(),
    );
    let made: Vec<Value> = (0..6)
        .map(|i| create(&a, &e, clusterip(&format!("s{i}"))).unwrap())
        .collect();
    let ips: BTreeSet<Ipv4Addr> = made.iter().map(ip_of).collect();
    let want: BTreeSet<Ipv4Addr> = (1..=6).map(|i| Ipv4Addr::new(192, 168, 7, i)).collect();
    assert_eq!(
        ips, want,
        "network .0 and broadcast .7 are never handed out"
    );
    let err = create(&a, &e, clusterip("s6")).unwrap_err();
    assert_eq!(err.code, 500);
    assert_eq!(
        err.message,
        "Internal error occurred: failed to allocate a serviceIP: range is full"
    );
    delete(&a, &e, &made[3]);
    assert!(!a.ip_in_use(ip_of(&made[3])));
    let again = create(&a, &e, clusterip("s6")).unwrap();
    assert_eq!(ip_of(&again), ip_of(&made[3]));

    // Node ports: two in the range, the third fails as upstream.
    let np = create(
        &a,
        &e,
        svc(
            "np",
            json!({"type": "NodePort", "clusterIP": "None",
                         "ports": [{"port": 1}, {"port": 2}]}),
        ),
    )
    .unwrap();
    let mut got = node_ports(&np);
    got.sort_unstable();
    assert_eq!(got, [30000, 30001]);
    let err = create(
        &a,
        &e,
        svc(
            "np2",
            json!({"type": "NodePort", "clusterIP": "None", "ports": [{"port": 1}]}),
        ),
    )
    .unwrap_err();
    assert_eq!(
        (err.code, err.message.as_str()),
        (
            500,
            "Internal error occurred: failed to allocate a nodePort: range is full"
        )
    );
}

#[test]
fn node_ports_are_allocated_and_requests_checked() {
    let (a, e) = (ServiceAllocator::new(Default::default()), entry());
    let s = create(
        &a,
        &e,
        nodeport(
            "dns",
            json!([{"name": "tcp", "port": 53, "protocol": "TCP"},
                   {"name": "udp", "port": 53, "protocol": "UDP"},
                   {"name": "web", "port": 80, "protocol": "TCP"}]),
        ),
    )
    .unwrap();
    let ports = node_ports(&s);
    assert_eq!(ports[0], ports[1], "one node port per port number");
    assert_ne!(ports[0], ports[2]);
    for p in &ports {
        assert!(
            (30086..=32767).contains(p),
            "{p} is outside the dynamic part"
        );
        assert!(a.port_in_use(*p as u16));
    }
    assert!(ip_of(&s).octets()[..2] == [10, 43]);

    let requested = create(
        &a,
        &e,
        nodeport("fixed", json!([{"port": 80, "nodePort": 30080}])),
    )
    .unwrap();
    assert_eq!(node_ports(&requested), [30080]);
    let err = create(
        &a,
        &e,
        nodeport("dup", json!([{"port": 80, "nodePort": 30080}])),
    )
    .unwrap_err();
    assert_eq!(err.code, 422);
    assert_eq!(
        err.message,
        r#"Service "dup" is invalid: spec.ports[0].nodePort: Invalid value: 30080: provided port is already allocated"#
    );
    let err = create(
        &a,
        &e,
        nodeport("low", json!([{"port": 80, "nodePort": 80}])),
    )
    .unwrap_err();
    assert_eq!(
        err.message,
        r#"Service "low" is invalid: spec.ports[0].nodePort: Invalid value: 80: provided port is not in the valid range. The range of valid ports is 30000-32767"#
    );
    // The failed creates released the IPs they had taken first.
    assert_eq!(a.used(), (2, 3));
}

#[test]
fn load_balancers_and_health_check_node_ports() {
    let (a, e) = (ServiceAllocator::new(Default::default()), entry());
    let lb = create(
        &a,
        &e,
        svc(
            "lb",
            json!({"type": "LoadBalancer", "externalTrafficPolicy": "Local",
                         "ports": [{"port": 80}]}),
        ),
    )
    .unwrap();
    let hc = lb["spec"]["healthCheckNodePort"].as_i64().unwrap();
    assert!(a.port_in_use(hc as u16));
    assert_ne!(node_ports(&lb)[0], 0);
    assert_eq!(a.used(), (1, 2));
    // A requested port the random allocations above did not take.
    let wanted = (31081..32767).find(|p| !a.port_in_use(*p)).unwrap();
    let quiet = create(
        &a,
        &e,
        svc(
            "quiet",
            json!({"type": "LoadBalancer", "allocateLoadBalancerNodePorts": false,
                            "ports": [{"port": 80}, {"port": 81, "nodePort": wanted}]}),
        ),
    )
    .unwrap();
    assert_eq!(
        node_ports(&quiet),
        [0, i64::from(wanted)],
        "only requests are honoured"
    );
    let err = create(
        &a,
        &e,
        svc(
            "hc",
            json!({"type": "LoadBalancer", "externalTrafficPolicy": "Local",
                         "healthCheckNodePort": hc, "ports": [{"port": 80}]}),
        ),
    )
    .unwrap_err();
    assert_eq!(
        err.message,
        format!("Internal error occurred: failed to allocate requested HealthCheck NodePort {hc}: provided port is already allocated")
    );
    delete(&a, &e, &lb);
    delete(&a, &e, &quiet);
    assert_eq!(a.used(), (0, 0));
}

#[test]
fn headless_and_external_name_services_take_nothing() {
    let (a, e) = (ServiceAllocator::new(Default::default()), entry());
    let h = create(
        &a,
        &e,
        svc(
            "h",
            json!({"clusterIP": "None", "selector": {"a": "b"}, "ports": [{"port": 80}]}),
        ),
    )
    .unwrap();
    assert_eq!(h["spec"]["clusterIPs"], json!(["None"]));
    assert_eq!(h["spec"]["ipFamilyPolicy"], json!("SingleStack"));
    let before = svc(
        "x",
        json!({"type": "ExternalName", "externalName": "example.com"}),
    );
    let x = create(&a, &e, before.clone()).unwrap();
    assert_eq!(x, before);
    assert_eq!(a.used(), (0, 0));
}

#[test]
fn type_changes_allocate_and_release() {
    let (a, e) = (ServiceAllocator::new(Default::default()), entry());
    let v1 = create(&a, &e, clusterip("web")).unwrap();
    let ip = ip_of(&v1);

    // ClusterIP -> NodePort: node ports allocated, the IP kept.
    let mut v2 = v1.clone();
    v2["spec"]["type"] = json!("NodePort");
    let v2 = update(&a, &e, v2, &v1).unwrap();
    let np = node_ports(&v2)[0];
    assert!(a.port_in_use(np as u16));
    assert_eq!(ip_of(&v2), ip);

    // Re-sending the original manifest keeps what was allocated (patchAllocatedValues).
    let mut resend = nodeport("web", json!([{"port": 80, "protocol": "TCP"}]));
    resend["spec"]["selector"] = json!({"app": "web"});
    let v3 = update(&a, &e, resend, &v2).unwrap();
    assert_eq!((ip_of(&v3), node_ports(&v3)[0]), (ip, np));

    // NodePort -> ClusterIP (the strategy drops the node ports): released on commit only.
    let mut v4 = v3.clone();
    v4["spec"]["type"] = json!("ClusterIP");
    v4["spec"]["ports"][0]
        .as_object_mut()
        .unwrap()
        .remove("nodePort");
    let mut admitted = v4.clone();
    a.admit_update(&e, &mut admitted, &v3, false).unwrap();
    assert!(
        a.port_in_use(np as u16),
        "not released before the write lands"
    );
    a.committed(&e, Some(&admitted), Some(&v3));
    assert!(!a.port_in_use(np as u16));

    // -> ExternalName releases the IP; back to ClusterIP allocates one again.
    let mut v5 = admitted.clone();
    v5["spec"] = json!({"type": "ExternalName", "externalName": "example.com"});
    let v5 = update(&a, &e, v5, &admitted).unwrap();
    assert!(!a.ip_in_use(ip));
    let mut v6 = v5.clone();
    v6["spec"] = json!({"type": "ClusterIP", "ports": [{"port": 80}]});
    let v6 = update(&a, &e, v6, &v5).unwrap();
    assert!(a.ip_in_use(ip_of(&v6)));
    assert_eq!(v6["spec"]["ipFamilies"], json!(["IPv4"]));
    assert_eq!(a.used(), (1, 0));
}

#[test]
fn aborted_and_dry_run_writes_keep_nothing() {
    let (a, e) = (ServiceAllocator::new(Default::default()), entry());
    // A dry run (or a create that fails validation) is aborted by the generic store.
    let mut dry = nodeport("dry", json!([{"port": 80}]));
    a.admit_create(&e, &mut dry, true).unwrap();
    assert!(a.ip_in_use(ip_of(&dry)), "reserved while the request runs");
    a.abort(&e, &dry, None);
    assert_eq!(a.used(), (0, 0));

    // An aborted update releases what it added, not what the old object holds.
    let v1 = create(&a, &e, clusterip("web")).unwrap();
    let mut v2 = v1.clone();
    v2["spec"]["type"] = json!("NodePort");
    a.admit_update(&e, &mut v2, &v1, false).unwrap();
    assert_eq!(a.used(), (1, 1));
    a.abort(&e, &v2, Some(&v1));
    assert_eq!(a.used(), (1, 0));
    assert!(a.ip_in_use(ip_of(&v1)));

    // Aborting a write never frees what another service holds.
    let mut other = clusterip("other");
    other["spec"]["clusterIP"] = json!(ip_of(&v1).to_string());
    other["spec"]["clusterIPs"] = json!([ip_of(&v1).to_string()]);
    a.abort(&e, &other, None);
    delete(&a, &e, &other);
    assert!(a.ip_in_use(ip_of(&v1)));

    // Metadata-only updates are left alone.
    let mut labelled = v1.clone();
    labelled["metadata"]["labels"] = json!({"x": "y"});
    let after = update(&a, &e, labelled.clone(), &v1).unwrap();
    assert_eq!(after, labelled);
}

#[test]
fn concurrent_creates_never_share_a_value() {
    let a = Arc::new(ServiceAllocator::new(config("10.96.0.0/22", "30000-32767")));
    let e = entry();
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let (a, e) = (a.clone(), e.clone());
            std::thread::spawn(move || {
                (0..120)
                    .map(|i| {
                        let name = format!("t{t}-{i}");
                        let mut s = nodeport(&name, json!([{"port": 80}]));
                        a.admit_create(&e, &mut s, false).unwrap();
                        // Every third write fails after admission and is aborted.
                        if i % 3 == 0 {
                            a.abort(&e, &s, None);
                            None
                        } else {
                            a.committed(&e, Some(&s), None);
                            Some((ip_of(&s), node_ports(&s)[0]))
                        }
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let got: Vec<(Ipv4Addr, i64)> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .flatten()
        .collect();
    assert_eq!(got.len(), 8 * 80);
    let ips: BTreeSet<_> = got.iter().map(|(ip, _)| *ip).collect();
    let ports: BTreeSet<_> = got.iter().map(|(_, p)| *p).collect();
    assert_eq!(ips.len(), got.len(), "an IP was handed out twice");
    assert_eq!(ports.len(), got.len(), "a node port was handed out twice");
    assert_eq!(a.used(), (got.len(), got.len()));
}

#[test]
fn rebuild_takes_every_stored_value() {
    let stored = [
        svc(
            "a",
            json!({"clusterIP": "192.168.7.1", "clusterIPs": ["192.168.7.1"]}),
        ),
        svc(
            "b",
            json!({"type": "NodePort", "clusterIPs": ["192.168.7.2"],
                        "ports": [{"port": 80, "nodePort": 30001}]}),
        ),
        svc("c", json!({"clusterIP": "192.168.7.3"})),
        // Outside the CIDR (say, the CIDR changed): ignored.
        svc("d", json!({"clusterIPs": ["10.0.0.1"]})),
        // A second claim on .1 stays with the first, and deleting it frees nothing.
        svc("e", json!({"clusterIPs": ["192.168.7.1"]})),
        svc("h", json!({"clusterIPs": ["None"]})),
    ];
    let (a, e) = (
        ServiceAllocator::new(config("192.168.7.0/29", "30000-30002")),
        entry(),
    );
    a.rebuild(&stored);
    assert_eq!(a.used(), (3, 1));
    delete(&a, &e, &stored[4]);
    assert!(a.ip_in_use(Ipv4Addr::new(192, 168, 7, 1)));
    let fresh: BTreeSet<Ipv4Addr> = (0..3)
        .map(|i| ip_of(&create(&a, &e, clusterip(&format!("n{i}"))).unwrap()))
        .collect();
    let want: BTreeSet<Ipv4Addr> = (4..=6).map(|i| Ipv4Addr::new(192, 168, 7, i)).collect();
    assert_eq!(
        fresh, want,
        "a rebuilt allocator never re-issues a stored IP"
    );
    assert_eq!(create(&a, &e, clusterip("full")).unwrap_err().code, 500);
    let err = create(
        &a,
        &e,
        svc(
            "np",
            json!({"type": "NodePort", "clusterIP": "None",
                         "ports": [{"port": 1, "nodePort": 30001}]}),
        ),
    )
    .unwrap_err();
    assert!(
        err.message.contains("provided port is already allocated"),
        "{}",
        err.message
    );
}

#[tokio::test]
async fn rebuild_from_the_store_and_the_watch_cache() {
    use rudder_store::WriteOptions;
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(
        rudder_store_redb::RedbStore::open(dir.path().join("db"), Default::default())
            .await
            .unwrap(),
    );
    for (name, ip) in [("a", "10.43.0.10"), ("b", "10.43.0.11")] {
        let obj = svc(name, json!({"clusterIP": ip, "clusterIPs": [ip]}));
        store
            .create(
                &format!("/registry/services/specs/default/{name}"),
                bytes::Bytes::from(serde_json::to_vec(&obj).unwrap()),
                WriteOptions::default(),
            )
            .await
            .unwrap();
    }
    let a = ServiceAllocator::from_store(Default::default(), store.as_ref())
        .await
        .unwrap();
    assert_eq!(a.used(), (2, 0));
    assert!(a.ip_in_use(Ipv4Addr::new(10, 43, 0, 10)));

    let registry = Arc::new(
        Registry::builtin(|_| {
            Arc::new(DefaultStrategy {
                tracks_generation: false,
            })
        })
        .unwrap(),
    );
    let cache = WatchCache::start(store.clone(), registry).await.unwrap();
    let a = ServiceAllocator::from_cache(Default::default(), &cache);
    assert_eq!(a.used(), (2, 0));
    assert!(a.ip_in_use(Ipv4Addr::new(10, 43, 0, 11)));
}

#[test]
fn the_kubernetes_service_gets_the_first_ip() {
    let (a, e) = (ServiceAllocator::new(Default::default()), entry());
    let k = create(&a, &e, kubernetes_service(a.config(), 6443)).unwrap();
    assert_eq!(k["spec"]["clusterIPs"], json!(["10.43.0.1"]));
    assert_eq!(k["spec"]["ports"][0]["targetPort"], json!(6443));
    assert_eq!(k["metadata"]["labels"]["provider"], json!("kubernetes"));
}
