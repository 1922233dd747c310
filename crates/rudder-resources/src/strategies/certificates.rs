//! CertificateSigningRequests: upstream's `pkg/registry/certificates/certificates/strategy.go`
//! (the main resource, `/status` and `/approval`) and `pkg/apis/certificates/validation`. The
//! request is checked as upstream checks it: a PEM `CERTIFICATE REQUEST` whose signature
//! verifies. Signing belongs to a signer, not to the API server.

use base64::Engine as _;
use rudder_api::field::{BadValue, ErrorList, FieldError, Path};
use rudder_api::k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use rudder_api::validation::{
    is_dns1123_label, is_dns1123_subdomain, validate_path_segment_name, NameValidator,
};
use rudder_registry::{OpCx, Requester, Strategy};
use serde_json::{json, Map, Value};
use x509_parser::prelude::FromDer;

use super::decode::round_trip;
use super::util::{diff, list_at, str_at};

pub struct CertificateSigningRequestStrategy;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

const APPROVED: &str = "Approved";
const DENIED: &str = "Denied";
const FAILED: &str = "Failed";

/// Upstream's `certificates.LegacyUnknownSignerName`, refused by the v1 API.
const LEGACY_UNKNOWN_SIGNER: &str = "kubernetes.io/legacy-unknown";

/// Upstream's `allValidUsages`, sorted as `sets.String.List()` returns them.
const VALID_USAGES: &[&str] = &[
    "any",
    "cert sign",
    "client auth",
    "code signing",
    "content commitment",
    "crl sign",
    "data encipherment",
    "decipher only",
    "digital signature",
    "email protection",
    "encipher only",
    "ipsec end system",
    "ipsec tunnel",
    "ipsec user",
    "key agreement",
    "key encipherment",
    "microsoft sgc",
    "netscape sgc",
    "ocsp signing",
    "s/mime",
    "server auth",
    "signing",
    "timestamping",
];

/// Upstream's `certificateValidationOptions`: what a write path may do, and which of the
/// problems already stored it tolerates.
#[derive(Default)]
struct Opts {
    allow_setting_approval_conditions: bool,
    allow_setting_certificate: bool,
    allow_both_approved_and_denied: bool,
    allow_legacy_signer_name: bool,
    allow_duplicate_condition_types: bool,
    allow_empty_condition_type: bool,
    allow_arbitrary_certificate: bool,
    allow_unknown_usages: bool,
    allow_duplicate_usages: bool,
}

fn conditions(csr: &Value) -> &[Value] {
    csr.get("status").map_or(&[], |s| list_at(s, "conditions"))
}

fn condition_type(c: &Value) -> &str {
    str_at(c, "type")
}

fn usages(csr: &Value) -> Vec<&str> {
    csr.get("spec")
        .map_or(&[][..], |s| list_at(s, "usages"))
        .iter()
        .map(|u| u.as_str().unwrap_or_default())
        .collect()
}

fn signer_name(csr: &Value) -> &str {
    csr.get("spec").map_or("", |s| str_at(s, "signerName"))
}

fn certificate(csr: &Value) -> Vec<u8> {
    csr.get("status")
        .map(|s| str_at(s, "certificate"))
        .and_then(|c| B64.decode(c).ok())
        .unwrap_or_default()
}

/// `getValidationOptions`: tolerate in an update what the stored object already has.
fn options(new: &Value, old: Option<&Value>) -> Opts {
    let Some(old) = old else {
        return Opts::default();
    };
    let types: Vec<&str> = conditions(old).iter().map(condition_type).collect();
    let old_usages = usages(old);
    let mut seen = std::collections::BTreeSet::new();
    let old_cert = certificate(old);
    Opts {
        allow_both_approved_and_denied: types.contains(&APPROVED) && types.contains(&DENIED),
        allow_legacy_signer_name: signer_name(old) == LEGACY_UNKNOWN_SIGNER,
        allow_duplicate_condition_types: !types.iter().all(|t| seen.insert(*t)),
        allow_empty_condition_type: types.contains(&""),
        allow_arbitrary_certificate: certificate(new) == old_cert
            || validate_certificate(&old_cert).is_err(),
        allow_unknown_usages: old_usages.iter().any(|u| !VALID_USAGES.contains(u)),
        allow_duplicate_usages: {
            let mut seen = std::collections::BTreeSet::new();
            !old_usages.iter().all(|u| seen.insert(*u))
        },
        ..Opts::default()
    }
}

