//! Node-pressure eviction (upstream's eviction manager): hard thresholds on memory, disk,
//! inodes and process ids, measured every 10 s; under pressure the node reports
//! MemoryPressure/DiskPressure/PIDPressure and pods are evicted one at a time in upstream's order (usage above requests, then lower
//! priority, then larger excess usage).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signal {
    MemoryAvailable,
    NodefsAvailable,
    NodefsInodesFree,
    ImagefsAvailable,
    PidAvailable,
}

impl Signal {
    pub fn name(self) -> &'static str {
        match self {
            Signal::MemoryAvailable => "memory.available",
            Signal::NodefsAvailable => "nodefs.available",
            Signal::NodefsInodesFree => "nodefs.inodesFree",
            Signal::ImagefsAvailable => "imagefs.available",
            Signal::PidAvailable => "pid.available",
        }
    }

    /// The resource named in eviction messages.
    pub fn resource(self) -> &'static str {
        match self {
            Signal::MemoryAvailable => "memory",
            Signal::NodefsInodesFree => "inodes",
            Signal::PidAvailable => "pids",
            _ => "ephemeral-storage",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Quantity {
    Absolute(i64),
    Percent(f64),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Threshold {
    pub signal: Signal,
    pub value: Quantity,
    /// As written (`100Mi`, `10%`), for messages.
    pub text: String,
}

/// Upstream's defaults for `--eviction-hard` on Linux.
pub const DEFAULT_HARD: &str =
    "memory.available<100Mi,nodefs.available<10%,nodefs.inodesFree<5%,imagefs.available<15%";

/// Parses `--eviction-hard` (`signal<quantity` or `signal<N%`, comma separated).
pub fn parse_thresholds(s: &str) -> Result<Vec<Threshold>, String> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (sig, val) = part.split_once('<').ok_or_else(|| {
            format!("invalid eviction threshold {part:?}: expected signal<quantity")
        })?;
        let signal = match sig.trim() {
            "memory.available" => Signal::MemoryAvailable,
            "nodefs.available" => Signal::NodefsAvailable,
            "nodefs.inodesFree" => Signal::NodefsInodesFree,
            "imagefs.available" => Signal::ImagefsAvailable,
            "pid.available" => Signal::PidAvailable,
            other => return Err(format!("unsupported eviction signal {other:?}")),
        };
        let val = val.trim();
        let value = if let Some(p) = val.strip_suffix('%') {
            let p: f64 = p
                .parse()
                .map_err(|_| format!("invalid percentage {val:?} in {part:?}"))?;
            if !(0.0..=100.0).contains(&p) {
                return Err(format!(
                    "eviction percentage threshold {val} must be between 0% and 100%"
                ));
            }
            Quantity::Percent(p / 100.0)
        } else {
            let q = rudder_api::quantity::parse(val)
                .map_err(|e| format!("invalid quantity {val:?} in {part:?}: {e}"))?;
            Quantity::Absolute(q.value())
        };
        out.push(Threshold {
            signal,
            value,
            text: val.to_string(),
        });
    }
    Ok(out)
}

/// One observation of a signal: (available, capacity).
pub type Observation = (i64, i64);

pub fn crossed(t: &Threshold, (available, capacity): Observation) -> bool {
    let limit = match t.value {
        Quantity::Absolute(v) => v,
        Quantity::Percent(p) => (capacity as f64 * p) as i64,
    };
    available < limit
}

fn read_u64(path: &Path) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// The working set of a v1 memory cgroup (usage minus inactive file pages), as cAdvisor and
/// the eviction manager compute it.
pub fn working_set(cgroup_dir: &Path) -> Option<i64> {
    let usage = read_u64(&cgroup_dir.join("memory.usage_in_bytes"))? as i64;
    let stat = std::fs::read_to_string(cgroup_dir.join("memory.stat")).ok()?;
    let inactive = stat
        .lines()
        .find_map(|l| {
            l.strip_prefix("total_inactive_file ")
                .and_then(|v| v.trim().parse::<i64>().ok())
        })
        .unwrap_or(0);
    Some((usage - inactive).max(0))
}

