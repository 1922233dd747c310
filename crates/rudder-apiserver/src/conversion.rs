//! CRD conversion webhooks (upstream's apiextensions `webhookConverter`): every served version
//! of a CRD whose `spec.conversion.strategy` is `Webhook` gets a [`Converter`] that posts a
//! `ConversionReview` to the CRD's `conversion.webhook.clientConfig` whenever an object must
//! change version: a write in a version other than the storage version, a read (get, list,
//! watch) of objects stored in another version. Objects already in the desired version are
//! not sent; a list goes in one review. The answer is checked as upstream checks it (uid,
//! result, count, apiVersion and kind of each object, metadata other than labels and
//! annotations restored from the original) and failures are upstream's messages, answered as
//! 500 InternalError. CRDs without the Webhook strategy pay nothing: their entries have no
//! converter.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use rudder_api::status::ApiError;
use rudder_registry::{object, Converter, Entry};
use rudder_resources::custom;
use serde_json::{json, Map, Value};

use crate::webhook::{ClientConfig, WebhookClient, WebhookError};

/// Upstream calls conversion webhooks without a timeout of its own; the client's is 30 s.
const TIMEOUT: Duration = Duration::from_secs(30);

/// The conversion webhooks' client, set once the server has one (the CRDs stored at start are
/// registered before the watch cache the client resolves services with exists; nothing is
/// served before it is set).
#[derive(Default)]
pub struct Conversions {
    client: OnceLock<WebhookClient>,
}

impl Conversions {
    pub fn new() -> Arc<Conversions> {
        Arc::new(Conversions::default())
    }

    pub fn set_client(&self, client: WebhookClient) {
        let _ = self.client.set(client);
    }

