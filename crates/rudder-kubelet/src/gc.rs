//! Container, sandbox and image garbage collection (upstream's `kubeGenericRuntimeManager`
//! GC and image manager): dead sandboxes of live pods that a newer sandbox replaced go, and
//! when the image filesystem passes 85 % use, unused images are removed (least recently
//! created first) until it is under 80 %. Dead containers beyond one per container name are
//! pruned by the pod workers when they start a new instance.

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Duration;

use crate::cri::{api as cri, labels, Cri};

pub const IMAGE_GC_HIGH_PERCENT: u64 = 85;
pub const IMAGE_GC_LOW_PERCENT: u64 = 80;

/// Sandboxes that are not ready, hold no container and are not their pod's newest: removable.
pub fn dead_sandboxes(sandboxes: &[cri::PodSandbox], containers: &[cri::Container]) -> Vec<String> {
    let used: HashSet<&str> = containers
        .iter()
        .map(|c| c.pod_sandbox_id.as_str())
        .collect();
    let mut out = Vec::new();
    for s in sandboxes {
        if s.state == cri::PodSandboxState::SandboxReady as i32 || used.contains(s.id.as_str()) {
            continue;
        }
        let uid = s.labels.get(labels::POD_UID);
        let newer = sandboxes.iter().any(|o| {
            o.id != s.id && o.labels.get(labels::POD_UID) == uid && o.created_at > s.created_at
        });
        if newer {
            out.push(s.id.clone());
        }
    }
    out
}

/// Images to delete (oldest first is not known to CRI; smallest-first is not upstream:
/// this takes them in list order) to free `need` bytes, never one in use or the pause image.
pub fn images_to_free(
    images: &[cri::Image],
    in_use: &HashSet<String>,
    pinned: &str,
    need: u64,
) -> Vec<String> {
    let mut freed = 0u64;
    let mut out = Vec::new();
    for img in images {
        if freed >= need {
            break;
        }
        let used = in_use.contains(&img.id)
            || img
                .repo_tags
                .iter()
                .any(|t| in_use.contains(t) || t == pinned)
            || img.pinned;
        if used {
            continue;
        }
        freed += img.size;
        out.push(img.id.clone());
    }
    out
}

/// Upstream's container log manager defaults: rotate at 10 MiB, keep 5 files per container.
pub const LOG_MAX_BYTES: u64 = 10 << 20;
pub const LOG_MAX_FILES: usize = 5;

/// Rotates running containers' CRI logs: the file is renamed with a timestamp suffix, the
/// runtime reopens it (ReopenContainerLog), and the oldest rotated files beyond the limit go.
pub async fn rotate_logs(cri: &Cri, containers: &[cri::Container]) {
    for c in containers
        .iter()
        .filter(|c| c.state == cri::ContainerState::ContainerRunning as i32)
    {
        let Ok(st) = cri.container_status(&c.id).await else {
            continue;
        };
        let path = PathBuf::from(&st.log_path);
        if st.log_path.is_empty()
            || std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0) < LOG_MAX_BYTES
        {
            continue;
        }
        let stamp = jiff::Timestamp::now().strftime("%Y%m%d-%H%M%S").to_string();
        let rotated = PathBuf::from(format!("{}.{stamp}", st.log_path));
        if std::fs::rename(&path, &rotated).is_err() {
            continue;
        }
        if let Err(e) = cri
            .runtime()
            .reopen_container_log(cri::ReopenContainerLogRequest {
                container_id: c.id.clone(),
            })
            .await
        {
            // The runtime could not reopen: put the file back so logging goes on.
            let _ = std::fs::rename(&rotated, &path);
            tracing::warn!(container = %c.id, error = %e.message(), "log rotation failed");
            continue;
        }
        if let (Some(dir), Some(name)) = (path.parent(), path.file_name().and_then(|n| n.to_str()))
        {
            let mut old: Vec<PathBuf> = std::fs::read_dir(dir)
                .map(|rd| {
                    rd.flatten()
                        .map(|e| e.path())
                        .filter(|p| {
                            p.file_name()
                                .and_then(|n| n.to_str())
                                .is_some_and(|n| n.starts_with(&format!("{name}.")))
                        })
                        .collect()
                })
                .unwrap_or_default();
            old.sort();
            let excess = old.len().saturating_sub(LOG_MAX_FILES - 1);
            for p in old.into_iter().take(excess) {
                let _ = std::fs::remove_file(p);
            }
        }
    }
}

