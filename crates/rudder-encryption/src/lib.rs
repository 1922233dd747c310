//! Encryption at rest, as kube-apiserver's `--encryption-provider-config`: values of the
//! configured resources (usually Secrets) are encrypted on their way into the store and
//! decrypted on their way out, so a copied data directory (redb file, WAL, etcd) does not
//! reveal them. Stored values carry upstream's prefix `k8s:enc:<provider>:v1:<key name>:`, so
//! several keys can be read at once while the first one writes (key rotation), and plain values
//! are still read while an `identity` provider is listed (turning encryption on).
//!
//! It is a [`Store`] wrapper, so both backends, the watch cache and every reader above see
//! plaintext and nothing else changes.

pub mod cipher;
pub mod config;

use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use rudder_store::{
    KeyValue, RangeRequest, RangeResponse, Revision, Store, StoreError, WatchEvent, WatchStream,
    WriteOptions,
};

pub use config::EncryptionConfiguration;
use config::Provider;

#[derive(Debug, thiserror::Error)]
pub enum EncryptionError {
    #[error("encryption configuration: {0}")]
    Config(String),
    #[error("no randomness available")]
    Random,
}

/// Which providers apply to which storage keys.
pub struct Transformers {
    /// Storage-key prefixes (`/registry/secrets/`; empty for `*.*`) and their providers.
    rules: Vec<(Vec<String>, Arc<Vec<Provider>>)>,
}

const PREFIX: &str = "k8s:enc:";

impl Transformers {
    pub fn from_config(c: &EncryptionConfiguration) -> Result<Transformers, EncryptionError> {
        let table = rudder_api::resources::ResourceTable::builtin()
            .map_err(|e| EncryptionError::Config(e.to_string()))?;
        let mut rules = Vec::new();
        for (resources, providers) in c.compile()? {
            let mut prefixes = Vec::new();
            for r in &resources {
                // `secrets`, `deployments.apps`, `*.apps`, `*.` (the core group), `*.*`.
                let (resource, group) = r.split_once('.').unwrap_or((r.as_str(), ""));
                match (resource, group) {
                    ("*", "*") => prefixes.push(String::new()),
                    ("*", g) => prefixes.extend(
                        table
                            .resources()
                            .iter()
                            .filter(|i| i.group == g)
                            .map(|i| format!("{}/", i.storage_prefix())),
                    ),
                    (res, g) => prefixes.push(format!(
                        "{}/",
                        rudder_api::resources::storage_prefix(g, res)
                    )),
                }
            }
            rules.push((prefixes, Arc::new(providers)));
        }
        Ok(Transformers { rules })
    }

    /// The providers for a storage key (the first rule that lists it, as upstream).
    fn providers(&self, key: &str) -> Option<&Vec<Provider>> {
        self.rules
            .iter()
            .find(|(prefixes, _)| prefixes.iter().any(|p| key.starts_with(p.as_str())))
            .map(|(_, p)| p.as_ref())
    }

    pub fn to_storage(&self, key: &str, value: Bytes) -> Result<Bytes, StoreError> {
        let Some(first) = self.providers(key).and_then(|p| p.first()) else {
            return Ok(value);
        };
        match first {
            Provider::Identity => Ok(value),
            Provider::Keys { kind, keys } => {
                let Some((name, cipher)) = keys.first() else {
                    return Ok(value);
                };
                let sealed = cipher
                    .seal(&value, key)
                    .map_err(|e| StoreError::Internal(format!("encrypting {key}: {e}")))?;
                let mut out = format!("{PREFIX}{}:v1:{name}:", kind.name()).into_bytes();
                out.extend_from_slice(&sealed);
                Ok(Bytes::from(out))
            }
        }
    }