/// Go's `%#v` of a `[]byte`, which is how upstream's field error prints the request.
fn go_bytes(bytes: &[u8]) -> BadValue {
    let items: Vec<String> = bytes.iter().map(|b| format!("{b:#x}")).collect();
    BadValue::Raw(format!("[]byte{{{}}}", items.join(", ")))
}

/// The first PEM block of `data` as Go's `pem.Decode` finds it: (type, headers present, body).
fn pem_block(data: &[u8]) -> Option<(String, bool, Vec<u8>)> {
    let text = std::str::from_utf8(data).ok()?;
    let mut rest = text;
    loop {
        let start = rest.find("-----BEGIN ")?;
        let after = &rest[start + "-----BEGIN ".len()..];
        let end_label = after.find("-----")?;
        let label = &after[..end_label];
        let body_and_more = &after[end_label + 5..];
        let end_marker = format!("-----END {label}-----");
        if label.contains('\n') || !body_and_more.starts_with(['\n', '\r']) {
            rest = after;
            continue;
        }
        let Some(end) = body_and_more.find(&end_marker) else {
            rest = after;
            continue;
        };
        let body = &body_and_more[..end];
        let headers = body.lines().any(|l| l.contains(':'));
        let b64: String = body
            .lines()
            .filter(|l| !l.contains(':'))
            .flat_map(|l| l.chars())
            .filter(|c| !c.is_whitespace())
            .collect();
        match B64.decode(b64) {
            Ok(bytes) => return Some((label.to_owned(), headers, bytes)),
            Err(_) => rest = after,
        }
    }
}

/// The subject organizations (the groups a client certificate would carry) of a PEM
/// certificate request, as upstream's `ParseCSR` reads them.
pub fn request_organizations(pem: &[u8]) -> Result<Vec<String>, String> {
    let (_, _, der) = pem_block(pem)
        .filter(|(label, _, _)| label == "CERTIFICATE REQUEST")
        .ok_or_else(|| "PEM block type must be CERTIFICATE REQUEST".to_owned())?;
    let (_, csr) = x509_parser::certification_request::X509CertificationRequest::from_der(&der)
        .map_err(|e| format!("x509: malformed certificate request: {e}"))?;
    Ok(csr
        .certification_request_info
        .subject
        .iter_organization()
        .filter_map(|o| o.as_str().ok())
        .map(str::to_owned)
        .collect())
}

/// Upstream's `validateCSR`: a `CERTIFICATE REQUEST` PEM block whose PKCS#10 signature verifies.
fn validate_request(pem: &[u8]) -> Result<(), String> {
    let (_, _, der) = pem_block(pem)
        .filter(|(label, _, _)| label == "CERTIFICATE REQUEST")
        .ok_or_else(|| "PEM block type must be CERTIFICATE REQUEST".to_owned())?;
    let (rest, csr) = x509_parser::certification_request::X509CertificationRequest::from_der(&der)
        .map_err(|e| format!("x509: malformed certificate request: {e}"))?;
    if !rest.is_empty() {
        return Err("asn1: syntax error: trailing data".to_owned());
    }
    csr.verify_signature().map_err(|_| {
        let algorithm = csr
            .certification_request_info
            .subject_pki
            .algorithm
            .algorithm
            .to_id_string();
        // Go's messages by key type (`CheckSignatureFrom` and the crypto packages).
        match algorithm.as_str() {
            "1.2.840.113549.1.1.1" => "crypto/rsa: verification error".to_owned(),
            "1.2.840.10045.2.1" => "x509: ECDSA verification failure".to_owned(),
            "1.3.101.112" => "x509: Ed25519 verification failure".to_owned(),
            _ => "x509: cannot verify signature: algorithm unimplemented".to_owned(),
        }
    })
}

