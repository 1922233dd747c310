//! End to end: the Endpoints, EndpointSlice and EndpointSlice mirroring controllers and the
//! `kubernetes` service's endpoints, with a Deployment on simulated nodes, driven by the real
//! kubectl on both store backends.

mod support;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use support::{Backend, Cluster};

fn wait_long<T>(what: &str, secs: u64, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

const APP: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: c
        image: busybox
        ports: [{name: http, containerPort: 8080}]
---
apiVersion: v1
kind: Service
metadata:
  name: web
  labels: {tier: front}
spec:
  selector: {app: web}
  ports: [{name: web, port: 80, targetPort: http}]
";

/// `kubectl get endpointslices -l kubernetes.io/service-name=<service> -o <output>`.
fn slices_of(c: &Cluster, service: &str, output: &str) -> String {
    let sel = format!("kubernetes.io/service-name={service}");
    c.ok(&["get", "endpointslices", "-l", &sel, "-o", output])
}

fn set(s: &str) -> BTreeSet<String> {
    s.split_whitespace().map(str::to_string).collect()
}

/// IPs of the running app=web pods.
fn pod_ips(c: &Cluster) -> BTreeSet<String> {
    set(&c.ok(&[
        "get",
        "pods",
        "-l",
        "app=web",
        "--field-selector=status.phase=Running",
        "-o",
        "jsonpath={.items[*].status.podIP}",
    ]))
}

/// `address ready` per endpoint of the web service's slices.
fn slice_endpoints(c: &Cluster) -> Vec<(String, String)> {
    slices_of(
        c,
        "web",
        "jsonpath={range .items[*].endpoints[*]}{.addresses[0]} {.conditions.ready}{\"\\n\"}{end}",
    )
    .lines()
    .filter_map(|l| {
        let (a, r) = l.split_once(' ')?;
        Some((a.to_string(), r.to_string()))
    })
    .collect()
}

fn endpoints_and_slices_follow_a_deployment(b: Backend) {
    let c = Cluster::start(b);
    let _sim = c.sim(&["--nodes", "2", "--zones", "zone-a"]);

    // The API server's own endpoints, written at start, not mirrored.
    let port = c
        .url()
        .rsplit(':')
        .next()
        .unwrap()
        .trim_end_matches('/')
        .to_string();
    let ep = c.ok(&[
        "get",
        "endpoints",
        "kubernetes",
        "-o",
        "jsonpath={.subsets[0].addresses[0].ip} {.subsets[0].ports[0].name} {.subsets[0].ports[0].port} {.metadata.labels}",
    ]);
    let ip = ep.split(' ').next().unwrap().to_string();
    assert!(ip.parse::<std::net::IpAddr>().is_ok(), "{ep}");
    assert!(ep.contains(&format!(" https {port} ")), "{ep}");
    assert!(
        ep.contains("\"endpointslice.kubernetes.io/skip-mirror\":\"true\""),
        "{ep}"
    );
    let table = c.ok(&["get", "endpoints", "kubernetes"]);
    assert!(table.contains(&format!("{ip}:{port}")), "{table}");
    let slice = slices_of(&c, "kubernetes", "jsonpath={range .items[*]}{.metadata.name} {.addressType} {.endpoints[0].addresses[0]} {.endpoints[0].conditions.ready} {.ports[0].port}{\"\\n\"}{end}");
    assert_eq!(slice.trim(), format!("kubernetes IPv4 {ip} true {port}"));

    // A Deployment behind a service with a named targetPort.
    c.ok_stdin(&["apply", "-f", "-"], APP);
    let ips = wait_long("3 running pods in the slices", 60, || {
        let ips = pod_ips(&c);
        let eps = slice_endpoints(&c);
        let in_slices: BTreeSet<String> = eps.iter().map(|(a, _)| a.clone()).collect();
        (ips.len() == 3 && in_slices == ips && eps.iter().all(|(_, r)| r == "true")).then_some(ips)
    });
    let meta = slices_of(&c, "web", "jsonpath={.items[0].metadata.generateName} {.items[0].metadata.labels.endpointslice\\.kubernetes\\.io/managed-by} {.items[0].metadata.labels.tier} {.items[0].metadata.ownerReferences[0].kind}/{.items[0].metadata.ownerReferences[0].name} {.items[0].ports[0].name}:{.items[0].ports[0].port}/{.items[0].ports[0].protocol} {.items[0].endpoints[0].zone} {.items[0].endpoints[0].targetRef.kind} {.items[0].metadata.annotations.endpoints\\.kubernetes\\.io/last-change-trigger-time}");
    let f: Vec<&str> = meta.split(' ').collect();
    assert_eq!(
        &f[..7],
        [
            "web-",
            "endpointslice-controller.k8s.io",
            "front",
            "Service/web",
            "web:8080/TCP",
            "zone-a",
            "Pod"
        ],
        "{meta}"
    );
    assert!(f[7].len() >= 20 && f[7].ends_with('Z'), "{meta}");
    let node = slices_of(&c, "web", "jsonpath={.items[0].endpoints[0].nodeName}");
    assert!(node.starts_with("sim-node-"), "{node}");
    let table = c.ok(&[
        "get",
        "endpointslices",
        "-l",
        "kubernetes.io/service-name=web",
    ]);
    assert!(table.contains("IPv4") && table.contains("8080"), "{table}");

    // The Endpoints object: same addresses, the resolved port, the service's labels.
    let eps = wait_long("the web Endpoints", 30, || {
        let out = c.kubectl(&[
            "get",
            "endpoints",
            "web",
            "-o",
            "jsonpath={.subsets[*].addresses[*].ip}|{.subsets[0].ports[0].name}:{.subsets[0].ports[0].port}|{.metadata.labels.tier}",
        ]);
        let s = out.stdout.clone();
        (out.code == 0 && set(s.split('|').next().unwrap_or("")) == ips).then_some(s)
    });
    assert!(eps.ends_with("|web:8080|front"), "{eps}");

    // A pod turning not ready: ready=false in its slice, a not-ready address in Endpoints.
    let pod = c.ok(&[
        "get",
        "pods",
        "-l",
        "app=web",
        "-o",
        "jsonpath={.items[0].metadata.name} {.items[0].status.podIP}",
    ]);
    let (pod, pod_ip) = pod.split_once(' ').unwrap();
    c.ok(&[
        "patch",
        "pod",
        pod,
        "--subresource=status",
        "-p",
        r#"{"status":{"conditions":[{"type":"Ready","status":"False","lastTransitionTime":"2026-01-01T00:00:00Z"}]}}"#,
    ]);
    wait_long("the pod not ready in its slice", 30, || {
        slice_endpoints(&c)
            .iter()
            .any(|(a, r)| a == pod_ip && r == "false")
            .then_some(())
    });
    wait_long("the pod among notReadyAddresses", 30, || {
        (c.ok(&[
            "get",
            "endpoints",
            "web",
            "-o",
            "jsonpath={.subsets[*].notReadyAddresses[*].ip}",
        ]) == pod_ip)
            .then_some(())
    });
    let serving = slices_of(
        &c,
        "web",
        &format!(
            "jsonpath={{.items[*].endpoints[?(@.addresses[0]==\"{pod_ip}\")].conditions.serving}}"
        ),
    );
    assert_eq!(serving, "false");

    // Beyond 100 endpoints: more slices of at most 100 each; Endpoints keeps them all.
    c.ok(&["scale", "deployment", "web", "--replicas=130"]);
    let sizes = wait_long("130 endpoints in slices of at most 100", 120, || {
        let sizes: Vec<usize> = slices_of(
            &c,
            "web",
            "jsonpath={range .items[*]}{range .endpoints[*]}x{end}{\"\\n\"}{end}",
        )
        .lines()
        .map(str::len)
        .collect();
        (sizes.iter().sum::<usize>() == 130).then_some(sizes)
    });
    assert_eq!(sizes.len(), 2, "{sizes:?}");
    assert!(sizes.iter().all(|n| *n <= 100), "{sizes:?}");
    wait_long("130 addresses in Endpoints", 60, || {
        let n = c
            .ok(&[
                "get",
                "endpoints",
                "web",
                "-o",
                "jsonpath={.subsets[*].addresses[*].ip} {.subsets[*].notReadyAddresses[*].ip}",
            ])
            .split_whitespace()
            .count();
        (n == 130).then_some(())
    });
    let distinct: BTreeSet<String> = slice_endpoints(&c).into_iter().map(|(a, _)| a).collect();
    assert_eq!(distinct.len(), 130);

    // Deleting the service deletes its Endpoints (the controller) and slices (the collector).
    c.ok(&["delete", "service", "web"]);
    wait_long("the Endpoints and slices gone", 60, || {
        let eps = c.kubectl(&["get", "endpoints", "web"]);
        let slices = slices_of(&c, "web", "name");
        (eps.code != 0 && eps.stderr.contains("NotFound") && slices.trim().is_empty()).then_some(())
    });
}

const EXTERNAL: &str = "apiVersion: v1
kind: Service
metadata: {name: ext}
spec:
  ports: [{name: db, port: 5432}]
---
apiVersion: v1
kind: Endpoints
metadata:
  name: ext
  labels: {team: data}
subsets:
- addresses: [{ip: 192.0.2.10}, {ip: 192.0.2.11}]
  notReadyAddresses: [{ip: 192.0.2.12}]
  ports: [{name: db, port: 5432}]
";

fn mirrored(c: &Cluster) -> String {
    slices_of(c, "ext", "jsonpath={range .items[*]}{.metadata.labels.endpointslice\\.kubernetes\\.io/managed-by} {.metadata.labels.team} {.metadata.ownerReferences[0].kind} {.ports[0].name}:{.ports[0].port} {range .endpoints[*]}{.addresses[0]}={.conditions.ready},{end}{\"\\n\"}{end}")
}

fn manual_endpoints_are_mirrored(b: Backend) {
    let c = Cluster::start(b);
    c.ok_stdin(&["apply", "-f", "-"], EXTERNAL);
    let want = "endpointslicemirroring-controller.k8s.io data Endpoints db:5432 192.0.2.10=true,192.0.2.11=true,192.0.2.12=false,";
    wait_long("the mirrored slice", 30, || {
        (mirrored(&c).trim() == want).then_some(())
    });
    // A change to the Endpoints updates the same slice.
    let name = slices_of(&c, "ext", "jsonpath={.items[0].metadata.name}");
    c.ok(&[
        "patch",
        "endpoints",
        "ext",
        "--type=json",
        "-p",
        r#"[{"op":"replace","path":"/subsets/0/addresses","value":[{"ip":"192.0.2.20"}]}]"#,
    ]);
    wait_long("the mirrored update", 30, || {
        (mirrored(&c).trim()
            == "endpointslicemirroring-controller.k8s.io data Endpoints db:5432 192.0.2.12=false,192.0.2.20=true,")
            .then_some(())
    });
    assert_eq!(
        slices_of(&c, "ext", "jsonpath={.items[*].metadata.name}"),
        name
    );
    // skip-mirror: the mirrored slice goes away.
    c.ok(&[
        "label",
        "endpoints",
        "ext",
        "endpointslice.kubernetes.io/skip-mirror=true",
    ]);
    wait_long("the mirrored slice deleted", 30, || {
        mirrored(&c).trim().is_empty().then_some(())
    });
    // The kubernetes service's endpoints are the API server's own, never mirrored.
    let k = slices_of(&c, "kubernetes", "jsonpath={.items[*].metadata.name}");
    assert_eq!(k, "kubernetes");
}

fn max_endpoints_per_slice_flag(b: Backend) {
    let c = Cluster::start_with(b, &["--max-endpoints-per-slice", "2"]);
    let _sim = c.sim(&["--nodes", "1"]);
    c.ok_stdin(
        &["apply", "-f", "-"],
        &APP.replace("replicas: 3", "replicas: 5"),
    );
    let sizes = wait_long("5 endpoints in slices of 2", 60, || {
        let mut sizes: Vec<usize> = slices_of(
            &c,
            "web",
            "jsonpath={range .items[*]}{range .endpoints[*]}x{end}{\"\\n\"}{end}",
        )
        .lines()
        .map(str::len)
        .collect();
        sizes.sort();
        (sizes.iter().sum::<usize>() == 5).then_some(sizes)
    });
    assert!(
        sizes.len() >= 3 && sizes.iter().all(|n| *n <= 2),
        "{sizes:?}"
    );
}

on_both_backends!(
    endpoints_and_slices_follow_a_deployment,
    manual_endpoints_are_mirrored,
    max_endpoints_per_slice_flag
);
