//! Pod volumes on the node (`<agent>/pods/<uid>/volumes/<plugin>/<name>`, as upstream's
//! `/var/lib/kubelet/pods`): emptyDir, hostPath, configMap, secret, downwardAPI, projected (with
//! service-account tokens from TokenRequest) and persistentVolumeClaim on local/hostPath PVs.
//! API-backed volumes are written with upstream's atomic writer (`..data` symlink swap), so a
//! container never sees half an update.

use std::collections::{BTreeMap, HashMap};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use k8s_openapi::api::core::v1::{
    ConfigMap, DownwardAPIVolumeFile, KeyToPath, PersistentVolume, PersistentVolumeClaim, Pod,
    Secret, ServiceAccount, Volume,
};
use kube::api::{Api, PostParams};

use super::env::{field_value, resource_value};

#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    #[error("configmap {0:?} not found")]
    ConfigMapMissing(String),
    #[error("secret {0:?} not found")]
    SecretMissing(String),
    #[error("configmap references non-existent config key: {0}")]
    ConfigMapKey(String),
    #[error("references non-existent secret key: {0}")]
    SecretKey(String),
    #[error("persistentvolumeclaim {0:?} not found")]
    ClaimMissing(String),
    #[error("persistentvolumeclaim {0:?} is not bound")]
    ClaimUnbound(String),
    #[error("volume {volume:?}: persistent volume {pv:?} is neither local nor hostPath, which this node cannot mount")]
    UnsupportedPv { volume: String, pv: String },
    #[error("hostPath type check failed: {path} is not a {kind}")]
    HostPathType { path: String, kind: String },
    #[error("volume {0:?} has a type this node does not support")]
    Unsupported(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Api(#[from] kube::Error),
    #[error("{0}")]
    Env(#[from] super::env::EnvError),
}

/// Where a pod's volumes are on the host, by volume name.
#[derive(Clone, Debug, Default)]
pub struct Mounted {
    pub paths: HashMap<String, PathBuf>,
}

/// Service-account tokens the kubelet holds per (pod uid, volume, path): refreshed when 80 %
/// of their life has passed or after 24 h (upstream's token manager).
/// (pod uid, volume, path).
type TokenKey = (String, String, String);

#[derive(Default)]
pub struct TokenCache {
    tokens: Mutex<HashMap<TokenKey, (String, SystemTime, SystemTime)>>,
}

impl TokenCache {
    pub fn forget_pod(&self, uid: &str) {
        if let Ok(mut t) = self.tokens.lock() {
            t.retain(|k, _| k.0 != uid);
        }
    }
}

pub struct Ctx<'a> {
    pub client: &'a kube::Client,
    pub pod_dir: PathBuf,
    pub node_name: &'a str,
    pub host_ip: &'a str,
    pub allocatable: &'a BTreeMap<String, String>,
    pub tokens: &'a TokenCache,
}

fn plugin_dir(pod_dir: &Path, plugin: &str, name: &str) -> PathBuf {
    pod_dir
        .join("volumes")
        .join(format!("kubernetes.io~{plugin}"))
        .join(name)
}

/// One file of an API-backed volume: relative path, content, mode.
type Payload = BTreeMap<String, (Vec<u8>, u32)>;

fn key_items(
    data: &BTreeMap<String, Vec<u8>>,
    items: Option<&Vec<KeyToPath>>,
    default_mode: u32,
    missing: impl Fn(&str) -> VolumeError,
    optional: bool,
) -> Result<Payload, VolumeError> {
    let mut out = Payload::new();
    match items {
        Some(items) if !items.is_empty() => {
            for it in items {
                match data.get(&it.key) {
                    Some(v) => {
                        let mode = it.mode.map(|m| m as u32).unwrap_or(default_mode);
                        out.insert(it.path.clone(), (v.clone(), mode));
                    }
                    None if optional => {}
                    None => return Err(missing(&it.key)),
                }
            }
        }
        _ => {
            for (k, v) in data {
                out.insert(k.clone(), (v.clone(), default_mode));
            }
        }
    }
    Ok(out)
}

fn configmap_data(cm: &ConfigMap) -> BTreeMap<String, Vec<u8>> {
    let mut d: BTreeMap<String, Vec<u8>> = cm
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.clone().into_bytes()))
        .collect();
    for (k, v) in cm.binary_data.iter().flatten() {
        d.insert(k.clone(), v.0.clone());
    }
    d
}