/// Upstream's `validateCertificate` of `status.certificate`: empty, or CERTIFICATE blocks only.
fn validate_certificate(pem: &[u8]) -> Result<(), String> {
    if pem.is_empty() {
        return Ok(());
    }
    let mut rest = pem;
    let mut blocks = 0;
    while let Some((label, headers, der)) = pem_block(rest) {
        if label != "CERTIFICATE" {
            return Err(format!(
                "only CERTIFICATE PEM blocks are allowed, found {label:?}"
            ));
        }
        if headers {
            return Err("no PEM block headers are permitted".to_owned());
        }
        x509_parser::parse_x509_certificate(&der)
            .map_err(|e| format!("x509: malformed certificate: {e}"))?;
        blocks += 1;
        let marker = b"-----END CERTIFICATE-----";
        let Some(at) = rest.windows(marker.len()).position(|w| w == marker) else {
            break;
        };
        rest = &rest[at + marker.len()..];
    }
    if blocks == 0 {
        return Err("must contain at least one CERTIFICATE PEM block".to_owned());
    }
    Ok(())
}

/// Upstream's `ValidateSignerName`.
fn validate_signer_name(path: &Path, name: &str, errs: &mut ErrorList) {
    if name.is_empty() {
        errs.push(FieldError::required(path, ""));
        return;
    }
    let segments: Vec<&str> = name.split('/').collect();
    let [domain, signer] = segments[..] else {
        errs.push(FieldError::invalid(
            path,
            name,
            "must be a fully qualified domain and path of the form 'example.com/signer-name'",
        ));
        return;
    };
    if domain.len() > 253 {
        errs.push(FieldError::too_long(path, 253));
    }
    let labels: Vec<&str> = domain.split('.').collect();
    first_label_errors(path, domain, is_dns1123_label, errs);
    if labels.len() < 2 {
        errs.push(FieldError::invalid(
            path,
            domain,
            "should be a domain with at least two segments separated by dots",
        ));
    }
    // Subdomains here: a path label must fit a whole resource name.
    first_label_errors(path, signer, is_dns1123_subdomain, errs);
    let max = 253 + (253 + 63 + 1) + 1;
    if name.len() > max {
        errs.push(FieldError::too_long(path, max as i64));
    }
}

/// The errors of the first of `segment`'s dot-separated labels that `check` rejects (upstream
/// stops there: later ones would repeat the same messages).
fn first_label_errors(
    path: &Path,
    segment: &str,
    check: fn(&str) -> Vec<String>,
    errs: &mut ErrorList,
) {
    if let Some((label, msgs)) = segment
        .split('.')
        .map(|l| (l, check(l)))
        .find(|(_, msgs)| !msgs.is_empty())
    {
        for m in msgs {
            errs.push(FieldError::invalid(
                path,
                segment,
                format!("validating label {label:?}: {m}"),
            ));
        }
    }
}

