//! The node's images without a registry through `rudder image import` / `rudder image ls`
//! against the agent's own containerd, and the test host's teardown leaving nothing behind.

mod support;

use std::path::Path;
use std::process::{Command, Output};

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
