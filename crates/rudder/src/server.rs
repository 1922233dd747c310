//! `rudder server`: the control plane on the embedded store (or etcd).

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use rudder_apiserver::ApiServer;
use rudder_registry::{GenericStore, Registry, WatchCache, WriteOpts};
use rudder_store::Store;
use serde_json::{json, Value};

#[derive(clap::Args, Clone, Debug)]
pub struct ServerArgs {
    /// Where state, certificates and credentials live (default /var/lib/rudder as root,
    /// ~/.rudder otherwise).
    #[arg(long, short = 'd', env = "RUDDER_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// HTTPS port of the API server.
    #[arg(long, default_value_t = 6443)]
    pub https_listen_port: u16,
    /// Address to listen on.
    #[arg(long, default_value = "0.0.0.0")]
    pub bind_address: IpAddr,
    /// The address the `kubernetes` service points at (default: the bind address, or the
    /// node's address when listening on all of them).
    #[arg(long)]
    pub advertise_address: Option<IpAddr>,
    /// etcd endpoints (comma-separated `http(s)://host:port`) instead of the embedded store.
    #[arg(long, env = "RUDDER_DATASTORE_ENDPOINT")]
    pub datastore_endpoint: Option<String>,
    /// CA bundle for TLS to etcd.
    #[arg(long)]
    pub datastore_cafile: Option<PathBuf>,
    /// Client certificate for TLS to etcd.
    #[arg(long)]
    pub datastore_certfile: Option<PathBuf>,
    /// Client key for TLS to etcd.
    #[arg(long)]
    pub datastore_keyfile: Option<PathBuf>,
    /// Where to write the admin kubeconfig (default `<data-dir>/kubeconfig.yaml`).
    #[arg(long, short = 'o')]
    pub write_kubeconfig: Option<PathBuf>,
    /// Extra static bearer tokens, upstream's CSV format (`token,user,uid,"group1,group2"`).
    #[arg(long)]
    pub token_auth_file: Option<PathBuf>,
    /// Extra names or addresses for the serving certificate.
    #[arg(long = "tls-san")]
    pub tls_san: Vec<String>,
    /// The join token agents present (`<id>.<secret>`, 6 and 16 of `[a-z0-9]`, or the full
    /// `K10<hash>::<id>.<secret>` form); generated on first start when not given, as k3s's
    /// `--token`.
    #[arg(long, env = "RUDDER_TOKEN")]
    pub token: Option<String>,
    /// Do not run the scheduler in this process.
    #[arg(long)]
    pub disable_scheduler: bool,
    /// Do not run the controller manager in this process.
    #[arg(long)]
    pub disable_controllers: bool,
    /// Run no node agent for this machine (a control-plane-only server).
    #[arg(long)]
    pub disable_agent: bool,
    /// Packaged components not to run (k3s's `--disable`): `coredns` (the cluster DNS),
    /// `servicelb`.
    #[arg(long, value_delimiter = ',')]
    pub disable: Vec<String>,
    #[command(flatten)]
    pub dns: crate::components::DnsFlags,
    #[command(flatten)]
    pub agent: crate::agent::AgentFlags,
    /// Controllers to run, as upstream's `--controllers`: `*` for every controller on by
    /// default, `name` to enable one, `-name` to disable one. As k3s, the server also runs
    /// `tokencleaner`, which upstream leaves off.
    #[arg(long, value_delimiter = ',', default_value = "*,tokencleaner")]
    pub controllers: Vec<String>,
    /// Most endpoints in one EndpointSlice the endpointslice controller writes (upstream's
    /// `--max-endpoints-per-slice`).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub max_endpoints_per_slice: u16,
    #[command(flatten)]
    pub service_accounts: ServiceAccountArgs,
    #[command(flatten)]
    pub audit: AuditArgs,
    /// Encrypt Secrets at rest with a key Rudder generates
    /// (`<data-dir>/server/cred/encryption-config.json`), as k3s's `--secrets-encryption`.
    #[arg(long)]
    pub secrets_encryption: bool,
    /// Encrypt resources at rest as this `EncryptionConfiguration` says (kube-apiserver's flag).
    #[arg(long)]
    pub encryption_provider_config: Option<PathBuf>,
    #[command(flatten)]
    pub controller_flags: crate::components::ControllerFlags,
    /// Authorizers in the order asked (kube-apiserver's `--authorization-mode`): `Node`,
    /// `RBAC`, `AlwaysAllow`, `AlwaysDeny`. Members of system:masters are always allowed.
    #[arg(long = "authorization-mode", value_delimiter = ',', default_value = "Node,RBAC",
          value_parser = ["Node", "RBAC", "AlwaysAllow", "AlwaysDeny"])]
    pub authorization_mode: Vec<String>,
    /// tolerationSeconds of the `not-ready:NoExecute` toleration added to pods without one
    /// (the DefaultTolerationSeconds admission plugin).
    #[arg(long, default_value_t = 300)]
    pub default_not_ready_toleration_seconds: i64,
    /// The same for `unreachable:NoExecute`.
    #[arg(long, default_value_t = 300)]
    pub default_unreachable_toleration_seconds: i64,
}

