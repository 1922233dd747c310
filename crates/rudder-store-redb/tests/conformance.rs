//! The shared store conformance suite, run against the embedded backend.

use rudder_store_redb::testing::RedbHarness;

async fn harness() -> RedbHarness {
    RedbHarness::new()
}

rudder_store::store_conformance_tests!(harness);
