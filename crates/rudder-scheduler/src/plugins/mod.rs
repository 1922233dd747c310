//! The in-tree plugins and the registry that builds them by name from a profile's config.

pub mod basic;
pub mod binder;
pub mod fit;
pub mod node_affinity;

use std::sync::Arc;

use serde::de::DeserializeOwned;

use crate::framework::Plugin;

/// What a plugin factory gets besides its args.
#[derive(Clone)]
pub struct Handle {
    pub client: kube::Client,
}

impl Handle {
    /// Everything a plugin may need, from one client (informer stores start with the scheduler).
    pub fn new(client: kube::Client) -> Handle {
        Handle { client }
    }
}

/// Builds a plugin from its `pluginConfig` args (`None`: defaults). Errors name the field.
pub type Factory = fn(Option<&serde_json::Value>, &Handle, &str) -> Result<Arc<dyn Plugin>, String>;

fn args<T: DeserializeOwned + Default>(
    v: Option<&serde_json::Value>,
    path: &str,
) -> Result<T, String> {
    match v {
        None => Ok(T::default()),
        Some(v) => serde_json::from_value(v.clone()).map_err(|e| format!("{path}: {e}")),
    }
}

fn no_args(v: Option<&serde_json::Value>, path: &str) -> Result<(), String> {
    match v {
        Some(serde_json::Value::Object(m))
            if m.keys().any(|k| k != "apiVersion" && k != "kind") =>
        {
            Err(format!("{path}: this plugin takes no arguments"))
        }
        _ => Ok(()),
    }
}

/// Every plugin this scheduler knows, by upstream's name.
pub fn registry() -> Vec<(&'static str, Factory)> {
    vec![
        ("SchedulingGates", |a, _, p| {
            no_args(a, p)?;
            Ok(Arc::new(basic::SchedulingGates))
        }),
        ("PrioritySort", |a, _, p| {
            no_args(a, p)?;
            Ok(Arc::new(basic::PrioritySort))
        }),
        ("NodeUnschedulable", |a, _, p| {
            no_args(a, p)?;
            Ok(Arc::new(basic::NodeUnschedulable))
        }),
        ("NodeName", |a, _, p| {
            no_args(a, p)?;
            Ok(Arc::new(basic::NodeName))
        }),
        ("TaintToleration", |a, _, p| {
            no_args(a, p)?;
            Ok(Arc::new(basic::TaintToleration))
        }),
        ("NodeAffinity", |a, _, p| {
            Ok(Arc::new(node_affinity::NodeAffinity { args: args(a, p)? }))
        }),
        ("NodePorts", |a, _, p| {
            no_args(a, p)?;
            Ok(Arc::new(basic::NodePorts))
        }),
        ("NodeResourcesFit", |a, _, p| {
            let args: fit::FitArgs = args(a, p)?;
            args.validate(p)?;
            Ok(Arc::new(fit::NodeResourcesFit { args }))
        }),
        ("NodeResourcesBalancedAllocation", |a, _, p| {
            Ok(Arc::new(fit::BalancedAllocation { args: args(a, p)? }))
        }),
        ("ImageLocality", |a, _, p| {
            no_args(a, p)?;
            Ok(Arc::new(basic::ImageLocality))
        }),
        ("DefaultBinder", |a, h, p| {
            no_args(a, p)?;
            Ok(Arc::new(binder::DefaultBinder {
                client: h.client.clone(),
            }))
        }),
    ]
}

/// Upstream's default plugin set (`getDefaultPlugins`, multiPoint) with score weights, in order.
/// Plugins of that set not implemented here yet are left out of it.
pub const DEFAULT_PLUGINS: &[(&str, i64)] = &[
    ("SchedulingGates", 0),
    ("PrioritySort", 0),
    ("NodeUnschedulable", 0),
    ("NodeName", 0),
    ("TaintToleration", 3),
    ("NodeAffinity", 2),
    ("NodePorts", 0),
    ("NodeResourcesFit", 1),
    ("NodeResourcesBalancedAllocation", 1),
    ("ImageLocality", 1),
    ("DefaultBinder", 0),
];
