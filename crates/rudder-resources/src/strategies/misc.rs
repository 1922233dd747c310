//! Kinds with little behaviour of their own: ServiceAccounts (a typed decode; the name rule is
//! the generic DNS subdomain).

use rudder_api::k8s_openapi::api::core::v1::ServiceAccount;
use rudder_registry::Strategy;
use serde_json::Value;

use super::decode::round_trip;

pub struct ServiceAccountStrategy;

impl Strategy for ServiceAccountStrategy {
    fn decode(&self, obj: Value) -> Result<Value, String> {
        round_trip::<ServiceAccount>(obj)
    }
}