/// Service-account token flags, as kube-apiserver names them.
#[derive(clap::Args, Clone, Debug)]
pub struct ServiceAccountArgs {
    /// Issuer of service-account tokens (`iss`); the first signs, all are accepted.
    #[arg(long = "service-account-issuer", default_value = rudder_auth::serviceaccount::DEFAULT_ISSUER)]
    pub issuers: Vec<String>,
    /// PEM private key that signs service-account tokens (default `<data-dir>/server/tls/service.key`,
    /// generated on first start).
    #[arg(long = "service-account-signing-key-file")]
    pub signing_key_file: Option<PathBuf>,
    /// PEM files of keys that verify service-account tokens (default: the signing key).
    #[arg(long = "service-account-key-file")]
    pub key_files: Vec<PathBuf>,
    /// Audiences the API server accepts in tokens (default: the issuers).
    #[arg(long = "api-audiences", value_delimiter = ',')]
    pub api_audiences: Vec<String>,
    /// `jwks_uri` of the discovery document (default `https://<advertise address>/openid/v1/jwks`).
    #[arg(long = "service-account-jwks-uri")]
    pub jwks_uri: Option<String>,
    /// Issue the kubelet's default projected tokens (3607 s, pod-bound) for a year, warning after the hour.
    #[arg(long = "service-account-extend-token-expiration", default_value_t = true, action = clap::ArgAction::Set)]
    pub extend_token_expiration: bool,
}

/// Auditing flags, as kube-apiserver names them.
#[derive(clap::Args, Clone, Debug)]
pub struct AuditArgs {
    /// The audit policy (audit.k8s.io/v1 Policy); without it nothing is audited.
    #[arg(long = "audit-policy-file")]
    pub policy_file: Option<PathBuf>,
    /// Where audit events go, one JSON object per line (`-` for standard output).
    #[arg(long = "audit-log-path")]
    pub log_path: Option<PathBuf>,
    /// Days to keep rotated audit logs (0: no limit).
    #[arg(long = "audit-log-maxage", default_value_t = 0)]
    pub max_age: u64,
    /// Rotated audit logs to keep (0: no limit).
    #[arg(long = "audit-log-maxbackup", default_value_t = 0)]
    pub max_backup: usize,
    /// Megabytes an audit log grows to before it is rotated (0: never).
    #[arg(long = "audit-log-maxsize", default_value_t = 0)]
    pub max_size: u64,
    /// The log format; `json` (one Event per line) is the one Rudder writes.
    #[arg(long = "audit-log-format", default_value = "json", value_parser = ["json"])]
    pub format: String,
}

impl AuditArgs {
    fn auditor(&self) -> anyhow::Result<Option<rudder_apiserver::audit::Auditor>> {
        // As upstream, a policy without a log path (or a path without a policy) audits nothing.
        let (Some(policy), Some(path)) = (&self.policy_file, &self.log_path) else {
            return Ok(None);
        };
        let log = rudder_apiserver::audit::LogOptions {
            path: path.clone(),
            max_age_days: self.max_age,
            max_backups: self.max_backup,
            max_size_mb: self.max_size,
        };
        Ok(Some(rudder_apiserver::audit::Auditor::start(policy, log)?))
    }
}

fn default_data_dir() -> PathBuf {
    // Root gets the system location (as k3s uses /var/lib/rancher/k3s); others their home.
    let is_root = std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false);
    if is_root {
        PathBuf::from("/var/lib/rudder")
    } else {
        std::env::var_os("HOME")
            .map(|h| PathBuf::from(h).join(".rudder"))
            .unwrap_or_else(|| PathBuf::from(".rudder"))
    }
}

/// A built (not yet serving) API server and what it was built from.
pub struct Built {
    pub server: Arc<ApiServer>,
    pub pki: rudder_pki::ClusterPki,
    pub store: Arc<dyn Store>,
    pub data_dir: PathBuf,
    /// The service-account signing key's PEM, which the in-process tokens controller signs with.
    pub service_account_key_pem: String,
    /// The CA aggregated API servers trust for the front proxy's identity headers.
    pub request_header_ca_pem: String,
}

