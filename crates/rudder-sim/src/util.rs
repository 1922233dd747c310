//! Small helpers: Go durations, API timestamps, stable fake IDs, image references.

use std::hash::{Hash, Hasher};
use std::time::Duration;

/// A Go `time.ParseDuration` string (`300ms`, `5s`, `1m30s`, `1.5h`), as annotations carry them.
pub fn parse_duration(s: &str) -> Option<Duration> {
    rudder_component::parse_go_duration(s)
}

/// Runs an API call again (up to 5 times, backing off from 100 ms) when it failed in transport
/// (a pooled connection the server had just closed) or with 429/5xx: a status a kubelet does
/// not get through would leave its pod Pending for good.
pub async fn with_retries<T, F, Fut>(mut call: F) -> Result<T, kube::Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, kube::Error>>,
{
    let mut delay = Duration::from_millis(100);
    let mut attempt = 0;
    loop {
        match call().await {
            Err(e) if attempt < 5 && retriable(&e) => {
                attempt += 1;
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
            r => return r,
        }
    }
}

fn retriable(e: &kube::Error) -> bool {
    match e {
        kube::Error::Api(s) => s.code == 429 || s.code >= 500,
        kube::Error::SerdeError(_) | kube::Error::BuildRequest(_) => false,
        _ => true,
    }
}

/// `metav1.Time` (RFC 3339, seconds).
pub fn time(ts: jiff::Timestamp) -> String {
    ts.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// `metav1.MicroTime` (RFC 3339, microseconds), as Leases carry it.
pub fn micro_time(ts: jiff::Timestamp) -> String {
    ts.strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

pub fn now() -> String {
    time(jiff::Timestamp::now())
}

/// 64 hex digits derived from `parts`: stable fake digests and container IDs.
pub fn hex64(parts: &[&str]) -> String {
    let mut out = String::with_capacity(64);
    for round in 0u64..4 {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        round.hash(&mut h);
        parts.hash(&mut h);
        out.push_str(&format!("{:016x}", h.finish()));
    }
    out
}

/// A UUID-shaped ID derived from `parts` (systemUUID, bootID).
pub fn uuid_like(parts: &[&str]) -> String {
    let h = hex64(parts);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// The image as containerd reports it back (`nginx` → `docker.io/library/nginx:latest`), and
/// its `imageID` (`docker.io/library/nginx@sha256:…`).
pub fn image_refs(image: &str) -> (String, String) {
    let (name, digest) = match image.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (image, None),
    };
    let last = name.rsplit('/').next().unwrap_or(name);
    let (repo, tag) = match last.rsplit_once(':') {
        Some((_, t)) => (&name[..name.len() - t.len() - 1], Some(t)),
        None => (name, None),
    };
    let first = repo.split('/').next().unwrap_or(repo);
    let has_domain =
        repo.contains('/') && (first.contains('.') || first.contains(':') || first == "localhost");
    let full = if has_domain {
        repo.to_string()
    } else if repo.contains('/') {
        format!("docker.io/{repo}")
    } else {
        format!("docker.io/library/{repo}")
    };
    let digest = digest
        .map(str::to_string)
        .unwrap_or_else(|| format!("sha256:{}", hex64(&[&full, tag.unwrap_or("latest")])));
    let shown = match (tag, image.contains('@')) {
        (_, true) => format!("{full}@{digest}"),
        (Some(t), false) => format!("{full}:{t}"),
        (None, false) => format!("{full}:latest"),
    };
    (shown, format!("{full}@{digest}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(parse_duration("5s"), Some(Duration::from_secs(5)));
        assert_eq!(parse_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("300ms"), Some(Duration::from_millis(300)));
        assert_eq!(parse_duration("1.5h"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("0"), Some(Duration::ZERO));
        assert_eq!(parse_duration("5"), None);
        assert_eq!(parse_duration(""), None);
        assert_eq!(parse_duration("5x"), None);
    }

    #[test]
    fn timestamps() {
        let ts: jiff::Timestamp = "2026-01-02T03:04:05.123456789Z".parse().unwrap();
        assert_eq!(time(ts), "2026-01-02T03:04:05Z");
        assert_eq!(micro_time(ts), "2026-01-02T03:04:05.123456Z");
    }

    #[test]
    fn images_as_containerd_reports_them() {
        let (image, id) = image_refs("nginx");
        assert_eq!(image, "docker.io/library/nginx:latest");
        assert!(id.starts_with("docker.io/library/nginx@sha256:") && id.len() == 95);
        assert_eq!(
            image_refs("registry.k8s.io/pause:3.10").0,
            "registry.k8s.io/pause:3.10"
        );
        assert_eq!(image_refs("bitnami/redis:7").0, "docker.io/bitnami/redis:7");
        assert_eq!(
            image_refs("localhost:5000/app").0,
            "localhost:5000/app:latest"
        );
        assert_eq!(
            image_refs("busybox@sha256:abc").1,
            "docker.io/library/busybox@sha256:abc"
        );
    }
}
