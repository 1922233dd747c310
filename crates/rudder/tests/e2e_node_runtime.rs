//! The node's images without a registry through `rudder image import` / `rudder image ls`
//! against the agent's own containerd, and the test host's teardown leaving nothing behind.

mod support;

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use rudder_kubelet::containerd::{Containerd, ContainerdConfig};
use rudder_kubelet::cri::{api as cri, Cri};
use rudder_kubelet::images;

use support::node::TestHost;

fn rudder_image(data: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rudder"))
        .arg("image")
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A row of `rudder image ls` for `repo:tag`.
fn has_row(table: &str, repo: &str, tag: &str) -> bool {
    table
        .lines()
        .any(|l| l.split_whitespace().take(2).eq([repo, tag]))
}

#[test]
fn image_import_and_ls_against_the_agents_containerd_then_teardown_leaves_nothing() {
    let mut host = TestHost::new();
    host.enter();
    let images = support::node::test_images();
    let c = host.cluster(&[]);
    let agent = host.agent_dir();
    let data = agent.parent().unwrap().to_path_buf();

    // The built-in pause image is there without any registry, as crictl's table lists it.
    let ls = rudder_image(&data, &["ls"]);
    assert!(ls.status.success(), "{}", text(&ls));
    let out = String::from_utf8_lossy(&ls.stdout).into_owned();
    let header: Vec<&str> = out.lines().next().unwrap().split("   ").collect();
    assert_eq!(
        header
            .iter()
            .map(|h| h.trim())
            .filter(|h| !h.is_empty())
            .collect::<Vec<_>>(),
        ["IMAGE", "TAG", "IMAGE ID", "SIZE"],
        "{out}"
    );
    assert!(has_row(&out, "rudder.dev/pause", "3.10"), "{out}");
    assert!(!out.contains("rudder.test/busybox"), "{out}");

    // A docker-archive imported by hand is listed by CRI and runs a pod with no pull.
    let imp = rudder_image(
        &data,
        &["import", images.join("busybox.tar").to_str().unwrap()],
    );
    assert!(imp.status.success(), "{}", text(&imp));
    assert_eq!(
        String::from_utf8_lossy(&imp.stdout),
        "imported rudder.test/busybox:1\n"
    );
    let out = String::from_utf8_lossy(&rudder_image(&data, &["ls"]).stdout).into_owned();
    assert!(has_row(&out, "rudder.test/busybox", "1"), "{out}");
    c.ok_stdin(
        &["apply", "-f", "-"],
        "apiVersion: v1\nkind: Pod\nmetadata: {name: by-hand}\nspec:\n  containers:\n  - name: c\n    image: rudder.test/busybox:1\n    imagePullPolicy: Never\n    command: [sleep, '3600']\n",
    );
    c.wait_until("the pod runs", "get pods -o wide", || {
        c.kubectl(&["get", "pod", "by-hand", "-o", "jsonpath={.status.phase}"])
            .stdout
            == "Running"
    });

    // Not an archive: a failure that names the file, and a non-zero exit.
    let junk = host.dir.path().join("junk.tar");
    std::fs::write(&junk, b"not a tarball").unwrap();
    let bad = rudder_image(&data, &["import", junk.to_str().unwrap()]);
    assert!(!bad.status.success(), "{}", text(&bad));
    assert!(
        text(&bad).contains(&format!("importing {}", junk.display())),
        "{}",
        text(&bad)
    );

    // No agent under a --data-dir: says where it looked.
    let none = rudder_image(host.dir.path(), &["ls"]);
    assert!(!none.status.success());
    assert!(
        text(&none).contains("no container runtime socket at"),
        "{}",
        text(&none)
    );

    // Teardown: no namespace, no mount under the data dir, no pod cgroup, no process left.
    let ns = host.ns.clone();
    let cgroup = host.cgroup_root.clone();
    let dir = host.dir.path().to_path_buf();
    // The running pod's shim socket and CNI cache entries, which live outside the data dir.
    let outside = support::node::runtime_leftovers(&[
        dir.display().to_string(),
        data.parent().unwrap().display().to_string(),
    ]);
    assert!(
        outside.iter().any(|p| p.starts_with("/run/containerd/s"))
            && outside
                .iter()
                .any(|p| p.starts_with("/var/lib/cni/results")),
        "{outside:?}"
    );
    drop(c);
    drop(host);
    let netns = Command::new("ip").args(["netns", "list"]).output().unwrap();
    assert!(
        !String::from_utf8_lossy(&netns.stdout)
            .split_whitespace()
            .any(|n| n == ns),
        "namespace {ns} left"
    );
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let data = data.display().to_string();
    let dir = dir.display().to_string();
    let left: Vec<&str> = mounts
        .lines()
        .filter_map(|l| l.split_whitespace().nth(4))
        .filter(|t| t.starts_with(&data) || t.starts_with(&dir))
        .collect();
    assert!(left.is_empty(), "mounts left: {left:?}");
    let outside: Vec<_> = outside.into_iter().filter(|p| p.exists()).collect();
    assert!(outside.is_empty(), "left: {outside:?}");
    for controller in std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
        let p = controller.path().join(cgroup.trim_start_matches('/'));
        assert!(!p.exists(), "cgroup {} left", p.display());
    }
    let containerd_left = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.contains(&data))
        .collect::<Vec<_>>();
    assert!(
        containerd_left.is_empty(),
        "processes left: {containerd_left:?}"
    );
}

