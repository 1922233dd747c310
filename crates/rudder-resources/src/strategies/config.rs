//! ConfigMaps and Secrets (upstream `ValidateConfigMap`/`ValidateSecret` and their update
//! rules, `SetDefaults_Secret`, and the v1 conversion that folds `stringData` into `data`).

use base64::Engine as _;
use rudder_api::field::{BadValue, ErrorList, FieldError, Path};
use rudder_api::k8s_openapi::api::core::v1::{ConfigMap, Secret};
use rudder_registry::{OpCx, Strategy};
use serde_json::{json, Value};

use super::decode::round_trip;
use super::util::*;

pub struct ConfigMapStrategy;
pub struct SecretStrategy;

/// Upstream `core.MaxSecretSize`: 1 MiB for a ConfigMap's or a Secret's data.
pub(crate) const MAX_SECRET_SIZE: i64 = 1024 * 1024;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// The byte length of a base64 value (what Go holds in its `[]byte`).
fn decoded_len(v: &Value) -> usize {
    v.as_str()
        .and_then(|s| B64.decode(s).ok())
        .map_or(0, |b| b.len())
}

fn key_errors(map: Option<&Value>, path: &Path, errs: &mut ErrorList) {
    if let Some(m) = map.and_then(Value::as_object) {
        for key in m.keys() {
            for msg in config_map_key_errors(key) {
                errs.push(FieldError::invalid(
                    &path.key(key.as_str()),
                    key.as_str(),
                    msg,
                ));
            }
        }
    }
}

/// The `immutable: true` rules shared by ConfigMaps and Secrets.
fn immutable_rules(new: &Value, old: &Value, keys: &[&str], errs: &mut ErrorList) {
    if old.get("immutable").and_then(Value::as_bool) != Some(true) {
        return;
    }
    if new.get("immutable").and_then(Value::as_bool) != Some(true) {
        errs.push(FieldError::forbidden(
            &Path::new("immutable"),
            "field is immutable when `immutable` is set",
        ));
    }
    for key in keys {
        if !semantic_eq(new.get(*key), old.get(*key)) {
            errs.push(FieldError::forbidden(
                &Path::new(*key),
                "field is immutable when `immutable` is set",
            ));
        }
    }
}

impl Strategy for ConfigMapStrategy {
    fn decode(&self, obj: Value) -> Result<Value, String> {
        round_trip::<ConfigMap>(obj)
    }

    fn validate(&self, _cx: &OpCx, obj: &Value) -> ErrorList {
        validate_config_map(obj)
    }

    fn validate_update(&self, _cx: &OpCx, new: &Value, old: &Value) -> ErrorList {
        let mut errs = ErrorList::new();
        immutable_rules(new, old, &["data", "binaryData"], &mut errs);
        errs.extend(validate_config_map(new));
        errs
    }
}

/// Upstream `ValidateConfigMap`.
fn validate_config_map(obj: &Value) -> ErrorList {
    let mut errs = ErrorList::new();
    let data = obj_at(obj, "data");
    let binary = obj_at(obj, "binaryData");
    let mut total: i64 = 0;
    if let Some(d) = data {
        for (key, value) in d {
            let p = Path::new("data").key(key.as_str());
            for msg in config_map_key_errors(key) {
                errs.push(FieldError::invalid(&p, key.as_str(), msg));
            }
            if binary.is_some_and(|b| b.contains_key(key)) {
                errs.push(FieldError::invalid(
                    &p,
                    key.as_str(),
                    "duplicate of key present in binaryData",
                ));
            }
            total += value.as_str().map_or(0, str::len) as i64;
        }
    }
    key_errors(obj.get("binaryData"), &Path::new("binaryData"), &mut errs);
    if let Some(b) = binary {
        total += b.values().map(decoded_len).sum::<usize>() as i64;
    }
    if total > MAX_SECRET_SIZE {
        // Upstream reports the whole object with an empty path.
        errs.push(FieldError::too_long(&Path::new(""), MAX_SECRET_SIZE));
    }
    errs
}

