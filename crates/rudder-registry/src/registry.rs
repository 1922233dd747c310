//! The registry: one entry per served group/version/resource. Routing, discovery and the watch
//! cache all read this one table, so they cannot disagree about what exists.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use rudder_api::resources::{ResourceInfo, ResourceTable};

use crate::strategy::Strategy;

/// A served resource: its description plus the strategy that gives it behaviour.
pub struct Entry {
    pub info: ResourceInfo,
    /// The store key prefix (`/registry/pods`), shared by versions of one resource.
    pub prefix: String,
    pub strategy: Arc<dyn Strategy>,
    /// Conversion that needs I/O (a CRD's conversion webhook), run before the strategy's own
    /// conversion both ways (which then only defaults and sets `apiVersion`).
    pub converter: Option<Arc<dyn crate::strategy::Converter>>,
}

impl Entry {
    pub fn has_status(&self) -> bool {
        self.info.subresource("status").is_some()
    }

    /// The key of one object.
    pub fn key(
        &self,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<String, rudder_api::status::ApiError> {
        let ns = if self.info.namespaced {
            Some(namespace.unwrap_or(""))
        } else {
            None
        };
        rudder_api::resources::object_key(&self.prefix, ns, name)
    }

    /// The key prefix of a list: all objects, or those of one namespace.
    pub fn list_prefix(&self, namespace: Option<&str>) -> String {
        let ns = namespace.filter(|_| self.info.namespaced);
        rudder_api::resources::list_prefix(&self.prefix, ns)
    }
}

/// One consistent view of the served resources. Routing, discovery and the watch cache take a
/// snapshot per request, so a resource added or removed meanwhile never shows half-applied.
pub struct Snapshot {
    entries: Vec<Arc<Entry>>,
    by_gvr: HashMap<(String, String, String), Arc<Entry>>,
    /// Storage prefixes, longest first, for mapping a store key back to its resource.
    by_prefix: Vec<(String, Arc<Entry>)>,
}

impl Snapshot {
    fn new(entries: Vec<Arc<Entry>>) -> Snapshot {
        let by_gvr = entries
            .iter()
            .map(|e| {
                (
                    (
                        e.info.group.clone(),
                        e.info.version.clone(),
                        e.info.plural.clone(),
                    ),
                    e.clone(),
                )
            })
            .collect();
        let mut by_prefix: Vec<(String, Arc<Entry>)> = Vec::new();
        for e in &entries {
            if !by_prefix.iter().any(|(p, _)| *p == e.prefix) {
                by_prefix.push((e.prefix.clone(), e.clone()));
            }
        }
        by_prefix.sort_by_key(|(p, _)| std::cmp::Reverse(p.len()));
        Snapshot {
            entries,
            by_gvr,
            by_prefix,
        }
    }

    pub fn entries(&self) -> &[Arc<Entry>] {
        &self.entries
    }

    pub fn get(&self, group: &str, version: &str, plural: &str) -> Option<&Arc<Entry>> {
        self.by_gvr
            .get(&(group.to_string(), version.to_string(), plural.to_string()))
    }

    /// The resource a store key belongs to: the longest prefix followed by `/`.
    pub fn for_key(&self, key: &str) -> Option<&Arc<Entry>> {
        self.by_prefix.iter().find_map(|(p, e)| {
            key.strip_prefix(p.as_str())
                .filter(|rest| rest.starts_with('/'))
                .map(|_| e)
        })
    }

    /// Every distinct storage prefix with one entry serving it.
    pub fn prefixes(&self) -> impl Iterator<Item = (&str, &Arc<Entry>)> {
        self.by_prefix.iter().map(|(p, e)| (p.as_str(), e))
    }
}

/// The served resources: the built-in ones, fixed at start, plus those defined at run time
/// (custom resources from CustomResourceDefinitions), swapped in whole without a restart.
pub struct Registry {
    builtin: Vec<Arc<Entry>>,
    current: RwLock<Arc<Snapshot>>,
}

impl Registry {
    /// Every built-in resource, each with the strategy `strategy_for` picks.
    pub fn builtin(
        strategy_for: impl Fn(&ResourceInfo) -> Arc<dyn Strategy>,
    ) -> Result<Registry, rudder_api::resources::ResourceDataError> {
        let table = ResourceTable::builtin()?;
        Ok(Self::new(table.resources().iter().map(|info| Entry {
            converter: None,
            prefix: info.storage_prefix(),
            strategy: strategy_for(info),
            info: info.clone(),
        })))
    }

    pub fn new(entries: impl IntoIterator<Item = Entry>) -> Registry {
        let builtin: Vec<Arc<Entry>> = entries.into_iter().map(Arc::new).collect();
        Registry {
            current: RwLock::new(Arc::new(Snapshot::new(builtin.clone()))),
            builtin,
        }
    }

    /// The resources served now.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Serve the built-in resources plus `dynamic`, replacing the previous run-time ones. A
    /// dynamic entry never shadows a built-in one.
    pub fn set_dynamic(&self, dynamic: Vec<Entry>) {
        let mut all = self.builtin.clone();
        for e in dynamic {
            let taken = self.builtin.iter().any(|b| {
                b.info.group == e.info.group
                    && b.info.version == e.info.version
                    && b.info.plural == e.info.plural
            });
            if !taken {
                all.push(Arc::new(e));
            }
        }
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(Snapshot::new(all));
    }

    pub fn entries(&self) -> Vec<Arc<Entry>> {
        self.snapshot().entries.clone()
    }

    /// Whether a group version is served by built-in resources (not only by custom ones).
    pub fn is_builtin(&self, group: &str, version: &str) -> bool {
        self.builtin
            .iter()
            .any(|e| e.info.group == group && e.info.version == version)
    }

    pub fn get(&self, group: &str, version: &str, plural: &str) -> Option<Arc<Entry>> {
        self.snapshot().get(group, version, plural).cloned()
    }

    /// The resource a store key belongs to: the longest prefix followed by `/`.
    pub fn for_key(&self, key: &str) -> Option<Arc<Entry>> {
        self.snapshot().for_key(key).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategy::DefaultStrategy;

    #[test]
    fn keys_map_back_to_resources() {
        let reg = Registry::builtin(|_| {
            Arc::new(DefaultStrategy {
                tracks_generation: false,
            })
        })
        .unwrap();
        let pods = reg.get("", "v1", "pods").unwrap();
        assert_eq!(pods.prefix, "/registry/pods");
        assert_eq!(
            pods.key(Some("default"), "a").unwrap(),
            "/registry/pods/default/a"
        );
        assert_eq!(
            reg.for_key("/registry/pods/default/a").unwrap().info.plural,
            "pods"
        );
        let svc = reg
            .for_key("/registry/services/specs/default/kubernetes")
            .unwrap();
        assert_eq!(svc.info.plural, "services");
        let ep = reg
            .for_key("/registry/services/endpoints/default/kubernetes")
            .unwrap();
        assert_eq!(ep.info.plural, "endpoints");
        assert!(reg.for_key("/registry/podsx/a").is_none());
        let nodes = reg.get("", "v1", "nodes").unwrap();
        assert_eq!(nodes.key(None, "n1").unwrap(), "/registry/minions/n1");
    }
}
