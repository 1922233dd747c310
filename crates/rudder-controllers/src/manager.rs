//! The controller manager: upstream's named controllers, enabled by `--controllers` as upstream
//! parses it (`*` = every controller on by default, `name` to enable, `-name` to disable), all
//! sharing one set of informers, one queue-metrics registry and the manager's identity.

use std::sync::Arc;

use kube::Client;

use crate::informer::Informers;
use crate::workqueue::QueueMetrics;

/// What a controller's start function gets.
#[derive(Clone)]
pub struct Context {
    pub client: Client,
    pub informers: Arc<Informers>,
    pub metrics: Arc<QueueMetrics>,
    /// `reportingInstance` of events.
    pub host: String,
    pub credentials: Credentials,
    pub options: Arc<Options>,
}

/// Upstream's per-controller flags (`KubeControllerManagerConfiguration`), with its defaults.
#[derive(Clone, Debug)]
pub struct Options {
    /// `--node-monitor-period`: how often node health is checked.
    pub node_monitor_period: std::time::Duration,
    /// `--node-monitor-grace-period`: a node not heard from this long becomes Ready=Unknown.
    pub node_monitor_grace_period: std::time::Duration,
    /// `--node-startup-grace-period`: the same for a node that never posted a Ready condition.
    pub node_startup_grace_period: std::time::Duration,
    /// `--terminated-pod-gc-threshold` (0: never collect terminated pods by count).
    pub terminated_pod_gc_threshold: usize,
    /// `--allocate-node-cidrs`: whether node-ipam-controller gives nodes podCIDRs.
    pub allocate_node_cidrs: bool,
    /// `--cluster-cidr` (IPv4).
    pub cluster_cidr: String,
    /// `--node-cidr-mask-size`.
    pub node_cidr_mask_size: u8,
    /// `--cluster-signing-duration`: the lifetime of certificates csrsigning issues.
    pub cluster_signing_duration: std::time::Duration,
    /// Where the local-path provisioner puts volumes on the node (k3s's
    /// `--default-local-storage-path`).
    pub local_storage_path: String,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            node_monitor_period: std::time::Duration::from_secs(5),
            // 50 s since 1.32 (kubernetes/kubernetes#126287; 40 s before).
            node_monitor_grace_period: std::time::Duration::from_secs(50),
            node_startup_grace_period: std::time::Duration::from_secs(60),
            terminated_pod_gc_threshold: 12500,
            // k3s's defaults: it runs the allocator with 10.42.0.0/16.
            allocate_node_cidrs: true,
            cluster_cidr: "10.42.0.0/16".into(),
            node_cidr_mask_size: 24,
            cluster_signing_duration: std::time::Duration::from_secs(365 * 24 * 3600),
            local_storage_path: crate::localpath::DEFAULT_DIR.into(),
        }
    }
}

/// What controllers need besides the API, as kube-controller-manager takes it from files: the
/// cluster's root CA (`--root-ca-file`, else the kubeconfig's CA) that the root-CA publisher and
/// the tokens controller hand out, and the legacy-token signer (`--service-account-private-key-file`;
/// the tokens controller is off without it).
#[derive(Clone, Default)]
pub struct Credentials {
    pub root_ca: Option<String>,
    pub token_generator: Option<Arc<rudder_auth::serviceaccount::TokenGenerator>>,
    /// The CA the csrsigning controller issues certificates with (`--cluster-signing-cert-file`
    /// and `--cluster-signing-key-file`; the controller is off without it).
    pub cluster_signer: Option<Arc<rudder_pki::CsrSigner>>,
    /// A client acting as the named kube-system service account, for per-controller
    /// identities (upstream's `--use-service-account-credentials`); without it every
    /// controller uses the manager's client.
    pub client_for: Option<ClientFor>,
}

/// Makes the client of a controller's service account (see [`Credentials::client_for`]).
pub type ClientFor = Arc<dyn Fn(&str) -> Client + Send + Sync>;

