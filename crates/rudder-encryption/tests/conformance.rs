//! The store conformance suite through the encrypting wrapper (every key encrypted), on the
//! embedded backend: encryption must change nothing a store promises.

use std::sync::Arc;

use rudder_encryption::{EncryptedStore, EncryptionConfiguration, Transformers};
use rudder_store::Store;
use rudder_store_redb::testing::RedbHarness;

const CONFIG: &str = "apiVersion: apiserver.config.k8s.io/v1
kind: EncryptionConfiguration
resources:
- resources: ['*.*']
  providers:
  - aesgcm:
      keys:
      - name: k
        secret: AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=
";

fn encrypted(store: Arc<dyn Store>) -> Arc<dyn Store> {
    let config = EncryptionConfiguration::parse(CONFIG).expect("config");
    let t = Transformers::from_config(&config).expect("transformers");
    Arc::new(EncryptedStore::new(store, t))
}

async fn harness() -> RedbHarness {
    RedbHarness::wrapped(encrypted)
}

rudder_store::store_conformance_tests!(harness);