/// Opens the store and builds the API server (certificates, registry, watch cache,
/// authentication, admission); nothing is served yet.
pub async fn build(args: &ServerArgs) -> anyhow::Result<Built> {
    let data_dir = args.data_dir.clone().unwrap_or_else(default_data_dir);
    let server_dir = data_dir.join("server");
    std::fs::create_dir_all(&server_dir)
        .with_context(|| format!("creating {}", server_dir.display()))?;

    let store = open_store(args, &server_dir).await?;
    let store = match crate::secrets_encrypt::config_path(
        &server_dir,
        args.secrets_encryption,
        args.encryption_provider_config.as_deref(),
    )? {
        Some(path) => crate::secrets_encrypt::wrap(store, &path)?,
        None => store,
    };
    let pki = rudder_pki::ClusterPki::load_or_create(
        &server_dir.join("tls"),
        rudder_pki::PkiOptions {
            sans: args.tls_san.clone(),
            token_file: None,
        },
    )
    .context("preparing certificates")?;

    let registry = Arc::new(
        Registry::builtin(rudder_resources::strategies::strategy_for)
            .context("loading the built-in resource table")?,
    );
    let conversions = rudder_apiserver::conversion::Conversions::new();
    rudder_apiserver::crd::register_stored(store.as_ref(), &registry, &conversions)
        .await
        .context("reading the stored CustomResourceDefinitions")?;
    let cache = WatchCache::start(store.clone(), registry.clone())
        .await
        .context("loading the watch cache")?;
    rudder_store::spawn_compactor(store.clone(), Duration::from_secs(300));

    let mut authn = rudder_auth::UnionAuthenticator::new(vec![]);
    authn.push(rudder_auth::X509Authenticator::new());
    authn.push(
        rudder_auth::TokenFileAuthenticator::from_file(pki.token_file())
            .context("reading the admin token file")?,
    );
    if let Some(path) = &args.token_auth_file {
        authn.push(
            rudder_auth::TokenFileAuthenticator::from_file(path)
                .with_context(|| format!("reading --token-auth-file {}", path.display()))?,
        );
    }
    // Bootstrap tokens (`kube-system/bootstrap-token-<id>` Secrets), which joining agents
    // present to ask for their node certificate; upstream's `--enable-bootstrap-token-auth`,
    // always on as in k3s.
    authn.push(rudder_auth::bootstrap::BootstrapTokenAuthenticator::new(
        Arc::new(rudder_apiserver::tokens::CacheTokenGetter {
            cache: cache.clone(),
            registry: registry.clone(),
        }),
    ));
    // The `kubernetes` service's endpoint: it must be reachable from every pod on every
    // node, so when listening on all addresses it is the node's address (k3s: the node IP).
    let advertise = match (args.advertise_address, args.bind_address) {
        (Some(ip), _) => ip,
        (None, ip) if ip.is_unspecified() => args
            .agent
            .node_ip
            .unwrap_or_else(rudder_kubelet::config::default_node_ip),
        (None, ip) => ip,
    };
    let advertise_address = SocketAddr::new(advertise, args.https_listen_port).to_string();
    let (service_accounts, service_account_key_pem) = service_account_tokens(
        &args.service_accounts,
        &pki,
        &cache,
        &registry,
        &advertise_address,
        &mut authn,
    )?;
    let priority_classes = registry
        .get("scheduling.k8s.io", "v1", "priorityclasses")
        .context("priorityclasses are not registered")?
        .prefix
        .clone();
    let storage_classes = registry
        .get("storage.k8s.io", "v1", "storageclasses")
        .context("storageclasses are not registered")?
        .prefix
        .clone();
    // The API server's credentials towards kubelets (upstream's --kubelet-client-certificate;
    // kubeadm's user name), renewed with each start.
    let (kubelet_cert, kubelet_key) = pki
        .issue_client_cert(
            "kube-apiserver-kubelet-client",
            &["kubeadm:cluster-admins"],
            std::time::Duration::from_secs(365 * 24 * 3600),
        )
        .context("issuing the kubelet client certificate")?;
    let kubelet_client =
        rudder_apiserver::podproxy::KubeletClient::new(&kubelet_cert, &kubelet_key)
            .map_err(|e| anyhow::anyhow!("kubelet client credentials: {e}"))?;
    let (authz, rbac, node_graph) = authorizer(&args.authorization_mode);
    // Shared with admission: policies' `authorizer` checks and the certificate plugins'
    // signer permissions ask the same chain.
    let authz: Arc<dyn rudder_auth::Authorizer> = Arc::new(authz);
    let signer_authz: rudder_resources::certificate_admission::SignerAuthorizer = {
        let authz = authz.clone();
        Arc::new(
            move |user: &rudder_registry::Requester, verb: &str, name: &str| {
                let user = rudder_auth::UserInfo {
                    name: user.name.clone(),
                    uid: user.uid.clone(),
                    groups: user.groups.clone(),
                    extra: user.extra.clone(),
                };
                authz
                    .authorize(
                        &user,
                        &rudder_auth::Attributes {
                            verb: verb.to_string(),
                            api_group: "certificates.k8s.io".into(),
                            api_version: "*".into(),
                            resource: "signers".into(),
                            name: name.to_string(),
                            resource_request: true,
                            ..Default::default()
                        },
                    )
                    .allowed()
            },
        )
    };
    // The front proxy's credentials towards aggregated API servers (upstream's
    // --proxy-client-cert-file, signed by the request-header CA), renewed with each start.
    let (request_header_ca_pem, proxy_cert, proxy_key) = pki
        .proxy_client(std::time::Duration::from_secs(365 * 24 * 3600))
        .context("issuing the front-proxy client certificate")?;
    let aggregator = rudder_apiserver::aggregator::Aggregator::new(&proxy_cert, &proxy_key)
        .map_err(|e| anyhow::anyhow!("front-proxy client credentials: {e}"))?;
    let webhook_client = rudder_apiserver::webhook::WebhookClient::new(Arc::new(
        rudder_apiserver::webhook::CacheResolver {
            cache: cache.clone(),
            services_prefix: core_prefix(&registry, "services")?,
            slices_prefix: prefix(&registry, "discovery.k8s.io", "v1", "endpointslices")?,
        },
    ));
    conversions.set_client(webhook_client.clone());
    let cel_programs = Arc::new(rudder_apiserver::admission_webhook::Programs::default());
    let webhooks = |phase| -> anyhow::Result<_> {
        use rudder_apiserver::admission_webhook::{Phase, WebhookAdmission};
        let configs = match phase {
            Phase::Mutating => "mutatingwebhookconfigurations",
            Phase::Validating => "validatingwebhookconfigurations",
        };
        Ok(WebhookAdmission::new(
            phase,
            cache.clone(),
            prefix(&registry, "admissionregistration.k8s.io", "v1", configs)?,
            core_prefix(&registry, "namespaces")?,
            webhook_client.clone(),
            cel_programs.clone(),
        ))
    };
    let policies = |kind| -> anyhow::Result<_> {
        use rudder_apiserver::admission_policy::{PolicyAdmission, PolicyKind};
        let (policies, bindings) = match kind {
            PolicyKind::Mutating => (
                "mutatingadmissionpolicies",
                "mutatingadmissionpolicybindings",
            ),
            PolicyKind::Validating => (
                "validatingadmissionpolicies",
                "validatingadmissionpolicybindings",
            ),
        };
        let group = "admissionregistration.k8s.io";
        Ok(PolicyAdmission::new(
            kind,
            cache.clone(),
            authz.clone(),
            registry.clone(),
            prefix(&registry, group, "v1", policies)?,
            prefix(&registry, group, "v1", bindings)?,
            core_prefix(&registry, "namespaces")?,
            cel_programs.clone(),
        ))
    };
    let server = Arc::new(ApiServer {
        gs: GenericStore {
            store: store.clone(),
            // Service ClusterIP and NodePort allocation first (upstream does it in the REST
            // create), its state rebuilt from the stored services (the snapshot the watch
            // cache just loaded; nothing is served yet); then upstream's plugins in its order
            // (`AllOrderedPlugins`), reading the objects they need from the watch cache as
            // upstream's listers.
            admission: vec![
                Arc::new(
                    rudder_allocator::ServiceAllocator::from_store(
                        rudder_allocator::ServiceAllocatorConfig::default(),
                        store.as_ref(),
                    )
                    .await
                    .context("rebuilding the service IP and node port allocations")?,
                ) as Arc<dyn rudder_registry::Admission>,
                Arc::new(rudder_resources::limitranger::LimitRangerAdmission::new(
                    cache.clone(),
                    core_prefix(&registry, "limitranges")?,
                )),
                Arc::new(rudder_resources::admission::ServiceAccountAdmission::new(
                    cache.clone(),
                    core_prefix(&registry, "serviceaccounts")?,
                )),
                // A node's credentials write only its own Node and the pods bound to it.
                Arc::new(rudder_resources::noderestriction::NodeRestriction::new(
                    cache.clone(),
                    core_prefix(&registry, "pods")?,
                )),
                Arc::new(rudder_resources::admission::TaintNodesByCondition),
                Arc::new(rudder_resources::podsecurity::PodSecurityAdmission::new(
                    cache.clone(),
                    core_prefix(&registry, "namespaces")?,
                    core_prefix(&registry, "pods")?,
                )),
                Arc::new(rudder_resources::admission::PriorityAdmission::new(
                    cache.clone(),
                    priority_classes,
                )),
                Arc::new(rudder_resources::admission::DefaultTolerationSeconds {
                    not_ready_seconds: args.default_not_ready_toleration_seconds,
                    unreachable_seconds: args.default_unreachable_toleration_seconds,
                }),
                Arc::new(
                    rudder_resources::storage_admission::DefaultStorageClass::new(
                        cache.clone(),
                        storage_classes.clone(),
                    ),
                ),
                Arc::new(rudder_resources::storage_admission::StorageProtection),
                Arc::new(
                    rudder_resources::storage_admission::PersistentVolumeClaimResize::new(
                        cache.clone(),
                        storage_classes.clone(),
                    ),
                ),
                Arc::new(rudder_resources::admission::RuntimeClassAdmission::new(
                    cache.clone(),
                    prefix(&registry, "node.k8s.io", "v1", "runtimeclasses")?,
                )),
                Arc::new(
                    rudder_resources::certificate_admission::CertificateApproval {
                        authz: signer_authz.clone(),
                    },
                ),
                Arc::new(
                    rudder_resources::certificate_admission::CertificateSigning {
                        authz: signer_authz,
                    },
                ),
                Arc::new(rudder_resources::certificate_admission::CertificateSubjectRestriction),
                Arc::new(
                    rudder_resources::ingress_admission::DefaultIngressClass::new(
                        cache.clone(),
                        prefix(&registry, "networking.k8s.io", "v1", "ingressclasses")?,
                    ),
                ),
                // MutatingAdmissionPolicy, then mutating webhooks (their async step runs after
                // every built-in mutation), then validating webhooks, reading their
                // configurations from the watch cache.
                Arc::new(policies(
                    rudder_apiserver::admission_policy::PolicyKind::Mutating,
                )?),
                Arc::new(webhooks(
                    rudder_apiserver::admission_webhook::Phase::Mutating,
                )?),
                // ValidatingAdmissionPolicy before the validating webhooks, as upstream.
                Arc::new(policies(
                    rudder_apiserver::admission_policy::PolicyKind::Validating,
                )?),
                Arc::new(webhooks(
                    rudder_apiserver::admission_webhook::Phase::Validating,
                )?),
                // Last, as upstream orders it: it charges what the others let through.
                Arc::new(
                    rudder_resources::resourcequota::ResourceQuotaAdmission::new(
                        cache.clone(),
                        store.clone(),
                        core_prefix(&registry, "resourcequotas")?,
                    ),
                ),
            ],
            cache,
            registry,
        },
        authn: Box::new(authn),
        authz,
        rbac: rbac.clone(),
        ready: Default::default(),
        metrics: Default::default(),
        advertise_address,
        component_metrics: Default::default(),
        service_accounts: Some(service_accounts),
        kubelet_client: Some(kubelet_client),
        auditor: args.audit.auditor()?,
        aggregator: Some(aggregator),
    });
    rudder_apiserver::crd::spawn(server.clone(), conversions);
    if let Some(index) = rbac {
        rudder_apiserver::rbac::follow(&server.gs, index)
            .await
            .map_err(|e| anyhow::anyhow!("loading RBAC objects: {}", e.message))?;
    }
    if let Some(graph) = node_graph {
        rudder_apiserver::rbac::follow_node_graph(&server.gs, graph)
            .await
            .map_err(|e| anyhow::anyhow!("loading the node authorizer's graph: {}", e.message))?;
    }
    rudder_apiserver::aggregator::spawn(server.clone());
    Ok(Built {
        server,
        pki,
        store,
        data_dir,
        service_account_key_pem,
        request_header_ca_pem,
    })
}