    pub fn from_storage(&self, key: &str, value: Bytes) -> Result<Bytes, StoreError> {
        let Some(providers) = self.providers(key) else {
            return Ok(value);
        };
        let Some(rest) = value.strip_prefix(PREFIX.as_bytes()) else {
            if providers.iter().any(|p| matches!(p, Provider::Identity)) {
                return Ok(value);
            }
            return Err(StoreError::Internal(format!(
                "{key}: stored unencrypted, and no identity provider reads it"
            )));
        };
        for p in providers {
            let Provider::Keys { kind, keys } = p else {
                continue;
            };
            let Some(rest) = rest
                .strip_prefix(kind.name().as_bytes())
                .and_then(|r| r.strip_prefix(b":v1:"))
            else {
                continue;
            };
            for (name, cipher) in keys {
                if let Some(sealed) = rest
                    .strip_prefix(name.as_bytes())
                    .and_then(|r| r.strip_prefix(b":"))
                {
                    return cipher
                        .open(sealed, key)
                        .map(Bytes::from)
                        .map_err(|e| StoreError::Internal(format!("decrypting {key}: {e}")));
                }
            }
        }
        Err(StoreError::Internal(format!(
            "{key}: no configured key decrypts it (prefix {:?})",
            String::from_utf8_lossy(&value[..value.len().min(48)])
        )))
    }

    /// The stored prefix of values written now for `key` (`None`: stored as is).
    fn write_prefix(&self, key: &str) -> Option<String> {
        match self.providers(key)?.first()? {
            Provider::Identity => None,
            Provider::Keys { kind, keys } => keys
                .first()
                .map(|(n, _)| format!("{PREFIX}{}:v1:{n}:", kind.name())),
        }
    }

    /// The provider and key writes use for `key` (`None`: stored as is).
    pub fn write_key(&self, key: &str) -> Option<(&'static str, &str)> {
        match self.providers(key)?.first()? {
            Provider::Identity => None,
            Provider::Keys { kind, keys } => {
                keys.first().map(|(n, _)| (kind.display(), n.as_str()))
            }
        }
    }
}

/// A [`Store`] that encrypts and decrypts values by storage key.
pub struct EncryptedStore {
    inner: Arc<dyn Store>,
    t: Arc<Transformers>,
}

impl EncryptedStore {
    pub fn new(inner: Arc<dyn Store>, t: Transformers) -> EncryptedStore {
        EncryptedStore {
            inner,
            t: Arc::new(t),
        }
    }
}

fn open_kv(t: &Transformers, mut kv: KeyValue) -> Result<KeyValue, StoreError> {
    kv.value = t.from_storage(&kv.key, kv.value)?;
    Ok(kv)
}

fn open_event(t: &Transformers, ev: WatchEvent) -> Result<WatchEvent, StoreError> {
    Ok(match ev {
        WatchEvent::Put { kv, prev } => WatchEvent::Put {
            kv: open_kv(t, kv)?,
            prev: prev.map(|p| open_kv(t, p)).transpose()?,
        },
        WatchEvent::Delete { revision, prev } => WatchEvent::Delete {
            revision,
            prev: open_kv(t, prev)?,
        },
    })
}

fn open_err(t: &Transformers, e: StoreError) -> StoreError {
    match e {
        StoreError::Conflict {
            key,
            expected,
            current,
        } => {
            let current = match current.map(|c| open_kv(t, *c)).transpose() {
                Ok(c) => c.map(Box::new),
                Err(e) => return e,
            };
            StoreError::Conflict {
                key,
                expected,
                current,
            }
        }
        e => e,
    }
}

impl EncryptedStore {
    /// Rewrites every value of the configured resources not written with the current key
    /// (plaintext from before encryption, or an older key after a rotation), each with a
    /// compare-and-swap so a concurrent write wins. Upstream forces such rewrites when a stale
    /// value is next updated; doing them at start makes a rotation complete by itself.
    pub async fn reencrypt_stale(&self) -> rudder_store::Result<usize> {
        let prefixes: Vec<String> = self
            .t
            .rules
            .iter()
            .flat_map(|(p, _)| p.iter().cloned())
            .map(|p| if p.is_empty() { "/".to_string() } else { p })
            .collect();
        let mut rewritten = 0;
        for prefix in prefixes {
            let mut start_after = None;
            loop {
                let page = self
                    .inner
                    .range(RangeRequest {
                        prefix: prefix.clone(),
                        start_after: start_after.clone(),
                        limit: 500,
                        revision: None,
                    })
                    .await?;
                for kv in &page.kvs {
                    let fresh = match self.t.write_prefix(&kv.key) {
                        Some(p) => kv.value.starts_with(p.as_bytes()),
                        None => !kv.value.starts_with(PREFIX.as_bytes()),
                    };
                    if fresh {
                        continue;
                    }
                    let plain = self.t.from_storage(&kv.key, kv.value.clone())?;
                    let sealed = self.t.to_storage(&kv.key, plain)?;
                    match self
                        .inner
                        .update(&kv.key, sealed, kv.mod_revision, WriteOptions::default())
                        .await
                    {
                        Ok(_) => rewritten += 1,
                        Err(StoreError::Conflict { .. } | StoreError::NotFound { .. }) => {}
                        Err(e) => return Err(e),
                    }
                }
                match page.kvs.last() {
                    Some(last) if page.more => start_after = Some(last.key.clone()),
                    _ => break,
                }
            }
        }
        Ok(rewritten)
    }
}