fn network_ready(status: &cri::RuntimeStatus) -> Option<(bool, String)> {
    status
        .conditions
        .iter()
        .find(|c| c.r#type == "NetworkReady")
        .map(|c| (c.status, c.reason.clone()))
}

/// The runtime pieces without a cluster: containerd from the config the agent writes answers
/// CRI, the built-in pause image is imported without a registry, a conflist created after the
/// start (as the agent does once its podCIDR is known) makes the network ready, and a sandbox
/// gets an address in the podCIDR on which a busybox httpd answers the test host.
#[test]
fn containerd_answers_cri_and_a_conflist_written_after_start_networks_pods() {
    let mut host = TestHost::new();
    host.enter();
    host.start_registry();
    let images = support::node::test_images();
    let agent = host.dir.path().join("agent");
    let registries = host.dir.path().join("registries.yaml");
    std::fs::write(
        &registries,
        "mirrors:\n  \"127.0.0.1:5000\":\n    endpoint: [\"http://127.0.0.1:5000\"]\n",
    )
    .unwrap();
    // The runtime on this thread: processes it spawns (containerd) inherit the namespace.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let ctd = Containerd::start(&ContainerdConfig {
            agent_dir: agent.clone(),
            sandbox_image: images::PAUSE_IMAGE.into(),
            cni_bin_dir: "/usr/lib/cni".into(),
            registries: Some(registries),
        })
        .await
        .unwrap();
        let client = Cri::connect(ctd.socket()).unwrap();
        assert_eq!(client.version().await.unwrap().runtime_name, "containerd");
        let (ready, reason) = network_ready(&client.status().await.unwrap()).unwrap();
        assert!(!ready);
        assert_eq!(reason, "NetworkPluginNotReady");

        images::ensure_pause_image(ctd.socket()).await.unwrap();
        let imported = images::import_archive(ctd.socket(), &images.join("busybox.tar"))
            .await
            .unwrap();
        assert_eq!(imported, ["rudder.test/busybox:1"]);

        // Pulled through CRI from the registry over plain HTTP (its mirror entry); a missing
        // image is NOT_FOUND, the code the kubelet turns into ErrImagePull.
        let pull = |image: &str| {
            let mut images = client.images();
            let request = cri::PullImageRequest {
                image: Some(cri::ImageSpec {
                    image: image.into(),
                    ..Default::default()
                }),
                ..Default::default()
            };
            async move { images.pull_image(request).await }
        };
        let pulled = pull("127.0.0.1:5000/test/busybox:1").await.unwrap();
        assert!(pulled.into_inner().image_ref.starts_with("sha256:"));
        let missing = pull("127.0.0.1:5000/test/nothing:1").await.unwrap_err();
        assert_eq!(format!("{:?}", missing.code()), "NotFound", "{missing}");

        let paths = rudder_kubelet::containerd::Paths::new(&agent);
        rudder_kubelet::cni::write_conflist(
            &paths.cni_conf_dir,
            &agent.join("cni").join("ipam"),
            "10.88.7.0/24",
        )
        .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while network_ready(&client.status().await.unwrap()).map(|r| r.0) != Some(true) {
            assert!(Instant::now() < deadline, "NetworkReady stayed false");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }

        let sandbox = cri::PodSandboxConfig {
            metadata: Some(cri::PodSandboxMetadata {
                name: "web".into(),
                uid: "rt-web".into(),
                namespace: "default".into(),
                attempt: 0,
            }),
            hostname: "web".into(),
            log_directory: agent.join("logs").display().to_string(),
            dns_config: Some(cri::DnsConfig::default()),
            linux: Some(cri::LinuxPodSandboxConfig {
                cgroup_parent: format!("{}/podrt-web", host.cgroup_root),
                ..Default::default()
            }),
            ..Default::default()
        };
        let id = client
            .runtime()
            .run_pod_sandbox(cri::RunPodSandboxRequest {
                config: Some(sandbox.clone()),
                runtime_handler: String::new(),
            })
            .await
            .unwrap()
            .into_inner()
            .pod_sandbox_id;
        let ip = client
            .sandbox_status(&id)
            .await
            .unwrap()
            .network
            .unwrap_or_default()
            .ip;
        assert!(ip.starts_with("10.88.7."), "{ip}");

        let container = client
            .runtime()
            .create_container(cri::CreateContainerRequest {
                pod_sandbox_id: id.clone(),
                config: Some(cri::ContainerConfig {
                    metadata: Some(cri::ContainerMetadata {
                        name: "httpd".into(),
                        attempt: 0,
                    }),
                    image: Some(cri::ImageSpec {
                        image: "rudder.test/busybox:1".into(),
                        ..Default::default()
                    }),
                    command: ["httpd", "-f", "-p", "8080", "-h", "/www"]
                        .map(String::from)
                        .into(),
                    log_path: "httpd.log".into(),
                    ..Default::default()
                }),
                sandbox_config: Some(sandbox),
            })
            .await
            .unwrap()
            .into_inner()
            .container_id;
        client
            .runtime()
            .start_container(cri::StartContainerRequest {
                container_id: container,
            })
            .await
            .unwrap();
        let addr = format!("{ip}:8080");
        let deadline = Instant::now() + Duration::from_secs(10);
        let page = loop {
            let got = tokio::task::spawn_blocking({
                let addr = addr.clone();
                move || http_get(&addr)
            })
            .await
            .unwrap();
            match got {
                Ok(page) => break page,
                Err(e) => assert!(Instant::now() < deadline, "{addr}: {e}"),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert!(page.starts_with("HTTP/1.1 200 OK"), "{page}");

        client
            .runtime()
            .stop_pod_sandbox(cri::StopPodSandboxRequest {
                pod_sandbox_id: id.clone(),
            })
            .await
            .unwrap();
        client
            .runtime()
            .remove_pod_sandbox(cri::RemovePodSandboxRequest { pod_sandbox_id: id })
            .await
            .unwrap();
        assert!(client.list_sandboxes().await.unwrap().is_empty());
        ctd.stop().await;
    });
}

fn http_get(addr: &str) -> std::io::Result<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.write_all(b"GET / HTTP/1.0\r\n\r\n")?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}
