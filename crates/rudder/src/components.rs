//! How components are composed (k3s-style): each component is a crate that only takes a
//! `kube::Client`. In `rudder server` that client is in-process — a `tower::Service` over the
//! API server's own router, no socket, no TLS, no serialization of credentials — carrying the
//! component's own identity as a request extension that only in-process code can set
//! (`InProcessUser`), so authentication, authorization, admission and validation apply exactly
//! as for a remote component. Standalone (`rudder scheduler --kubeconfig …`) the same crate gets
//! a client from a kubeconfig, as against upstream.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use rudder_apiserver::{ApiServer, InProcessUser};
use rudder_auth::UserInfo;

/// A client for an in-process component acting as `user` (in `groups`).
pub fn in_process_client(router: axum::Router, user: &str, groups: &[&str]) -> kube::Client {
    let mut groups: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
    groups.push("system:authenticated".into());
    let identity = InProcessUser(UserInfo::new(user).with_groups(groups));
    let svc = tower::ServiceBuilder::new()
        .map_request(move |req: http::Request<kube::client::Body>| {
            let mut req = req.map(axum::body::Body::new);
            req.extensions_mut().insert(identity.clone());
            req
        })
        .service(router);
    kube::Client::new(svc, "default")
}

/// A client from a kubeconfig file (standalone components).
pub async fn kubeconfig_client(path: &Path) -> anyhow::Result<kube::Client> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let kc = kube::config::Kubeconfig::read_from(path)
        .with_context(|| format!("reading kubeconfig {}", path.display()))?;
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .with_context(|| format!("loading kubeconfig {}", path.display()))?;
    kube::Client::try_from(config).context("building the API client")
}

/// `<hostname>_<uuid>`: upstream's leader-election identity.
pub fn election_identity() -> String {
    format!("{}_{}", hostname(), uuid::Uuid::new_v4())
}

pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "localhost".into())
}

/// Runs the scheduler, under leader election unless disabled, until `shutdown` resolves.
pub async fn run_scheduler(
    client: kube::Client,
    config: rudder_scheduler::SchedulerConfig,
    metrics: Arc<rudder_scheduler::SchedulerMetrics>,
    leader_metrics: rudder_component::LeaderMetrics,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let host = hostname();
    if !config.leader_election.leader_elect {
        tokio::select! {
            r = rudder_scheduler::run(client, config, metrics, &host) => {
                if let Err(e) = r { tracing::error!(error = %e, "scheduler stopped"); }
            }
            _ = shutdown => {}
        }
        return;
    }
    let (lease, renew, retry) = config.lease_durations();
    let le = &config.leader_election;
    let mut election = rudder_component::LeaderElection::new(
        &le.resource_namespace,
        &le.resource_name,
        election_identity(),
    );
    election.lease_duration = lease;
    election.renew_deadline = renew;
    election.retry_period = retry;
    election
        .run(
            client.clone(),
            leader_metrics,
            || {
                let (client, config, metrics, host) = (
                    client.clone(),
                    config.clone(),
                    metrics.clone(),
                    host.clone(),
                );
                async move {
                    if let Err(e) = rudder_scheduler::run(client, config, metrics, &host).await {
                        tracing::error!(error = %e, "scheduler stopped");
                    }
                }
            },
            shutdown,
        )
        .await;
}

/// Renders a component's metrics (what `register` adds) and its leader election's in the text
/// format.
fn metrics_render(
    register: impl Fn(&mut prometheus_client::registry::Registry) + Send + Sync + 'static,
    leader: rudder_component::LeaderMetrics,
) -> Arc<dyn Fn(&mut String) + Send + Sync> {
    Arc::new(move |out: &mut String| {
        let mut r = prometheus_client::registry::Registry::default();
        register(&mut r);
        r.register(
            "leader_election_master_status",
            "Gauge of if the reporting system is master of the relevant lease, 0 indicates backup, 1 indicates master. 'name' is the string used to identify the lease.",
            leader.master_status.clone(),
        );
        let mut text = String::new();
        if prometheus_client::encoding::text::encode(&mut text, &r).is_ok() {
            out.push_str(text.trim_end_matches("# EOF\n"));
        }
    })
}

