//! End to end: how a node joins, on both store backends — the join token the server writes
//! (k3s's `K10<CA hash>::<bootstrap token>` in `<data-dir>/token`, mode 0600), `/cacerts`
//! served without credentials, bootstrap-token authentication, a kubelet client CSR created
//! with the bootstrap token auto-approved by csrapproving and issued by csrsigning, the issued
//! certificate authenticating as `system:node:<name>`, `kubectl certificate approve|deny`, and
//! token-cleaner deleting an expired token.

mod support;

use std::os::unix::fs::PermissionsExt as _;

use base64::Engine as _;
use serde_json::{json, Value};
use support::{wait_for, Backend, Cluster};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;
const UNAUTHORIZED: &str = "error: You must be logged in to the server (Unauthorized)";

/// A PKCS#10 request for `cn` in `orgs`; returns (CSR PEM, key PEM).
fn request(cn: &str, orgs: &[&str]) -> (String, String) {
    let (csr, key) = support::tlsserver::certificate_request(cn, orgs, &[]);
    (csr.pem().unwrap(), key.serialize_pem())
}

fn csr(name: &str, pem: &str, signer: &str, usages: &[&str]) -> String {
    json!({
        "apiVersion": "certificates.k8s.io/v1",
        "kind": "CertificateSigningRequest",
        "metadata": {"name": name},
        "spec": {"request": B64.encode(pem), "signerName": signer, "usages": usages},
    })
    .to_string()
}

/// `kubectl get csr NAME` as a table: (REQUESTOR, CONDITION).
fn csr_row(c: &Cluster, name: &str) -> (String, String) {
    let out = c.ok(&["get", "csr", name, "--no-headers"]);
    let cols: Vec<&str> = out.split_whitespace().collect();
    // NAME AGE SIGNERNAME REQUESTOR REQUESTEDDURATION CONDITION
    (cols[3].to_string(), cols[cols.len() - 1].to_string())
}

fn csr_json(c: &Cluster, name: &str) -> Value {
    serde_json::from_str(&c.ok(&["get", "csr", name, "-o", "json"])).unwrap()
}

/// Writes CSR `name`'s issued certificate to `<test dir>/<name>.crt`; returns the path and
/// whether it is still valid `secs` from now (`openssl x509 -checkend`).
fn issued_certificate(c: &Cluster, name: &str) -> (std::path::PathBuf, impl Fn(u32) -> bool) {
    let issued = csr_json(c, name);
    let path = c.dir.path().join(format!("{name}.crt"));
    let der = B64
        .decode(issued["status"]["certificate"].as_str().unwrap())
        .unwrap();
    std::fs::write(&path, der).unwrap();
    let p = path.clone();
    let valid_in = move |secs: u32| {
        std::process::Command::new("openssl")
            .args(["x509", "-noout", "-checkend", &secs.to_string(), "-in"])
            .arg(&p)
            .output()
            .expect("openssl runs (scripts/install-deps installs it)")
            .status
            .success()
    };
    (path, valid_in)
}

fn sha256_hex(data: &[u8]) -> String {
    let out = std::process::Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(data)?;
            child.wait_with_output()
        })
        .unwrap();
    String::from_utf8(out.stdout).unwrap()[..64].to_string()
}