#[async_trait::async_trait]
impl Store for EncryptedStore {
    fn backend_name(&self) -> &'static str {
        self.inner.backend_name()
    }

    async fn get(
        &self,
        key: &str,
        revision: Option<Revision>,
    ) -> rudder_store::Result<(Option<KeyValue>, Revision)> {
        let (kv, rev) = self.inner.get(key, revision).await?;
        Ok((kv.map(|kv| open_kv(&self.t, kv)).transpose()?, rev))
    }

    async fn range(&self, req: RangeRequest) -> rudder_store::Result<RangeResponse> {
        let mut r = self.inner.range(req).await?;
        r.kvs = r
            .kvs
            .into_iter()
            .map(|kv| open_kv(&self.t, kv))
            .collect::<Result<_, _>>()?;
        Ok(r)
    }

    async fn count(&self, prefix: &str) -> rudder_store::Result<u64> {
        self.inner.count(prefix).await
    }

    async fn create(
        &self,
        key: &str,
        value: Bytes,
        opts: WriteOptions,
    ) -> rudder_store::Result<Revision> {
        let value = self.t.to_storage(key, value)?;
        self.inner.create(key, value, opts).await
    }

    async fn update(
        &self,
        key: &str,
        value: Bytes,
        expected: Revision,
        opts: WriteOptions,
    ) -> rudder_store::Result<Revision> {
        let value = self.t.to_storage(key, value)?;
        self.inner
            .update(key, value, expected, opts)
            .await
            .map_err(|e| open_err(&self.t, e))
    }

    async fn delete(
        &self,
        key: &str,
        expected: Option<Revision>,
    ) -> rudder_store::Result<(Revision, KeyValue)> {
        let (rev, kv) = self
            .inner
            .delete(key, expected)
            .await
            .map_err(|e| open_err(&self.t, e))?;
        Ok((rev, open_kv(&self.t, kv)?))
    }

    async fn current_revision(&self) -> rudder_store::Result<Revision> {
        self.inner.current_revision().await
    }

    async fn watch(&self, prefix: &str, after: Revision) -> rudder_store::Result<WatchStream> {
        let t = self.t.clone();
        let s = self.inner.watch(prefix, after).await?;
        Ok(Box::pin(
            s.map(move |ev| ev.and_then(|ev| open_event(&t, ev))),
        ))
    }

    async fn compact(&self, revision: Revision) -> rudder_store::Result<()> {
        self.inner.compact(revision).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transformers(providers: &str) -> Transformers {
        let c = EncryptionConfiguration::parse(&format!(
            "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n- resources: [secrets, '*.apps']\n  providers:\n{providers}"
        ))
        .unwrap();
        Transformers::from_config(&c).unwrap()
    }

    const K1: &str = "    - aescbc:\n        keys:\n        - name: k1\n          secret: AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n";
    const K2: &str = "    - aesgcm:\n        keys:\n        - name: k2\n          secret: AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n";

    #[test]
    fn configured_resources_are_encrypted_with_upstreams_prefix() {
        let t = transformers(&format!("{K1}    - identity: {{}}\n"));
        let key = "/registry/secrets/default/s";
        let stored = t
            .to_storage(key, Bytes::from_static(b"{\"data\":1}"))
            .unwrap();
        assert!(stored.starts_with(b"k8s:enc:aescbc:v1:k1:"), "{stored:?}");
        assert_eq!(t.from_storage(key, stored).unwrap(), &b"{\"data\":1}"[..]);
        // Plain values written before encryption was on are still read (identity listed).
        assert_eq!(
            t.from_storage(key, Bytes::from_static(b"{}")).unwrap(),
            &b"{}"[..]
        );
        // Other resources are left alone; `*.apps` covers the apps group.
        let cm = "/registry/configmaps/default/c";
        assert_eq!(
            t.to_storage(cm, Bytes::from_static(b"x")).unwrap(),
            &b"x"[..]
        );
        let d = "/registry/deployments/default/d";
        assert!(t
            .to_storage(d, Bytes::from_static(b"x"))
            .unwrap()
            .starts_with(b"k8s:enc:"));
    }

    #[test]
    fn rotation_reads_old_keys_and_writes_with_the_first() {
        let old = transformers(K1);
        let key = "/registry/secrets/default/s";
        let stored = old.to_storage(key, Bytes::from_static(b"v")).unwrap();
        let rotated = transformers(&format!("{K2}{K1}"));
        assert_eq!(rotated.from_storage(key, stored).unwrap(), &b"v"[..]);
        let fresh = rotated.to_storage(key, Bytes::from_static(b"v")).unwrap();
        assert!(fresh.starts_with(b"k8s:enc:aesgcm:v1:k2:"));
        // Without identity, plaintext is an error rather than silently served.
        assert!(rotated
            .from_storage(key, Bytes::from_static(b"{}"))
            .is_err());
        assert!(old.from_storage(key, fresh).is_err());
    }

    #[tokio::test]
    async fn stale_values_are_rewritten_with_the_current_key() {
        let dir = tempfile::tempdir().unwrap();
        let redb = rudder_store_redb::RedbStore::open(
            dir.path().join("s.redb"),
            rudder_store_redb::RedbOptions::default(),
        )
        .await
        .unwrap();
        let raw: Arc<dyn Store> = Arc::new(redb);
        let key = "/registry/secrets/default/s";
        let opts = WriteOptions::default();
        raw.create(key, Bytes::from_static(b"plain"), opts)
            .await
            .unwrap();
        raw.create(
            "/registry/configmaps/default/c",
            Bytes::from_static(b"cm"),
            opts,
        )
        .await
        .unwrap();
        let enc = EncryptedStore::new(
            raw.clone(),
            transformers(&format!("{K2}{K1}    - identity: {{}}\n")),
        );
        assert_eq!(enc.reencrypt_stale().await.unwrap(), 1);
        let (kv, _) = raw.get(key, None).await.unwrap();
        assert!(kv.unwrap().value.starts_with(b"k8s:enc:aesgcm:v1:k2:"));
        let (kv, _) = enc.get(key, None).await.unwrap();
        assert_eq!(kv.unwrap().value, &b"plain"[..]);
        assert_eq!(
            enc.reencrypt_stale().await.unwrap(),
            0,
            "nothing stale any more"
        );
        let (cm, _) = raw
            .get("/registry/configmaps/default/c", None)
            .await
            .unwrap();
        assert_eq!(cm.unwrap().value, &b"cm"[..]);
    }

    #[test]
    fn bad_configurations_name_the_field() {
        let bad = |providers: &str| {
            EncryptionConfiguration::parse(&format!(
                "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n- resources: [secrets]\n  providers:\n{providers}"
            ))
            .and_then(|c| Transformers::from_config(&c).map(|_| ()))
            .unwrap_err()
            .to_string()
        };
        let e =
            bad("    - aescbc:\n        keys:\n        - name: k\n          secret: c2hvcnQ=\n");
        assert!(
            e.contains("resources[0].providers[0].aescbc.keys[0].secret"),
            "{e}"
        );
        let e = bad("    - kms: {name: x}\n");
        assert!(e.contains("kms"), "{e}");
        let e = bad("    - aescbc: {keys: []}\n      identity: {}\n");
        assert!(e.contains("exactly one provider"), "{e}");
        let e = bad("    - aescbx: {}\n");
        assert!(e.contains("aescbx"), "{e}");
    }
}