/// Renders a scheduler's (and its leader election's) metrics in the text format.
pub fn scheduler_metrics_render(
    metrics: Arc<rudder_scheduler::SchedulerMetrics>,
    leader: rudder_component::LeaderMetrics,
) -> Arc<dyn Fn(&mut String) + Send + Sync> {
    metrics_render(move |r| metrics.register(r), leader)
}

/// The in-process scheduler of `rudder server`.
pub fn start_in_process_scheduler(
    server: &Arc<ApiServer>,
    router: axum::Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    let client = in_process_client(router, "system:kube-scheduler", &[]);
    let metrics = Arc::new(rudder_scheduler::SchedulerMetrics::default());
    let leader = rudder_component::LeaderMetrics::default();
    if let Ok(mut sources) = server.component_metrics.write() {
        sources.push(scheduler_metrics_render(metrics.clone(), leader.clone()));
    }
    tokio::spawn(run_scheduler(
        client,
        rudder_scheduler::SchedulerConfig::default(),
        metrics,
        leader,
        shutdown,
    ))
}

/// Renders the controller manager's work-queue and leader-election metrics.
pub fn controllers_metrics_render(
    metrics: Arc<rudder_controllers::QueueMetrics>,
    leader: rudder_component::LeaderMetrics,
) -> Arc<dyn Fn(&mut String) + Send + Sync> {
    metrics_render(move |r| metrics.register(r), leader)
}

/// Upstream kube-controller-manager's per-controller flags, on `rudder server` and
/// `rudder controller-manager` alike.
#[derive(clap::Args, Clone, Debug)]
pub struct ControllerFlags {
    /// How often node-lifecycle-controller checks node health (upstream's
    /// `--node-monitor-period`).
    #[arg(long, default_value = "5s", value_parser = go_duration)]
    pub node_monitor_period: std::time::Duration,
    /// How long a node may go unheard (no Lease renewal, no status) before it is marked
    /// Ready=Unknown (upstream's `--node-monitor-grace-period`).
    #[arg(long, default_value = "50s", value_parser = go_duration)]
    pub node_monitor_grace_period: std::time::Duration,
    /// The same for a node that never posted its status (`--node-startup-grace-period`).
    #[arg(long, default_value = "1m", value_parser = go_duration)]
    pub node_startup_grace_period: std::time::Duration,
    /// Terminated pods kept before pod GC deletes the oldest; 0 disables it
    /// (`--terminated-pod-gc-threshold`).
    #[arg(long, default_value_t = 12500)]
    pub terminated_pod_gc_threshold: usize,
    /// Give nodes podCIDRs from --cluster-cidr (`--allocate-node-cidrs`; on, as k3s runs it).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub allocate_node_cidrs: bool,
    /// The pods' address range nodes' podCIDRs are cut from (`--cluster-cidr`, IPv4).
    #[arg(long, default_value = "10.42.0.0/16")]
    pub cluster_cidr: String,
    /// Prefix length of each node's podCIDR (`--node-cidr-mask-size`).
    #[arg(long, default_value_t = 24)]
    pub node_cidr_mask_size: u8,
    /// Lifetime of the certificates csrsigning issues (`--cluster-signing-duration`).
    #[arg(long, default_value = "8760h", value_parser = go_duration)]
    pub cluster_signing_duration: std::time::Duration,
    /// Where the built-in local-path provisioner creates volumes on nodes (k3s's flag; `rudder
    /// server` defaults it to `<data-dir>/storage`).
    #[arg(long)]
    pub default_local_storage_path: Option<String>,
}

