//! `KubeSchedulerConfiguration` (`kubescheduler.config.k8s.io/v1`): profiles, enabled and
//! disabled plugins per extension point, plugin args, weights and the scheduler-wide knobs,
//! with upstream's defaults. Every error names the field it is about.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use crate::framework::{Point, Profile, Weighted};
use crate::plugins::{registry, Handle, DEFAULT_PLUGINS};

pub const DEFAULT_SCHEDULER_NAME: &str = "default-scheduler";

#[derive(Debug, Deserialize, Clone)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SchedulerConfig {
    #[serde(default)]
    pub api_version: Option<String>,
    #[serde(default)]
    pub kind: Option<String>,
    #[serde(default = "default_parallelism")]
    pub parallelism: i32,
    #[serde(default)]
    pub percentage_of_nodes_to_score: Option<i32>,
    #[serde(default = "one")]
    pub pod_initial_backoff_seconds: i64,
    #[serde(default = "ten")]
    pub pod_max_backoff_seconds: i64,
    #[serde(default)]
    pub leader_election: LeaderElectionConfig,
    #[serde(default)]
    pub client_connection: Option<serde_json::Value>,
    #[serde(default)]
    pub delay_cache_until_active: bool,
    #[serde(default)]
    pub enable_profiling: Option<bool>,
    #[serde(default)]
    pub enable_contention_profiling: Option<bool>,
    #[serde(default)]
    pub extenders: Vec<serde_json::Value>,
    #[serde(default = "default_profiles")]
    pub profiles: Vec<ProfileConfig>,
}

fn default_parallelism() -> i32 {
    16
}
fn one() -> i64 {
    1
}
fn ten() -> i64 {
    10
}
fn default_profiles() -> Vec<ProfileConfig> {
    vec![ProfileConfig::default()]
}

#[derive(Debug, Deserialize, Clone)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LeaderElectionConfig {
    #[serde(default = "yes")]
    pub leader_elect: bool,
    #[serde(default = "lease_duration")]
    pub lease_duration: String,
    #[serde(default = "renew_deadline")]
    pub renew_deadline: String,
    #[serde(default = "retry_period")]
    pub retry_period: String,
    #[serde(default = "lease_lock")]
    pub resource_lock: String,
    #[serde(default = "kube_scheduler")]
    pub resource_name: String,
    #[serde(default = "kube_system")]
    pub resource_namespace: String,
}

fn yes() -> bool {
    true
}
fn lease_duration() -> String {
    "15s".into()
}
fn renew_deadline() -> String {
    "10s".into()
}
fn retry_period() -> String {
    "2s".into()
}
fn lease_lock() -> String {
    "leases".into()
}
fn kube_scheduler() -> String {
    "kube-scheduler".into()
}
fn kube_system() -> String {
    "kube-system".into()
}

impl Default for LeaderElectionConfig {
    fn default() -> Self {
        LeaderElectionConfig {
            leader_elect: true,
            lease_duration: lease_duration(),
            renew_deadline: renew_deadline(),
            retry_period: retry_period(),
            resource_lock: lease_lock(),
            resource_name: kube_scheduler(),
            resource_namespace: kube_system(),
        }
    }
}

#[derive(Debug, Deserialize, Clone)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProfileConfig {
    #[serde(default = "default_name")]
    pub scheduler_name: String,
    #[serde(default)]
    pub percentage_of_nodes_to_score: Option<i32>,
    #[serde(default)]
    pub plugins: Option<Plugins>,
    #[serde(default)]
    pub plugin_config: Vec<PluginConfig>,
}

fn default_name() -> String {
    DEFAULT_SCHEDULER_NAME.into()
}

impl Default for ProfileConfig {
    fn default() -> Self {
        ProfileConfig {
            scheduler_name: default_name(),
            percentage_of_nodes_to_score: None,
            plugins: None,
            plugin_config: Vec::new(),
        }
    }
}

#[derive(Debug, Deserialize, Clone, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Plugins {
    #[serde(default)]
    pub pre_enqueue: PluginSet,
    #[serde(default)]
    pub queue_sort: PluginSet,
    #[serde(default)]
    pub pre_filter: PluginSet,
    #[serde(default)]
    pub filter: PluginSet,
    #[serde(default)]
    pub post_filter: PluginSet,
    #[serde(default)]
    pub pre_score: PluginSet,
    #[serde(default)]
    pub score: PluginSet,
    #[serde(default)]
    pub reserve: PluginSet,
    #[serde(default)]
    pub permit: PluginSet,
    #[serde(default)]
    pub pre_bind: PluginSet,
    #[serde(default)]
    pub bind: PluginSet,
    #[serde(default)]
    pub post_bind: PluginSet,
    #[serde(default)]
    pub multi_point: PluginSet,
}