fn join(b: Backend) {
    let c = Cluster::start(b);
    let data = c.dir.path().join("data");

    // The join token: K10<sha256 of the CA bundle>::<id>.<secret>, private to the server.
    let token_path = data.join("token");
    let meta = std::fs::metadata(&token_path).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let join_token = std::fs::read_to_string(&token_path)
        .unwrap()
        .trim()
        .to_string();
    let (hash, bootstrap) = join_token
        .strip_prefix("K10")
        .and_then(|t| t.split_once("::"))
        .expect("K10<hash>::<token>");
    let (id, secret) = bootstrap.split_once('.').unwrap();
    assert_eq!((id.len(), secret.len()), (6, 16), "{bootstrap}");
    assert!(c.server_log().contains(&token_path.display().to_string()));

    // /cacerts needs no credentials and is what the hash pins.
    let ca = std::fs::read(data.join("server/tls/ca.crt")).unwrap();
    let out = c.curl(&["-i", &format!("{}/cacerts", c.url())]);
    let text = String::from_utf8(out.stdout).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    assert!(
        head.starts_with("HTTP/2 200") || head.starts_with("HTTP/1.1 200"),
        "{head}"
    );
    assert!(
        head.to_lowercase().contains("content-type: text/plain"),
        "{head}"
    );
    assert_eq!(body.as_bytes(), &ca[..]);
    assert_eq!(sha256_hex(&ca), hash);

    // Its bootstrap token Secret, as kubeadm's.
    let s: Value = serde_json::from_str(&c.ok(&[
        "get",
        "secret",
        "-n",
        "kube-system",
        &format!("bootstrap-token-{id}"),
        "-o",
        "json",
    ]))
    .unwrap();
    assert_eq!(s["type"], "bootstrap.kubernetes.io/token");
    let field =
        |k: &str| String::from_utf8(B64.decode(s["data"][k].as_str().unwrap()).unwrap()).unwrap();
    assert_eq!(field("token-id"), id);
    assert_eq!(field("token-secret"), secret);
    assert_eq!(field("usage-bootstrap-authentication"), "true");
    assert_eq!(
        field("auth-extra-groups"),
        "system:bootstrappers:rudder:default-node-token"
    );

    // The bindings that keep joins working once RBAC is enforced (kubeadm's, for our group).
    let crb: Value = serde_json::from_str(&c.ok(&[
        "get",
        "clusterrolebinding",
        "rudder:node-autoapprove-bootstrap",
        "-o",
        "json",
    ]))
    .unwrap();
    assert_eq!(
        crb["roleRef"]["name"],
        "system:certificates.k8s.io:certificatesigningrequests:nodeclient"
    );
    assert_eq!(
        crb["subjects"][0]["name"],
        "system:bootstrappers:rudder:default-node-token"
    );
    c.ok(&["get", "clusterrolebinding", "rudder:kubelet-bootstrap"]);
    c.ok(&[
        "get",
        "clusterrolebinding",
        "rudder:node-autoapprove-certificate-rotation",
    ]);

    // A wrong token is refused (401), as is a well-formed one with no Secret.
    let tok = |t: &str| format!("--token={t}");
    for bad in [
        format!("{id}.0000000000000000"),
        "zzzzzz.0123456789abcdef".into(),
    ] {
        let r = c.kubectl(&[&tok(&bad), "get", "csr"]);
        assert_eq!(r.stderr.trim(), UNAUTHORIZED, "{bad}");
    }

    // The agent's request, made with the bootstrap token: approved and issued by the
    // controllers, and readable as upstream's kubectl shows it.
    let (pem, key_pem) = request("system:node:joiner", &["system:nodes"]);
    let body = csr(
        "node-csr-joiner",
        &pem,
        "kubernetes.io/kube-apiserver-client-kubelet",
        &["digital signature", "client auth"],
    );
    let r = c.kubectl_stdin(&[&tok(bootstrap), "create", "-f", "-"], &body);
    assert_eq!(r.code, 0, "{}", r.stderr);
    wait_for("the node CSR to be approved and issued", || {
        (csr_row(&c, "node-csr-joiner").1 == "Approved,Issued").then_some(())
    });
    assert_eq!(
        csr_row(&c, "node-csr-joiner").0,
        format!("system:bootstrap:{id}")
    );
    let got = csr_json(&c, "node-csr-joiner");
    assert_eq!(
        got["spec"]["groups"],
        json!([
            "system:bootstrappers",
            "system:bootstrappers:rudder:default-node-token",
            "system:authenticated"
        ])
    );
    let cond = &got["status"]["conditions"][0];
    assert_eq!(cond["type"], "Approved");
    assert_eq!(cond["reason"], "AutoApproved");
    assert_eq!(
        cond["message"],
        "Auto approving kubelet client certificate after SubjectAccessReview."
    );
    let cert = B64
        .decode(got["status"]["certificate"].as_str().unwrap())
        .unwrap();

    // A node request by someone the SubjectAccessReview refuses stays pending, and is retried
    // with backoff (upstream's ignorable error), so it is approved once a binding allows it.
    let (late_pem, _) = request("system:node:late", &["system:nodes"]);
    let late = csr(
        "node-csr-late",
        &late_pem,
        "kubernetes.io/kube-apiserver-client-kubelet",
        &["digital signature", "client auth"],
    );
    c.ok(&[
        "create",
        "clusterrolebinding",
        "late-joiner-bootstrapper",
        "--clusterrole=system:node-bootstrapper",
        "--user=late-joiner",
    ]);
    let r = c.kubectl_stdin(
        &[
            "--as=late-joiner",
            "--as-group=system:authenticated",
            "create",
            "-f",
            "-",
        ],
        &late,
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    std::thread::sleep(std::time::Duration::from_secs(2));
    assert_eq!(csr_row(&c, "node-csr-late").1, "Pending");
    c.ok(&[
        "create",
        "clusterrolebinding",
        "late-joiner-nodeclient",
        "--clusterrole=system:certificates.k8s.io:certificatesigningrequests:nodeclient",
        "--user=late-joiner",
    ]);
    wait_for("the late node CSR to be approved", || {
        (csr_row(&c, "node-csr-late").1 == "Approved,Issued").then_some(())
    });

    // The issued certificate authenticates as the node: a CSR records its creator.
    let dir = c.dir.path();
    std::fs::write(dir.join("node.crt"), &cert).unwrap();
    std::fs::write(dir.join("node.key"), &key_pem).unwrap();
    let kubeconfig = dir.join("node.kubeconfig");
    let node = |args: &[&str]| {
        let mut cmd = std::process::Command::new(support::kubectl_bin());
        cmd.env("KUBECONFIG", &kubeconfig).args(args);
        cmd
    };
    let ca_path = data.join("server/tls/ca.crt");
    assert!(node(&[
        "config",
        "set-cluster",
        "c",
        "--server",
        &c.url(),
        "--certificate-authority",
        ca_path.to_str().unwrap(),
    ])
    .status()
    .unwrap()
    .success());
    let crt = dir.join("node.crt");
    let key = dir.join("node.key");
    assert!(node(&[
        "config",
        "set-credentials",
        "n",
        "--client-certificate",
        crt.to_str().unwrap(),
        "--client-key",
        key.to_str().unwrap(),
    ])
    .status()
    .unwrap()
    .success());
    assert!(node(&[
        "config",
        "set-context",
        "n",
        "--cluster",
        "c",
        "--user",
        "n"
    ])
    .status()
    .unwrap()
    .success());
    assert!(node(&["config", "use-context", "n"])
        .status()
        .unwrap()
        .success());
    let (renewal, _) = request("system:node:joiner", &["system:nodes"]);
    let out = node(&["create", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(
                csr(
                    "node-csr-renewal",
                    &renewal,
                    "kubernetes.io/kube-apiserver-client-kubelet",
                    &["digital signature", "client auth"],
                )
                .as_bytes(),
            )?;
            child.wait_with_output()
        })
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let renewed = csr_json(&c, "node-csr-renewal");
    assert_eq!(renewed["spec"]["username"], "system:node:joiner");
    assert_eq!(
        renewed["spec"]["groups"],
        json!(["system:nodes", "system:authenticated"])
    );
    // …and its renewal is recognized as the node's own (selfnodeclient).
    wait_for("the renewal to be approved", || {
        let v = csr_json(&c, "node-csr-renewal");
        v["status"]["conditions"][0]["message"].as_str().map(|m| {
            assert_eq!(
                m,
                "Auto approving self kubelet client certificate after SubjectAccessReview."
            )
        })
    });

    // A request no controller approves: approved and denied by hand.
    // Alice asks for 15 minutes (spec.expirationSeconds), shorter than the signer's year.
    let (pem, _) = request("alice", &["devs"]);
    let mut alice: Value = serde_json::from_str(&csr(
        "alice",
        &pem,
        "kubernetes.io/kube-apiserver-client",
        &["client auth"],
    ))
    .unwrap();
    alice["spec"]["expirationSeconds"] = json!(900);
    c.ok_stdin(&["create", "-f", "-"], &alice.to_string());
    let (pem, _) = request("mallory", &["devs"]);
    c.ok_stdin(
        &["create", "-f", "-"],
        &csr(
            "mallory",
            &pem,
            "kubernetes.io/kube-apiserver-client",
            &["client auth"],
        ),
    );
    std::thread::sleep(std::time::Duration::from_secs(1));
    assert_eq!(csr_row(&c, "alice").1, "Pending");
    assert_eq!(
        c.ok(&["certificate", "approve", "alice"]).trim(),
        "certificatesigningrequest.certificates.k8s.io/alice approved"
    );
    wait_for("alice's certificate", || {
        (csr_row(&c, "alice").1 == "Approved,Issued").then_some(())
    });
    // Issued for exactly the requested 15 minutes (short certificates are not backdated).
    let (cert_path, valid_in) = issued_certificate(&c, "alice");
    assert!(valid_in(780), "valid for more than 13 minutes");
    assert!(!valid_in(901), "expires within 15 minutes");
    let dates = std::process::Command::new("openssl")
        .args([
            "x509",
            "-noout",
            "-subject",
            "-ext",
            "extendedKeyUsage,keyUsage",
            "-in",
        ])
        .arg(&cert_path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&dates.stdout);
    assert!(text.contains("subject=O = devs, CN = alice"), "{text}");
    assert!(text.contains("TLS Web Client Authentication"), "{text}");
    assert!(
        !text.contains("Key Usage: critical"),
        "no key usage requested: {text}"
    );
    assert_eq!(
        c.ok(&["certificate", "deny", "mallory"]).trim(),
        "certificatesigningrequest.certificates.k8s.io/mallory denied"
    );
    assert_eq!(csr_row(&c, "mallory").1, "Denied");
    let m = csr_json(&c, "mallory");
    assert_eq!(m["status"]["conditions"][0]["reason"], "KubectlDeny");
    assert!(m["status"].get("certificate").is_none());

    // A kubelet client request the signer rejects (a DNS name) fails with upstream's reason.
    let (bad, _) = support::tlsserver::certificate_request(
        "system:node:bad",
        &["system:nodes"],
        &["n.example"],
    );
    let pem = bad.pem().unwrap();
    c.ok_stdin(
        &["create", "-f", "-"],
        &csr(
            "bad",
            &pem,
            "kubernetes.io/kube-apiserver-client-kubelet",
            &["digital signature", "client auth"],
        ),
    );
    c.ok(&["certificate", "approve", "bad"]);
    wait_for("the signer to fail the request", || {
        let v = csr_json(&c, "bad");
        let conds = v["status"]["conditions"].as_array()?.clone();
        conds.iter().find(|c| c["type"] == "Failed").map(|f| {
            assert_eq!(f["reason"], "SignerValidationFailure");
            assert_eq!(f["message"], "DNS subjectAltNames are not allowed");
        })
    });
    assert_eq!(csr_row(&c, "bad").1, "Approved,Failed");

    // token-cleaner deletes an expired bootstrap token.
    let expired = json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "bootstrap-token-abcdef", "namespace": "kube-system"},
        "type": "bootstrap.kubernetes.io/token",
        "stringData": {"token-id": "abcdef", "token-secret": "0123456789abcdef",
            "usage-bootstrap-authentication": "true", "expiration": "2020-01-01T00:00:00Z"},
    });
    c.ok_stdin(&["create", "-f", "-"], &expired.to_string());
    let r = c.kubectl(&["--token=abcdef.0123456789abcdef", "get", "ns"]);
    assert_eq!(
        r.stderr.trim(),
        UNAUTHORIZED,
        "an expired token does not authenticate"
    );
    wait_for("token-cleaner to delete the expired token", || {
        (c.kubectl(&[
            "get",
            "secret",
            "-n",
            "kube-system",
            "bootstrap-token-abcdef",
        ])
        .code
            != 0)
            .then_some(())
    });
}