/// Upstream's `validateConditions`.
fn validate_conditions(csr: &Value, opts: &Opts, errs: &mut ErrorList) {
    let path = Path::new("status").child("conditions");
    let mut seen = std::collections::BTreeSet::new();
    let (mut approved, mut denied) = (false, false);
    for (i, c) in conditions(csr).iter().enumerate() {
        let ty = condition_type(c);
        if !opts.allow_empty_condition_type && ty.is_empty() {
            errs.push(FieldError::required(&path.index(i).child("type"), ""));
        }
        let allowed: &[&str] = if [APPROVED, DENIED, FAILED].contains(&ty) {
            &["True"]
        } else {
            &["False", "True", "Unknown"]
        };
        let status = str_at(c, "status");
        if status.is_empty() {
            errs.push(FieldError::required(&path.index(i).child("status"), ""));
        } else if !allowed.contains(&status) {
            errs.push(FieldError::not_supported(
                &path.index(i).child("status"),
                status,
                allowed,
            ));
        }
        if !opts.allow_both_approved_and_denied {
            let clash = match ty {
                APPROVED => {
                    approved = true;
                    denied
                }
                DENIED => {
                    denied = true;
                    approved
                }
                _ => false,
            };
            if clash {
                errs.push(FieldError::invalid(
                    &path,
                    ty,
                    "Approved and Denied conditions are mutually exclusive",
                ));
            }
        }
        if !opts.allow_duplicate_condition_types && !seen.insert(ty) {
            errs.push(FieldError::duplicate(&path.index(i).child("type"), ty));
        }
    }
}

/// Upstream's `validateCertificateSigningRequest` beyond ObjectMeta (which the generic store
/// validates).
fn validate_csr(csr: &Value, opts: &Opts) -> ErrorList {
    let mut errs = ErrorList::new();
    let spec = Path::new("spec");
    let request = csr
        .get("spec")
        .map(|s| str_at(s, "request"))
        .and_then(|r| B64.decode(r).ok())
        .unwrap_or_default();
    if let Err(e) = validate_request(&request) {
        errs.push(FieldError::invalid(
            &spec.child("request"),
            go_bytes(&request),
            e,
        ));
    }
    let usages = usages(csr);
    if usages.is_empty() {
        errs.push(FieldError::required(&spec.child("usages"), ""));
    }
    if !opts.allow_unknown_usages {
        for (i, u) in usages.iter().enumerate() {
            if !VALID_USAGES.contains(u) {
                errs.push(FieldError::not_supported(
                    &spec.child("usages").index(i),
                    *u,
                    VALID_USAGES,
                ));
            }
        }
    }
    if !opts.allow_duplicate_usages {
        let mut seen = std::collections::BTreeSet::new();
        for (i, u) in usages.iter().enumerate() {
            if !seen.insert(*u) {
                errs.push(FieldError::duplicate(&spec.child("usages").index(i), *u));
            }
        }
    }
    let signer = signer_name(csr);
    if !opts.allow_legacy_signer_name && signer == LEGACY_UNKNOWN_SIGNER {
        errs.push(FieldError::invalid(
            &spec.child("signerName"),
            signer,
            "the legacy signerName is not allowed via this API version",
        ));
    } else {
        validate_signer_name(&spec.child("signerName"), signer, &mut errs);
    }
    if let Some(secs) = csr
        .get("spec")
        .and_then(|s| s.get("expirationSeconds"))
        .and_then(Value::as_i64)
    {
        if secs < 600 {
            errs.push(FieldError::invalid(
                &spec.child("expirationSeconds"),
                secs,
                "may not specify a duration less than 600 seconds (10 minutes)",
            ));
        }
    }
    validate_conditions(csr, opts, &mut errs);
    if !opts.allow_arbitrary_certificate {
        if let Err(e) = validate_certificate(&certificate(csr)) {
            errs.push(FieldError::invalid(
                &Path::new("status").child("certificate"),
                "<certificate data>",
                e,
            ));
        }
    }
    errs
}