/// The token issuer and the two service-account token authenticators (bound and legacy), as
/// kube-apiserver builds them from its `--service-account-*` flags.
fn service_account_tokens(
    args: &ServiceAccountArgs,
    pki: &rudder_pki::ClusterPki,
    cache: &Arc<WatchCache>,
    registry: &Arc<Registry>,
    advertise_address: &str,
    authn: &mut rudder_auth::UnionAuthenticator,
) -> anyhow::Result<(Arc<rudder_apiserver::tokens::ServiceAccountTokens>, String)> {
    use rudder_auth::serviceaccount as sa;
    let signing_pem = match &args.signing_key_file {
        Some(path) => std::fs::read_to_string(path).with_context(|| {
            format!(
                "reading --service-account-signing-key-file {}",
                path.display()
            )
        })?,
        None => pki.service_account_key_pem().to_string(),
    };
    let signing = sa::SigningKey::from_pem(signing_pem.as_bytes())
        .context("loading the service-account signing key")?;
    let mut keys = Vec::new();
    for path in &args.key_files {
        let pem = std::fs::read(path)
            .with_context(|| format!("reading --service-account-key-file {}", path.display()))?;
        keys.extend(
            sa::public_keys_from_pem(&pem)
                .with_context(|| format!("--service-account-key-file {}", path.display()))?,
        );
    }
    if keys.is_empty() {
        keys.push(signing.public_key().clone());
    }
    let issuers: Vec<String> = args
        .issuers
        .iter()
        .filter(|i| !i.is_empty())
        .cloned()
        .collect();
    let Some(first) = issuers.first().cloned() else {
        anyhow::bail!("--service-account-issuer must not be empty");
    };
    let audiences = if args.api_audiences.is_empty() {
        issuers.clone()
    } else {
        args.api_audiences.clone()
    };
    let getter: Arc<dyn sa::TokenGetter> = Arc::new(rudder_apiserver::tokens::CacheTokenGetter {
        cache: cache.clone(),
        registry: registry.clone(),
    });
    authn.push(sa::JwtAuthenticator::new(
        sa::TokenKind::Legacy,
        vec![sa::LEGACY_ISSUER.to_string()],
        keys.clone(),
        audiences.clone(),
        getter.clone(),
    ));
    authn.push(sa::JwtAuthenticator::new(
        sa::TokenKind::Bound,
        issuers,
        keys.clone(),
        audiences.clone(),
        getter,
    ));
    let mut tokens = rudder_apiserver::tokens::ServiceAccountTokens::new(
        sa::TokenGenerator::new(first, signing),
        audiences,
        &keys,
        args.jwks_uri.clone(),
        advertise_address,
    );
    tokens.extend_expiration = args.extend_token_expiration;
    Ok((Arc::new(tokens), signing_pem))
}