/// The tasks in a v1 pids cgroup and its descendants.
pub fn process_count(cgroup_dir: &Path) -> Option<i64> {
    Some(read_u64(&cgroup_dir.join("pids.current"))? as i64)
}

/// Reads every signal (blocking: run off the async threads).
pub fn observe(memory_capacity: i64, nodefs: &Path, imagefs: &Path) -> Vec<(Signal, Observation)> {
    let mut out = Vec::new();
    if let Some(ws) = working_set(Path::new("/sys/fs/cgroup/memory")) {
        out.push((
            Signal::MemoryAvailable,
            ((memory_capacity - ws).max(0), memory_capacity),
        ));
    }
    for (sig, path) in [
        (Signal::NodefsAvailable, nodefs),
        (Signal::ImagefsAvailable, imagefs),
    ] {
        if let Some((total, avail)) = crate::config::statvfs(path) {
            out.push((sig, (avail as i64, total as i64)));
        }
    }
    if let Some((files, free)) = inodes(nodefs) {
        out.push((Signal::NodefsInodesFree, (free, files)));
    }
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    if let Some(o) = pid_observation(
        &read("/proc/sys/kernel/pid_max"),
        &read("/proc/sys/kernel/threads-max"),
        &read("/proc/loadavg"),
    ) {
        out.push((Signal::PidAvailable, o));
    }
    out
}

/// `pid.available` as upstream's stats provider computes it (`pidlimit.Stats`): the limit is
/// the smaller of `kernel.pid_max` and `kernel.threads-max` (both bound the tasks on the
/// system), the usage the task count `/proc/loadavg` gives (its `running/total` field).
pub fn pid_observation(pid_max: &str, threads_max: &str, loadavg: &str) -> Option<Observation> {
    let limit = [pid_max, threads_max]
        .iter()
        .filter_map(|v| v.trim().parse::<i64>().ok())
        .min()?;
    let tasks: i64 = loadavg
        .split_whitespace()
        .nth(3)?
        .split_once('/')?
        .1
        .parse()
        .ok()?;
    Some(((limit - tasks).max(0), limit))
}

fn inodes(path: &Path) -> Option<(i64, i64)> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: valid path and out-parameter.
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return None;
    }
    Some((st.f_files as i64, st.f_favail as i64))
}

/// What the node conditions show; written by the eviction loop, read by the status loop.
#[derive(Default)]
pub struct Pressure {
    pub memory: AtomicBool,
    pub disk: AtomicBool,
    pub pid: AtomicBool,
}

impl Pressure {
    pub fn memory(&self) -> bool {
        self.memory.load(Ordering::Relaxed)
    }
    pub fn disk(&self) -> bool {
        self.disk.load(Ordering::Relaxed)
    }
    pub fn pid(&self) -> bool {
        self.pid.load(Ordering::Relaxed)
    }
}

/// A pod as the ranking sees it.
#[derive(Clone, Debug)]
pub struct Candidate {
    pub uid: String,
    pub priority: i32,
    pub usage: i64,
    pub request: i64,
}

/// Upstream's `rankMemoryPressure`: pods using more than they requested first, then lower
/// priority, then the larger excess over the request.
pub fn rank(mut pods: Vec<Candidate>) -> Vec<Candidate> {
    pods.sort_by(|a, b| {
        let exceeds = |c: &Candidate| c.usage > c.request;
        exceeds(b)
            .cmp(&exceeds(a))
            .then(a.priority.cmp(&b.priority))
            .then((b.usage - b.request).cmp(&(a.usage - a.request)))
    });
    pods
}

pub fn memory_request(pod: &Pod) -> i64 {
    pod.spec
        .as_ref()
        .map(|s| {
            s.containers
                .iter()
                .filter_map(|c| {
                    c.resources
                        .as_ref()?
                        .requests
                        .as_ref()?
                        .get("memory")
                        .cloned()
                })
                .filter_map(|q| rudder_api::quantity::parse(&q.0).ok())
                .map(|q| q.value())
                .sum()
        })
        .unwrap_or(0)
}

