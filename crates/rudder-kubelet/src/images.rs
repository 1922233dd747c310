//! Images without a registry: the pause image built into the binary, and image archives (OCI
//! or docker-archive tarballs) imported into containerd's `k8s.io` namespace, at start from
//! `<data-dir>/agent/images/` and whenever one is added there, as k3s does. Importing goes
//! through `ctr`, which ships with containerd (no maintained Rust crate implements
//! containerd's content/images/snapshot import).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use aws_lc_rs::digest;

pub const PAUSE_IMAGE: &str = "rudder.dev/pause:3.10";
const PAUSE_BINARY: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/pause"));

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("ctr (from the containerd package) is needed to import images: {0}")]
    Ctr(std::io::Error),
    #[error("importing {file}: {message}")]
    Import { file: String, message: String },
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Cri(#[from] crate::cri::CriError),
}

fn sha256_hex(data: &[u8]) -> String {
    digest::digest(&digest::SHA256, data)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn tar_file(
    builder: &mut tar::Builder<Vec<u8>>,
    path: &str,
    data: &[u8],
    mode: u32,
) -> std::io::Result<()> {
    let mut h = tar::Header::new_ustar();
    h.set_size(data.len() as u64);
    h.set_mode(mode);
    h.set_mtime(0);
    h.set_entry_type(tar::EntryType::Regular);
    builder.append_data(&mut h, path, data)
}

/// The pause image as a docker-archive (`docker save` layout: manifest.json, the config, one
/// layer with /pause).
pub fn pause_archive() -> std::io::Result<Vec<u8>> {
    let mut layer = tar::Builder::new(Vec::new());
    tar_file(&mut layer, "pause", PAUSE_BINARY, 0o755)?;
    let layer = layer.into_inner()?;
    let layer_sha = sha256_hex(&layer);
    let config = serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {"Entrypoint": ["/pause"], "WorkingDir": "/"},
        "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{layer_sha}")]},
        "history": [{"created_by": "rudder: the pod sandbox's pause process"}],
    });
    let config = serde_json::to_vec(&config).map_err(std::io::Error::other)?;
    let config_name = format!("{}.json", sha256_hex(&config));
    let manifest = serde_json::json!([{
        "Config": config_name,
        "RepoTags": [PAUSE_IMAGE],
        "Layers": [format!("{layer_sha}/layer.tar")],
    }]);
    let mut out = tar::Builder::new(Vec::new());
    tar_file(&mut out, &format!("{layer_sha}/layer.tar"), &layer, 0o644)?;
    tar_file(&mut out, &config_name, &config, 0o644)?;
    tar_file(
        &mut out,
        "manifest.json",
        &serde_json::to_vec(&manifest).map_err(std::io::Error::other)?,
        0o644,
    )?;
    out.into_inner()
}

/// `ctr images import` of a file (or `-` with `stdin`); returns the image names imported.
async fn ctr_import(
    socket: &Path,
    file: &str,
    stdin: Option<Vec<u8>>,
) -> Result<Vec<String>, ImageError> {
    use tokio::io::AsyncWriteExt;
    let mut cmd = tokio::process::Command::new("ctr");
    cmd.arg("--address")
        .arg(socket)
        .args([
            "--namespace",
            "k8s.io",
            "images",
            "import",
            "--no-unpack=false",
        ])
        .arg(file)
        .stdin(if stdin.is_some() {
            std::process::Stdio::piped()
        } else {
            std::process::Stdio::null()
        })
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().map_err(ImageError::Ctr)?;
    if let (Some(data), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(&data).await?;
        drop(pipe);
    }
    let out = child.wait_with_output().await?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        return Err(ImageError::Import {
            file: file.to_string(),
            message: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    // "unpacking <name> (sha256:…)...done"
    Ok(text
        .lines()
        .filter_map(|l| {
            l.strip_prefix("unpacking ")
                .and_then(|r| r.split(" (").next())
                .map(str::to_string)
        })
        .collect())
}

pub async fn import_archive(socket: &Path, file: &Path) -> Result<Vec<String>, ImageError> {
    ctr_import(socket, &file.display().to_string(), None).await
}

/// Imports the pause image unless the runtime already has it.
pub async fn ensure_pause_image(socket: &Path) -> Result<(), ImageError> {
    let cri = crate::cri::Cri::connect(socket)?;
    let present = cri
        .images()
        .image_status(crate::cri::api::ImageStatusRequest {
            image: Some(crate::cri::api::ImageSpec {
                image: PAUSE_IMAGE.into(),
                ..Default::default()
            }),
            verbose: false,
        })
        .await
        .ok()
        .and_then(|r| r.into_inner().image)
        .is_some();
    if present {
        return Ok(());
    }
    let archive = tokio::task::spawn_blocking(pause_archive)
        .await
        .map_err(|e| ImageError::Io(std::io::Error::other(e)))??;
    let names = ctr_import(socket, "-", Some(archive)).await?;
    tracing::info!(images = ?names, "imported the built-in pause image");
    Ok(())
}

fn is_archive(p: &Path) -> bool {
    let n = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
    !n.starts_with('.')
        && (n.ends_with(".tar")
            || n.ends_with(".tar.gz")
            || n.ends_with(".tgz")
            || n.ends_with(".tar.zst"))
}

/// Imports every archive in `dir` now and each one added or changed later (checked every
/// 5 s), logging what was imported or why it failed.
pub fn spawn_import_dir(socket: PathBuf, dir: PathBuf) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let _ = std::fs::create_dir_all(&dir);
        let mut done: HashMap<PathBuf, (SystemTime, u64)> = HashMap::new();
        loop {
            let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
                .map(|rd| {
                    rd.flatten()
                        .map(|e| e.path())
                        .filter(|p| is_archive(p))
                        .collect()
                })
                .unwrap_or_default();
            files.sort();
            for f in files {
                let Ok(meta) = std::fs::metadata(&f) else {
                    continue;
                };
                let stamp = (
                    meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                    meta.len(),
                );
                if done.get(&f) == Some(&stamp) {
                    continue;
                }
                // A file still being copied changes size between two looks: wait for it.
                tokio::time::sleep(Duration::from_millis(500)).await;
                if std::fs::metadata(&f).map(|m| m.len()).ok() != Some(stamp.1) {
                    continue;
                }
                match import_archive(&socket, &f).await {
                    Ok(names) => {
                        tracing::info!(file = %f.display(), images = ?names, "imported image archive")
                    }
                    Err(e) => {
                        tracing::error!(file = %f.display(), error = %e, "importing image archive failed")
                    }
                }
                done.insert(f, stamp);
            }
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pause_archive_is_a_docker_archive() {
        let a = pause_archive().unwrap();
        let mut ar = tar::Archive::new(a.as_slice());
        let mut names = Vec::new();
        let mut manifest = None;
        for e in ar.entries().unwrap() {
            let mut e = e.unwrap();
            let name = e.path().unwrap().display().to_string();
            if name == "manifest.json" {
                let mut s = String::new();
                std::io::Read::read_to_string(&mut e, &mut s).unwrap();
                manifest = Some(serde_json::from_str::<serde_json::Value>(&s).unwrap());
            }
            names.push(name);
        }
        let m = manifest.unwrap();
        assert_eq!(m[0]["RepoTags"][0], PAUSE_IMAGE);
        assert!(names.contains(&m[0]["Config"].as_str().unwrap().to_string()));
        assert!(names.contains(&m[0]["Layers"][0].as_str().unwrap().to_string()));
        assert!(PAUSE_BINARY.starts_with(b"\x7fELF"));
    }
}