fn secret_data(s: &Secret) -> BTreeMap<String, Vec<u8>> {
    s.data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.0.clone()))
        .collect()
}

/// Upstream's AtomicWriter: the payload goes into a fresh timestamped directory, `..data`
/// is switched to it with one rename, and the visible names are symlinks through `..data`.
/// Unchanged payloads are not rewritten.
pub fn write_atomic(dir: &Path, payload: &Payload) -> std::io::Result<bool> {
    std::fs::create_dir_all(dir)?;
    let data_link = dir.join("..data");
    if let Ok(current) = std::fs::read_link(&data_link) {
        let cur = dir.join(current);
        if payload_matches(&cur, payload) && visible_links_match(dir, payload) {
            return Ok(false);
        }
    }
    let stamp = jiff::Timestamp::now()
        .strftime("%Y_%m_%d_%H_%M_%S")
        .to_string();
    let ts_name = format!("..{stamp}.{:09}", fastrand_u32());
    let ts_dir = dir.join(&ts_name);
    std::fs::create_dir_all(&ts_dir)?;
    std::fs::set_permissions(&ts_dir, std::fs::Permissions::from_mode(0o755))?;
    for (path, (content, mode)) in payload {
        let p = ts_dir.join(path);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&p, content)?;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(*mode & 0o777))?;
    }
    let old = std::fs::read_link(&data_link).ok();
    let tmp = dir.join("..data_tmp");
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(&ts_name, &tmp)?;
    std::fs::rename(&tmp, &data_link)?;
    // Top-level names point through ..data; names no longer in the payload go.
    let tops: std::collections::BTreeSet<String> = payload
        .keys()
        .filter_map(|p| p.split('/').next().map(str::to_string))
        .collect();
    for top in &tops {
        let link = dir.join(top);
        if std::fs::read_link(&link).is_err() {
            let _ = std::fs::remove_file(&link);
            std::os::unix::fs::symlink(format!("..data/{top}"), &link)?;
        }
    }
    for entry in std::fs::read_dir(dir)?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("..") {
            continue;
        }
        if !tops.contains(&name) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
    if let Some(old) = old {
        if old != Path::new(&ts_name) {
            let _ = std::fs::remove_dir_all(dir.join(old));
        }
    }
    Ok(true)
}

fn fastrand_u32() -> u32 {
    let n = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    n ^ std::process::id().rotate_left(16)
}

fn payload_matches(dir: &Path, payload: &Payload) -> bool {
    let mut count = 0;
    for (path, (content, mode)) in payload {
        let p = dir.join(path);
        match (std::fs::read(&p), std::fs::metadata(&p)) {
            (Ok(c), Ok(m)) if &c == content && m.permissions().mode() & 0o777 == mode & 0o777 => {
                count += 1
            }
            _ => return false,
        }
    }
    count == payload.len() && count_files(dir) == payload.len()
}

fn count_files(dir: &Path) -> usize {
    let mut n = 0;
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            match e.file_type() {
                Ok(t) if t.is_dir() => n += count_files(&e.path()),
                Ok(_) => n += 1,
                Err(_) => {}
            }
        }
    }
    n
}

fn visible_links_match(dir: &Path, payload: &Payload) -> bool {
    payload.keys().all(|p| {
        let top = p.split('/').next().unwrap_or(p);
        std::fs::read_link(dir.join(top)).is_ok()
    })
}