/// The kube-system service account upstream runs a controller as (the subject of its
/// `system:controller:<account>` ClusterRoleBinding); the manager's own identity when `None`.
pub fn service_account(controller: &str) -> Option<&'static str> {
    Some(match controller {
        "garbage-collector-controller" => "generic-garbage-collector",
        "namespace-controller" => "namespace-controller",
        "replicaset-controller" => "replicaset-controller",
        "replicationcontroller-controller" => "replication-controller",
        "deployment-controller" => "deployment-controller",
        "statefulset-controller" => "statefulset-controller",
        "daemonset-controller" => "daemon-set-controller",
        "job-controller" => "job-controller",
        "cronjob-controller" => "cronjob-controller",
        "ttl-after-finished-controller" => "ttl-after-finished-controller",
        "persistentvolume-binder-controller" => "persistent-volume-binder",
        "persistentvolumeclaim-protection-controller" => "pvc-protection-controller",
        "persistentvolume-protection-controller" => "pv-protection-controller",
        "endpoints-controller" => "endpoint-controller",
        "endpointslice-controller" => "endpointslice-controller",
        "endpointslice-mirroring-controller" => "endpointslicemirroring-controller",
        "serviceaccount-controller" => "service-account-controller",
        "disruption-controller" => "disruption-controller",
        "horizontal-pod-autoscaler-controller" => "horizontal-pod-autoscaler",
        "root-ca-certificate-publisher-controller" => "root-ca-cert-publisher",
        "resourcequota-controller" => "resourcequota-controller",
        "certificatesigningrequest-signing-controller"
        | "certificatesigningrequest-approving-controller"
        | "certificatesigningrequest-cleaner-controller" => "certificate-controller",
        "token-cleaner-controller" => "token-cleaner",
        "node-ipam-controller" | "node-lifecycle-controller" | "taint-eviction-controller" => {
            "node-controller"
        }
        "pod-garbage-collector-controller" => "pod-garbage-collector",
        "clusterrole-aggregation-controller" => "clusterrole-aggregation-controller",
        "local-path-provisioner" => "local-path-provisioner",
        "service-lb-controller" => "service-lb-controller",
        _ => return None,
    })
}

pub type StartFn = fn(&Context, &mut tokio::task::JoinSet<()>);

pub struct Descriptor {
    /// Upstream's name (`replicaset-controller`, …).
    pub name: &'static str,
    /// Names accepted for it in `--controllers` (upstream's aliases, e.g. `replicaset`).
    pub aliases: &'static [&'static str],
    pub enabled_by_default: bool,
    pub start: StartFn,
}

