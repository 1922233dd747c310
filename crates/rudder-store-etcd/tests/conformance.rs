//! The shared store conformance suite, run against a real etcd (one member per test).

use std::sync::Arc;

use rudder_store::testkit::Harness;
use rudder_store::Store;
use rudder_store_etcd::testing::EtcdProcess;
use rudder_store_etcd::{EtcdConfig, EtcdStore};

struct EtcdHarness {
    /// `None` only while a restart runs on the blocking pool.
    etcd: Option<EtcdProcess>,
}

impl EtcdHarness {
    async fn connect(&self) -> Arc<dyn Store> {
        let endpoint = self.etcd.as_ref().expect("etcd is running").endpoint();
        let store = EtcdStore::connect(EtcdConfig {
            endpoints: vec![endpoint],
            ..Default::default()
        })
        .await
        .expect("connect to etcd");
        Arc::new(store)
    }
}

#[async_trait::async_trait]
impl Harness for EtcdHarness {
    async fn store(&mut self) -> Arc<dyn Store> {
        self.connect().await
    }

    async fn restart(&mut self) -> Arc<dyn Store> {
        let mut etcd = self.etcd.take().expect("etcd is running");
        // Killing etcd breaks the old connection, which ends the old store's watches.
        let etcd = tokio::task::spawn_blocking(move || {
            etcd.restart().expect("restart etcd");
            etcd
        })
        .await
        .expect("restart task");
        self.etcd = Some(etcd);
        self.connect().await
    }
}

async fn harness() -> EtcdHarness {
    let etcd = tokio::task::spawn_blocking(EtcdProcess::start)
        .await
        .expect("start task")
        .expect("start etcd (apt-get install etcd-server)");
    EtcdHarness { etcd: Some(etcd) }
}

rudder_store::store_conformance_tests!(harness);