fn go_duration(s: &str) -> Result<std::time::Duration, String> {
    rudder_component::parse_go_duration(s).ok_or_else(|| format!("invalid duration {s:?}"))
}

impl ControllerFlags {
    pub fn options(&self) -> anyhow::Result<rudder_controllers::Options> {
        rudder_controllers::nodeipam::CidrSet::new(&self.cluster_cidr, self.node_cidr_mask_size)
            .map_err(|e| anyhow::anyhow!("--cluster-cidr/--node-cidr-mask-size: {e}"))?;
        Ok(rudder_controllers::Options {
            node_monitor_period: self.node_monitor_period,
            node_monitor_grace_period: self.node_monitor_grace_period,
            node_startup_grace_period: self.node_startup_grace_period,
            terminated_pod_gc_threshold: self.terminated_pod_gc_threshold,
            allocate_node_cidrs: self.allocate_node_cidrs,
            cluster_cidr: self.cluster_cidr.clone(),
            node_cidr_mask_size: self.node_cidr_mask_size,
            cluster_signing_duration: self.cluster_signing_duration,
            local_storage_path: self
                .default_local_storage_path
                .clone()
                .unwrap_or_else(|| rudder_controllers::localpath::DEFAULT_DIR.into()),
        })
    }
}

/// What the controllers are given besides the API: their credentials and their flags.
pub struct ControllerSetup {
    pub credentials: rudder_controllers::manager::Credentials,
    pub options: rudder_controllers::Options,
}

/// Runs the controller manager under leader election on `kube-system/kube-controller-manager`
/// (unless `leader_elect` is false) until `shutdown` resolves.
pub async fn run_controllers(
    client: kube::Client,
    controllers: Vec<String>,
    leader_elect: bool,
    metrics: Arc<rudder_controllers::QueueMetrics>,
    leader_metrics: rudder_component::LeaderMetrics,
    setup: ControllerSetup,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let ControllerSetup {
        credentials,
        options,
    } = setup;
    use rudder_controllers::manager::run_with_credentials;
    let host = hostname();
    if !leader_elect {
        tokio::select! {
            _ = run_with_credentials(client, controllers, metrics, host, credentials, options) => {}
            _ = shutdown => {}
        }
        return;
    }
    let election = rudder_component::LeaderElection::new(
        "kube-system",
        "kube-controller-manager",
        election_identity(),
    );
    election
        .run(
            client.clone(),
            leader_metrics,
            || {
                run_with_credentials(
                    client.clone(),
                    controllers.clone(),
                    metrics.clone(),
                    host.clone(),
                    credentials.clone(),
                    options.clone(),
                )
            },
            shutdown,
        )
        .await;
}

/// The in-process controller manager of `rudder server`.
pub fn start_in_process_controllers(
    server: &Arc<ApiServer>,
    router: axum::Router,
    controllers: Vec<String>,
    credentials: rudder_controllers::manager::Credentials,
    options: rudder_controllers::Options,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    let client = in_process_client(router.clone(), "system:kube-controller-manager", &[]);
    // Each controller acts as its own kube-system service account, bound to its bootstrap
    // role (upstream's --use-service-account-credentials, as k3s runs it).
    let mut credentials = credentials;
    credentials.client_for = Some(Arc::new(move |sa: &str| {
        in_process_client(
            router.clone(),
            &format!("system:serviceaccount:kube-system:{sa}"),
            &[
                "system:serviceaccounts",
                "system:serviceaccounts:kube-system",
            ],
        )
    }));
    let metrics = Arc::new(rudder_controllers::QueueMetrics::default());
    let leader = rudder_component::LeaderMetrics::default();
    if let Ok(mut sources) = server.component_metrics.write() {
        sources.push(controllers_metrics_render(metrics.clone(), leader.clone()));
    }
    tokio::spawn(run_controllers(
        client,
        controllers,
        true,
        metrics,
        leader,
        ControllerSetup {
            credentials,
            options,
        },
        shutdown,
    ))
}