/// The authorizer chain of `--authorization-mode`, after system:masters (upstream puts the
/// privileged group first whatever the modes), and RBAC's index when RBAC is one of them.
fn authorizer(
    modes: &[String],
) -> (
    rudder_auth::UnionAuthorizer,
    Option<Arc<rudder_auth::rbac::RbacIndex>>,
    Option<Arc<rudder_auth::node::NodeGraph>>,
) {
    let mut chain = rudder_auth::UnionAuthorizer::default();
    chain.push(rudder_auth::PrivilegedGroups::default());
    let mut rbac = None;
    let mut graph = None;
    for mode in modes {
        match mode.as_str() {
            "Node" => {
                let g = Arc::new(rudder_auth::node::NodeGraph::new());
                chain.push(rudder_auth::node::NodeAuthorizer::new(g.clone()));
                graph = Some(g);
            }
            "RBAC" => {
                let index = Arc::new(rudder_auth::rbac::RbacIndex::new());
                chain.push(rudder_auth::rbac::RbacAuthorizer::new(index.clone()));
                rbac = Some(index);
            }
            "AlwaysAllow" => {
                chain.push(rudder_auth::AlwaysAllow);
            }
            "AlwaysDeny" => {
                chain.push(rudder_auth::AlwaysDeny);
            }
            _ => {}
        }
    }
    (chain, rbac, graph)
}

/// The store prefix of a core/v1 resource an admission plugin reads.
fn core_prefix(registry: &rudder_registry::Registry, plural: &str) -> anyhow::Result<String> {
    prefix(registry, "", "v1", plural)
}

/// The store prefix of a resource an admission plugin reads.
fn prefix(
    registry: &rudder_registry::Registry,
    group: &str,
    version: &str,
    plural: &str,
) -> anyhow::Result<String> {
    Ok(registry
        .get(group, version, plural)
        .with_context(|| format!("{plural}.{group} are not registered"))?
        .prefix
        .clone())
}