/// Upstream's `validateCertificateSigningRequestUpdate`, with the options of the write path.
fn validate_csr_update(new: &Value, old: &Value, mut opts: Opts) -> ErrorList {
    let tolerated = options(new, Some(old));
    opts = Opts {
        allow_setting_approval_conditions: opts.allow_setting_approval_conditions,
        allow_setting_certificate: opts.allow_setting_certificate,
        ..tolerated
    };
    let mut errs = validate_csr(new, &opts);
    let path = Path::new("status").child("conditions");
    let of_type = |csr: &Value, t: &str| -> Vec<Value> {
        conditions(csr)
            .iter()
            .filter(|c| condition_type(c) == t)
            .cloned()
            .collect()
    };
    for t in [APPROVED, DENIED, FAILED] {
        if of_type(new, t).len() < of_type(old, t).len() {
            errs.push(FieldError::forbidden(
                &path,
                format!("updates may not remove a condition of type {t:?}"),
            ));
        }
    }
    if !opts.allow_setting_approval_conditions {
        for t in [APPROVED, DENIED] {
            let (before, after) = (of_type(old, t), of_type(new, t));
            if after.len() > before.len() {
                errs.push(FieldError::forbidden(
                    &path,
                    format!("updates may not add a condition of type {t:?}"),
                ));
            } else if after.len() == before.len() && after != before {
                errs.push(FieldError::forbidden(
                    &path,
                    format!(
                        "updates may not modify a condition of type {t:?}\n{}",
                        diff(&Value::Array(before), &Value::Array(after))
                    ),
                ));
            }
        }
    }
    let (new_cert, old_cert) = (certificate(new), certificate(old));
    if new_cert != old_cert {
        let path = Path::new("status").child("certificate");
        if !opts.allow_setting_certificate {
            errs.push(FieldError::forbidden(
                &path,
                "updates may not set certificate content",
            ));
        } else if !old_cert.is_empty() {
            errs.push(FieldError::forbidden(
                &path,
                "updates may not modify existing certificate content",
            ));
        }
    }
    errs
}

/// Upstream's `populateConditionTimestamps`: a condition without `lastUpdateTime` gets now; one
/// without `lastTransitionTime` gets that of the old condition of the same type and status, or
/// now.
fn populate_condition_timestamps(now: &str, new: &mut Value, old: &Value) {
    let old_conditions = conditions(old).to_vec();
    let Some(list) = new
        .get_mut("status")
        .and_then(|s| s.get_mut("conditions"))
        .and_then(Value::as_array_mut)
    else {
        return;
    };
    let unset = |c: &Map<String, Value>, k: &str| c.get(k).is_none_or(Value::is_null);
    for c in list.iter_mut().filter_map(Value::as_object_mut) {
        if unset(c, "lastUpdateTime") {
            c.insert("lastUpdateTime".into(), json!(now));
        }
        if unset(c, "lastTransitionTime") {
            let (ty, status) = (
                c.get("type").and_then(Value::as_str).unwrap_or_default(),
                c.get("status").and_then(Value::as_str).unwrap_or_default(),
            );
            let earlier = old_conditions.iter().find_map(|o| {
                (condition_type(o) == ty && str_at(o, "status") == status)
                    .then(|| o.get("lastTransitionTime").filter(|t| !t.is_null()))
                    .flatten()
            });
            let at = earlier.cloned().unwrap_or_else(|| json!(now));
            c.insert("lastTransitionTime".into(), at);
        }
    }
}

/// Go omits an empty `conditions` list (`omitempty`).
fn drop_empty_conditions(csr: &mut Value) {
    if let Some(Value::Object(status)) = csr.get_mut("status") {
        if status
            .get("conditions")
            .is_some_and(|c| c.as_array().is_none_or(Vec::is_empty))
        {
            status.remove("conditions");
        }
    }
}

fn set(obj: &mut Value, key: &str, value: Option<Value>) {
    if let Some(m) = obj.as_object_mut() {
        match value {
            Some(v) => m.insert(key.to_owned(), v),
            None => m.remove(key),
        };
    }
}

impl Strategy for CertificateSigningRequestStrategy {
    fn decode(&self, obj: Value) -> Result<Value, String> {
        round_trip::<CertificateSigningRequest>(obj)
    }

    /// Upstream's `ValidateCertificateRequestName` accepts any name ("We don't care what you
    /// call your certificate requests"), leaving the generic path-segment rule.
    fn name_validator(&self) -> NameValidator {
        validate_path_segment_name
    }