fn join_token(c: &Cluster) -> String {
    std::fs::read_to_string(c.dir.path().join("data/token"))
        .unwrap()
        .trim()
        .to_string()
}

fn run<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// `rudder_kubelet::bootstrap::bootstrap`, the agent's side, against a real server: it verifies
/// the CA against the token, gets a certificate issued, writes a kubeconfig that authenticates
/// as the node, reuses it next time, and reports a wrong token, a wrong CA hash and a denial
/// as a person can act on them.
fn agent_bootstrap(b: Backend) {
    use rudder_kubelet::bootstrap::bootstrap;
    let c = Cluster::start(b);
    let token = join_token(&c);
    let agent = c.dir.path().join("agent");
    let kubeconfig = run(bootstrap(&c.url(), &token, "joiner", &agent)).unwrap();
    assert_eq!(kubeconfig, agent.join("kubelet.kubeconfig"));
    let mode = std::fs::metadata(&kubeconfig).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    assert_eq!(
        std::fs::read(agent.join("server-ca.crt")).unwrap(),
        std::fs::read(c.dir.path().join("data/server/tls/ca.crt")).unwrap()
    );
    let csrs = || c.ok(&["get", "csr", "-o", "name"]).lines().count();
    assert_eq!(csrs(), 1);
    let name = c.ok(&["get", "csr", "-o", "jsonpath={.items[0].metadata.name}"]);
    assert!(name.starts_with("node-csr-"), "{name}");
    assert_eq!(csr_row(&c, &name).1, "Approved,Issued");

    // The kubeconfig is the node's: a CSR made with it records system:node:joiner.
    let (pem, _) = request("system:node:joiner", &["system:nodes"]);
    let body = csr(
        "as-node",
        &pem,
        "kubernetes.io/kube-apiserver-client-kubelet",
        &["digital signature", "client auth"],
    );
    let kc = format!("--kubeconfig={}", kubeconfig.display());
    let out = c.kubectl_stdin(&[&kc, "create", "-f", "-"], &body);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        csr_json(&c, "as-node")["spec"]["username"],
        "system:node:joiner"
    );

    // A second start reuses the certificate: no new request.
    let before = csrs();
    run(bootstrap(&c.url(), &token, "joiner", &agent)).unwrap();
    assert_eq!(csrs(), before);

    // A certificate with a tenth of its life left asks for its successor itself, even when the
    // join token no longer works (csrapproving's selfnodeclient path).
    let tls = c.dir.path().join("data/server/tls");
    let signer = rudder_pki::CsrSigner::from_pem(
        &std::fs::read_to_string(tls.join("ca.crt")).unwrap(),
        &std::fs::read_to_string(tls.join("ca.key")).unwrap(),
    )
    .unwrap();
    let (req, key) =
        support::tlsserver::certificate_request("system:node:renewer", &["system:nodes"], &[]);
    let (der, key_pem) = (req.der().to_vec(), key.serialize_pem());
    let ten_minutes = std::time::Duration::from_secs(600);
    let old_cert = signer
        .sign(
            &der,
            &["digital signature", "client auth"],
            ten_minutes,
            rudder_pki::OffsetDateTime::now_utc() - ten_minutes * 9 / 10,
        )
        .unwrap();
    let renewer = c.dir.path().join("renewer");
    std::fs::create_dir_all(&renewer).unwrap();
    let spec = rudder_pki::KubeconfigSpec::new(c.url(), signer.ca_pem())
        .with_client_cert(old_cert.clone(), key_pem);
    rudder_pki::write_kubeconfig(&renewer.join("kubelet.kubeconfig"), &spec).unwrap();
    let (hash, bt) = token.strip_prefix("K10").unwrap().split_once("::").unwrap();
    let refused = format!("K10{hash}::abcdef.0123456789abcdef");
    run(bootstrap(&c.url(), &refused, "renewer", &renewer)).unwrap();
    let renewal = wait_for("the renewal CSR", || {
        let list: Value = serde_json::from_str(&c.ok(&["get", "csr", "-o", "json"])).unwrap();
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["spec"]["username"] == "system:node:renewer")
            .cloned()
    });
    assert_eq!(
        renewal["status"]["conditions"][0]["message"],
        "Auto approving self kubelet client certificate after SubjectAccessReview."
    );
    let written = std::fs::read_to_string(renewer.join("kubelet.kubeconfig")).unwrap();
    assert!(
        !written.contains(&B64.encode(&old_cert)),
        "a new certificate"
    );

    let elsewhere = c.dir.path().join("agent2");
    let wrong_hash = format!("K10{}::{bt}", "0".repeat(64));
    let e = run(bootstrap(&c.url(), &wrong_hash, "n2", &elsewhere)).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "the CA certificate served by {} has hash {hash}, but the join token expects {}: \
             this is not the server the token belongs to",
            c.url(),
            "0".repeat(64)
        )
    );
    let e = run(bootstrap(&c.url(), &refused, "n2", &elsewhere)).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("the join token was refused by {}", c.url())
    );
    assert!(!elsewhere.join("kubelet.kubeconfig").exists());
}