fn downward_items(
    ctx: &Ctx<'_>,
    pod: &Pod,
    items: &[DownwardAPIVolumeFile],
    default_mode: u32,
) -> Result<Payload, VolumeError> {
    let mut out = Payload::new();
    for it in items {
        let mode = it.mode.map(|m| m as u32).unwrap_or(default_mode);
        let value = if let Some(f) = &it.field_ref {
            field_value(pod, &f.field_path, ctx.node_name, ctx.host_ip)?
        } else if let Some(r) = &it.resource_field_ref {
            let spec = pod.spec.as_ref();
            let c = spec.and_then(|s| {
                s.containers
                    .iter()
                    .find(|c| Some(c.name.as_str()) == r.container_name.as_deref())
                    .or(s.containers.first())
            });
            match c {
                Some(c) => resource_value(
                    c,
                    &r.resource,
                    r.divisor.as_ref().map(|d| d.0.as_str()),
                    ctx.allocatable,
                )?,
                None => String::new(),
            }
        } else {
            String::new()
        };
        out.insert(it.path.clone(), (value.into_bytes(), mode));
    }
    Ok(out)
}

async fn service_account_token(
    ctx: &Ctx<'_>,
    pod: &Pod,
    volume: &str,
    path: &str,
    audience: Option<&str>,
    expiration: i64,
) -> Result<String, VolumeError> {
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let key = (uid.clone(), volume.to_string(), path.to_string());
    let now = SystemTime::now();
    if let Ok(t) = ctx.tokens.tokens.lock() {
        if let Some((tok, issued, exp)) = t.get(&key) {
            let life = exp.duration_since(*issued).unwrap_or_default();
            let refresh_at = *issued + life.mul_f64(0.8).min(Duration::from_secs(24 * 3600));
            if now < refresh_at {
                return Ok(tok.clone());
            }
        }
    }
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let sa = pod
        .spec
        .as_ref()
        .and_then(|s| s.service_account_name.clone())
        .unwrap_or_else(|| "default".into());
    let api: Api<ServiceAccount> = Api::namespaced(ctx.client.clone(), ns);
    // JSON rather than the typed TokenRequest: its required fields differ between API versions.
    let mut spec = serde_json::json!({
        "expirationSeconds": expiration,
        "boundObjectRef": {"apiVersion": "v1", "kind": "Pod",
            "name": pod.metadata.name, "uid": pod.metadata.uid},
    });
    if let Some(a) = audience.filter(|a| !a.is_empty()) {
        spec["audiences"] = serde_json::json!([a]);
    }
    let body = serde_json::json!({
        "apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec,
    });
    let resp: serde_json::Value = api
        .create_subresource("token", &sa, &PostParams::default(), &body)
        .await?;
    let token = resp["status"]["token"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let exp = resp["status"]["expirationTimestamp"]
        .as_str()
        .and_then(|t| t.parse::<jiff::Timestamp>().ok())
        .map(|t| SystemTime::UNIX_EPOCH + Duration::from_secs(t.as_second().max(0) as u64))
        .unwrap_or(now + Duration::from_secs(expiration as u64));
    if let Ok(mut t) = ctx.tokens.tokens.lock() {
        t.insert(key, (token.clone(), now, exp));
    }
    Ok(token)
}

fn mode_of(m: Option<i32>, default: u32) -> u32 {
    m.map(|m| m as u32).unwrap_or(default)
}

async fn projected(ctx: &Ctx<'_>, pod: &Pod, v: &Volume) -> Result<Payload, VolumeError> {
    let Some(p) = v.projected.as_ref() else {
        return Ok(Payload::new());
    };
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let default_mode = mode_of(p.default_mode, 0o644);
    let mut out = Payload::new();
    for src in p.sources.iter().flatten() {
        if let Some(t) = &src.service_account_token {
            let token = service_account_token(
                ctx,
                pod,
                &v.name,
                &t.path,
                t.audience.as_deref(),
                t.expiration_seconds.unwrap_or(3600),
            )
            .await?;
            out.insert(t.path.clone(), (token.into_bytes(), default_mode));
        }
        if let Some(c) = &src.config_map {
            let optional = c.optional.unwrap_or(false);
            let api: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), ns);
            match api.get_opt(&c.name).await? {
                Some(cm) => out.extend(key_items(
                    &configmap_data(&cm),
                    c.items.as_ref(),
                    default_mode,
                    |k| VolumeError::ConfigMapKey(k.to_string()),
                    optional,
                )?),
                None if optional => {}
                None => return Err(VolumeError::ConfigMapMissing(c.name.clone())),
            }
        }
        if let Some(s) = &src.secret {
            let optional = s.optional.unwrap_or(false);
            let api: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
            match api.get_opt(&s.name).await? {
                Some(sec) => out.extend(key_items(
                    &secret_data(&sec),
                    s.items.as_ref(),
                    default_mode,
                    |k| VolumeError::SecretKey(k.to_string()),
                    optional,
                )?),
                None if optional => {}
                None => return Err(VolumeError::SecretMissing(s.name.clone())),
            }
        }
        if let Some(d) = &src.downward_api {
            out.extend(downward_items(
                ctx,
                pod,
                d.items.as_deref().unwrap_or_default(),
                default_mode,
            )?);
        }
    }
    Ok(out)
}