    /// The registry entries a CRD serves; with the Webhook strategy each converts through the
    /// CRD's webhook.
    pub fn entries(self: &Arc<Self>, crd: &Value) -> Vec<Entry> {
        let mut entries = custom::entries(crd);
        let conversion = crd.pointer("/spec/conversion");
        if conversion
            .and_then(|c| c.get("strategy"))
            .and_then(Value::as_str)
            != Some("Webhook")
        {
            return entries;
        }
        let webhook = conversion.and_then(|c| c.get("webhook"));
        let config = ClientConfig::from_json(
            webhook
                .and_then(|w| w.get("clientConfig"))
                .unwrap_or(&Value::Null),
        )
        .map_err(|e| e.to_string());
        let review_versions: Vec<String> = webhook
            .and_then(|w| w.get("conversionReviewVersions"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect();
        let group = crd
            .pointer("/spec/group")
            .and_then(Value::as_str)
            .unwrap_or("");
        let storage = crd
            .pointer("/spec/versions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .find(|v| v["storage"].as_bool() == Some(true))
            .and_then(|v| v["name"].as_str())
            .unwrap_or("");
        let shared = Arc::new(Webhook {
            conversions: self.clone(),
            config,
            review_versions,
        });
        for e in &mut entries {
            e.converter = Some(Arc::new(WebhookConverter {
                webhook: shared.clone(),
                kind: e.info.kind.clone(),
                api_version: format!("{group}/{}", e.info.version),
                storage_api_version: format!("{group}/{storage}"),
            }));
        }
        entries
    }
}

/// One CRD's webhook, shared by its versions.
struct Webhook {
    conversions: Arc<Conversions>,
    config: Result<ClientConfig, String>,
    review_versions: Vec<String>,
}

/// One served version's conversions.
struct WebhookConverter {
    webhook: Arc<Webhook>,
    kind: String,
    api_version: String,
    storage_api_version: String,
}

#[async_trait::async_trait]
impl Converter for WebhookConverter {
    async fn to_storage(&self, obj: Value) -> Result<Value, ApiError> {
        let mut out = self.convert(vec![obj], &self.storage_api_version).await?;
        out.pop()
            .ok_or_else(|| ApiError::internal_error("conversion returned no object"))
    }

    async fn to_version(&self, objs: Vec<Value>) -> Result<Vec<Value>, ApiError> {
        self.convert(objs, &self.api_version).await
    }
}

impl WebhookConverter {
    /// `objs` in `desired`, through the webhook for those not already there.
    async fn convert(&self, objs: Vec<Value>, desired: &str) -> Result<Vec<Value>, ApiError> {
        let pending: Vec<usize> = (0..objs.len())
            .filter(|&i| object::api_version(&objs[i]) != desired)
            .collect();
        let Some(&first) = pending.first() else {
            return Ok(objs);
        };
        // Upstream names the input's GroupVersionKind as Go prints it.
        let gvk = format!("{}, Kind={}", object::api_version(&objs[first]), self.kind);
        let fail = |msg: String| ApiError::internal_error(msg);
        let client = self.webhook.conversions.client.get().ok_or_else(|| {
            fail(format!(
                "conversion webhook for {gvk} failed: the webhook client is not ready"
            ))
        })?;
        let config = self
            .webhook
            .config
            .as_ref()
            .map_err(|e| fail(format!("conversion webhook for {gvk} failed: {e}")))?;
        let review_version = self
            .webhook
            .review_versions
            .iter()
            .find(|v| matches!(v.as_str(), "v1beta1" | "v1"))
            .ok_or_else(|| fail("no supported conversion review versions".into()))?;
        let uid = uuid::Uuid::new_v4().to_string();
        let review = json!({
            "apiVersion": format!("apiextensions.k8s.io/{review_version}"),
            "kind": "ConversionReview",
            "request": {
                "uid": uid,
                "desiredAPIVersion": desired,
                "objects": pending.iter().map(|&i| objs[i].clone()).collect::<Vec<_>>(),
            },
        });
        let answer = client
            .post_json(config, &review, TIMEOUT)
            .await
            .map_err(|e| {
                let e = match e {
                    WebhookError::Call(m) | WebhookError::Config(m) => m,
                };
                fail(format!("conversion webhook for {gvk} failed: {e}"))
            })?;
        let converted = converted_objects(&answer, review_version, &uid)
            .map_err(|e| fail(format!("conversion webhook for {gvk} failed: {e}")))?;
        if converted.len() != pending.len() {
            return Err(fail(format!(
                "conversion webhook for {gvk} returned {} objects, expected {}",
                converted.len(),
                pending.len()
            )));
        }
        let single = objs.len() == 1;
        let mut out = objs;
        for (n, (&i, mut c)) in pending.iter().zip(converted).enumerate() {
            let original = &out[i];
            let what = if single {
                "invalid object at index 0".to_string()
            } else {
                format!("invalid converted object at index {n}")
            };
            let (want, got) = (desired, object::api_version(&c));
            if want != got {
                return Err(fail(format!(
                    "conversion webhook for {gvk} returned {what}: invalid groupVersion (expected {want}, received {got})"
                )));
            }
            let (want, got) = (object::kind(original), object::kind(&c));
            if want != got {
                return Err(fail(format!(
                    "conversion webhook for {gvk} returned {what}: invalid kind (expected {want}, received {got})"
                )));
            }
            if let Err(e) = same_identity(original, &c) {
                return Err(fail(format!(
                    "conversion webhook for {gvk} returned {}: {e}",
                    if single {
                        "invalid object".to_string()
                    } else {
                        format!("invalid converted object at index {n}")
                    }
                )));
            }
            if let Err(e) = restore_object_meta(original, &mut c) {
                return Err(fail(format!(
                    "conversion webhook for {gvk} returned invalid metadata{}: {e}",
                    if single {
                        String::new()
                    } else {
                        format!(" in object at index {n}")
                    }
                )));
            }
            out[i] = c;
        }
        Ok(out)
    }
}

/// The converted objects of a webhook's answer, checked as upstream's
/// `getConvertedObjectsFromResponse` (v1beta1 answers are not checked for kind and uid).
fn converted_objects(
    answer: &Value,
    review_version: &str,
    uid: &str,
) -> Result<Vec<Value>, String> {
    if review_version == "v1" {
        let got = format!(
            "{}, Kind={}",
            object::api_version(answer),
            object::kind(answer)
        );
        if got != "apiextensions.k8s.io/v1, Kind=ConversionReview" {
            return Err(format!(
                "expected webhook response of apiextensions.k8s.io/v1, Kind=ConversionReview, got {got}"
            ));
        }
    }
    let Some(response) = answer.get("response").filter(|r| r.is_object()) else {
        return Err("no response provided".into());
    };
    let got_uid = response.get("uid").and_then(Value::as_str).unwrap_or("");
    if review_version == "v1" && got_uid != uid {
        return Err(format!("expected response.uid={uid:?}, got {got_uid:?}"));
    }
    let status = response
        .pointer("/result/status")
        .and_then(Value::as_str)
        .unwrap_or("");
    if status != "Success" {
        return match response.pointer("/result/message").and_then(Value::as_str) {
            Some(m) if !m.is_empty() => Err(m.to_string()),
            _ => Err(format!(
                "response.result.status was '{status}', not 'Success'"
            )),
        };
    }
    Ok(response
        .get("convertedObjects")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default())
}

/// Upstream's `validateConvertedObject`: kind, name, namespace and uid stay.
fn same_identity(original: &Value, converted: &Value) -> Result<(), String> {
    for (what, a, b) in [
        ("kind", object::kind(original), object::kind(converted)),
        ("name", object::name(original), object::name(converted)),
        (
            "namespace",
            object::namespace(original),
            object::namespace(converted),
        ),
        (
            "UID",
            object::meta_str(original, "uid"),
            object::meta_str(converted, "uid"),
        ),
    ] {
        if a != b {
            return Err(format!("must have the same {what}: {a} != {b}"));
        }
    }
    Ok(())
}

/// Upstream's `restoreObjectMeta`: the original's metadata, with the converted object's
/// labels and annotations (which must be maps of strings, and valid when they changed).
fn restore_object_meta(original: &Value, converted: &mut Value) -> Result<(), String> {
    let response_meta = match converted.get("metadata") {
        None => return Err("missing metadata in converted object".into()),
        Some(Value::Object(m)) => m.clone(),
        Some(other) => {
            return Err(format!(
                "invalid metadata of type {} in converted object",
                go_type(other)
            ))
        }
    };
    let mut meta = match original.get("metadata") {
        Some(Value::Object(m)) => m.clone(),
        _ => Map::new(),
    };
    for field in ["labels", "annotations"] {
        let Some(response_field) = response_meta.get(field).filter(|v| !v.is_null()) else {
            meta.remove(field);
            continue;
        };
        let Value::Object(response_field) = response_field else {
            return Err(format!(
                "invalid metadata.{field} of type {} in converted object",
                go_type(response_field)
            ));
        };
        for (k, v) in response_field {
            if !v.is_string() {
                return Err(format!(
                    "metadata.{field}[{k}] must be a string, but is {} in converted object",
                    go_type(v)
                ));
            }
        }
        if meta.get(field) != Some(&Value::Object(response_field.clone())) {
            let map: std::collections::BTreeMap<String, String> = response_field
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect();
            let path = rudder_api::field::Path::new("metadata");
            let errs = if field == "labels" {
                rudder_api::validation::object_meta::validate_labels(&map, &path.child("labels"))
            } else {
                rudder_api::validation::object_meta::validate_annotations(
                    &map,
                    &path.child("annotation"),
                )
            };
            if let Some(msg) = errs.aggregate_message() {
                return Err(msg);
            }
        }
        meta.insert(field.to_string(), Value::Object(response_field.clone()));
    }
    converted["metadata"] = Value::Object(meta);
    Ok(())
}

/// How Go's `%T` names a decoded JSON value.
fn go_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "<nil>",
        Value::Bool(_) => "bool",
        Value::Number(_) => "int64",
        Value::String(_) => "string",
        Value::Array(_) => "[]interface {}",
        Value::Object(_) => "map[string]interface {}",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cron(version: &str) -> Value {
        json!({"apiVersion": format!("stable.example.com/{version}"), "kind": "CronTab",
               "metadata": {"name": "c", "namespace": "ns", "uid": "u1", "resourceVersion": "7",
                            "labels": {"a": "b"}},
               "spec": {"cronSpec": "* * * * *"}})
    }

    #[test]
    fn answers_are_checked_as_upstream_checks_them() {
        let ok = json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "ConversionReview",
            "response": {"uid": "x", "result": {"status": "Success"}, "convertedObjects": [cron("v2")]}});
        assert_eq!(converted_objects(&ok, "v1", "x").unwrap(), vec![cron("v2")]);
        assert_eq!(
            converted_objects(&ok, "v1", "y").unwrap_err(),
            r#"expected response.uid="y", got "x""#
        );
        // v1beta1 answers are not checked for uid, as upstream.
        assert!(converted_objects(&ok, "v1beta1", "y").is_ok());
        let wrong_kind = json!({"apiVersion": "v1", "kind": "Status", "response": {}});
        assert_eq!(
            converted_objects(&wrong_kind, "v1", "x").unwrap_err(),
            "expected webhook response of apiextensions.k8s.io/v1, Kind=ConversionReview, got v1, Kind=Status"
        );
        let failed = json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "ConversionReview",
            "response": {"uid": "x", "result": {"status": "Failure", "message": "cannot convert"}}});
        assert_eq!(
            converted_objects(&failed, "v1", "x").unwrap_err(),
            "cannot convert"
        );
        let bare = json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "ConversionReview",
            "response": {"uid": "x", "result": {"status": "Failure"}}});
        assert_eq!(
            converted_objects(&bare, "v1", "x").unwrap_err(),
            "response.result.status was 'Failure', not 'Success'"
        );
        let none = json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "ConversionReview"});
        assert_eq!(
            converted_objects(&none, "v1", "x").unwrap_err(),
            "no response provided"
        );
    }

    #[test]
    fn metadata_other_than_labels_and_annotations_is_restored() {
        let original = cron("v1");
        let mut converted = cron("v2");
        converted["metadata"]["resourceVersion"] = json!("99");
        converted["metadata"]["labels"] = json!({"a": "c", "new": "x"});
        converted["metadata"]["annotations"] = json!({"note": "converted"});
        converted["metadata"]["generation"] = json!(5);
        restore_object_meta(&original, &mut converted).unwrap();
        assert_eq!(
            converted["metadata"],
            json!({"name": "c", "namespace": "ns", "uid": "u1", "resourceVersion": "7",
                   "labels": {"a": "c", "new": "x"}, "annotations": {"note": "converted"}})
        );
        // Labels dropped by the webhook are dropped.
        let mut no_labels = cron("v2");
        no_labels["metadata"]
            .as_object_mut()
            .unwrap()
            .remove("labels");
        restore_object_meta(&original, &mut no_labels).unwrap();
        assert!(no_labels["metadata"].get("labels").is_none());
        let mut bad = cron("v2");
        bad["metadata"]["labels"] = json!({"a": 1});
        assert_eq!(
            restore_object_meta(&original, &mut bad).unwrap_err(),
            "metadata.labels[a] must be a string, but is int64 in converted object"
        );
        let mut invalid = cron("v2");
        invalid["metadata"]["labels"] = json!({"a": "not valid!"});
        assert!(restore_object_meta(&original, &mut invalid)
            .unwrap_err()
            .contains("metadata.labels: Invalid value: \"not valid!\""));
        let mut missing = cron("v2");
        missing.as_object_mut().unwrap().remove("metadata");
        assert_eq!(
            restore_object_meta(&original, &mut missing).unwrap_err(),
            "missing metadata in converted object"
        );
    }

    #[test]
    fn identity_must_not_change() {
        let mut renamed = cron("v2");
        renamed["metadata"]["name"] = json!("d");
        assert_eq!(
            same_identity(&cron("v1"), &renamed).unwrap_err(),
            "must have the same name: c != d"
        );
        assert!(same_identity(&cron("v1"), &cron("v2")).is_ok());
    }
}
