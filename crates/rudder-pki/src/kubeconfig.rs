//! kubeconfig files for kubectl and for Rudder's own components.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use base64::Engine as _;
use serde::Serialize;

use crate::error::Result;
use crate::fsutil::{ensure_private_dir, write_atomic, SECRET_MODE};

/// What goes into a single-cluster, single-user kubeconfig.
#[derive(Clone)]
pub struct KubeconfigSpec {
    /// For example `https://127.0.0.1:6443`.
    pub server_url: String,
    /// The CA bundle clients must trust, PEM; embedded as `certificate-authority-data` so the
    /// file is self-contained and can be copied to another machine.
    pub ca_pem: String,
    pub token: Option<String>,
    /// `(certificate PEM, private key PEM)`.
    pub client_cert: Option<(String, String)>,
    pub cluster_name: String,
    pub user: String,
    pub context: String,
}

impl KubeconfigSpec {
    /// A spec with no credentials yet, and the names k3s uses (`default` everywhere), so that
    /// scripts written for k3s's kubeconfig keep working.
    pub fn new(server_url: impl Into<String>, ca_pem: impl Into<String>) -> Self {
        KubeconfigSpec {
            server_url: server_url.into(),
            ca_pem: ca_pem.into(),
            token: None,
            client_cert: None,
            cluster_name: "default".into(),
            user: "default".into(),
            context: "default".into(),
        }
    }

    pub fn with_token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    pub fn with_client_cert(
        mut self,
        cert_pem: impl Into<String>,
        key_pem: impl Into<String>,
    ) -> Self {
        self.client_cert = Some((cert_pem.into(), key_pem.into()));
        self
    }
}

/// Credentials stay out of logs.
impl fmt::Debug for KubeconfigSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KubeconfigSpec")
            .field("server_url", &self.server_url)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field(
                "client_cert",
                &self.client_cert.as_ref().map(|_| "<redacted>"),
            )
            .field("cluster_name", &self.cluster_name)
            .field("user", &self.user)
            .field("context", &self.context)
            .finish_non_exhaustive()
    }
}

// The document, with fields in the order `kubectl config view` prints them.
#[derive(Serialize)]
struct Config<'a> {
    #[serde(rename = "apiVersion")]
    api_version: &'static str,
    clusters: [NamedCluster<'a>; 1],
    contexts: [NamedContext<'a>; 1],
    #[serde(rename = "current-context")]
    current_context: &'a str,
    kind: &'static str,
    preferences: BTreeMap<String, String>,
    users: [NamedUser<'a>; 1],
}

#[derive(Serialize)]
struct NamedCluster<'a> {
    cluster: Cluster<'a>,
    name: &'a str,
}

#[derive(Serialize)]
struct NamedContext<'a> {
    context: Context<'a>,
    name: &'a str,
}

#[derive(Serialize)]
struct NamedUser<'a> {
    name: &'a str,
    user: User,
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct Cluster<'a> {
    certificate_authority_data: String,
    server: &'a str,
}

#[derive(Serialize)]
struct Context<'a> {
    cluster: &'a str,
    user: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct User {
    #[serde(skip_serializing_if = "Option::is_none")]
    client_certificate_data: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_key_data: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    token: Option<String>,
}

/// The kubeconfig as YAML text.
pub fn kubeconfig_yaml(spec: &KubeconfigSpec) -> Result<String> {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
    let config = Config {
        api_version: "v1",
        clusters: [NamedCluster {
            cluster: Cluster {
                certificate_authority_data: b64(&spec.ca_pem),
                server: &spec.server_url,
            },
            name: &spec.cluster_name,
        }],
        contexts: [NamedContext {
            context: Context {
                cluster: &spec.cluster_name,
                user: &spec.user,
            },
            name: &spec.context,
        }],
        current_context: &spec.context,
        kind: "Config",
        preferences: BTreeMap::new(),
        users: [NamedUser {
            name: &spec.user,
            user: User {
                client_certificate_data: spec.client_cert.as_ref().map(|(c, _)| b64(c)),
                client_key_data: spec.client_cert.as_ref().map(|(_, k)| b64(k)),
                token: spec.token.clone(),
            },
        }],
    };
    let mut options = serde_saphyr::SerializerOptions::default();
    // Long base64 values stay plain one-line scalars, as kubectl writes them, instead of
    // folded `>` blocks.
    options.prefer_block_scalars = false;
    Ok(serde_saphyr::to_string_with_options(&config, options)?)
}

/// Writes the kubeconfig at `path` with mode 0600 (it holds credentials), atomically, creating
/// missing parent directories.
pub fn write_kubeconfig(path: &Path, spec: &KubeconfigSpec) -> Result<()> {
    let yaml = kubeconfig_yaml(spec)?;
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        ensure_private_dir(parent)?;
    }
    write_atomic(path, yaml.as_bytes(), SECRET_MODE)?;
    tracing::info!(path = %path.display(), user = %spec.user, "wrote kubeconfig");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_shape() {
        let spec = KubeconfigSpec::new("https://127.0.0.1:6443", "CA PEM\n").with_token("tok");
        let yaml = kubeconfig_yaml(&spec).unwrap();
        let expected = format!(
            "apiVersion: v1\n\
             clusters:\n\
             - cluster:\n    certificate-authority-data: {}\n    server: https://127.0.0.1:6443\n  name: default\n\
             contexts:\n\
             - context:\n    cluster: default\n    user: default\n  name: default\n\
             current-context: default\n\
             kind: Config\n\
             preferences: {{}}\n\
             users:\n\
             - name: default\n  user:\n    token: tok\n",
            base64::engine::general_purpose::STANDARD.encode("CA PEM\n")
        );
        assert_eq!(yaml, expected);
    }

    /// kubectl reads kubeconfigs through sigs.k8s.io/yaml, which converts YAML 1.1 to JSON
    /// first: an unquoted `1e5` token would become a number and fail to load.
    #[test]
    fn scalars_that_yaml_1_1_would_retype_are_quoted() {
        for t in [
            "1e5", "0x1F", "true", "null", "0123", "123", "y", "~", "12:30", "a: b", "#x",
        ] {
            let yaml =
                kubeconfig_yaml(&KubeconfigSpec::new("https://x", "ca").with_token(t)).unwrap();
            let line = yaml.lines().last().unwrap();
            assert!(
                line == format!("    token: \"{t}\"") || line == format!("    token: '{t}'"),
                "{line}"
            );
        }
    }

    #[test]
    fn debug_redacts_credentials() {
        let spec = KubeconfigSpec::new("https://x", "ca")
            .with_token("secret-token")
            .with_client_cert("cert", "secret-key");
        let s = format!("{spec:?}");
        assert!(!s.contains("secret"), "{s}");
    }
}