    fn prepare_for_create(&self, _cx: &OpCx, obj: &mut Value) {
        // Users cannot create pre-approved (or pre-issued) requests.
        set(obj, "status", Some(json!({})));
    }

    fn prepare_for_create_by(&self, user: Option<&Requester>, obj: &mut Value) {
        let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) else {
            return;
        };
        for k in ["username", "uid", "groups", "extra"] {
            spec.remove(k);
        }
        let Some(user) = user else {
            return;
        };
        if !user.name.is_empty() {
            spec.insert("username".into(), json!(user.name));
        }
        if !user.uid.is_empty() {
            spec.insert("uid".into(), json!(user.uid));
        }
        if !user.groups.is_empty() {
            spec.insert("groups".into(), json!(user.groups));
        }
        if !user.extra.is_empty() {
            spec.insert("extra".into(), json!(user.extra));
        }
    }

    fn prepare_for_update(&self, _cx: &OpCx, new: &mut Value, old: &Value) {
        // Requests are immutable but for their metadata, except through subresources.
        set(new, "spec", old.get("spec").cloned());
        set(new, "status", old.get("status").cloned());
    }

    fn prepare_for_subresource_update(
        &self,
        subresource: &str,
        cx: &OpCx,
        new: &mut Value,
        old: &Value,
    ) {
        match subresource {
            "status" => {
                // Issuance may not touch the approval: Approved and Denied conditions keep
                // their old values where their number did not change (validation rejects the
                // rest).
                set(new, "spec", old.get("spec").cloned());
                for t in [APPROVED, DENIED] {
                    preserve_condition_instances(new, old, t);
                }
                populate_condition_timestamps(&cx.now, new, old);
            }
            "approval" => {
                // Approval changes the conditions only.
                populate_condition_timestamps(&cx.now, new, old);
                let conditions = new.get("status").and_then(|s| s.get("conditions")).cloned();
                set(new, "spec", old.get("spec").cloned());
                let mut status = old.get("status").cloned().unwrap_or_else(|| json!({}));
                set(&mut status, "conditions", conditions);
                set(new, "status", Some(status));
            }
            _ => {}
        }
        drop_empty_conditions(new);
    }

    fn validate(&self, _cx: &OpCx, obj: &Value) -> ErrorList {
        validate_csr(obj, &options(obj, None))
    }

    fn validate_update(&self, _cx: &OpCx, new: &Value, old: &Value) -> ErrorList {
        validate_csr_update(new, old, Opts::default())
    }

    fn validate_subresource_update(
        &self,
        subresource: &str,
        _cx: &OpCx,
        new: &Value,
        old: &Value,
    ) -> ErrorList {
        let opts = Opts {
            allow_setting_certificate: subresource == "status",
            allow_setting_approval_conditions: subresource == "approval",
            ..Opts::default()
        };
        validate_csr_update(new, old, opts)
    }

    fn selectable_fields(&self, obj: &Value, out: &mut Vec<(String, String)>) {
        out.push(("spec.signerName".into(), signer_name(obj).to_owned()));
    }
}