fn check_host_path(path: &Path, kind: &str) -> Result<(), VolumeError> {
    use std::os::unix::fs::FileTypeExt;
    let fail = || VolumeError::HostPathType {
        path: path.display().to_string(),
        kind: kind.to_string(),
    };
    match kind {
        "" => Ok(()),
        "DirectoryOrCreate" => {
            if !path.exists() {
                std::fs::create_dir_all(path)?;
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))?;
            }
            Ok(())
        }
        "FileOrCreate" => {
            if !path.exists() {
                if let Some(p) = path.parent() {
                    std::fs::create_dir_all(p)?;
                }
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)?;
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644))?;
            }
            Ok(())
        }
        _ => {
            let m = std::fs::metadata(path).map_err(|_| fail())?;
            let t = m.file_type();
            let ok = match kind {
                "Directory" => t.is_dir(),
                "File" => t.is_file(),
                "Socket" => t.is_socket(),
                "CharDevice" => t.is_char_device(),
                "BlockDevice" => t.is_block_device(),
                _ => true,
            };
            if ok {
                Ok(())
            } else {
                Err(fail())
            }
        }
    }
}

fn mount_tmpfs(path: &Path, size: Option<u64>) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    if is_mount_point(path) {
        return Ok(());
    }
    let target = std::ffi::CString::new(path.as_os_str().as_bytes())?;
    let opts = match size {
        Some(s) => format!("size={s}"),
        None => String::new(),
    };
    let data = std::ffi::CString::new(opts)?;
    let fstype = std::ffi::CString::new("tmpfs")?;
    // SAFETY: valid NUL-terminated strings; tmpfs needs no source.
    let rc = unsafe {
        libc::mount(
            fstype.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            0,
            data.as_ptr() as *const libc::c_void,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

pub fn is_mount_point(path: &Path) -> bool {
    let Ok(mounts) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let p = path.to_string_lossy();
    mounts
        .lines()
        .any(|l| l.split_whitespace().nth(4) == Some(p.as_ref()))
}

/// Unmounts whatever the kubelet mounted under a pod's directory (memory-backed emptyDirs),
/// then removes the directory.
pub fn teardown(pod_dir: &Path) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    if let Ok(mounts) = std::fs::read_to_string("/proc/self/mountinfo") {
        let prefix = pod_dir.to_string_lossy().to_string();
        let mut targets: Vec<String> = mounts
            .lines()
            .filter_map(|l| l.split_whitespace().nth(4).map(str::to_string))
            .filter(|t| t.starts_with(&prefix))
            .collect();
        targets.sort_by_key(|t| std::cmp::Reverse(t.len()));
        for t in targets {
            if let Ok(c) = std::ffi::CString::new(Path::new(&t).as_os_str().as_bytes()) {
                // SAFETY: valid NUL-terminated path.
                unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
            }
        }
    }
    match std::fs::remove_dir_all(pod_dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Sets up (or refreshes) every volume of the pod; returns their host paths.
pub async fn setup(ctx: &Ctx<'_>, pod: &Pod) -> Result<Mounted, VolumeError> {
    let mut out = Mounted::default();
    let fs_group = pod
        .spec
        .as_ref()
        .and_then(|s| s.security_context.as_ref())
        .and_then(|sc| sc.fs_group)
        .and_then(|g| u32::try_from(g).ok());
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    for v in pod
        .spec
        .as_ref()
        .and_then(|s| s.volumes.as_ref())
        .into_iter()
        .flatten()
    {
        let path = if let Some(e) = &v.empty_dir {
            let dir = plugin_dir(&ctx.pod_dir, "empty-dir", &v.name);
            std::fs::create_dir_all(&dir)?;
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777))?;
            if e.medium.as_deref() == Some("Memory") {
                let size = e
                    .size_limit
                    .as_ref()
                    .and_then(|q| rudder_api::quantity::parse(&q.0).ok())
                    .map(|q| q.value().max(0) as u64);
                mount_tmpfs(&dir, size)?;
            }
            dir
        } else if let Some(h) = &v.host_path {
            let p = PathBuf::from(&h.path);
            check_host_path(&p, h.type_.as_deref().unwrap_or(""))?;
            p
        } else if let Some(c) = &v.config_map {
            let dir = plugin_dir(&ctx.pod_dir, "configmap", &v.name);
            let name = c.name.clone();
            let optional = c.optional.unwrap_or(false);
            let api: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), ns);
            let payload = match api.get_opt(&name).await? {
                Some(cm) => key_items(
                    &configmap_data(&cm),
                    c.items.as_ref(),
                    mode_of(c.default_mode, 0o644),
                    |k| VolumeError::ConfigMapKey(k.to_string()),
                    optional,
                )?,
                None if optional => Payload::new(),
                None => return Err(VolumeError::ConfigMapMissing(name)),
            };
            write_atomic(&dir, &payload)?;
            dir
        } else if let Some(s) = &v.secret {
            let dir = plugin_dir(&ctx.pod_dir, "secret", &v.name);
            let name = s.secret_name.clone().unwrap_or_default();
            let optional = s.optional.unwrap_or(false);
            let api: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
            let payload = match api.get_opt(&name).await? {
                Some(sec) => key_items(
                    &secret_data(&sec),
                    s.items.as_ref(),
                    mode_of(s.default_mode, 0o644),
                    |k| VolumeError::SecretKey(k.to_string()),
                    optional,
                )?,
                None if optional => Payload::new(),
                None => return Err(VolumeError::SecretMissing(name)),
            };
            write_atomic(&dir, &payload)?;
            dir
        } else if let Some(d) = &v.downward_api {
            let dir = plugin_dir(&ctx.pod_dir, "downward-api", &v.name);
            let payload = downward_items(
                ctx,
                pod,
                d.items.as_deref().unwrap_or_default(),
                mode_of(d.default_mode, 0o644),
            )?;
            write_atomic(&dir, &payload)?;
            dir
        } else if v.projected.is_some() {
            let dir = plugin_dir(&ctx.pod_dir, "projected", &v.name);
            let payload = projected(ctx, pod, v).await?;
            write_atomic(&dir, &payload)?;
            dir
        } else if let Some(c) = &v.persistent_volume_claim {
            let claims: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), ns);
            let claim = claims
                .get_opt(&c.claim_name)
                .await?
                .ok_or_else(|| VolumeError::ClaimMissing(c.claim_name.clone()))?;
            let pv_name = claim
                .spec
                .as_ref()
                .and_then(|s| s.volume_name.clone())
                .filter(|n| !n.is_empty())
                .ok_or_else(|| VolumeError::ClaimUnbound(c.claim_name.clone()))?;
            let pvs: Api<PersistentVolume> = Api::all(ctx.client.clone());
            let pv = pvs.get(&pv_name).await?;
            let spec = pv.spec.unwrap_or_default();
            let path = spec
                .local
                .map(|l| l.path)
                .or(spec.host_path.map(|h| h.path))
                .ok_or_else(|| VolumeError::UnsupportedPv {
                    volume: v.name.clone(),
                    pv: pv_name.clone(),
                })?;
            let p = PathBuf::from(path);
            std::fs::create_dir_all(&p)?;
            p
        } else {
            return Err(VolumeError::Unsupported(v.name.clone()));
        };
        if let Some(gid) = fs_group {
            let managed = v.empty_dir.is_some()
                || v.config_map.is_some()
                || v.secret.is_some()
                || v.downward_api.is_some()
                || v.projected.is_some()
                || v.persistent_volume_claim.is_some();
            if managed {
                set_ownership(
                    &path,
                    gid,
                    v.empty_dir.is_some() || v.persistent_volume_claim.is_some(),
                )?;
            }
        }
        out.paths.insert(v.name.clone(), path);
    }
    Ok(out)
}

