//! Streams through the API server to the kubelet with kubectl 1.37's default protocols, on a
//! test host with real containers (see e2e_node.rs for the SPDY paths it falls back to).

mod support;

use std::io::{Read, Write};
use std::time::Duration;

use support::node::TestHost;
use support::{jp, wait_for_within};

const IMAGE: &str = "127.0.0.1:5000/test/busybox:1";

fn http_get(addr: &str) -> Option<String> {
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(b"GET / HTTP/1.0\r\n\r\n").ok()?;
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    Some(out)
}

/// kubectl port-forward offers `SPDY/3.1+portforward.k8s.io` over WebSocket first (upstream's
/// PortForwardWebsockets) and falls back to plain SPDY only when that upgrade is refused;
/// client-go logs the tunnel's upgrade and the fallback at -v=4, which shows which one carried
/// the traffic.
#[test]
fn port_forward_over_the_websocket_tunnel() {
    let mut host = TestHost::new();
    host.enter();
    host.start_registry();
    let c = host.cluster(&[]);
    c.ok_stdin(
        &["apply", "-f", "-"],
        &format!(
            r#"
apiVersion: v1
kind: Pod
metadata: {{name: web}}
spec:
  containers:
  - name: web
    image: {IMAGE}
    command: [httpd, -f, -p, '8080', -h, /www]
"#
        ),
    );
    wait_for_within("pod web Running", Duration::from_secs(90), || {
        (jp(&c, "pod/web", "{.status.phase}") == "Running").then_some(())
    });
    let log = tempfile::NamedTempFile::new().unwrap();
    let mut pf = c
        .command(&["port-forward", "pod/web", "18081:8080", "-v=4"])
        .stdout(std::process::Stdio::null())
        .stderr(log.reopen().unwrap())
        .spawn()
        .unwrap();
    let first = wait_for_within("port-forward", Duration::from_secs(20), || {
        http_get("127.0.0.1:18081").filter(|b| b.contains("hello-from-busybox"))
    });
    // A second connection is a second pair of SPDY streams in the same tunnel.
    let second = http_get("127.0.0.1:18081").unwrap_or_default();
    let _ = pf.kill();
    let _ = pf.wait();
    let stderr = std::fs::read_to_string(log.path()).unwrap_or_default();
    let ok = |b: &str| b.starts_with("HTTP/1.0 200") || b.starts_with("HTTP/1.1 200");
    assert!(ok(&first), "{first}");
    assert!(ok(&second), "{second}\n{stderr}");
    assert!(
        stderr.contains("Before WebSocket Upgrade Connection")
            && !stderr.contains("fallback to secondary dialer"),
        "kubectl fell back to SPDY:\n{stderr}"
    );
}
