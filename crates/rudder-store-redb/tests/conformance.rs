//! The shared store conformance suite, run against the embedded backend.

use std::sync::Arc;

use rudder_store::testkit::Harness;
use rudder_store::Store;
use rudder_store_redb::{RedbOptions, RedbStore};

struct RedbHarness {
    dir: tempfile::TempDir,
    store: Option<RedbStore>,
}

impl RedbHarness {
    async fn open(&mut self) -> Arc<dyn Store> {
        let store = RedbStore::open(self.dir.path().join("state.redb"), RedbOptions::default())
            .await
            .expect("open redb store");
        self.store = Some(store.clone());
        Arc::new(store)
    }
}

#[async_trait::async_trait]
impl Harness for RedbHarness {
    async fn store(&mut self) -> Arc<dyn Store> {
        self.open().await
    }

    async fn restart(&mut self) -> Arc<dyn Store> {
        if let Some(old) = self.store.take() {
            old.close().await;
        }
        self.open().await
    }
}

async fn harness() -> RedbHarness {
    RedbHarness {
        dir: tempfile::tempdir().expect("temp dir"),
        store: None,
    }
}

rudder_store::store_conformance_tests!(harness);
