//! Secrets encrypted at rest (`rudder server --secrets-encryption`, as k3s): the data directory
//! (redb file and WAL) never holds a Secret's value, kubectl reads it back unchanged, and a key
//! rotation re-encrypts at the next start. The embedded store is the one with a data
//! directory to steal.

mod support;

use std::path::Path;

use support::{Backend, Cluster};

fn files_contain(dir: &Path, needle: &[u8]) -> bool {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return false;
    };
    rd.flatten().any(|e| {
        let p = e.path();
        if p.is_dir() {
            files_contain(&p, needle)
        } else {
            std::fs::read(&p)
                .map(|b| b.windows(needle.len()).any(|w| w == needle))
                .unwrap_or(false)
        }
    })
}

fn rudder(args: &[&str]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_rudder"))
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "{args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn secrets_are_unreadable_in_the_data_dir_and_keys_rotate() {
    let mut c = Cluster::start_with(Backend::Redb, &["--secrets-encryption"]);
    let data = c.dir.path().join("data");
    // Value as stored: the base64 kubectl sends in `data`.
    c.ok(&[
        "create",
        "secret",
        "generic",
        "s1",
        "--from-literal=password=correct-horse-battery-staple",
    ]);
    c.ok(&[
        "create",
        "configmap",
        "c1",
        "--from-literal=note=plainly-visible-configmap-value",
    ]);
    assert_eq!(
        c.ok(&["get", "secret", "s1", "-o", "jsonpath={.data.password}"]),
        "Y29ycmVjdC1ob3JzZS1iYXR0ZXJ5LXN0YXBsZQ=="
    );
    // The scan finds what is not encrypted (ConfigMaps are not configured)…
    assert!(files_contain(&data, b"plainly-visible-configmap-value"));
    // …and not the Secret, neither its value nor its name's object.
    assert!(!files_contain(
        &data,
        b"Y29ycmVjdC1ob3JzZS1iYXR0ZXJ5LXN0YXBsZQ=="
    ));
    assert!(files_contain(&data, b"k8s:enc:aescbc:v1:aescbckey-"));

    let d = data.to_str().unwrap();
    let status = rudder(&["secrets-encrypt", "status", "-d", d]);
    assert!(status.contains("Encryption Status: Enabled"), "{status}");
    let first_key = status
        .lines()
        .find(|l| l.trim_start().starts_with('*'))
        .and_then(|l| l.split_whitespace().last())
        .unwrap_or_else(|| panic!("{status}"))
        .to_string();
    // Rotation: a new first key; the server re-encrypts at its next start.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let out = rudder(&["secrets-encrypt", "rotate-keys", "-d", d]);
    assert!(out.contains("added key"), "{out}");
    let status = rudder(&["secrets-encrypt", "status", "-d", d]);
    let new_key = status
        .lines()
        .find(|l| l.trim_start().starts_with('*'))
        .and_then(|l| l.split_whitespace().last())
        .unwrap_or_default()
        .to_string();
    assert_ne!(new_key, first_key, "{status}");
    assert!(
        status.contains(&first_key),
        "the old key still decrypts: {status}"
    );
    c.restart();
    let marker = format!("k8s:enc:aescbc:v1:{new_key}:");
    support::wait_for_within(
        "the secret re-encrypted with the new key",
        std::time::Duration::from_secs(20),
        || files_contain(&data, marker.as_bytes()).then_some(()),
    );
    assert_eq!(
        c.ok(&["get", "secret", "s1", "-o", "jsonpath={.data.password}"]),
        "Y29ycmVjdC1ob3JzZS1iYXR0ZXJ5LXN0YXBsZQ=="
    );
    // Secrets written after the rotation use the new key too, and read back.
    c.ok(&["create", "secret", "generic", "s2", "--from-literal=k=v2"]);
    assert_eq!(
        c.ok(&["get", "secret", "s2", "-o", "jsonpath={.data.k}"]),
        "djI="
    );
}

#[test]
fn a_bad_encryption_config_stops_the_server_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("enc.yaml");
    std::fs::write(
        &cfg,
        "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n- resources: [secrets]\n  providers:\n  - aesgcm:\n      keys:\n      - name: k\n        secret: dG9vLXNob3J0\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_rudder"))
        .args(["server", "--disable-agent", "--data-dir"])
        .arg(dir.path().join("data"))
        .arg("--encryption-provider-config")
        .arg(&cfg)
        .args(["--https-listen-port", "0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("resources[0].providers[0].aesgcm.keys[0].secret") && err.contains("enc.yaml"),
        "{err}"
    );
}