/// The controllers' CA and legacy-token signer (kube-controller-manager's `--root-ca-file` and
/// `--service-account-private-key-file`), from PEM text.
pub fn controller_credentials(
    root_ca: Option<String>,
    signing_key_pem: Option<&str>,
) -> anyhow::Result<rudder_controllers::manager::Credentials> {
    use rudder_auth::serviceaccount::{SigningKey, TokenGenerator, LEGACY_ISSUER};
    let token_generator = signing_key_pem
        .map(|pem| {
            SigningKey::from_pem(pem.as_bytes())
                .map(|key| Arc::new(TokenGenerator::new(LEGACY_ISSUER, key)))
                .context("loading the service-account private key")
        })
        .transpose()?;
    Ok(rudder_controllers::manager::Credentials {
        root_ca,
        token_generator,
        cluster_signer: None,
        client_for: None,
    })
}

/// The cluster DNS's flags (`rudder server` and `rudder dns`).
#[derive(clap::Args, Clone, Debug)]
pub struct DnsFlags {
    /// Resolvers for names outside the cluster (`IP` or `IP:port`, repeatable; default: the
    /// non-loopback nameservers of /etc/resolv.conf).
    #[arg(long = "dns-upstream", value_delimiter = ',', value_parser = parse_upstream)]
    pub dns_upstream: Vec<std::net::SocketAddr>,
}

fn parse_upstream(s: &str) -> Result<std::net::SocketAddr, String> {
    s.parse::<std::net::SocketAddr>()
        .or_else(|_| s.parse::<std::net::IpAddr>().map(|ip| (ip, 53).into()))
        .map_err(|_| format!("invalid resolver address {s:?} (IP or IP:port)"))
}

impl DnsFlags {
    pub fn upstreams(&self) -> Vec<std::net::SocketAddr> {
        if self.dns_upstream.is_empty() {
            rudder_dns::forward::node_resolvers(Path::new("/etc/resolv.conf"))
        } else {
            self.dns_upstream.clone()
        }
    }
}

/// The in-process cluster DNS of `rudder server` (CoreDNS's identity), answering on `ip`:53 and
/// keeping the `kube-dns` Service at `--cluster-dns`; `None` (logged) when port 53 is taken.
pub async fn start_in_process_dns(
    router: axum::Router,
    flags: &DnsFlags,
    agent: &crate::agent::AgentFlags,
    ip: std::net::IpAddr,
    node_name: Option<String>,
    cluster_cidr: &str,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Option<tokio::task::JoinHandle<()>> {
    let client = in_process_client(
        router,
        "system:serviceaccount:kube-system:coredns",
        &[
            "system:serviceaccounts",
            "system:serviceaccounts:kube-system",
        ],
    );
    let cfg = rudder_dns::DnsConfig {
        cluster_domain: agent.cluster_domain.clone(),
        listen: vec![std::net::SocketAddr::new(ip, 53)],
        metrics: Some(std::net::SocketAddr::new(ip, rudder_dns::METRICS_PORT)),
        upstreams: flags.upstreams(),
        service: Some(rudder_dns::KubeDnsService {
            cluster_ip: agent.cluster_dns,
            endpoint_ip: ip,
            node_name,
            metrics_port: rudder_dns::METRICS_PORT,
        }),
        // Pods (and the nodes) may have outside names resolved; the rest of the network the
        // node's address is on may not.
        recursion_clients: Some(
            cluster_cidr
                .split(',')
                .filter_map(|c| rudder_dns::resolve::parse_net(c.trim()))
                .collect(),
        ),
    };
    let metrics = Arc::new(rudder_dns::DnsMetrics::default());
    match rudder_dns::start(client, cfg, metrics, shutdown).await {
        Ok(handle) => Some(handle),
        Err(e) => {
            tracing::error!(error = %e, "cluster DNS is not running (pass --disable=coredns to silence this)");
            None
        }
    }
}
