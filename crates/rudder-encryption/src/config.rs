//! `apiserver.config.k8s.io/v1` `EncryptionConfiguration`, as kube-apiserver's
//! `--encryption-provider-config` reads it: per list of resources, providers in order (the
//! first encrypts writes; all of them read).

use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::cipher::{Cipher, CipherKind};
use crate::EncryptionError;

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EncryptionConfiguration {
    pub api_version: String,
    pub kind: String,
    pub resources: Vec<ResourceConfiguration>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResourceConfiguration {
    pub resources: Vec<String>,
    pub providers: Vec<ProviderConfiguration>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProviderConfiguration {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aescbc: Option<KeysConfiguration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aesgcm: Option<KeysConfiguration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secretbox: Option<KeysConfiguration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<serde_json::Value>,
    /// Accepted so the error can say so: Rudder has no KMS plugin client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms: Option<serde_json::Value>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KeysConfiguration {
    pub keys: Vec<Key>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Key {
    pub name: String,
    /// Base64 of the key bytes.
    pub secret: String,
}

/// Resource names and their providers, in order.
pub type Rule = (Vec<String>, Vec<Provider>);

/// One configured way to read and write values.
pub enum Provider {
    Identity,
    Keys {
        kind: CipherKind,
        /// In order: the first writes.
        keys: Vec<(String, Cipher)>,
    },
}

impl EncryptionConfiguration {
    /// Parses a configuration (YAML or JSON), naming what is wrong.
    pub fn parse(text: &str) -> Result<EncryptionConfiguration, EncryptionError> {
        let c: EncryptionConfiguration =
            serde_saphyr::from_str(text).map_err(|e| EncryptionError::Config(e.to_string()))?;
        if c.api_version != "apiserver.config.k8s.io/v1" {
            return Err(EncryptionError::Config(format!(
                "apiVersion: unsupported value {:?} (apiserver.config.k8s.io/v1)",
                c.api_version
            )));
        }
        if c.kind != "EncryptionConfiguration" {
            return Err(EncryptionError::Config(format!(
                "kind: {:?} is not EncryptionConfiguration",
                c.kind
            )));
        }
        Ok(c)
    }

    /// The providers of each resource list, keys decoded and checked.
    pub fn compile(&self) -> Result<Vec<Rule>, EncryptionError> {
        let mut out = Vec::new();
        for (i, rc) in self.resources.iter().enumerate() {
            let at = |field: &str| format!("resources[{i}].{field}");
            if rc.resources.is_empty() {
                return Err(EncryptionError::Config(format!(
                    "{}: at least one resource is required",
                    at("resources")
                )));
            }
            if rc.providers.is_empty() {
                return Err(EncryptionError::Config(format!(
                    "{}: at least one provider is required",
                    at("providers")
                )));
            }
            let mut providers = Vec::new();
            for (j, p) in rc.providers.iter().enumerate() {
                let at = at(&format!("providers[{j}]"));
                providers.push(provider(p, &at)?);
            }
            out.push((rc.resources.clone(), providers));
        }
        Ok(out)
    }
}

fn provider(p: &ProviderConfiguration, at: &str) -> Result<Provider, EncryptionError> {
    let set = [
        p.aescbc.is_some(),
        p.aesgcm.is_some(),
        p.secretbox.is_some(),
        p.identity.is_some(),
        p.kms.is_some(),
    ]
    .iter()
    .filter(|b| **b)
    .count();
    if set != 1 {
        return Err(EncryptionError::Config(format!(
            "{at}: exactly one provider must be set, {set} are"
        )));
    }
    if p.identity.is_some() {
        return Ok(Provider::Identity);
    }
    if p.kms.is_some() {
        return Err(EncryptionError::Config(format!(
            "{at}.kms: KMS providers are not supported by Rudder (use aescbc, aesgcm or secretbox)"
        )));
    }
    let (kind, keys, field) = if let Some(k) = &p.aescbc {
        (CipherKind::AesCbc, k, "aescbc")
    } else if let Some(k) = &p.aesgcm {
        (CipherKind::AesGcm, k, "aesgcm")
    } else if let Some(k) = &p.secretbox {
        (CipherKind::Secretbox, k, "secretbox")
    } else {
        return Err(EncryptionError::Config(format!("{at}: no provider set")));
    };
    if keys.keys.is_empty() {
        return Err(EncryptionError::Config(format!(
            "{at}.{field}.keys: at least one key is required"
        )));
    }
    let mut out: Vec<(String, Cipher)> = Vec::new();
    for (k, key) in keys.keys.iter().enumerate() {
        let at = format!("{at}.{field}.keys[{k}]");
        if key.name.is_empty() || key.name.contains(':') {
            return Err(EncryptionError::Config(format!(
                "{at}.name: a key name is required and may not contain ':'"
            )));
        }
        if out.iter().any(|(n, _)| *n == key.name) {
            return Err(EncryptionError::Config(format!(
                "{at}.name: duplicate key name {:?}",
                key.name
            )));
        }
        let secret = base64::engine::general_purpose::STANDARD
            .decode(key.secret.trim())
            .map_err(|e| EncryptionError::Config(format!("{at}.secret: not base64: {e}")))?;
        let cipher = Cipher::new(kind, &secret)
            .map_err(|e| EncryptionError::Config(format!("{at}.secret: {e}")))?;
        out.push((key.name.clone(), cipher));
    }
    Ok(Provider::Keys { kind, keys: out })
}

/// A new random 32-byte key, base64-encoded, for a configuration file.
pub fn new_secret() -> Result<String, EncryptionError> {
    let mut key = [0u8; 32];
    aws_lc_rs::rand::fill(&mut key).map_err(|_| EncryptionError::Random)?;
    Ok(base64::engine::general_purpose::STANDARD.encode(key))
}
