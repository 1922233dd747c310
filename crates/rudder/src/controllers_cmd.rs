//! `rudder controller-manager`: the controllers as their own process against any cluster.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;

#[derive(clap::Args, Clone, Debug)]
pub struct ControllerManagerArgs {
    /// kubeconfig of the cluster to manage.
    #[arg(long, env = "KUBECONFIG")]
    pub kubeconfig: PathBuf,
    /// Controllers to run: `*` for every controller on by default, `name` to enable one,
    /// `-name` to disable one (upstream's `--controllers`).
    #[arg(long, value_delimiter = ',', default_value = "*")]
    pub controllers: Vec<String>,
    /// Most endpoints in one EndpointSlice the endpointslice controller writes (upstream's
    /// `--max-endpoints-per-slice`).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub max_endpoints_per_slice: u16,
    /// Contend for the kube-system/kube-controller-manager Lease before running.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub leader_elect: bool,
    /// Address of the plain-HTTP /healthz and /metrics endpoint.
    #[arg(long, default_value = "127.0.0.1")]
    pub bind_address: IpAddr,
    /// Port of the /healthz and /metrics endpoint (upstream's 10257); 0 disables it.
    #[arg(long, default_value_t = 10257)]
    pub health_port: u16,
    /// CA bundle published in every namespace and put into token Secrets (default: the
    /// kubeconfig's certificate authority).
    #[arg(long)]
    pub root_ca_file: Option<PathBuf>,
    /// PEM private key that signs legacy service-account tokens; without it the tokens
    /// controller does not run (as upstream).
    #[arg(long)]
    pub service_account_private_key_file: Option<PathBuf>,
    /// PEM CA certificate csrsigning issues certificates with (with
    /// --cluster-signing-key-file; without both the controller does not run, as upstream).
    #[arg(long, requires = "cluster_signing_key_file")]
    pub cluster_signing_cert_file: Option<PathBuf>,
    /// PEM private key of --cluster-signing-cert-file.
    #[arg(long, requires = "cluster_signing_cert_file")]
    pub cluster_signing_key_file: Option<PathBuf>,
    #[command(flatten)]
    pub flags: crate::components::ControllerFlags,
}

/// The kubeconfig's CA of the current context's cluster, as upstream falls back to the client
/// config's CA data.
fn kubeconfig_ca(path: &std::path::Path) -> Option<String> {
    use base64::Engine as _;
    let kc = kube::config::Kubeconfig::read_from(path).ok()?;
    let context = kc.current_context.as_deref()?;
    let cluster_name = kc
        .contexts
        .iter()
        .find(|c| c.name == context)?
        .context
        .as_ref()?
        .cluster
        .clone();
    let cluster = kc
        .clusters
        .iter()
        .find(|c| c.name == cluster_name)?
        .cluster
        .as_ref()?;
    if let Some(data) = &cluster.certificate_authority_data {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(data)
            .ok()?;
        return String::from_utf8(bytes).ok();
    }
    std::fs::read_to_string(cluster.certificate_authority.as_ref()?).ok()
}

pub async fn run(args: ControllerManagerArgs) -> anyhow::Result<()> {
    rudder_controllers::manager::validate(&args.controllers)
        .map_err(|e| anyhow::anyhow!("--controllers: {e}"))?;
    rudder_controllers::endpointslice::set_max_endpoints_per_slice(
        args.max_endpoints_per_slice.into(),
    );
    let options = args.flags.options()?;
    let client = crate::components::kubeconfig_client(&args.kubeconfig).await?;
    let root_ca = match &args.root_ca_file {
        Some(p) => Some(
            std::fs::read_to_string(p)
                .with_context(|| format!("reading --root-ca-file {}", p.display()))?,
        ),
        None => kubeconfig_ca(&args.kubeconfig),
    };
    let key_pem = match &args.service_account_private_key_file {
        Some(p) => Some(std::fs::read_to_string(p).with_context(|| {
            format!("reading --service-account-private-key-file {}", p.display())
        })?),
        None => None,
    };
    let mut credentials = crate::components::controller_credentials(root_ca, key_pem.as_deref())?;
    if let (Some(cert), Some(key)) = (
        &args.cluster_signing_cert_file,
        &args.cluster_signing_key_file,
    ) {
        let read = |p: &PathBuf| {
            std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))
        };
        credentials.cluster_signer = Some(Arc::new(
            rudder_pki::CsrSigner::from_pem(&read(cert)?, &read(key)?)
                .context("--cluster-signing-cert-file/--cluster-signing-key-file")?,
        ));
    }
    let metrics = Arc::new(rudder_controllers::QueueMetrics::default());
    let leader = rudder_component::LeaderMetrics::default();
    if args.health_port != 0 {
        let addr = SocketAddr::new(args.bind_address, args.health_port);
        let render = crate::components::controllers_metrics_render(metrics.clone(), leader.clone());
        tokio::spawn(async move {
            if let Err(e) =
                rudder_component::serve_health(addr, render, crate::server::shutdown_signal()).await
            {
                tracing::error!(error = %e, "health endpoint failed");
            }
        });
    }
    crate::components::run_controllers(
        client,
        args.controllers,
        args.leader_elect,
        metrics,
        leader,
        crate::components::ControllerSetup {
            credentials,
            options,
        },
        crate::server::shutdown_signal(),
    )
    .await;
    Ok(())
}