/// Without csrapproving, a request an admin denies ends the bootstrap with the denial.
fn agent_bootstrap_denied(b: Backend) {
    let c = Cluster::start_with(b, &["--controllers=*,-csrapproving"]);
    let token = join_token(&c);
    let agent = c.dir.path().join("agent");
    let url = c.url();
    let waiter = std::thread::spawn(move || {
        run(rudder_kubelet::bootstrap::bootstrap(
            &url, &token, "denied", &agent,
        ))
    });
    let name = wait_for("the agent's CSR", || {
        let n = c.ok(&["get", "csr", "-o", "jsonpath={.items[*].metadata.name}"]);
        (!n.trim().is_empty()).then(|| n.trim().to_string())
    });
    c.ok(&["certificate", "deny", &name]);
    let e = waiter.join().unwrap().unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "the node certificate request {name} was denied: \
             This CSR was denied by kubectl certificate deny. (KubectlDeny)"
        )
    );
}

/// A network namespace made for one test, with the processes started in it; dropping it stops
/// them (SIGTERM, so the agent stops its containerd) and deletes the namespace.
struct TestHost {
    name: String,
    children: Vec<std::process::Child>,
}

impl TestHost {
    fn new(tag: &str) -> TestHost {
        let name = format!("rudder-join-{}-{tag}", std::process::id());
        let ip = |args: &[&str]| {
            let ok = std::process::Command::new("ip")
                .args(args)
                .status()
                .unwrap();
            assert!(ok.success(), "ip {args:?}");
        };
        ip(&["netns", "add", &name]);
        ip(&["-n", &name, "link", "set", "lo", "up"]);
        TestHost {
            name,
            children: Vec::new(),
        }
    }