impl Strategy for SecretStrategy {
    fn decode(&self, obj: Value) -> Result<Value, String> {
        round_trip::<Secret>(obj)
    }

    /// Upstream `Convert_v1_Secret_To_core_Secret`: stringData entries overwrite data entries,
    /// and are not kept.
    fn to_internal(&self, mut obj: Value) -> Value {
        if let Some(sd) = obj
            .as_object_mut()
            .and_then(|m| m.remove("stringData"))
            .and_then(|v| v.as_object().cloned())
        {
            let data = child_obj(&mut obj, "data");
            for (k, v) in sd {
                data[&k] = json!(B64.encode(v.as_str().unwrap_or_default()));
            }
        }
        obj
    }

    fn default(&self, obj: &mut Value) {
        default_str(obj, "type", "Opaque");
    }

    fn validate(&self, _cx: &OpCx, obj: &Value) -> ErrorList {
        validate_secret(obj)
    }

    fn validate_update(&self, _cx: &OpCx, new: &Value, old: &Value) -> ErrorList {
        let mut errs = ErrorList::new();
        immutable(
            new.get("type"),
            old.get("type"),
            &Path::new("type"),
            &mut errs,
        );
        immutable_rules(new, old, &["data"], &mut errs);
        errs.extend(validate_secret(new));
        errs
    }

    fn selectable_fields(&self, obj: &Value, out: &mut Vec<(String, String)>) {
        out.push(("type".into(), str_at(obj, "type").to_string()));
    }
}

/// Go's `json.Unmarshal` into a `map[string]interface{}`, reduced to its error message.
fn json_object_error(bytes: &[u8]) -> Option<String> {
    match serde_json::from_slice::<Value>(bytes) {
        Err(e) if e.is_eof() => Some("unexpected end of JSON input".into()),
        Err(e) => Some(format!("invalid character in JSON: {e}")),
        Ok(Value::Object(_)) | Ok(Value::Null) => None,
        Ok(other) => {
            let kind = match other {
                Value::Array(_) => "array",
                Value::String(_) => "string",
                Value::Number(_) => "number",
                _ => "bool",
            };
            Some(format!(
                "json: cannot unmarshal {kind} into Go value of type map[string]interface {{}}"
            ))
        }
    }
}

