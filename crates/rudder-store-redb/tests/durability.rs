//! Crash safety: every write the store acknowledged is present after `kill -9`, and the file
//! reopens without corruption. The writer runs in a child process (this same test binary,
//! re-executed into `kill9_child_writer`), so the kill is a real SIGKILL mid-load.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use rudder_store::{Store, StoreError, WriteOptions};
use rudder_store_redb::{RedbOptions, RedbStore};

const CHILD_ENV: &str = "RUDDER_KILL9_DIR";

/// Not a test on its own: the child half of `acknowledged_writes_survive_kill_9`. It writes
/// until killed and prints one `ACK <key> <version> <revision>` line per acknowledged write.
#[test]
fn kill9_child_writer() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let cycle: u32 = std::env::var("RUDDER_KILL9_CYCLE").map_or(0, |c| c.parse().unwrap_or(0));
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async move {
        let store = RedbStore::open(format!("{dir}/state.redb"), options(cycle))
            .await
            .unwrap();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
        for w in 0..16 {
            let store = store.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                for i in 0.. {
                    let key = format!("/registry/configmaps/c{cycle}/w{w}-{i}");
                    let rev = store
                        .create(&key, Bytes::from("0"), WriteOptions::default())
                        .await
                        .unwrap();
                    tx.send(format!("ACK {key} 0 {rev}")).unwrap();
                    let mut rev = rev;
                    for version in 1..3 {
                        rev = store
                            .update(
                                &key,
                                Bytes::from(version.to_string()),
                                rev,
                                WriteOptions::default(),
                            )
                            .await
                            .unwrap();
                        tx.send(format!("ACK {key} {version} {rev}")).unwrap();
                    }
                }
            });
        }
        let mut out = std::io::stdout().lock();
        while let Some(line) = rx.recv().await {
            writeln!(out, "{line}").unwrap();
            out.flush().unwrap();
        }
    });
}

/// Odd cycles use a tiny write-ahead log and frequent checkpoints, so kills also land while the
/// log wraps around and while redb commits durably; even cycles kill between checkpoints, so
/// recovery replays the log.
fn options(cycle: u32) -> RedbOptions {
    if cycle % 2 == 1 {
        RedbOptions {
            wal_size: 256 << 10,
            checkpoint_interval: Duration::from_millis(50),
            ..RedbOptions::default()
        }
    } else {
        RedbOptions {
            checkpoint_interval: Duration::from_secs(3600),
            ..RedbOptions::default()
        }
    }
}

#[test]
fn acknowledged_writes_survive_kill_9() {
    if std::env::var(CHILD_ENV).is_ok() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    // key -> (highest acknowledged version, its revision)
    let mut acked: HashMap<String, (u32, i64)> = HashMap::new();
    for cycle in 0..4u32 {
        let mut child = Command::new(&exe)
            .args([
                "kill9_child_writer",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, dir.path())
            .env("RUDDER_KILL9_CYCLE", cycle.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut lines = Vec::new();
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if line.starts_with("ACK ") {
                    lines.push(line);
                }
            }
            lines
        });
        // Let the writers get going, then kill without warning at a cycle-dependent moment.
        let deadline = Instant::now() + Duration::from_secs(30);
        std::thread::sleep(Duration::from_millis(700 + 400 * cycle as u64));
        while Instant::now() < deadline && !dir.path().join("state.redb").exists() {
            std::thread::sleep(Duration::from_millis(50));
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let lines = reader.join().unwrap();
        assert!(
            lines.len() > 50,
            "cycle {cycle}: the writer acknowledged only {} writes",
            lines.len()
        );
        for line in lines {
            let parts: Vec<_> = line.split(' ').collect();
            let (key, version, rev) = (
                parts[1].to_string(),
                parts[2].parse::<u32>().unwrap(),
                parts[3].parse::<i64>().unwrap(),
            );
            let slot = acked.entry(key).or_insert((version, rev));
            if version >= slot.0 {
                *slot = (version, rev);
            }
        }
        verify(dir.path(), &acked, cycle);
    }
}

fn verify(dir: &std::path::Path, acked: &HashMap<String, (u32, i64)>, cycle: u32) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store = RedbStore::open(dir.join("state.redb"), options(cycle))
            .await
            .unwrap();
        let current = store.current_revision().await.unwrap();
        for (key, (version, rev)) in acked {
            let kv = store
                .get(key, None)
                .await
                .unwrap()
                .0
                .unwrap_or_else(|| panic!("acknowledged key {key} lost"));
            let stored: u32 = std::str::from_utf8(&kv.value).unwrap().parse().unwrap();
            assert!(
                stored >= *version,
                "{key}: acknowledged version {version}, found {stored}"
            );
            assert!(
                kv.mod_revision >= *rev,
                "{key}: acknowledged revision {rev}, found {}",
                kv.mod_revision
            );
            assert!(current >= *rev);
        }
        // History is intact too: a watch replays from the start with no gap.
        let mut w = store.watch("/registry/", 1).await.unwrap();
        let mut last = 1;
        while last < current {
            let ev = tokio::time::timeout(Duration::from_secs(10), w.next())
                .await
                .unwrap()
                .unwrap()
                .unwrap();
            assert_eq!(ev.revision(), last + 1);
            last = ev.revision();
        }
        // And the store still takes writes.
        let r = store
            .create(
                "/registry/after-crash",
                Bytes::from("x"),
                WriteOptions::default(),
            )
            .await;
        match r {
            Ok(rev) => assert_eq!(rev, current + 1),
            Err(StoreError::AlreadyExists { .. }) => {}
            Err(e) => panic!("{e}"),
        }
        store.close().await;
    });
}