    fn command(&self, program: &std::path::Path) -> std::process::Command {
        let mut cmd = std::process::Command::new("ip");
        cmd.args(["netns", "exec", &self.name]).arg(program);
        cmd
    }

    fn spawn(&mut self, mut cmd: std::process::Command, log: &std::path::Path) {
        let log = std::fs::File::create(log).unwrap();
        let child = cmd
            .env("RUST_LOG", "info")
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.children.push(child);
    }
}

impl Drop for TestHost {
    fn drop(&mut self) {
        // Last started first: the agent before the server it reports to.
        for child in self.children.iter_mut().rev() {
            if let Ok(pid) = i32::try_from(child.id()) {
                // SAFETY: signals a child this test spawned and has not reaped.
                unsafe { libc::kill(pid, libc::SIGTERM) };
            }
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
            while matches!(child.try_wait(), Ok(None)) && std::time::Instant::now() < deadline {
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// `rudder agent --server URL --token-file FILE` on a fresh node, started before its server: it
/// waits for the server, joins with the token (the bootstrap-token CSR approved and issued),
/// starts its own containerd and registers its Node and Lease as `system:node:<name>`. Server
/// and agent run in a network namespace the test creates (the network rule), so the store is the
/// embedded one: the test's etcd would listen in the root namespace.
#[test]
fn agent_joins_with_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let (server_data, agent_data) = (dir.path().join("server"), dir.path().join("node"));
    let mut host = TestHost::new("agent");
    let rudder = std::path::Path::new(env!("CARGO_BIN_EXE_rudder"));
    // The agent starts first and waits for its server; its token is a bare bootstrap token
    // (no CA hash: the CA is trusted on first use), which the server is then started with.
    const TOKEN: &str = "joinme.0123456789abcdef";
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let mut agent = host.command(rudder);
    agent
        .args([
            "agent",
            "--server",
            "https://127.0.0.1:6443",
            "--token-file",
        ])
        .arg(&token_file)
        .args([
            "--node-name",
            "joiner",
            "--node-ip",
            "127.0.0.1",
            "--data-dir",
        ])
        .arg(&agent_data);
    let agent_log = dir.path().join("agent.log");
    host.spawn(agent, &agent_log);
    wait_for("the agent to wait for its server", || {
        std::fs::read_to_string(&agent_log)
            .unwrap_or_default()
            .contains("waiting for the server")
            .then_some(())
    });

    let mut server = host.command(rudder);
    server
        .args(["server", "--disable-agent", "--bind-address", "127.0.0.1"])
        .args([
            "--https-listen-port",
            "6443",
            "--token",
            TOKEN,
            "--data-dir",
        ])
        .arg(&server_data);
    host.spawn(server, &dir.path().join("server.log"));
    let kubeconfig = server_data.join("kubeconfig.yaml");
    let ns = host.name.clone();
    let kubectl = |args: &[&str]| {
        let out = std::process::Command::new("ip")
            .args(["netns", "exec", &ns])
            .arg(support::kubectl_bin())
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .args(args)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    // Both logs on a timeout: the tempdir holding them goes with the failed test.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let node: Value = loop {
        let (ok, out) = kubectl(&["get", "node", "joiner", "-o", "json"]);
        if ok {
            break serde_json::from_str(&out).unwrap();
        }
        if std::time::Instant::now() > deadline {
            let log = |f: &str| {
                let text = std::fs::read_to_string(dir.path().join(f)).unwrap_or_default();
                let lines: Vec<&str> = text.lines().collect();
                lines[lines.len().saturating_sub(80)..].join("\n")
            };
            panic!(
                "timed out waiting for the agent's Node\n--- agent.log\n{}\n--- server.log\n{}",
                log("agent.log"),
                log("server.log")
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    let info = &node["status"]["nodeInfo"];
    assert!(
        info["containerRuntimeVersion"]
            .as_str()
            .unwrap_or_default()
            .starts_with("containerd://"),
        "{info}\n{}",
        std::fs::read_to_string(&agent_log).unwrap_or_default()
    );
    // It joined with the token: its bootstrap request was approved and issued…
    let (_, csrs) = kubectl(&["get", "csr", "--no-headers"]);
    let row: Vec<&str> = csrs
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert!(row[0].starts_with("node-csr-"), "{csrs}");
    assert!(row[3].starts_with("system:bootstrap:"), "{csrs}");
    assert_eq!(row[row.len() - 1], "Approved,Issued", "{csrs}");
    // …and it reports as the node: the Node's fields are managed by its kubelet, whose Lease
    // it renews.
    assert!(agent_data.join("agent/kubelet.kubeconfig").exists());
    let (ok, _) = kubectl(&["get", "lease", "-n", "kube-node-lease", "joiner"]);
    assert!(ok, "the node's Lease");
}

/// `rudder server --token` sets the join token (k3s's `--token`); a token for another CA is
/// refused at start.
fn chosen_token(b: Backend) {
    let c = Cluster::start_with(b, &["--token", "abcdef.0123456789abcdef"]);
    let written = join_token(&c);
    let (hash, token) = written
        .strip_prefix("K10")
        .and_then(|t| t.split_once("::"))
        .unwrap();
    assert_eq!(token, "abcdef.0123456789abcdef");
    let ca = std::fs::read(c.dir.path().join("data/server/tls/ca.crt")).unwrap();
    assert_eq!(hash, sha256_hex(&ca));
    let r = c.kubectl_stdin(
        &["--token=abcdef.0123456789abcdef", "create", "-f", "-"],
        &csr(
            "chosen",
            &request("system:node:chosen", &["system:nodes"]).0,
            "kubernetes.io/kube-apiserver-client-kubelet",
            &["digital signature", "client auth"],
        ),
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(csr_row(&c, "chosen").0, "system:bootstrap:abcdef");

    // Another cluster (its own CA) refuses a token pinned to this one's.
    let other = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_rudder"))
        .args(["server", "--disable-agent", "--bind-address", "127.0.0.1"])
        .args(["--https-listen-port", "0", "--data-dir"])
        .arg(other.path())
        .args(["--token", &format!("K10{hash}::abcdef.0123456789abcdef")])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let other_ca = std::fs::read(other.path().join("server/tls/ca.crt")).unwrap();
    assert!(
        stderr.contains(&format!(
            "--token: its CA hash {hash} is not this cluster's CA hash {}",
            sha256_hex(&other_ca)
        )),
        "{stderr}"
    );
}

/// `rudder controller-manager` on its own signs with the CA files it is given
/// (`--cluster-signing-cert-file`/`--cluster-signing-key-file`) for `--cluster-signing-duration`.
fn standalone_signer(b: Backend) {
    let c = Cluster::start_with(b, &["--disable-controllers"]);
    let token = join_token(&c);
    let (_, bootstrap) = token.split_once("::").unwrap();
    let (pem, _) = request("system:node:solo", &["system:nodes"]);
    let body = csr(
        "solo",
        &pem,
        "kubernetes.io/kube-apiserver-client-kubelet",
        &["digital signature", "client auth"],
    );
    let r = c.kubectl_stdin(
        &[&format!("--token={bootstrap}"), "create", "-f", "-"],
        &body,
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    std::thread::sleep(std::time::Duration::from_secs(1));
    assert_eq!(
        csr_row(&c, "solo").1,
        "Pending",
        "no controllers in the server"
    );

    let tls = c.dir.path().join("data/server/tls");
    let mut kcm = std::process::Command::new(env!("CARGO_BIN_EXE_rudder"))
        .args([
            "controller-manager",
            "--health-port",
            "0",
            "--leader-elect=false",
        ])
        .args(["--controllers", "csrapproving,csrsigning"])
        .args([
            "--cluster-signing-duration",
            "2h",
            "--cluster-signing-cert-file",
        ])
        .arg(tls.join("ca.crt"))
        .arg("--cluster-signing-key-file")
        .arg(tls.join("ca.key"))
        .arg("--kubeconfig")
        .arg(&c.kubeconfig)
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(c.dir.path().join("kcm.log")).unwrap())
        .spawn()
        .unwrap();
    wait_for(
        "the standalone controllers to issue the certificate",
        || (csr_row(&c, "solo").1 == "Approved,Issued").then_some(()),
    );
    let _ = kcm.kill();
    let _ = kcm.wait();
    let (_, valid_in) = issued_certificate(&c, "solo");
    assert!(valid_in(7000) && !valid_in(7201), "valid for two hours");
}

on_both_backends!(
    join,
    agent_bootstrap,
    agent_bootstrap_denied,
    chosen_token,
    standalone_signer
);