/// Upstream `ValidateSecret`.
fn validate_secret(obj: &Value) -> ErrorList {
    let mut errs = ErrorList::new();
    let data_path = Path::new("data");
    key_errors(obj.get("data"), &data_path, &mut errs);
    let data = obj_at(obj, "data");
    let total: usize = data.map_or(0, |d| d.values().map(decoded_len).sum());
    if total as i64 > MAX_SECRET_SIZE {
        errs.push(FieldError::too_long(&data_path, MAX_SECRET_SIZE));
    }
    let decoded = |key: &str| -> Option<Vec<u8>> {
        data.and_then(|d| d.get(key))
            .and_then(Value::as_str)
            .map(|s| B64.decode(s).unwrap_or_default())
    };
    match str_at(obj, "type") {
        "kubernetes.io/service-account-token" => {
            let name = obj
                .pointer("/metadata/annotations/kubernetes.io~1service-account.name")
                .and_then(Value::as_str)
                .unwrap_or("");
            if name.is_empty() {
                errs.push(FieldError::required(
                    &Path::new("metadata")
                        .child("annotations")
                        .key("kubernetes.io/service-account.name"),
                    "",
                ));
            }
        }
        "kubernetes.io/dockercfg" | "kubernetes.io/dockerconfigjson" => {
            let key = if str_at(obj, "type") == "kubernetes.io/dockercfg" {
                ".dockercfg"
            } else {
                ".dockerconfigjson"
            };
            match decoded(key) {
                None => errs.push(FieldError::required(&data_path.key(key), "")),
                Some(bytes) => {
                    if let Some(e) = json_object_error(&bytes) {
                        errs.push(FieldError::invalid(
                            &data_path.key(key),
                            BadValue::Str("<secret contents redacted>".into()),
                            e,
                        ));
                    }
                }
            }
        }
        // Username or password may be empty, but one of the keys must be there.
        "kubernetes.io/basic-auth"
            if decoded("username").is_none() && decoded("password").is_none() =>
        {
            errs.push(FieldError::required(&data_path.key("username"), ""));
            errs.push(FieldError::required(&data_path.key("password"), ""));
        }
        "kubernetes.io/ssh-auth" if decoded("ssh-privatekey").is_none_or(|b| b.is_empty()) => {
            errs.push(FieldError::required(&data_path.key("ssh-privatekey"), ""));
        }
        "kubernetes.io/tls" => {
            for key in ["tls.crt", "tls.key"] {
                if decoded(key).is_none() {
                    errs.push(FieldError::required(&data_path.key(key), ""));
                }
            }
        }
        _ => {}
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cx() -> OpCx {
        OpCx {
            now: "2024-01-01T00:00:00Z".into(),
        }
    }

    fn messages(errs: &ErrorList) -> Vec<String> {
        errs.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn config_map_keys_and_size() {
        let s = ConfigMapStrategy;
        let cm = s
            .decode(
                json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"},
                "data": {"good.key": "v", "bad key": "v"}}),
            )
            .unwrap();
        assert_eq!(
            messages(&s.validate(&cx(), &cm)),
            vec!["data[bad key]: Invalid value: \"bad key\": a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')"]
        );
        let big = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"},
            "data": {"a": "x".repeat(1024 * 1024 + 1)}});
        let cm = s.decode(big).unwrap();
        assert_eq!(
            messages(&s.validate(&cx(), &cm)),
            vec!["[]: Too long: may not be more than 1048576 bytes"]
        );
    }

    #[test]
    fn immutable_config_map() {
        let s = ConfigMapStrategy;
        let old = json!({"metadata": {"name": "c"}, "immutable": true, "data": {"a": "1"}});
        let new = json!({"metadata": {"name": "c"}, "immutable": true, "data": {"a": "2"}});
        assert_eq!(
            messages(&s.validate_update(&cx(), &new, &old)),
            vec!["data: Forbidden: field is immutable when `immutable` is set"]
        );
    }

    #[test]
    fn secret_defaults_and_types() {
        let s = SecretStrategy;
        let decoded = s
            .decode(
                json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
                "stringData": {"password": "hunter2"}, "data": {"password": "eHg=", "a": "eHg="}}),
            )
            .unwrap();
        assert_eq!(decoded["stringData"]["password"], "hunter2");
        let mut secret = s.to_internal(decoded);
        s.default(&mut secret);
        assert_eq!(secret["type"], "Opaque");
        assert_eq!(secret["data"]["password"], "aHVudGVyMg==");
        assert_eq!(secret["data"]["a"], "eHg=");
        assert!(secret.get("stringData").is_none());
        assert!(s.validate(&cx(), &secret).is_empty());

        let tls = json!({"metadata": {"name": "t"}, "type": "kubernetes.io/tls", "data": {"tls.crt": "eA=="}});
        assert_eq!(
            messages(&s.validate(&cx(), &tls)),
            vec!["data[tls.key]: Required value"]
        );
        let dcj = json!({"metadata": {"name": "d"}, "type": "kubernetes.io/dockerconfigjson"});
        assert_eq!(
            messages(&s.validate(&cx(), &dcj)),
            vec!["data[.dockerconfigjson]: Required value"]
        );
        let sat = json!({"metadata": {"name": "d"}, "type": "kubernetes.io/service-account-token"});
        assert_eq!(
            messages(&s.validate(&cx(), &sat)),
            vec!["metadata.annotations[kubernetes.io/service-account.name]: Required value"]
        );
        let mut changed = secret.clone();
        changed["type"] = json!("kubernetes.io/basic-auth");
        assert_eq!(
            messages(&s.validate_update(&cx(), &changed, &secret)),
            vec!["type: Invalid value: \"kubernetes.io/basic-auth\": field is immutable"]
        );
        let mut out = Vec::new();
        s.selectable_fields(&secret, &mut out);
        assert_eq!(out, vec![("type".to_string(), "Opaque".to_string())]);
    }
}