pub async fn run(args: ServerArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let Built {
        server,
        pki,
        store,
        data_dir,
        service_account_key_pem,
        request_header_ca_pem,
    } = build(&args).await?;

    let addr = SocketAddr::new(args.bind_address, args.https_listen_port);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("listening on {addr}"))?;
    let router =
        crate::join::cacerts_route(server.router(), pki.ca_pem().to_string(), server.clone());
    let tls = pki.server_tls_config();
    // On SIGINT/SIGTERM the in-process components stop first (releasing their leases through
    // the still-serving API), then the API server.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let (components_tx, components_done) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(rudder_apiserver::serve_tls(
        listener,
        tls,
        router.clone(),
        async move {
            shutdown_signal().await;
            let _ = stop_tx.send(true);
            let _ = tokio::time::timeout(Duration::from_secs(5), components_done).await;
        },
    ));

    bootstrap(&server).await?;
    if let Err(e) =
        extension_apiserver_authentication(&server, pki.ca_pem(), &request_header_ca_pem).await
    {
        tracing::warn!(error = %e, "could not publish kube-system/extension-apiserver-authentication");
    }
    let token_file =
        crate::join::ensure_join_token(&server, &data_dir, &pki.ca_hash(), args.token.as_deref())
            .await?;
    server.ready.store(true, Ordering::Release);

    rudder_controllers::manager::validate(&args.controllers)
        .map_err(|e| anyhow::anyhow!("--controllers: {e}"))?;
    let mut controllers = args.controllers.clone();
    if args.disable.iter().any(|d| d == "servicelb") {
        controllers.push("-service-lb-controller".into());
    }
    rudder_controllers::endpointslice::set_max_endpoints_per_slice(
        args.max_endpoints_per_slice.into(),
    );
    let mut controller_options = args.controller_flags.options()?;
    if args.controller_flags.default_local_storage_path.is_none() {
        controller_options.local_storage_path = data_dir.join("storage").display().to_string();
    }
    let mut components = Vec::new();
    if !args.disable_controllers {
        let mut credentials = crate::components::controller_credentials(
            Some(pki.ca_pem().to_string()),
            Some(&service_account_key_pem),
        )?;
        // csrsigning signs with the cluster CA, as k3s hands kube-controller-manager its
        // --cluster-signing-* files.
        credentials.cluster_signer = Some(Arc::new(
            pki.csr_signer().context("loading the cluster signing CA")?,
        ));
        components.push(crate::components::start_in_process_controllers(
            &server,
            router.clone(),
            controllers,
            credentials,
            controller_options,
            stopped(stop_rx.clone()),
        ));
    }
    if !args.disable_scheduler {
        components.push(crate::components::start_in_process_scheduler(
            &server,
            router.clone(),
            stopped(stop_rx.clone()),
        ));
    }
    // The server's own node (k3s-style), as system:node:<name> through the in-process client.
    let agent = if args.disable_agent {
        None
    } else {
        let mut cfg = crate::agent::kubelet_config(&args.agent, &data_dir)?;
        cfg.client_ca_pem = Some(pki.ca_pem().to_string());
        if !args.agent.disable_kube_proxy {
            let metrics = Arc::new(rudder_proxy::ProxyMetrics::default());
            if let Ok(mut sources) = server.component_metrics.write() {
                sources.push(crate::proxy_cmd::metrics_render(metrics.clone()));
            }
            crate::proxy_cmd::spawn(
                crate::components::in_process_client(router.clone(), "system:kube-proxy", &[]),
                crate::proxy_cmd::config(
                    &cfg.node_name,
                    &args.controller_flags.cluster_cidr,
                    rudder_allocator::DEFAULT_SERVICE_CIDR,
                ),
                metrics,
            );
        }
        let user = format!("system:node:{}", cfg.node_name);
        let client = crate::components::in_process_client(router.clone(), &user, &["system:nodes"]);
        let flannel = args
            .agent
            .flannel_config(&cfg, &args.controller_flags.cluster_cidr)?;
        Some(crate::agent::start_agent(client, cfg, &args.agent, flannel).await.context(
            "starting this server's node agent (pass --disable-agent for a control-plane-only server)",
        )?)
    };
    // Cluster DNS (k3s's packaged CoreDNS) on the node's address, behind kube-dns.
    if !args.disable.iter().any(|d| d == "coredns") {
        let node_name = (!args.disable_agent).then(|| {
            args.agent
                .node_name
                .clone()
                .unwrap_or_else(crate::components::hostname)
                .to_lowercase()
        });
        let ip = match (args.disable_agent, args.agent.node_ip) {
            (false, Some(ip)) => ip,
            (true, _) if !args.bind_address.is_unspecified() => args.bind_address,
            _ => rudder_kubelet::config::default_node_ip(),
        };
        if let Some(dns) = crate::components::start_in_process_dns(
            router.clone(),
            &args.dns,
            &args.agent,
            ip,
            node_name,
            &args.controller_flags.cluster_cidr,
            stopped(stop_rx.clone()),
        )
        .await
        {
            components.push(dns);
        }
    }
    tokio::spawn(async move {
        for c in components {
            let _ = c.await;
        }
        let _ = components_tx.send(());
    });

    let kubeconfig = args
        .write_kubeconfig
        .clone()
        .unwrap_or_else(|| data_dir.join("kubeconfig.yaml"));
    let url = format!("https://127.0.0.1:{}", args.https_listen_port);
    rudder_pki::write_kubeconfig(&kubeconfig, &pki.admin_kubeconfig(url))
        .with_context(|| format!("writing {}", kubeconfig.display()))?;
    tracing::info!(
        address = %addr,
        backend = store.backend_name(),
        ready_in_ms = started.elapsed().as_millis() as u64,
        "rudder server is ready"
    );
    eprintln!(
        "Rudder is ready. Admin kubeconfig: {} (try: KUBECONFIG={} kubectl get ns)",
        kubeconfig.display(),
        kubeconfig.display()
    );
    tracing::info!(path = %token_file.display(), "node join token written");
    eprintln!(
        "Join token for agents: {} (rudder agent --server https://<this host>:{} --token \"$(cat {})\")",
        token_file.display(),
        args.https_listen_port,
        token_file.display()
    );
    serving.await.context("API server task failed")?;
    if let Some(agent) = agent {
        if let Some(c) = agent.containerd {
            c.stop().await;
        }
    }
    tracing::info!("rudder server stopped");
    Ok(())
}

async fn open_store(
    args: &ServerArgs,
    server_dir: &std::path::Path,
) -> anyhow::Result<Arc<dyn Store>> {
    match &args.datastore_endpoint {
        Some(endpoints) => {
            let tls = match (
                &args.datastore_cafile,
                &args.datastore_certfile,
                &args.datastore_keyfile,
            ) {
                (None, None, None) => None,
                (Some(ca), cert, key) => Some(rudder_store_etcd::EtcdTls {
                    ca_pem: ca.clone(),
                    cert_pem: cert.clone(),
                    key_pem: key.clone(),
                }),
                _ => anyhow::bail!(
                    "--datastore-certfile/--datastore-keyfile need --datastore-cafile"
                ),
            };
            let store = rudder_store_etcd::EtcdStore::connect(rudder_store_etcd::EtcdConfig {
                endpoints: endpoints.split(',').map(|e| e.trim().to_string()).collect(),
                tls,
                ..Default::default()
            })
            .await
            .with_context(|| format!("connecting to etcd at {endpoints}"))?;
            Ok(Arc::new(store))
        }
        None => {
            let dir = server_dir.join("db");
            std::fs::create_dir_all(&dir)?;
            let store = rudder_store_redb::RedbStore::open(
                dir.join("state.redb"),
                rudder_store_redb::RedbOptions::default(),
            )
            .await
            .context("opening the embedded store")?;
            Ok(Arc::new(store))
        }
    }
}