/// Upstream's `preserveConditionInstances`: when the number of conditions of type `t` is
/// unchanged, each keeps its old value.
fn preserve_condition_instances(new: &mut Value, old: &Value, t: &str) {
    let old_items: Vec<Value> = conditions(old)
        .iter()
        .filter(|c| condition_type(c) == t)
        .cloned()
        .collect();
    let Some(list) = new
        .get_mut("status")
        .and_then(|s| s.get_mut("conditions"))
        .and_then(Value::as_array_mut)
    else {
        return;
    };
    let positions: Vec<usize> = list
        .iter()
        .enumerate()
        .filter(|(_, c)| condition_type(c) == t)
        .map(|(i, _)| i)
        .collect();
    if positions.len() != old_items.len() {
        return;
    }
    for (i, item) in positions.into_iter().zip(old_items) {
        list[i] = item;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -subj /CN=x`.
    const CSR: &str = "-----BEGIN CERTIFICATE REQUEST-----
MIHGMG4CAQAwDDEKMAgGA1UEAwwBeDBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IA
BMgD3GuVuG6pFzLh+qgdTrWlJQ7hcWA/lwbio1TwmTawm0nYT06yyZiek9sknMA+
aKnK87WQrQfcxmHRKpm1qBSgADAKBggqhkjOPQQDAgNIADBFAiBF4pGaBdAiByw3
jcLmFdCB9oNGONL/aQDLaH812zOaSQIhAPddwn3k1+Ovzd0P3LtdmEF3myQixnJU
Yq9E2it58GV0
-----END CERTIFICATE REQUEST-----
";

    fn cx() -> OpCx {
        OpCx {
            now: "2026-12-04T10:00:00Z".into(),
        }
    }

    fn csr(conditions: Value) -> Value {
        json!({
            "apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
            "metadata": {"name": "x", "resourceVersion": "1"},
            "spec": {"request": B64.encode(CSR), "signerName": "example.com/signer",
                     "usages": ["client auth"], "username": "alice"},
            "status": {"conditions": conditions}
        })
    }

    fn messages(errs: &ErrorList) -> Vec<String> {
        errs.iter()
            .map(|e| format!("{}: {}", e.field, e.body()))
            .collect()
    }

    fn approved() -> Value {
        json!({"type": "Approved", "status": "True", "reason": "R", "message": "m",
               "lastUpdateTime": "2026-12-04T09:00:00Z", "lastTransitionTime": "2026-12-04T09:00:00Z"})
    }

    #[test]
    fn create_records_the_requester_and_starts_pending() {
        let s = CertificateSigningRequestStrategy;
        let mut obj = csr(json!([approved()]));
        s.prepare_for_create(&cx(), &mut obj);
        s.prepare_for_create_by(
            Some(&Requester {
                name: "bob".into(),
                groups: vec!["g".into()],
                ..Requester::default()
            }),
            &mut obj,
        );
        assert_eq!(obj["status"], json!({}));
        assert_eq!(obj["spec"]["username"], "bob");
        assert_eq!(obj["spec"]["groups"], json!(["g"]));
        assert!(obj["spec"].get("uid").is_none());
        assert!(
            s.validate(&cx(), &obj).is_empty(),
            "{:?}",
            s.validate(&cx(), &obj)
        );
    }

    #[test]
    fn requests_must_be_signed_pem_csrs() {
        assert_eq!(validate_request(CSR.as_bytes()), Ok(()));
        assert_eq!(
            validate_request(b"hello"),
            Err("PEM block type must be CERTIFICATE REQUEST".to_owned())
        );
        let cert = CSR.replace("CERTIFICATE REQUEST", "CERTIFICATE");
        assert!(validate_request(cert.as_bytes()).is_err());
        // Flip a bit of the signature.
        let mut der = pem_block(CSR.as_bytes()).unwrap().2;
        let last = der.len() - 1;
        der[last] ^= 1;
        let tampered = format!(
            "-----BEGIN CERTIFICATE REQUEST-----\n{}\n-----END CERTIFICATE REQUEST-----\n",
            B64.encode(der)
        );
        assert_eq!(
            validate_request(tampered.as_bytes()),
            Err("x509: ECDSA verification failure".to_owned())
        );
        assert_eq!(
            go_bytes(b"hi\0"),
            BadValue::Raw("[]byte{0x68, 0x69, 0x0}".into())
        );
    }

    #[test]
    fn signer_names_follow_upstream() {
        let check = |name: &str| {
            let mut errs = ErrorList::new();
            validate_signer_name(&Path::new("spec").child("signerName"), name, &mut errs);
            messages(&errs)
        };
        assert!(check("example.com/signer").is_empty());
        assert!(check("kubernetes.io/kube-apiserver-client").is_empty());
        assert_eq!(check(""), ["spec.signerName: Required value"]);
        assert_eq!(
            check("example/signer"),
            ["spec.signerName: Invalid value: \"example\": should be a domain with at least two segments separated by dots"]
        );
        assert_eq!(
            check("Example.com/signer"),
            ["spec.signerName: Invalid value: \"Example.com\": validating label \"Example\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"]
        );
    }

    #[test]
    fn approval_changes_conditions_only_and_stamps_them() {
        let s = CertificateSigningRequestStrategy;
        let old = csr(json!([]));
        let mut new =
            csr(json!([{"type": "Approved", "status": "True", "reason": "KubectlApprove"}]));
        new["spec"]["username"] = json!("mallory");
        new["status"]["certificate"] = json!(B64.encode("x"));
        s.prepare_for_subresource_update("approval", &cx(), &mut new, &old);
        assert_eq!(new["spec"]["username"], "alice");
        assert!(new["status"].get("certificate").is_none());
        let c = &new["status"]["conditions"][0];
        assert_eq!(c["lastUpdateTime"], "2026-12-04T10:00:00Z");
        assert_eq!(c["lastTransitionTime"], "2026-12-04T10:00:00Z");
        assert!(s
            .validate_subresource_update("approval", &cx(), &new, &old)
            .is_empty());
        // The main resource and /status may not approve.
        assert_eq!(
            messages(&s.validate_update(&cx(), &new, &old)),
            ["status.conditions: Forbidden: updates may not add a condition of type \"Approved\""]
        );
        // No removing, not both.
        let mut cleared = csr(json!([]));
        s.prepare_for_subresource_update("approval", &cx(), &mut cleared, &new);
        assert_eq!(
            messages(&s.validate_subresource_update("approval", &cx(), &cleared, &new)),
            ["status.conditions: Forbidden: updates may not remove a condition of type \"Approved\""]
        );
        let both = csr(json!([approved(), {"type": "Denied", "status": "True"}]));
        assert_eq!(
            messages(&s.validate_subresource_update("approval", &cx(), &both, &new)),
            ["status.conditions: Invalid value: \"Denied\": Approved and Denied conditions are mutually exclusive"]
        );
        let wrong = csr(
            json!([{"type": "Approved", "status": "False"}, {"type": "Approved", "status": "True"}]),
        );
        assert_eq!(
            messages(&s.validate_subresource_update("approval", &cx(), &wrong, &old)),
            [
                "status.conditions[0].status: Unsupported value: \"False\": supported values: \"True\"",
                "status.conditions[1].type: Duplicate value: \"Approved\""
            ]
        );
    }

    #[test]
    fn status_keeps_the_approval_and_may_set_the_certificate_once() {
        let s = CertificateSigningRequestStrategy;
        let old = csr(json!([approved()]));
        let mut new = csr(json!([
            {"type": "Approved", "status": "True", "reason": "Changed", "message": "by status"},
            {"type": "Failed", "status": "True", "reason": "SignerError"}
        ]));
        s.prepare_for_subresource_update("status", &cx(), &mut new, &old);
        assert_eq!(new["status"]["conditions"][0], approved());
        assert_eq!(
            new["status"]["conditions"][1]["lastTransitionTime"],
            "2026-12-04T10:00:00Z"
        );
        assert!(s
            .validate_subresource_update("status", &cx(), &new, &old)
            .is_empty());
        new["status"]["certificate"] = json!(B64.encode("not a certificate"));
        assert_eq!(
            messages(&s.validate_subresource_update("status", &cx(), &new, &old)),
            ["status.certificate: Invalid value: \"<certificate data>\": must contain at least one CERTIFICATE PEM block"]
        );
        assert_eq!(
            messages(&s.validate_update(&cx(), &new, &old)),
            [
                "status.certificate: Invalid value: \"<certificate data>\": must contain at least one CERTIFICATE PEM block",
                "status.certificate: Forbidden: updates may not set certificate content"
            ]
        );
    }
}