/// Every controller this manager has, in upstream's start order.
pub fn descriptors() -> Vec<Descriptor> {
    vec![
        Descriptor {
            name: "garbage-collector-controller",
            aliases: &["garbagecollector"],
            enabled_by_default: true,
            start: crate::garbagecollector::start,
        },
        Descriptor {
            name: "clusterrole-aggregation-controller",
            aliases: &["clusterrole-aggregation"],
            enabled_by_default: true,
            start: crate::clusterroleaggregation::start,
        },
        Descriptor {
            name: "namespace-controller",
            aliases: &["namespace"],
            enabled_by_default: true,
            start: crate::namespace::start,
        },
        Descriptor {
            name: "replicaset-controller",
            aliases: &["replicaset"],
            enabled_by_default: true,
            start: crate::replicaset::start,
        },
        Descriptor {
            name: "replicationcontroller-controller",
            aliases: &["replicationcontroller"],
            enabled_by_default: true,
            start: crate::replicaset::start_rc,
        },
        Descriptor {
            name: "deployment-controller",
            aliases: &["deployment"],
            enabled_by_default: true,
            start: crate::deployment::start,
        },
        Descriptor {
            name: "statefulset-controller",
            aliases: &["statefulset"],
            enabled_by_default: true,
            start: crate::statefulset::start,
        },
        Descriptor {
            name: "daemonset-controller",
            aliases: &["daemonset"],
            enabled_by_default: true,
            start: crate::daemonset::start,
        },
        Descriptor {
            name: "job-controller",
            aliases: &["job"],
            enabled_by_default: true,
            start: crate::job::start,
        },
        Descriptor {
            name: "cronjob-controller",
            aliases: &["cronjob"],
            enabled_by_default: true,
            start: crate::cronjob::start,
        },
        Descriptor {
            name: "ttl-after-finished-controller",
            aliases: &["ttl-after-finished"],
            enabled_by_default: true,
            start: crate::ttlafterfinished::start,
        },
        Descriptor {
            name: "persistentvolume-binder-controller",
            aliases: &["persistentvolume-binder"],
            enabled_by_default: true,
            start: crate::pvbinder::start,
        },
        Descriptor {
            name: "persistentvolumeclaim-protection-controller",
            aliases: &["pvc-protection"],
            enabled_by_default: true,
            start: crate::volumeprotection::start_pvc,
        },
        Descriptor {
            name: "persistentvolume-protection-controller",
            aliases: &["pv-protection"],
            enabled_by_default: true,
            start: crate::volumeprotection::start_pv,
        },
        // Not upstream's: k3s's packaged rancher/local-path-provisioner, built in.
        Descriptor {
            name: "local-path-provisioner",
            aliases: &["local-path"],
            enabled_by_default: true,
            start: crate::localpath::start,
        },
        Descriptor {
            name: "endpoints-controller",
            aliases: &["endpoint"],
            enabled_by_default: true,
            start: crate::endpoints::start,
        },
        Descriptor {
            name: "endpointslice-controller",
            aliases: &["endpointslice"],
            enabled_by_default: true,
            start: crate::endpointslice::start,
        },
        Descriptor {
            name: "endpointslice-mirroring-controller",
            aliases: &["endpointslicemirroring"],
            enabled_by_default: true,
            start: crate::endpointslicemirroring::start,
        },
        Descriptor {
            name: "serviceaccount-controller",
            aliases: &["serviceaccount"],
            enabled_by_default: true,
            start: crate::serviceaccount::start,
        },
        Descriptor {
            name: "disruption-controller",
            aliases: &["disruption"],
            enabled_by_default: true,
            start: crate::disruption::start,
        },
        Descriptor {
            name: "horizontal-pod-autoscaler-controller",
            aliases: &["horizontalpodautoscaling"],
            enabled_by_default: true,
            start: crate::podautoscaler::start,
        },
        Descriptor {
            name: "serviceaccount-token-controller",
            aliases: &["serviceaccount-token"],
            enabled_by_default: true,
            start: crate::tokens::start,
        },
        Descriptor {
            name: "root-ca-certificate-publisher-controller",
            aliases: &["root-ca-cert-publisher"],
            enabled_by_default: true,
            start: crate::rootcacertpublisher::start,
        },
        Descriptor {
            name: "resourcequota-controller",
            aliases: &["resourcequota"],
            enabled_by_default: true,
            start: crate::resourcequota::start,
        },
        Descriptor {
            name: "certificatesigningrequest-signing-controller",
            aliases: &["csrsigning"],
            enabled_by_default: true,
            start: crate::certificates::signer::start,
        },
        Descriptor {
            name: "certificatesigningrequest-approving-controller",
            aliases: &["csrapproving"],
            enabled_by_default: true,
            start: crate::certificates::approver::start,
        },
        Descriptor {
            name: "certificatesigningrequest-cleaner-controller",
            aliases: &["csrcleaner"],
            enabled_by_default: true,
            start: crate::certificates::cleaner::start,
        },
        // Off by default upstream (kubeadm and k3s turn it on): deletes expired bootstrap tokens.
        Descriptor {
            name: "token-cleaner-controller",
            aliases: &["tokencleaner"],
            enabled_by_default: false,
            start: crate::tokencleaner::start,
        },
        Descriptor {
            name: "node-ipam-controller",
            aliases: &["nodeipam"],
            enabled_by_default: true,
            start: crate::nodeipam::start,
        },
        Descriptor {
            name: "node-lifecycle-controller",
            aliases: &["nodelifecycle"],
            enabled_by_default: true,
            start: crate::nodelifecycle::start,
        },
        Descriptor {
            name: "taint-eviction-controller",
            aliases: &[],
            enabled_by_default: true,
            start: crate::tainteviction::start,
        },
        Descriptor {
            name: "pod-garbage-collector-controller",
            aliases: &["podgc"],
            enabled_by_default: true,
            start: crate::podgc::start,
        },
        // k3s's ServiceLB addresses (`--disable=servicelb` turns it off in `rudder server`).
        Descriptor {
            name: "service-lb-controller",
            aliases: &["servicelb"],
            enabled_by_default: true,
            start: crate::servicelb::start,
        },
    ]
}