/// Upstream's `SetVolumeOwnership` for `securityContext.fsGroup`: everything in the volume
/// belongs to the group; writable volumes get group rw and set-gid directories so new files
/// keep the group.
fn set_ownership(root: &Path, gid: u32, writable: bool) -> std::io::Result<()> {
    fn walk(p: &Path, gid: u32, writable: bool) -> std::io::Result<()> {
        let meta = std::fs::symlink_metadata(p)?;
        std::os::unix::fs::lchown(p, None, Some(gid))?;
        if meta.file_type().is_symlink() {
            return Ok(());
        }
        if writable {
            let mode = meta.permissions().mode();
            let extra = if meta.is_dir() { 0o2070 } else { 0o060 };
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode | extra))?;
        }
        if meta.is_dir() {
            for e in std::fs::read_dir(p)?.flatten() {
                walk(&e.path(), gid, writable)?;
            }
        }
        Ok(())
    }
    walk(root, gid, writable)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_writer_swaps_data_and_links() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("vol");
        let mut p = Payload::new();
        p.insert("a".into(), (b"1".to_vec(), 0o644));
        p.insert("sub/b".into(), (b"2".to_vec(), 0o600));
        assert!(write_atomic(&d, &p).unwrap());
        assert_eq!(std::fs::read_to_string(d.join("a")).unwrap(), "1");
        assert_eq!(std::fs::read_to_string(d.join("sub/b")).unwrap(), "2");
        assert_eq!(
            std::fs::read_link(d.join("a")).unwrap(),
            Path::new("..data/a")
        );
        let first = std::fs::read_link(d.join("..data")).unwrap();
        // Unchanged: nothing rewritten.
        assert!(!write_atomic(&d, &p).unwrap());
        assert_eq!(std::fs::read_link(d.join("..data")).unwrap(), first);
        // Changed: a new timestamped dir; a removed key's link goes; the old dir goes.
        let mut q = Payload::new();
        q.insert("a".into(), (b"updated".to_vec(), 0o644));
        assert!(write_atomic(&d, &q).unwrap());
        assert_eq!(std::fs::read_to_string(d.join("a")).unwrap(), "updated");
        assert!(!d.join("sub").exists());
        assert!(!d.join(&first).exists());
        let mode = std::fs::metadata(d.join("a")).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o644);
    }

    #[test]
    fn host_path_types() {
        let dir = tempfile::tempdir().unwrap();
        let made = dir.path().join("made");
        check_host_path(&made, "DirectoryOrCreate").unwrap();
        assert!(made.is_dir());
        check_host_path(&made, "Directory").unwrap();
        let e = check_host_path(&made, "File").unwrap_err();
        assert!(e.to_string().contains("is not a File"), "{e}");
        let f = dir.path().join("f");
        check_host_path(&f, "FileOrCreate").unwrap();
        check_host_path(&f, "File").unwrap();
        assert!(check_host_path(&dir.path().join("none"), "Directory").is_err());
    }
}