pub fn format_bytes(v: i64) -> String {
    if v >= 1 << 30 && v % (1 << 30) == 0 {
        format!("{}Gi", v >> 30)
    } else if v >= 1 << 20 {
        format!("{}Mi", v >> 20)
    } else if v >= 1 << 10 {
        format!("{}Ki", v >> 10)
    } else {
        v.to_string()
    }
}

#[allow(clippy::too_many_arguments)]
/// The eviction loop: observes, reports pressure, evicts one pod per round while a threshold
/// is crossed. Conditions stay set for the pressure transition period after they clear.
pub async fn run(
    pods: Arc<crate::pods::PodManager>,
    pressure: Arc<Pressure>,
    thresholds: Vec<Threshold>,
    memory_capacity: i64,
    nodefs: PathBuf,
    imagefs: PathBuf,
    transition: Duration,
    ready_changed: Arc<tokio::sync::Notify>,
) {
    let mut last_memory: Option<Instant> = None;
    let mut last_disk: Option<Instant> = None;
    let mut last_pid: Option<Instant> = None;
    let mut tick = tokio::time::interval(Duration::from_secs(10));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let (n, i) = (nodefs.clone(), imagefs.clone());
        let Ok(obs) = tokio::task::spawn_blocking(move || observe(memory_capacity, &n, &i)).await
        else {
            continue;
        };
        let mut hit: Option<(&Threshold, Observation)> = None;
        for t in &thresholds {
            if let Some((_, o)) = obs.iter().find(|(s, _)| *s == t.signal) {
                if crossed(t, *o) {
                    match t.signal {
                        Signal::MemoryAvailable => last_memory = Some(Instant::now()),
                        Signal::PidAvailable => last_pid = Some(Instant::now()),
                        _ => last_disk = Some(Instant::now()),
                    }
                    hit.get_or_insert((t, *o));
                }
            }
        }
        let mem = last_memory.is_some_and(|t| t.elapsed() < transition);
        let disk = last_disk.is_some_and(|t| t.elapsed() < transition);
        let pid = last_pid.is_some_and(|t| t.elapsed() < transition);
        let changed = (pressure.memory.swap(mem, Ordering::Relaxed) != mem)
            | (pressure.disk.swap(disk, Ordering::Relaxed) != disk)
            | (pressure.pid.swap(pid, Ordering::Relaxed) != pid);
        if changed {
            ready_changed.notify_one();
        }
        if let Some((t, (available, _))) = hit {
            // Disk pressure: node-level reclaim first (upstream's `reclaimNodeLevelResources`
            // deletes every unused image), and pods go only if that did not relieve it.
            if is_disk(t.signal) {
                let (n, i) = (nodefs.clone(), imagefs.clone());
                if reclaim_relieves(&pods, t, move || observe(memory_capacity, &n, &i)).await {
                    continue;
                }
            }
            pods.evict_one(t, available).await;
        }
    }
}

fn is_disk(s: Signal) -> bool {
    matches!(
        s,
        Signal::NodefsAvailable | Signal::ImagefsAvailable | Signal::NodefsInodesFree
    )
}