impl Plugins {
    fn at(&self, p: Point) -> &PluginSet {
        match p {
            Point::PreEnqueue => &self.pre_enqueue,
            Point::QueueSort => &self.queue_sort,
            Point::PreFilter => &self.pre_filter,
            Point::Filter => &self.filter,
            Point::PostFilter => &self.post_filter,
            Point::PreScore => &self.pre_score,
            Point::Score => &self.score,
            Point::Reserve => &self.reserve,
            Point::Permit => &self.permit,
            Point::PreBind => &self.pre_bind,
            Point::Bind => &self.bind,
        }
    }
}

#[derive(Debug, Deserialize, Clone, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PluginSet {
    #[serde(default)]
    pub enabled: Vec<PluginRef>,
    #[serde(default)]
    pub disabled: Vec<PluginRef>,
}

#[derive(Debug, Deserialize, Clone)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PluginRef {
    pub name: String,
    #[serde(default)]
    pub weight: Option<i64>,
}

#[derive(Debug, Deserialize, Clone)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PluginConfig {
    pub name: String,
    #[serde(default)]
    pub args: Option<serde_json::Value>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("decoding {path}: {message}")]
    Decode { path: String, message: String },
    #[error("invalid KubeSchedulerConfiguration: {0}")]
    Invalid(String),
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            api_version: None,
            kind: None,
            parallelism: 16,
            percentage_of_nodes_to_score: None,
            pod_initial_backoff_seconds: 1,
            pod_max_backoff_seconds: 10,
            leader_election: LeaderElectionConfig::default(),
            client_connection: None,
            delay_cache_until_active: false,
            enable_profiling: None,
            enable_contention_profiling: None,
            extenders: Vec::new(),
            profiles: default_profiles(),
        }
    }
}

/// Go's `time.ParseDuration` (shared with the other components).
pub use rudder_component::parse_go_duration;