/// What every cluster has from its first start: the four system namespaces, the system
/// PriorityClasses and the `kubernetes` service.
async fn bootstrap(server: &ApiServer) -> anyhow::Result<()> {
    let gs = &server.gs;
    let ns = gs
        .registry
        .get("", "v1", "namespaces")
        .context("namespaces are not registered")?
        .clone();
    for name in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        let body = json!({
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": name, "labels": {"kubernetes.io/metadata.name": name}},
        });
        match gs.create(&ns, None, body, &WriteOpts::default()).await {
            Ok(_) => tracing::info!(namespace = name, "created"),
            Err(e) if e.is_already_exists() => {}
            Err(e) => anyhow::bail!("creating namespace {name}: {}", e.message),
        }
    }
    // Namespaced creates check the namespace in the cache: wait until it has them.
    let current = gs.store.current_revision().await?;
    gs.cache
        .wait_for(current)
        .await
        .map_err(|e| anyhow::anyhow!(e.message))?;
    // The system PriorityClasses (upstream's scheduling storage post-start hook,
    // `AddSystemPriorityClasses`).
    let classes = gs
        .registry
        .get("scheduling.k8s.io", "v1", "priorityclasses")
        .context("priorityclasses are not registered")?
        .clone();
    for (name, value, description) in [
        (
            "system-node-critical",
            2_000_001_000i64,
            "Used for system critical pods that must not be moved from their current node.",
        ),
        (
            "system-cluster-critical",
            2_000_000_000,
            "Used for system critical pods that must run in the cluster, but can be moved to another node if necessary.",
        ),
    ] {
        let body = json!({
            "apiVersion": "scheduling.k8s.io/v1",
            "kind": "PriorityClass",
            "metadata": {"name": name},
            "value": value,
            "description": description,
        });
        match gs.create(&classes, None, body, &WriteOpts::default()).await {
            Ok(_) => tracing::info!(priorityclass = name, "created"),
            Err(e) if e.is_already_exists() => {}
            Err(e) => anyhow::bail!("creating PriorityClass {name}: {}", e.message),
        }
    }
    // The `kubernetes` service (the API server at the service CIDR's first IP), created if
    // missing, as upstream's control-plane bootstrap controller does.
    let services = gs
        .registry
        .get("", "v1", "services")
        .context("services are not registered")?
        .clone();
    let target_port = server
        .advertise_address
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or(6443);
    let body = rudder_allocator::kubernetes_service(
        &rudder_allocator::ServiceAllocatorConfig::default(),
        target_port,
    );
    // Looked up first, as upstream's controller does: creating it again would fail on its
    // cluster IP (allocated to the existing one) before the name conflict is found.
    let key = services.key(Some("default"), "kubernetes")?;
    let exists = gs.cache.get(&services.prefix, &key).is_some();
    let created = if exists {
        Ok(Value::Null)
    } else {
        gs.create(&services, Some("default"), body, &WriteOpts::default())
            .await
    };
    match created {
        Ok(_) if exists => {}
        Ok(_) => tracing::info!(service = "default/kubernetes", "created"),
        Err(e) if e.is_already_exists() => {}
        Err(e) => tracing::warn!(error = %e.message, "could not create the kubernetes service"),
    }
    if let Err(e) = kubernetes_endpoints(server).await {
        tracing::warn!(error = %e, "could not write the kubernetes service's endpoints");
    }
    reconcile_rbac(server).await
}

/// The default roles and bindings, created or reconciled at every start as upstream's
/// `rbac/bootstrap-roles` post-start hook does.
async fn reconcile_rbac(server: &ApiServer) -> anyhow::Result<()> {
    use rudder_auth::rbac::bootstrap::{self, Reconcile};
    let gs = &server.gs;
    let sets = [
        ("clusterroles", bootstrap::cluster_roles()),
        ("clusterrolebindings", bootstrap::cluster_role_bindings()),
        ("roles", bootstrap::roles()),
        ("rolebindings", bootstrap::role_bindings()),
    ];
    let mut changed = 0;
    for (resource, objects) in sets {
        let entry = gs
            .registry
            .get(rudder_auth::rbac::GROUP, "v1", resource)
            .with_context(|| format!("{resource} are not registered"))?
            .clone();
        for obj in objects {
            let name = obj["metadata"]["name"].as_str().unwrap_or("").to_string();
            let ns = obj["metadata"]["namespace"].as_str().map(str::to_string);
            let ns = ns.as_deref();
            let existing = match gs.get(&entry, ns, &name).await {
                Ok(v) => v,
                Err(e) if e.is_not_found() => {
                    gs.create(&entry, ns, obj, &WriteOpts::default())
                        .await
                        .map_err(|e| {
                            anyhow::anyhow!("creating {resource} {name}: {}", e.message)
                        })?;
                    changed += 1;
                    continue;
                }
                Err(e) => anyhow::bail!("reading {resource} {name}: {}", e.message),
            };
            match bootstrap::reconcile(&obj, &existing) {
                Reconcile::Unchanged => {}
                Reconcile::Update(v) => {
                    gs.update(&entry, ns, &name, |_| Ok(v.clone()), &WriteOpts::default())
                        .await
                        .map_err(|e| {
                            anyhow::anyhow!("updating {resource} {name}: {}", e.message)
                        })?;
                    changed += 1;
                }
                Reconcile::Recreate => {
                    gs.delete(&entry, ns, &name, &Default::default())
                        .await
                        .map_err(|e| {
                            anyhow::anyhow!("replacing {resource} {name}: {}", e.message)
                        })?;
                    gs.create(&entry, ns, obj, &WriteOpts::default())
                        .await
                        .map_err(|e| {
                            anyhow::anyhow!("replacing {resource} {name}: {}", e.message)
                        })?;
                    changed += 1;
                }
            }
        }
    }
    if changed > 0 {
        tracing::info!(changed, "reconciled the bootstrap RBAC policy");
    }
    Ok(())
}

