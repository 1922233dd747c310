//! Secrets encryption at rest, composed as k3s does it: `rudder server --secrets-encryption`
//! generates an AES-CBC key in `<data-dir>/server/cred/encryption-config.json` (upstream's
//! `EncryptionConfiguration`, the identity provider second so older plaintext stays readable);
//! `--encryption-provider-config` takes one written by hand. `rudder secrets-encrypt status`
//! and `rotate-keys` manage the generated file; at every start the server rewrites the values
//! not yet under the current key, so a rotation or turning encryption on completes by itself.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use rudder_encryption::config::{KeysConfiguration, ProviderConfiguration, ResourceConfiguration};
use rudder_encryption::{EncryptedStore, EncryptionConfiguration, Transformers};
use rudder_store::Store;

fn generated(server_dir: &Path) -> PathBuf {
    server_dir.join("cred").join("encryption-config.json")
}

fn key_name() -> String {
    format!(
        "aescbckey-{}",
        jiff::Timestamp::now().strftime("%Y-%m-%dT%H-%M-%SZ")
    )
}

/// Writes a config file atomically, readable by root only (it holds the keys).
fn write_config(path: &Path, c: &EncryptionConfiguration) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let tmp = path.with_extension("json.tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("writing {}", tmp.display()))?;
    f.write_all(&serde_json::to_vec_pretty(c)?)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// The configuration in effect: the explicit file, else the generated one (made on the first
/// `--secrets-encryption` start). Once generated it stays in effect even without the flag, so
/// encrypted data is never left unreadable.
pub fn config_path(
    server_dir: &Path,
    secrets_encryption: bool,
    explicit: Option<&Path>,
) -> anyhow::Result<Option<PathBuf>> {
    if let Some(p) = explicit {
        return Ok(Some(p.to_path_buf()));
    }
    let path = generated(server_dir);
    if path.exists() {
        if !secrets_encryption {
            tracing::info!(path = %path.display(), "secrets encryption stays on: its configuration exists");
        }
        return Ok(Some(path));
    }
    if !secrets_encryption {
        return Ok(None);
    }
    let c = EncryptionConfiguration {
        api_version: "apiserver.config.k8s.io/v1".into(),
        kind: "EncryptionConfiguration".into(),
        resources: vec![ResourceConfiguration {
            resources: vec!["secrets".into()],
            providers: vec![
                ProviderConfiguration {
                    aescbc: Some(KeysConfiguration {
                        keys: vec![rudder_encryption::config::Key {
                            name: key_name(),
                            secret: rudder_encryption::config::new_secret()?,
                        }],
                    }),
                    ..Default::default()
                },
                ProviderConfiguration {
                    identity: Some(serde_json::json!({})),
                    ..Default::default()
                },
            ],
        }],
    };
    write_config(&path, &c)?;
    Ok(Some(path))
}

fn load(path: &Path) -> anyhow::Result<EncryptionConfiguration> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    EncryptionConfiguration::parse(&text).with_context(|| format!("{}", path.display()))
}

/// The store wrapped in encryption per the file; stale values are rewritten in the background.
pub fn wrap(store: Arc<dyn Store>, path: &Path) -> anyhow::Result<Arc<dyn Store>> {
    let c = load(path)?;
    let t = Transformers::from_config(&c).with_context(|| format!("{}", path.display()))?;
    let enc = Arc::new(EncryptedStore::new(store, t));
    let bg = enc.clone();
    tokio::spawn(async move {
        match bg.reencrypt_stale().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(rewritten = n, "values re-encrypted with the current key"),
            Err(e) => tracing::warn!(error = %e, "re-encrypting stale values failed"),
        }
    });
    Ok(enc)
}

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    command: Cmd,
    /// The server's data directory.
    #[arg(
        long,
        short = 'd',
        env = "RUDDER_DATA_DIR",
        default_value = "/var/lib/rudder",
        global = true
    )]
    data_dir: PathBuf,
}

#[derive(clap::Subcommand, Debug)]
enum Cmd {
    /// Whether Secrets are encrypted, and with which keys.
    Status,
    /// Add a new key that encrypts from the next server start on (older keys still decrypt;
    /// the server re-encrypts every Secret with the new key when it starts).
    RotateKeys,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let path = generated(&args.data_dir.join("server"));
    match args.command {
        Cmd::Status => {
            if !path.exists() {
                println!("Encryption Status: Disabled");
                return Ok(());
            }
            let c = load(&path)?;
            println!("Encryption Status: Enabled");
            println!("Configuration: {}", path.display());
            println!();
            println!("{:<8}{:<10}Name", "Active", "Key Type");
            println!("{:<8}{:<10}----", "------", "--------");
            for rc in &c.resources {
                let mut first = true;
                for p in &rc.providers {
                    let keys = [
                        ("AES-CBC", &p.aescbc),
                        ("AES-GCM", &p.aesgcm),
                        ("SecretBox", &p.secretbox),
                    ];
                    for (kind, k) in keys {
                        for key in k.iter().flat_map(|k| k.keys.iter()) {
                            let mark = if first { " *" } else { "" };
                            println!("{mark:<8}{kind:<10}{}", key.name);
                            first = false;
                        }
                    }
                }
            }
            Ok(())
        }
        Cmd::RotateKeys => {
            let mut c = load(&path).context(
                "secrets encryption is not enabled (start the server with --secrets-encryption)",
            )?;
            let name = key_name();
            let secret = rudder_encryption::config::new_secret()?;
            let rc = c
                .resources
                .iter_mut()
                .find(|r| r.resources.iter().any(|r| r == "secrets"))
                .context("the configuration does not cover secrets")?;
            match rc.providers.iter_mut().find_map(|p| p.aescbc.as_mut()) {
                Some(k) => k.keys.insert(
                    0,
                    rudder_encryption::config::Key {
                        name: name.clone(),
                        secret,
                    },
                ),
                None => rc.providers.insert(
                    0,
                    ProviderConfiguration {
                        aescbc: Some(KeysConfiguration {
                            keys: vec![rudder_encryption::config::Key {
                                name: name.clone(),
                                secret,
                            }],
                        }),
                        ..Default::default()
                    },
                ),
            }
            write_config(&path, &c)?;
            println!("added key {name}; restart the server to encrypt with it (it re-encrypts every Secret at start)");
            Ok(())
        }
    }
}