impl SchedulerConfig {
    /// Reads and validates a config file (YAML or JSON).
    pub fn from_file(path: &std::path::Path) -> Result<SchedulerConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_yaml(&text).map_err(|e| match e {
            ConfigError::Decode { message, .. } => ConfigError::Decode {
                path: path.display().to_string(),
                message,
            },
            other => other,
        })
    }

    pub fn from_yaml(text: &str) -> Result<SchedulerConfig, ConfigError> {
        let cfg: SchedulerConfig =
            serde_saphyr::from_str(text).map_err(|e| ConfigError::Decode {
                path: "config".into(),
                message: e.to_string(),
            })?;
        cfg.validate().map_err(ConfigError::Invalid)?;
        Ok(cfg)
    }

    /// Upstream's `ValidateKubeSchedulerConfiguration` (the parts that apply here).
    pub fn validate(&self) -> Result<(), String> {
        if let Some(api) = &self.api_version {
            if api != "kubescheduler.config.k8s.io/v1" {
                return Err(format!("apiVersion: Unsupported value: \"{api}\": supported values: \"kubescheduler.config.k8s.io/v1\""));
            }
        }
        if let Some(kind) = &self.kind {
            if kind != "KubeSchedulerConfiguration" {
                return Err(format!("kind: Unsupported value: \"{kind}\": supported values: \"KubeSchedulerConfiguration\""));
            }
        }
        if self.parallelism <= 0 {
            return Err(format!(
                "parallelism: Invalid value: {}: should be an integer value greater than zero",
                self.parallelism
            ));
        }
        if let Some(p) = self.percentage_of_nodes_to_score {
            if !(0..=100).contains(&p) {
                return Err(format!(
                    "percentageOfNodesToScore: Invalid value: {p}: not in valid range [0-100]"
                ));
            }
        }
        if self.pod_initial_backoff_seconds <= 0 {
            return Err(format!(
                "podInitialBackoffSeconds: Invalid value: {}: must be greater than 0",
                self.pod_initial_backoff_seconds
            ));
        }
        if self.pod_max_backoff_seconds < self.pod_initial_backoff_seconds {
            return Err(format!("podMaxBackoffSeconds: Invalid value: {}: must be greater than or equal to PodInitialBackoffSeconds", self.pod_max_backoff_seconds));
        }
        let le = &self.leader_election;
        for (field, v) in [
            ("leaseDuration", &le.lease_duration),
            ("renewDeadline", &le.renew_deadline),
            ("retryPeriod", &le.retry_period),
        ] {
            if parse_go_duration(v).is_none_or(|d| d.is_zero()) {
                return Err(format!(
                    "leaderElection.{field}: Invalid value: \"{v}\": must be a positive duration"
                ));
            }
        }
        if self.profiles.is_empty() {
            return Err("profiles: Required value".into());
        }
        let mut names = HashMap::new();
        for (i, p) in self.profiles.iter().enumerate() {
            if p.scheduler_name.is_empty() {
                return Err(format!("profiles[{i}].schedulerName: Required value"));
            }
            if names.insert(p.scheduler_name.clone(), i).is_some() {
                return Err(format!(
                    "profiles[{i}].schedulerName: Duplicate value: \"{}\"",
                    p.scheduler_name
                ));
            }
            if let Some(pct) = p.percentage_of_nodes_to_score {
                if !(0..=100).contains(&pct) {
                    return Err(format!("profiles[{i}].percentageOfNodesToScore: Invalid value: {pct}: not in valid range [0-100]"));
                }
            }
            let mut seen = HashMap::new();
            for (j, pc) in p.plugin_config.iter().enumerate() {
                if seen.insert(pc.name.clone(), j).is_some() {
                    return Err(format!(
                        "profiles[{i}].pluginConfig[{j}]: Duplicate value: \"{}\"",
                        pc.name
                    ));
                }
            }
        }
        Ok(())
    }

    pub fn lease_durations(&self) -> (Duration, Duration, Duration) {
        let le = &self.leader_election;
        let d = |s: &str, def: u64| parse_go_duration(s).unwrap_or(Duration::from_secs(def));
        (
            d(&le.lease_duration, 15),
            d(&le.renew_deadline, 10),
            d(&le.retry_period, 2),
        )
    }

    /// Builds every profile's plugins.
    pub fn build_profiles(&self, handle: &Handle) -> Result<Vec<Profile>, ConfigError> {
        let mut out = Vec::new();
        for (i, p) in self.profiles.iter().enumerate() {
            out.push(
                build_profile(i, p, self.percentage_of_nodes_to_score, handle)
                    .map_err(ConfigError::Invalid)?,
            );
        }
        // Upstream: every profile must share one queue sort (there is one queue).
        let sorts: Vec<Option<&str>> = out
            .iter()
            .map(|p| p.queue_sort.as_ref().map(|q| q.name()))
            .collect();
        if sorts.windows(2).any(|w| w[0] != w[1]) {
            return Err(ConfigError::Invalid(
                "profiles[1].plugins.queueSort: Invalid value: queueSort must be the same for all profiles".into(),
            ));
        }
        Ok(out)
    }
}

