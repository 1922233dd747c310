//! DefaultBinder: binds through the `pods/binding` subresource, as upstream.

use std::sync::Arc;

use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::{Binding, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, PostParams};

use crate::framework::*;
use crate::nodeinfo::PodInfo;

pub struct DefaultBinder {
    pub client: kube::Client,
}

impl Plugin for DefaultBinder {
    fn name(&self) -> &'static str {
        "DefaultBinder"
    }
    fn points(&self) -> &'static [Point] {
        &[Point::Bind]
    }
    fn bind(&self, pod: Arc<PodInfo>, node: String) -> BoxFuture<'static, Status> {
        let client = self.client.clone();
        Box::pin(async move {
            let api: Api<Pod> = Api::namespaced(client, pod.namespace());
            let binding = Binding {
                metadata: ObjectMeta {
                    name: Some(pod.name().to_string()),
                    namespace: Some(pod.namespace().to_string()),
                    uid: Some(pod.uid.clone()),
                    ..Default::default()
                },
                target: ObjectReference {
                    kind: Some("Node".into()),
                    name: Some(node),
                    ..Default::default()
                },
            };
            match api
                .create_subresource::<Binding, serde_json::Value>(
                    "binding",
                    pod.name(),
                    &PostParams::default(),
                    &binding,
                )
                .await
            {
                Ok(_) => Status::success(),
                Err(e) => Status::error(e.to_string()),
            }
        })
    }
}
