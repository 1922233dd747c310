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
    let secrets = server
        .gs
        .registry
        .get("", "v1", "secrets")
        .context("secrets are not registered")?
        .clone();
    match server
        .gs
        .create(&secrets, Some(bt::NAMESPACE), body, &WriteOpts::default())
        .await
    {
        Ok(_) => {
            tracing::info!(secret = %format!("{}/{}{id}", bt::NAMESPACE, bt::SECRET_PREFIX), "created the join token's bootstrap token")
        }
        Err(e) if e.is_already_exists() => {}
        Err(e) => anyhow::bail!("creating the join token's Secret: {}", e.message),
    }
    let full = JoinToken {
        ca_hash: Some(ca_hash.to_string()),
        token,
    }
    .to_string();
    write_private(&path, &format!("{full}\n"))
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// Writes `text` to `path` with mode 0600 (replacing it atomically).
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// `GET /cacerts`, unauthenticated as k3s serves it: the CA bundle, whose SHA-256 the join
/// token pins.
pub fn cacerts_route(router: axum::Router, ca_pem: String) -> axum::Router {
    router.route(
        "/cacerts",
        axum::routing::get(move || {
            let ca = ca_pem.clone();
            async move { ([(http::header::CONTENT_TYPE, "text/plain")], ca) }
        }),
    )
}