fn build_profile(
    i: usize,
    cfg: &ProfileConfig,
    global_pct: Option<i32>,
    handle: &Handle,
) -> Result<Profile, String> {
    let reg: HashMap<&str, crate::plugins::Factory> = registry().into_iter().collect();
    let empty = Plugins::default();
    let plugins = cfg.plugins.as_ref().unwrap_or(&empty);
    let mut instances: HashMap<String, Arc<dyn crate::framework::Plugin>> = HashMap::new();
    let mut instance =
        |name: &str, path: String| -> Result<Arc<dyn crate::framework::Plugin>, String> {
            if let Some(p) = instances.get(name) {
                return Ok(p.clone());
            }
            let factory = reg.get(name).ok_or_else(|| {
                format!("{path}: Invalid value: \"{name}\": plugin \"{name}\" does not exist")
            })?;
            let args_idx = cfg.plugin_config.iter().position(|c| c.name == name);
            let args = args_idx.and_then(|j| cfg.plugin_config[j].args.as_ref());
            let args_path = format!("profiles[{i}].pluginConfig[{}].args", args_idx.unwrap_or(0));
            let p = factory(args, handle, &args_path)?;
            instances.insert(name.to_string(), p.clone());
            Ok(p)
        };
    // (name, weight) per point, starting from the defaults (multiPoint).
    let mut points: HashMap<Point, Vec<(String, i64)>> = HashMap::new();
    let multi_disabled_all = plugins.multi_point.disabled.iter().any(|d| d.name == "*");
    let mut multi: Vec<(String, i64, String)> = Vec::new();
    if !multi_disabled_all {
        for (name, w) in DEFAULT_PLUGINS {
            if plugins.multi_point.disabled.iter().any(|d| d.name == *name) {
                continue;
            }
            multi.push((
                name.to_string(),
                *w,
                format!("profiles[{i}].plugins.multiPoint.enabled"),
            ));
        }
    }
    for (j, e) in plugins.multi_point.enabled.iter().enumerate() {
        let path = format!("profiles[{i}].plugins.multiPoint.enabled[{j}]");
        multi.retain(|(n, _, _)| n != &e.name);
        multi.push((e.name.clone(), e.weight.unwrap_or(0), path));
    }
    for (name, w, path) in &multi {
        let p = instance(name, path.clone())?;
        for point in p.points() {
            points.entry(*point).or_default().push((name.clone(), *w));
        }
    }
    for point in Point::ALL {
        let set = plugins.at(point);
        let list = points.entry(point).or_default();
        if set.disabled.iter().any(|d| d.name == "*") {
            list.clear();
        }
        list.retain(|(n, _)| !set.disabled.iter().any(|d| &d.name == n));
        for (j, e) in set.enabled.iter().enumerate() {
            let path = format!("profiles[{i}].plugins.{}.enabled[{j}]", point.config_name());
            let p = instance(&e.name, path.clone())?;
            if !p.points().contains(&point) {
                return Err(format!(
                    "{path}: Invalid value: \"{}\": plugin \"{}\" does not extend {} plugin",
                    e.name,
                    e.name,
                    point.config_name()
                ));
            }
            list.retain(|(n, _)| n != &e.name);
            list.push((e.name.clone(), e.weight.unwrap_or(0)));
        }
    }
    let mut profile = Profile::new(&cfg.scheduler_name);
    profile.percentage_of_nodes_to_score = cfg.percentage_of_nodes_to_score.or(global_pct);
    for point in Point::ALL {
        for (name, weight) in points.remove(&point).unwrap_or_default() {
            let p = instance(&name, String::new())?;
            match point {
                Point::PreEnqueue => profile.pre_enqueue.push(p),
                Point::QueueSort => {
                    if profile.queue_sort.is_some() {
                        return Err(format!("profiles[{i}].plugins.queueSort: Invalid value: only one queue sort plugin can be enabled"));
                    }
                    profile.queue_sort = Some(p)
                }
                Point::PreFilter => profile.pre_filter.push(p),
                Point::Filter => profile.filter.push(p),
                Point::PostFilter => profile.post_filter.push(p),
                Point::PreScore => profile.pre_score.push(p),
                Point::Score => {
                    // Upstream: a score plugin enabled without a weight gets 1.
                    let weight = if weight == 0 { 1 } else { weight };
                    if !(1..=100).contains(&weight) {
                        return Err(format!("profiles[{i}].plugins.score.enabled: Invalid value: {weight}: weight of {name} must be in the range of [1, 100]"));
                    }
                    profile.score.push(Weighted { plugin: p, weight })
                }
                Point::Reserve => profile.reserve.push(p),
                Point::Permit => profile.permit.push(p),
                Point::PreBind => profile.pre_bind.push(p),
                Point::Bind => profile.bind.push(p),
            }
        }
    }
    if profile.bind.is_empty() {
        return Err(format!(
            "profiles[{i}].plugins.bind: Invalid value: at least one bind plugin is needed"
        ));
    }
    if profile.queue_sort.is_none() {
        return Err(format!(
            "profiles[{i}].plugins.queueSort: Invalid value: one queue sort plugin is needed"
        ));
    }
    for (j, pc) in cfg.plugin_config.iter().enumerate() {
        if !reg.contains_key(pc.name.as_str()) {
            return Err(format!("profiles[{i}].pluginConfig[{j}].name: Invalid value: \"{}\": plugin \"{}\" does not exist", pc.name, pc.name));
        }
    }
    Ok(profile)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("15s"), Some(Duration::from_secs(15)));
        assert_eq!(parse_go_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_go_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_go_duration("abc"), None);
    }

    #[test]
    fn unknown_fields_and_bad_values_name_the_field() {
        let e = SchedulerConfig::from_yaml("apiVersion: kubescheduler.config.k8s.io/v1\nkind: KubeSchedulerConfiguration\npercentageOfNodesToScore: 150\n").unwrap_err();
        assert!(
            e.to_string()
                .contains("percentageOfNodesToScore: Invalid value: 150"),
            "{e}"
        );
        let e =
            SchedulerConfig::from_yaml("profiles:\n- schedulerName: a\n  bogus: 1\n").unwrap_err();
        assert!(e.to_string().contains("bogus"), "{e}");
        let e = SchedulerConfig::from_yaml("profiles:\n- schedulerName: a\n- schedulerName: a\n")
            .unwrap_err();
        assert!(
            e.to_string()
                .contains("profiles[1].schedulerName: Duplicate value: \"a\""),
            "{e}"
        );
    }
}