/// Upstream's `IsControllerEnabled` over the `--controllers` list.
pub fn is_enabled(d: &Descriptor, list: &[String]) -> bool {
    let names: Vec<&str> = std::iter::once(d.name)
        .chain(d.aliases.iter().copied())
        .collect();
    let mut star = false;
    for item in list {
        let item = item.trim();
        if let Some(off) = item.strip_prefix('-') {
            if names.contains(&off) {
                return false;
            }
        } else if names.contains(&item) {
            return true;
        } else if item == "*" {
            star = true;
        }
    }
    star && d.enabled_by_default
}

/// Checks a `--controllers` list: every name must be known (upstream fails at start).
pub fn validate(list: &[String]) -> Result<(), String> {
    let all = descriptors();
    for item in list {
        let name = item.trim().trim_start_matches('-');
        if name == "*" {
            continue;
        }
        if !all
            .iter()
            .any(|d| d.name == name || d.aliases.contains(&name))
        {
            return Err(format!("{item:?} is not in the list of known controllers"));
        }
    }
    Ok(())
}

/// Runs the enabled controllers until the future is dropped.
pub async fn run(client: Client, list: Vec<String>, metrics: Arc<QueueMetrics>, host: String) {
    run_with_credentials(
        client,
        list,
        metrics,
        host,
        Credentials::default(),
        Options::default(),
    )
    .await
}

/// [`run`], with the CA and signing key the certificate and token controllers need.
pub async fn run_with_credentials(
    client: Client,
    list: Vec<String>,
    metrics: Arc<QueueMetrics>,
    host: String,
    credentials: Credentials,
    options: Options,
) {
    let cx = Context {
        informers: Informers::new(client.clone()),
        client,
        metrics,
        host,
        credentials,
        options: Arc::new(options),
    };
    let mut tasks = tokio::task::JoinSet::new();
    for d in descriptors() {
        if is_enabled(&d, &list) {
            tracing::info!(controller = d.name, "starting controller");
            let own = cx
                .credentials
                .client_for
                .as_ref()
                .zip(service_account(d.name))
                .map(|(client_for, sa)| Context {
                    client: client_for(sa),
                    ..cx.clone()
                });
            (d.start)(own.as_ref().unwrap_or(&cx), &mut tasks);
        } else {
            tracing::info!(controller = d.name, "controller is disabled");
        }
    }
    cx.informers.start(&mut tasks);
    while tasks.join_next().await.is_some() {}
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(default: bool) -> Descriptor {
        Descriptor {
            name: "x-controller",
            aliases: &["x"],
            enabled_by_default: default,
            start: |_, _| {},
        }
    }

    #[test]
    fn controllers_flag_as_upstream() {
        let l = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert!(is_enabled(&d(true), &l(&["*"])));
        assert!(!is_enabled(&d(false), &l(&["*"])));
        assert!(is_enabled(&d(false), &l(&["*", "x"])));
        assert!(!is_enabled(&d(true), &l(&["*", "-x-controller"])));
        assert!(!is_enabled(&d(true), &l(&["y"])));
        assert!(validate(&l(&["*", "-replicaset"])).is_ok());
        assert_eq!(
            validate(&l(&["bogus"])).unwrap_err(),
            "\"bogus\" is not in the list of known controllers"
        );
    }
}