/// `kube-system/extension-apiserver-authentication`, which aggregated API servers (and
/// webhooks built on the generic API server) read to trust client certificates and the front
/// proxy's identity headers: upstream's `ClientCARegistrationHook`, rewritten at every start.
async fn extension_apiserver_authentication(
    server: &ApiServer,
    client_ca: &str,
    request_header_ca: &str,
) -> anyhow::Result<()> {
    let gs = &server.gs;
    let entry = gs
        .registry
        .get("", "v1", "configmaps")
        .context("configmaps are not registered")?;
    let data = json!({
        "client-ca-file": client_ca,
        "requestheader-client-ca-file": request_header_ca,
        "requestheader-allowed-names": format!("[\"{}\"]", rudder_pki::PROXY_CLIENT_NAME),
        "requestheader-extra-headers-prefix": "[\"X-Remote-Extra-\"]",
        "requestheader-group-headers": "[\"X-Remote-Group\"]",
        "requestheader-uid-headers": "[\"X-Remote-Uid\"]",
        "requestheader-username-headers": "[\"X-Remote-User\"]",
    });
    let name = "extension-apiserver-authentication";
    let body = json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": "kube-system"},
        "data": data,
    });
    match gs
        .create(
            &entry,
            Some("kube-system"),
            body.clone(),
            &WriteOpts::default(),
        )
        .await
    {
        Ok(_) => return Ok(()),
        Err(e) if e.is_already_exists() => {}
        Err(e) => anyhow::bail!("{}", e.message),
    }
    gs.update(
        &entry,
        Some("kube-system"),
        name,
        |cur| {
            let mut next = cur.cloned().unwrap_or_else(|| body.clone());
            next["data"] = data.clone();
            Ok(next)
        },
        &WriteOpts::default(),
    )
    .await
    .map_err(|e| anyhow::anyhow!("{}", e.message))?;
    Ok(())
}

/// The `kubernetes` service's Endpoints and EndpointSlice: this API server's advertised address
/// and port, written at start as upstream's endpoint reconciler (`pkg/controlplane/reconcilers`)
/// writes them (the Endpoints labelled skip-mirror, the slice named after the service). One API
/// server serves a store, so its address replaces whatever an earlier run left.
async fn kubernetes_endpoints(server: &ApiServer) -> anyhow::Result<()> {
    let gs = &server.gs;
    let addr: SocketAddr = server.advertise_address.parse()?;
    let ip = addr.ip().to_string();
    let ports = json!([{"name": "https", "port": addr.port(), "protocol": "TCP"}]);
    let endpoints = json!({
        "apiVersion": "v1",
        "kind": "Endpoints",
        "metadata": {"name": "kubernetes", "namespace": "default",
            "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
        "subsets": [{"addresses": [{"ip": ip}], "ports": ports}],
    });
    let slice = json!({
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {"name": "kubernetes", "namespace": "default",
            "labels": {"kubernetes.io/service-name": "kubernetes"}},
        "addressType": if addr.is_ipv6() { "IPv6" } else { "IPv4" },
        "endpoints": [{"addresses": [ip], "conditions": {"ready": true}}],
        "ports": ports,
    });
    let writes: [(&str, &str, Value, &[&str]); 2] = [
        ("", "endpoints", endpoints, &["subsets"]),
        (
            "discovery.k8s.io",
            "endpointslices",
            slice,
            &["addressType", "endpoints", "ports"],
        ),
    ];
    for (group, resource, body, fields) in writes {
        let entry = gs
            .registry
            .get(group, "v1", resource)
            .with_context(|| format!("{resource} are not registered"))?
            .clone();
        let current = match gs.get(&entry, Some("default"), "kubernetes").await {
            Ok(cur) => Some(cur),
            Err(e) if e.is_not_found() => None,
            Err(e) => anyhow::bail!("reading {resource} default/kubernetes: {}", e.message),
        };
        let written = match current {
            None => gs
                .create(&entry, Some("default"), body, &WriteOpts::default())
                .await
                .map(|_| ()),
            Some(cur)
                if fields.iter().all(|f| cur.get(f) == body.get(f))
                    && cur["metadata"]["labels"] == body["metadata"]["labels"] =>
            {
                Ok(())
            }
            Some(_) => gs
                .update(
                    &entry,
                    Some("default"),
                    "kubernetes",
                    |cur| {
                        let mut obj = cur.cloned().unwrap_or_else(|| body.clone());
                        for f in fields {
                            obj[*f] = body[*f].clone();
                        }
                        obj["metadata"]["labels"] = body["metadata"]["labels"].clone();
                        Ok(obj)
                    },
                    &WriteOpts::default(),
                )
                .await
                .map(|_| ()),
        };
        written
            .map_err(|e| anyhow::anyhow!("writing {resource} default/kubernetes: {}", e.message))?;
    }
    Ok(())
}

/// Resolves once `rx` says the server is stopping.
pub async fn stopped(mut rx: tokio::sync::watch::Receiver<bool>) {
    while !*rx.borrow_and_update() {
        if rx.changed().await.is_err() {
            return;
        }
    }
}

pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