async fn reclaim_relieves(
    pods: &crate::pods::PodManager,
    t: &Threshold,
    observe_again: impl FnOnce() -> Vec<(Signal, Observation)> + Send + 'static,
) -> bool {
    let Ok(containers) = pods.cri.list_containers().await else {
        return false;
    };
    let freed =
        crate::gc::free_unused_images(&pods.cri, &containers, &pods.cfg.pause_image, u64::MAX)
            .await;
    if freed == 0 {
        return false;
    }
    tracing::info!(
        freed,
        signal = t.signal.name(),
        "removed unused images under disk pressure"
    );
    let Ok(obs) = tokio::task::spawn_blocking(observe_again).await else {
        return false;
    };
    obs.iter()
        .find(|(s, _)| *s == t.signal)
        .is_some_and(|(_, o)| !crossed(t, *o))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_parse_as_upstream_flags() {
        let t = parse_thresholds(DEFAULT_HARD).unwrap();
        assert_eq!(t.len(), 4);
        assert_eq!(t[0].signal, Signal::MemoryAvailable);
        assert_eq!(t[0].value, Quantity::Absolute(100 << 20));
        assert_eq!(t[1].value, Quantity::Percent(0.10));
        assert!(parse_thresholds("memory.free<1Gi")
            .unwrap_err()
            .contains("unsupported"));
        assert!(parse_thresholds("memory.available<101%").is_err());
        assert!(parse_thresholds("memory.available=1").is_err());
        assert!(crossed(&t[0], (50 << 20, 1 << 30)));
        assert!(!crossed(&t[0], (200 << 20, 1 << 30)));
        assert!(crossed(&t[1], (5, 100)));
        assert!(!crossed(&t[1], (50, 100)));
    }

    #[test]
    fn pid_pressure_ranks_by_priority_then_processes() {
        // Process counts with no request, as evict_one builds them for pid.available.
        let c = |uid: &str, priority, procs| Candidate {
            uid: uid.into(),
            priority,
            usage: procs,
            request: 0,
        };
        let ranked = rank(vec![
            c("high-prio-many", 1000, 500),
            c("low-prio-few", 0, 2),
            c("low-prio-many", 0, 40),
        ]);
        let order: Vec<&str> = ranked.iter().map(|c| c.uid.as_str()).collect();
        assert_eq!(order, ["low-prio-many", "low-prio-few", "high-prio-many"]);
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("pids.current"), "7\n").unwrap();
        assert_eq!(process_count(dir.path()), Some(7));
    }

    #[test]
    fn ranking_follows_upstream() {
        let c = |uid: &str, priority, usage, request| Candidate {
            uid: uid.into(),
            priority,
            usage,
            request,
        };
        let ranked = rank(vec![
            c("within-low-prio", 0, 10, 100),
            c("over-high-prio", 1000, 200, 100),
            c("over-low-prio-small", 0, 110, 100),
            c("over-low-prio-big", 0, 500, 100),
        ]);
        let order: Vec<&str> = ranked.iter().map(|c| c.uid.as_str()).collect();
        assert_eq!(
            order,
            [
                "over-low-prio-big",
                "over-low-prio-small",
                "over-high-prio",
                "within-low-prio"
            ]
        );
    }

    #[test]
    fn this_machine_has_signals() {
        let o = observe(1 << 40, Path::new("/"), Path::new("/"));
        assert!(o.iter().any(|(s, _)| *s == Signal::NodefsAvailable));
        assert!(o.iter().any(|(s, _)| *s == Signal::PidAvailable));
    }

    #[test]
    fn pid_available_is_the_task_limit_minus_the_tasks() {
        // The smaller of pid_max and threads-max bounds the tasks.
        assert_eq!(
            pid_observation("4194304\n", "126000\n", "0.52 0.58 0.59 3/467 12345\n"),
            Some((126000 - 467, 126000))
        );
        assert_eq!(
            pid_observation("32768", "", "0.00 0.01 0.05 1/100 7"),
            Some((32668, 32768))
        );
        assert_eq!(pid_observation("", "", "0.00 0.01 0.05 1/100 7"), None);
        assert_eq!(pid_observation("32768", "", "garbage"), None);
        // Upstream has no default pid threshold; `--eviction-hard pid.available<…` sets one.
        assert!(!parse_thresholds(DEFAULT_HARD)
            .unwrap()
            .iter()
            .any(|t| t.signal == Signal::PidAvailable));
        let t = parse_thresholds("pid.available<10%").unwrap();
        assert_eq!(t[0].signal, Signal::PidAvailable);
        assert!(crossed(&t[0], (3000, 32768)));
        assert!(!crossed(&t[0], (32668, 32768)));
        let t = parse_thresholds("pid.available<1k").unwrap();
        assert!(crossed(&t[0], (999, 32768)));
        assert_eq!(t[0].signal.resource(), "pids");
    }
}
