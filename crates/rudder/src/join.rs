//! The node join token (k3s's node-token): a bootstrap token Secret for agents, written with
//! the CA hash to `<data-dir>/token` so `rudder agent --token` can verify the server it joins,
//! and the `/cacerts` endpoint agents fetch the CA bundle from before they trust it.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use base64::Engine as _;
use rudder_apiserver::ApiServer;
use rudder_auth::bootstrap::{self as bt, JoinToken};
use rudder_registry::WriteOpts;
use serde_json::json;

/// The extra group of the join token (kubeadm's equivalent is
/// `system:bootstrappers:kubeadm:default-node-token`).
pub const AGENT_GROUP: &str = "system:bootstrappers:rudder:default-node-token";
/// Where the server writes the join token, under `--data-dir`.
pub const TOKEN_FILE: &str = "token";

/// Makes sure the join token's Secret exists and `<data-dir>/token` holds the token with the
/// current CA hash; returns the file's path. The token is `wanted` (`--token`) when given, else
/// the one in the file, else a new one, so agents configured with it keep joining across
/// restarts; its Secret is recreated if someone deleted it.
pub async fn ensure_join_token(
    server: &ApiServer,
    data_dir: &Path,
    ca_hash: &str,
    wanted: Option<&str>,
) -> anyhow::Result<PathBuf> {
    let path = data_dir.join(TOKEN_FILE);
    let token = match wanted {
        Some(text) => {
            let t = JoinToken::parse(text).map_err(|e| anyhow::anyhow!("--token: {e}"))?;
            if let Some(hash) = t.ca_hash.as_deref().filter(|h| *h != ca_hash) {
                anyhow::bail!(
                    "--token: its CA hash {hash} is not this cluster's CA hash {ca_hash}"
                );
            }
            t.token
        }
        None => match std::fs::read_to_string(&path) {
            Ok(text) => {
                JoinToken::parse(&text)
                    .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?
                    .token
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => bt::generate_token()?,
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        },
    };
    let Some((id, secret)) = bt::parse_token(&token) else {
        anyhow::bail!("{}: not a bootstrap token", path.display());
    };
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let body = json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": format!("{}{id}", bt::SECRET_PREFIX), "namespace": bt::NAMESPACE},
        "type": bt::SECRET_TYPE,
        "data": {
            bt::KEY_DESCRIPTION: b64(&format!("The join token of rudder agents ({}).", path.display())),
            bt::KEY_ID: b64(id),
            bt::KEY_SECRET: b64(secret),
            bt::KEY_USAGE_AUTHENTICATION: b64("true"),
            bt::KEY_USAGE_SIGNING: b64("true"),
            bt::KEY_EXTRA_GROUPS: b64(AGENT_GROUP),
        },
    });
    create_if_missing(server, "", "secrets", Some(bt::NAMESPACE), body).await?;
    // What lets the token's holders join once RBAC is enforced, as kubeadm binds its token
    // group: ask for certificates, have them auto-approved, and renew them as nodes.
    for (name, role, group) in [
        (
            "rudder:kubelet-bootstrap",
            "system:node-bootstrapper",
            AGENT_GROUP,
        ),
        (
            "rudder:node-autoapprove-bootstrap",
            "system:certificates.k8s.io:certificatesigningrequests:nodeclient",
            AGENT_GROUP,
        ),
        (
            "rudder:node-autoapprove-certificate-rotation",
            "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient",
            "system:nodes",
        ),
    ] {
        let body = json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": group}],
        });
        create_if_missing(
            server,
            "rbac.authorization.k8s.io",
            "clusterrolebindings",
            None,
            body,
        )
        .await?;
    }
    let full = JoinToken {
        ca_hash: Some(ca_hash.to_string()),
        token,
    }
    .to_string();
    rudder_pki::write_atomic(&path, format!("{full}\n").as_bytes(), 0o600)?;
    Ok(path)
}

/// Creates `body` unless an object of its name exists.
async fn create_if_missing(
    server: &ApiServer,
    group: &str,
    resource: &str,
    namespace: Option<&str>,
    body: serde_json::Value,
) -> anyhow::Result<()> {
    let entry = server
        .gs
        .registry
        .get(group, "v1", resource)
        .with_context(|| format!("{resource} are not registered"))?
        .clone();
    let name = body["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    match server
        .gs
        .create(&entry, namespace, body, &WriteOpts::default())
        .await
    {
        Ok(_) => {
            tracing::info!(resource, name, "created for node joins");
            Ok(())
        }
        Err(e) if e.is_already_exists() => Ok(()),
        Err(e) => anyhow::bail!("creating {resource} {name}: {}", e.message),
    }
}

/// `GET /cacerts`, unauthenticated as k3s serves it: the CA bundle, whose SHA-256 the join
/// token pins. It is an agent's first request, so it answers 503 until the server is ready:
/// the server listens before start-up has written the join token's Secret, and an agent
/// that got the CA in between would present its token too early and be refused for good.
pub fn cacerts_route(
    router: axum::Router,
    ca_pem: String,
    server: std::sync::Arc<ApiServer>,
) -> axum::Router {
    router.route(
        "/cacerts",
        axum::routing::get(move || {
            let ca = ca_pem.clone();
            let ready = server.ready.load(std::sync::atomic::Ordering::Acquire);
            async move {
                if !ready {
                    return (
                        http::StatusCode::SERVICE_UNAVAILABLE,
                        [(http::header::CONTENT_TYPE, "text/plain")],
                        "the server is starting\n".to_string(),
                    );
                }
                (
                    http::StatusCode::OK,
                    [(http::header::CONTENT_TYPE, "text/plain")],
                    ca,
                )
            }
        }),
    )
}