pub async fn run(cri: Cri, imagefs: PathBuf, pause_image: String) {
    // Log rotation is checked every 10 s (upstream's monitor period); the rest every minute.
    let mut tick = tokio::time::interval(Duration::from_secs(10));
    let mut round = 0u32;
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let (Ok(sandboxes), Ok(containers)) =
            (cri.list_sandboxes().await, cri.list_containers().await)
        else {
            continue;
        };
        rotate_logs(&cri, &containers).await;
        round = round.wrapping_add(1);
        if round % 6 != 1 {
            continue;
        }
        for id in dead_sandboxes(&sandboxes, &containers) {
            let _ = cri
                .runtime()
                .remove_pod_sandbox(cri::RemovePodSandboxRequest { pod_sandbox_id: id })
                .await;
        }
        let Some((total, avail)) = crate::config::statvfs(&imagefs) else {
            continue;
        };
        let Some(need) = image_bytes_to_free(total, avail) else {
            continue;
        };
        tracing::info!(
            need,
            "image filesystem above {IMAGE_GC_HIGH_PERCENT}%: removing unused images"
        );
        free_unused_images(&cri, &containers, &pause_image, need).await;
    }
}

/// Upstream's image GC policy: once the image filesystem's usage reaches the high threshold,
/// free enough to get back to the low one (`capacity * (100 - low) / 100 - available`).
pub fn image_bytes_to_free(capacity: u64, available: u64) -> Option<u64> {
    if capacity == 0 {
        return None;
    }
    let usage_percent = 100 - available * 100 / capacity;
    if usage_percent < IMAGE_GC_HIGH_PERCENT {
        return None;
    }
    Some((capacity * (100 - IMAGE_GC_LOW_PERCENT) / 100).saturating_sub(available))
}

/// Removes images no container uses (never the pause image) until `need` bytes are freed;
/// returns how many bytes the removed images held.
pub async fn free_unused_images(
    cri: &Cri,
    containers: &[cri::Container],
    pause_image: &str,
    need: u64,
) -> u64 {
    let in_use: HashSet<String> = containers
        .iter()
        .flat_map(|c| {
            [
                c.image_ref.clone(),
                c.image
                    .as_ref()
                    .map(|i| i.image.clone())
                    .unwrap_or_default(),
            ]
        })
        .collect();
    let Ok(images) = cri
        .images()
        .list_images(cri::ListImagesRequest { filter: None })
        .await
    else {
        return 0;
    };
    let images = images.into_inner().images;
    let mut freed = 0;
    for id in images_to_free(&images, &in_use, pause_image, need) {
        tracing::info!(image = %id, "removing unused image");
        let removed = cri
            .images()
            .remove_image(cri::RemoveImageRequest {
                image: Some(cri::ImageSpec {
                    image: id.clone(),
                    ..Default::default()
                }),
            })
            .await;
        if removed.is_ok() {
            freed += images
                .iter()
                .find(|i| i.id == id)
                .map(|i| i.size)
                .unwrap_or(0);
        }
    }
    freed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sandbox(id: &str, uid: &str, ready: bool, created: i64) -> cri::PodSandbox {
        cri::PodSandbox {
            id: id.into(),
            state: if ready {
                cri::PodSandboxState::SandboxReady
            } else {
                cri::PodSandboxState::SandboxNotready
            } as i32,
            created_at: created,
            labels: [(labels::POD_UID.to_string(), uid.to_string())]
                .into_iter()
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn only_replaced_empty_sandboxes_go() {
        let s = vec![
            sandbox("old", "a", false, 1),
            sandbox("new", "a", true, 2),
            sandbox("last-of-b", "b", false, 1),
            sandbox("old-with-container", "c", false, 1),
            sandbox("new-c", "c", true, 2),
        ];
        let c = vec![cri::Container {
            pod_sandbox_id: "old-with-container".into(),
            ..Default::default()
        }];
        assert_eq!(dead_sandboxes(&s, &c), ["old"]);
    }

    #[test]
    fn image_gc_starts_at_the_high_threshold_and_frees_down_to_the_low_one() {
        // 84 % used: below upstream's 85 % high threshold.
        assert_eq!(image_bytes_to_free(100, 16), None);
        // 85 % used: free down to 80 % (5 of 100 bytes).
        assert_eq!(image_bytes_to_free(100, 15), Some(5));
        // A full disk (the pressure case): 20 % of it.
        assert_eq!(image_bytes_to_free(1000, 0), Some(200));
        assert_eq!(image_bytes_to_free(0, 0), None);
    }

    #[test]
    fn images_in_use_or_pinned_stay() {
        let img = |id: &str, tag: &str, size| cri::Image {
            id: id.into(),
            repo_tags: vec![tag.into()],
            size,
            ..Default::default()
        };
        let images = vec![
            img("1", "pause:1", 10),
            img("2", "busy:1", 10),
            img("3", "web:1", 10),
            img("4", "x:1", 10),
        ];
        let in_use: HashSet<String> = ["web:1".to_string()].into_iter().collect();
        assert_eq!(images_to_free(&images, &in_use, "pause:1", 15), ["2", "4"]);
    }
}
