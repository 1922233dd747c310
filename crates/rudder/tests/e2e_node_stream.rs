//! Streams through the API server to the kubelet with kubectl 1.37's default protocols, on a
//! test host with real containers (see e2e_node.rs for the SPDY paths it falls back to).

mod support;

use std::io::{Read, Write};
use std::time::Duration;

use support::node::TestHost;
use support::{jp, wait_for_within, Cluster};

const IMAGE: &str = "127.0.0.1:5000/test/busybox:1";

fn http_get(addr: &str) -> Option<String> {
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(b"GET / HTTP/1.0\r\n\r\n").ok()?;
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    Some(out)
}

fn test_host() -> (TestHost, Cluster) {
    let mut host = TestHost::new();
    host.enter();
    host.start_registry();
    let c = host.cluster(&[]);
    (host, c)
}

fn started_pod(c: &Cluster, name: &str, command: &str) {
    c.ok_stdin(
        &["apply", "-f", "-"],
        &format!(
            r#"
apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  containers:
  - name: c
    image: {IMAGE}
    command: {command}
"#
        ),
    );
    wait_for_within(
        &format!("pod {name} Running"),
        Duration::from_secs(90),
        || (jp(c, &format!("pod/{name}"), "{.status.phase}") == "Running").then_some(()),
    );
}

/// What client-go's WebSocket executor logs at -v=4 once the upgrade succeeded.
const V5_NEGOTIATED: &str = r#""Subprotocol negotiated" protocol="v5.channel.k8s.io""#;

/// kubectl at -v=4 with `stdin`: its exit code, stdout and stderr. client-go's fallback
/// executor logs `RemoteCommand fallback` at -v=4 when the WebSocket v5 upgrade is refused.
fn kubectl_v5(c: &Cluster, args: &[&str], stdin: &str) -> (i32, String, String) {
    let mut child = c
        .command(&[&["-v=4"], args].concat())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.as_bytes()).unwrap();
    drop(input);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        stderr.contains(V5_NEGOTIATED) && !stderr.contains("RemoteCommand fallback"),
        "kubectl {args:?} did not use WebSocket v5:\n{stderr}"
    );
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr,
    )
}

/// exec, cp and attach over kubectl 1.37's default WebSocket v5, which the kubelet translates
/// to SPDY v4 for containerd: output on both channels, the exit code from the error channel,
/// stdin and its close signal (channel 255), cp's tar both ways.
#[test]
fn exec_cp_and_attach_over_websocket_v5() {
    let (host, c) = test_host();
    started_pod(
        &c,
        "sh",
        "[sh, -c, 'i=0; while true; do echo tick $i; i=$((i+1)); sleep 1; done']",
    );
    let (code, out, err) = kubectl_v5(
        &c,
        &[
            "exec",
            "sh",
            "--",
            "sh",
            "-c",
            "echo out; echo err >&2; exit 3",
        ],
        "",
    );
    assert_eq!((code, out.as_str()), (3, "out\n"), "{err}");
    assert!(
        err.contains("err\n") && err.contains("command terminated with exit code 3"),
        "{err}"
    );
    let (code, out, err) = kubectl_v5(&c, &["exec", "-i", "sh", "--", "cat"], "from-stdin\n");
    assert_eq!((code, out.as_str()), (0, "from-stdin\n"), "{err}");
    // kubectl cp into the pod ends only when tar sees stdin's end.
    let up = host.dir.path().join("up.txt");
    std::fs::write(&up, "uploaded\n").unwrap();
    let (code, _, err) = kubectl_v5(&c, &["cp", &up.display().to_string(), "sh:/tmp/up.txt"], "");
    assert_eq!(code, 0, "{err}");
    let down = host.dir.path().join("down.txt");
    let (code, _, err) = kubectl_v5(
        &c,
        &["cp", "sh:/tmp/up.txt", &down.display().to_string()],
        "",
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(std::fs::read_to_string(&down).unwrap(), "uploaded\n");
    // -it under a pseudo-terminal (script(1)): a TTY in the container, whose size kubectl
    // sends on the resize channel (4).
    let kubectl = c.command(&[
        "-v=4",
        "exec",
        "-it",
        "sh",
        "--",
        "sh",
        "-c",
        "tty; echo tty-ok",
    ]);
    let line: Vec<String> = std::iter::once(kubectl.get_program())
        .chain(kubectl.get_args())
        .map(|a| format!("'{}'", a.to_string_lossy()))
        .collect();
    let mut script = std::process::Command::new("script");
    script.args(["-qec", &line.join(" "), "/dev/null"]);
    for (k, v) in kubectl.get_envs() {
        if let Some(v) = v {
            script.env(k, v);
        }
    }
    let out = script.stdin(std::process::Stdio::null()).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("/dev/pts/")
            && text.contains("tty-ok")
            && !text.contains("RemoteCommand fallback"),
        "{text}"
    );
    // The API server's answers before any kubelet (upstream's LogLocation/streamLocation):
    // an unknown container is a 400 naming it; an unscheduled pod has an empty log but
    // cannot be exec'd into.
    // (kubectl checks the container itself, so this asks the API directly.)
    let raw = c.curl(&[
        "-H",
        &format!("Authorization: Bearer {}", c.admin_token()),
        &format!(
            "{}/api/v1/namespaces/default/pods/sh/log?container=nope",
            c.url()
        ),
    ]);
    let status: serde_json::Value = serde_json::from_slice(&raw.stdout).unwrap_or_default();
    assert_eq!(
        (&status["code"], &status["message"]),
        (
            &serde_json::json!(400),
            &serde_json::json!("container nope is not valid for pod sh")
        ),
        "{status}"
    );
    c.ok_stdin(
        &["apply", "-f", "-"],
        &format!(
            "{{apiVersion: v1, kind: Pod, metadata: {{name: unscheduled}}, spec: {{schedulerName: nobody, containers: [{{name: c, image: {IMAGE}}}]}}}}"
        ),
    );
    assert_eq!(c.ok(&["logs", "unscheduled"]), "");
    let r = c.kubectl(&["exec", "unscheduled", "--", "true"]);
    assert!(
        r.code != 0
            && r.stderr
                .contains("pod unscheduled does not have a host assigned"),
        "{}",
        r.stderr
    );
    // attach: the running process's output, until kubectl is stopped.
    let mut attach = c.command(&["-v=4", "attach", "sh"]);
    let attach = attach
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut running = attach.spawn().unwrap();
    std::thread::sleep(Duration::from_secs(3));
    let _ = running.kill();
    let out = running.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("tick ") && stderr.contains(V5_NEGOTIATED),
        "{stderr}"
    );
}

/// kubectl port-forward offers `SPDY/3.1+portforward.k8s.io` over WebSocket first (upstream's
/// PortForwardWebsockets) and falls back to plain SPDY only when that upgrade is refused;
/// client-go logs the tunnel's upgrade and the fallback at -v=4, which shows which one carried
/// the traffic.
#[test]
fn port_forward_over_the_websocket_tunnel() {
    let (_host, c) = test_host();
    started_pod(&c, "web", "[httpd, -f, -p, '8080', -h, /www]");
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
