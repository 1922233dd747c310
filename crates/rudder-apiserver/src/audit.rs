//! Auditing as kube-apiserver does it: a policy file (`audit.k8s.io/v1` `Policy`, first
//! matching rule gives the level `None`/`Metadata`/`Request`/`RequestResponse` and the stages
//! to omit) and a log backend writing one `audit.k8s.io/v1` `Event` per line, rotated by size
//! with upstream's (lumberjack's) backup names, `--audit-log-maxage/maxbackup/maxsize`.
//! Events are queued to one writer thread, so requests never block on the disk unless the
//! queue is full (then they wait, as upstream's default `blocking` mode).
//!
//! An audited request carries a [`rudder_registry::AuditContext`]: authorization notes its
//! decision there and admission its findings (PodSecurity's audit level, webhooks' and
//! ValidatingAdmissionPolicies' annotations), which the event's `annotations` report.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use bytes::Bytes;
use http_body_util::BodyExt;
use rudder_auth::UserInfo;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{ApiServer, MAX_BODY};

/// How much of a request an event records, in upstream's order.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    None,
    Metadata,
    Request,
    RequestResponse,
}

#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
pub enum Stage {
    RequestReceived,
    ResponseStarted,
    ResponseComplete,
    Panic,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct GroupResources {
    #[serde(default)]
    group: String,
    #[serde(default)]
    resources: Vec<String>,
    #[serde(default)]
    resource_names: Vec<String>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Rule {
    level: Level,
    #[serde(default)]
    users: Vec<String>,
    #[serde(default)]
    user_groups: Vec<String>,
    #[serde(default)]
    verbs: Vec<String>,
    #[serde(default)]
    resources: Vec<GroupResources>,
    #[serde(default)]
    namespaces: Vec<String>,
    #[serde(default, rename = "nonResourceURLs")]
    non_resource_urls: Vec<String>,
    #[serde(default)]
    omit_stages: Vec<Stage>,
    #[serde(default)]
    omit_managed_fields: Option<bool>,
}

/// An audit policy (`audit.k8s.io/v1` `Policy`).
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Policy {
    api_version: String,
    kind: String,
    #[serde(default)]
    #[allow(dead_code)]
    metadata: Option<Value>,
    rules: Vec<Rule>,
    #[serde(default)]
    omit_stages: Vec<Stage>,
    #[serde(default)]
    omit_managed_fields: bool,
}

/// What the policy decides for one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub level: Level,
    pub omit_stages: Vec<Stage>,
    pub omit_managed_fields: bool,
}

/// The request attributes rules match on.
pub struct Attributes<'a> {
    pub user: &'a UserInfo,
    pub verb: &'a str,
    pub resource_request: bool,
    pub group: &'a str,
    pub resource: &'a str,
    pub subresource: &'a str,
    pub namespace: &'a str,
    pub name: &'a str,
    pub path: &'a str,
}

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("audit policy {path}: {message}")]
    Policy { path: String, message: String },
    #[error("audit log {path}: {source}")]
    Log {
        path: String,
        source: std::io::Error,
    },
}

impl Policy {
    /// Parses a policy (YAML or JSON), naming the offending field when it is wrong.
    pub fn parse(text: &str, path: &str) -> Result<Policy, AuditError> {
        let err = |message: String| AuditError::Policy {
            path: path.to_string(),
            message,
        };
        let p: Policy = serde_saphyr::from_str(text).map_err(|e| err(e.to_string()))?;
        if !matches!(
            p.api_version.as_str(),
            "audit.k8s.io/v1" | "audit.k8s.io/v1beta1" | "audit.k8s.io/v1alpha1"
        ) {
            return Err(err(format!(
                "apiVersion: unsupported value {:?} (audit.k8s.io/v1)",
                p.api_version
            )));
        }
        if p.kind != "Policy" {
            return Err(err(format!("kind: {:?} is not Policy", p.kind)));
        }
        Ok(p)
    }

    /// Upstream's `policyRuleEvaluator`: the first matching rule, else level None.
    pub fn evaluate(&self, a: &Attributes<'_>) -> Decision {
        for r in &self.rules {
            if rule_matches(r, a) {
                let mut omit = self.omit_stages.clone();
                omit.extend(r.omit_stages.iter().copied());
                return Decision {
                    level: r.level,
                    omit_stages: omit,
                    omit_managed_fields: r.omit_managed_fields.unwrap_or(self.omit_managed_fields),
                };
            }
        }
        Decision {
            level: Level::None,
            omit_stages: Vec::new(),
            omit_managed_fields: false,
        }
    }
}

fn has(list: &[String], s: &str) -> bool {
    list.iter().any(|x| x == s)
}

fn rule_matches(r: &Rule, a: &Attributes<'_>) -> bool {
    if !r.users.is_empty() && !has(&r.users, &a.user.name) {
        return false;
    }
    if !r.user_groups.is_empty() && !a.user.groups.iter().any(|g| has(&r.user_groups, g)) {
        return false;
    }
    if !r.verbs.is_empty() && !has(&r.verbs, a.verb) {
        return false;
    }
    if !r.namespaces.is_empty() || !r.resources.is_empty() {
        return resource_matches(r, a);
    }
    if !r.non_resource_urls.is_empty() {
        return !a.resource_request && r.non_resource_urls.iter().any(|s| path_matches(a.path, s));
    }
    true
}

fn path_matches(path: &str, spec: &str) -> bool {
    spec == "*"
        || spec == path
        || spec
            .strip_suffix('*')
            .is_some_and(|prefix| path.starts_with(prefix.trim_end_matches('*')))
}

fn resource_matches(r: &Rule, a: &Attributes<'_>) -> bool {
    if !a.resource_request {
        return false;
    }
    // Cluster-scoped resources match the empty namespace.
    if !r.namespaces.is_empty() && !has(&r.namespaces, a.namespace) {
        return false;
    }
    if r.resources.is_empty() {
        return true;
    }
    let combined = if a.subresource.is_empty() {
        a.resource.to_string()
    } else {
        format!("{}/{}", a.resource, a.subresource)
    };
    r.resources
        .iter()
        .filter(|gr| gr.group == a.group)
        .any(|gr| {
            gr.resources.is_empty()
                || gr.resources.iter().any(|res| {
                    (gr.resource_names.is_empty() || has(&gr.resource_names, a.name))
                        && (*res == combined
                            || res == "*"
                            || (!a.subresource.is_empty()
                                && res.strip_prefix("*/") == Some(a.subresource))
                            || res.strip_suffix("/*") == Some(a.resource))
                })
        })
}

/// Where the log goes and how it rotates (kube-apiserver's `--audit-log-*` flags).
#[derive(Clone, Debug)]
pub struct LogOptions {
    /// A file, or `-` for standard output.
    pub path: PathBuf,
    /// Days to keep rotated files (0: no limit).
    pub max_age_days: u64,
    /// Rotated files to keep (0: no limit).
    pub max_backups: usize,
    /// Megabytes before rotating (0: never).
    pub max_size_mb: u64,
}

/// The configured auditor: the policy and the writer's queue.
pub struct Auditor {
    policy: Policy,
    tx: tokio::sync::mpsc::Sender<Vec<u8>>,
}

/// The remote address of a request's connection (the first of `sourceIPs` after any
/// `X-Forwarded-For` hops).
#[derive(Clone, Copy, Debug)]
pub struct PeerAddr(pub SocketAddr);

impl Auditor {
    /// Reads the policy and opens the log (the writer runs on its own thread).
    pub fn start(policy_file: &Path, log: LogOptions) -> Result<Auditor, AuditError> {
        let display = policy_file.display().to_string();
        let text = std::fs::read_to_string(policy_file).map_err(|e| AuditError::Policy {
            path: display.clone(),
            message: e.to_string(),
        })?;
        let policy = Policy::parse(&text, &display)?;
        let mut writer = LogWriter::open(log)?;
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(16 * 1024);
        std::thread::Builder::new()
            .name("audit-log".into())
            .spawn(move || {
                while let Some(line) = rx.blocking_recv() {
                    writer.write(&line);
                    while let Ok(line) = rx.try_recv() {
                        writer.write(&line);
                    }
                    writer.flush();
                }
            })
            .map_err(|e| AuditError::Log {
                path: "audit-log thread".into(),
                source: e,
            })?;
        Ok(Auditor { policy, tx })
    }

    async fn emit(&self, event: &Event<'_>) {
        match serde_json::to_vec(event) {
            Ok(mut line) => {
                line.push(b'\n');
                // A full queue makes requests wait, as upstream's blocking backend.
                let _ = self.tx.send(line).await;
            }
            Err(e) => tracing::warn!(error = %e, "audit event could not be encoded"),
        }
    }
}

/// Appends lines to the log file, rotating it as lumberjack does.
struct LogWriter {
    opts: LogOptions,
    out: Option<std::io::BufWriter<std::fs::File>>,
    size: u64,
}

impl LogWriter {
    fn open(opts: LogOptions) -> Result<LogWriter, AuditError> {
        let mut w = LogWriter {
            opts,
            out: None,
            size: 0,
        };
        if w.opts.path != Path::new("-") {
            w.reopen().map_err(|source| AuditError::Log {
                path: w.opts.path.display().to_string(),
                source,
            })?;
        }
        Ok(w)
    }

    fn reopen(&mut self) -> std::io::Result<()> {
        if let Some(dir) = self
            .opts
            .path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
        {
            std::fs::create_dir_all(dir)?;
        }
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.opts.path)?;
        self.size = f.metadata()?.len();
        self.out = Some(std::io::BufWriter::new(f));
        Ok(())
    }

    fn write(&mut self, line: &[u8]) {
        if self.opts.path == Path::new("-") {
            let _ = std::io::stdout().write_all(line);
            return;
        }
        let max = self.opts.max_size_mb * 1024 * 1024;
        if max > 0 && self.size + line.len() as u64 > max && self.size > 0 {
            if let Err(e) = self.rotate() {
                tracing::warn!(error = %e, "rotating the audit log failed");
            }
        }
        if self.out.is_none() {
            if let Err(e) = self.reopen() {
                tracing::warn!(error = %e, "opening the audit log failed");
                return;
            }
        }
        if let Some(out) = self.out.as_mut() {
            match out.write_all(line) {
                Ok(()) => self.size += line.len() as u64,
                Err(e) => tracing::warn!(error = %e, "writing the audit log failed"),
            }
        }
    }

    fn flush(&mut self) {
        if let Some(out) = self.out.as_mut() {
            let _ = out.flush();
        } else {
            let _ = std::io::stdout().flush();
        }
    }

    /// `<name>-<UTC 2006-01-02T15-04-05.000><ext>` beside the log, then the old ones pruned.
    fn rotate(&mut self) -> std::io::Result<()> {
        if let Some(mut out) = self.out.take() {
            out.flush()?;
        }
        let now = jiff::Timestamp::now();
        let stamp = format!(
            "{}.{:03}",
            now.strftime("%Y-%m-%dT%H-%M-%S"),
            now.subsec_millisecond()
        );
        let (dir, stem, ext) = split_log_name(&self.opts.path);
        std::fs::rename(&self.opts.path, dir.join(format!("{stem}-{stamp}{ext}")))?;
        self.reopen()?;
        self.prune(&dir, &stem, &ext);
        Ok(())
    }

    fn prune(&self, dir: &Path, stem: &str, ext: &str) {
        let prefix = format!("{stem}-");
        let mut backups: Vec<(String, PathBuf)> = std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let stamp = name.strip_prefix(&prefix)?.strip_suffix(ext)?.to_string();
                (stamp.len() == 23).then_some((stamp, e.path()))
            })
            .collect();
        backups.sort();
        backups.reverse();
        let max_age = (self.opts.max_age_days > 0).then(|| {
            let cutoff = jiff::Timestamp::now()
                - jiff::SignedDuration::from_hours(24 * self.opts.max_age_days as i64);
            format!(
                "{}.{:03}",
                cutoff.strftime("%Y-%m-%dT%H-%M-%S"),
                cutoff.subsec_millisecond()
            )
        });
        for (i, (stamp, path)) in backups.iter().enumerate() {
            let too_many = self.opts.max_backups > 0 && i >= self.opts.max_backups;
            let too_old = max_age.as_ref().is_some_and(|c| stamp < c);
            if too_many || too_old {
                let _ = std::fs::remove_file(path);
            }
        }
    }
}

fn split_log_name(path: &Path) -> (PathBuf, String, String) {
    let dir = path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    match name.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() => (dir, stem.to_string(), format!(".{ext}")),
        _ => (dir, name, String::new()),
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ObjectRef<'a> {
    #[serde(skip_serializing_if = "str::is_empty")]
    resource: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    namespace: &'a str,
    #[serde(skip_serializing_if = "String::is_empty")]
    name: String,
    #[serde(skip_serializing_if = "str::is_empty")]
    api_group: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    api_version: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    subresource: &'a str,
}

/// An `audit.k8s.io/v1` Event, fields in upstream's order.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Event<'a> {
    kind: &'static str,
    api_version: &'static str,
    level: Level,
    #[serde(rename = "auditID")]
    audit_id: &'a str,
    stage: Stage,
    #[serde(rename = "requestURI")]
    request_uri: &'a str,
    verb: &'a str,
    user: Value,
    #[serde(rename = "sourceIPs")]
    source_ips: &'a [String],
    #[serde(skip_serializing_if = "str::is_empty")]
    user_agent: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    object_ref: Option<ObjectRef<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_status: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    request_object: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_object: Option<Value>,
    request_received_timestamp: &'a str,
    stage_timestamp: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    annotations: BTreeMap<String, String>,
}

/// metav1.MicroTime's format.
fn micro_time(t: jiff::Timestamp) -> String {
    format!(
        "{}.{:06}Z",
        t.strftime("%Y-%m-%dT%H:%M:%S"),
        t.subsec_microsecond()
    )
}

fn user_json(u: &UserInfo) -> Value {
    let mut v = serde_json::json!({"username": u.name});
    if !u.uid.is_empty() {
        v["uid"] = serde_json::json!(u.uid);
    }
    if !u.groups.is_empty() {
        v["groups"] = serde_json::json!(u.groups);
    }
    if !u.extra.is_empty() {
        v["extra"] = serde_json::json!(u.extra);
    }
    v
}

fn strip_managed_fields(v: &mut Value) {
    if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("managedFields");
    }
    if let Some(items) = v.get_mut("items").and_then(Value::as_array_mut) {
        items.iter_mut().for_each(strip_managed_fields);
    }
}

fn decode(headers: &http::HeaderMap, body: &[u8], omit_managed_fields: bool) -> Option<Value> {
    if body.is_empty() {
        return None;
    }
    let ct = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let mut v = crate::encode::decode_body(ct, body).ok()?;
    if omit_managed_fields {
        strip_managed_fields(&mut v);
    }
    Some(v)
}

/// The `responseStatus` of an event: the code, and for failures the Status the client got.
fn response_status(code: u16, headers: &http::HeaderMap, body: Option<&[u8]>) -> Value {
    let mut status = body
        .filter(|_| code >= 300)
        .and_then(|b| decode(headers, b, false))
        .filter(|v| v["kind"] == "Status")
        .map(|mut v| {
            if let Some(o) = v.as_object_mut() {
                o.remove("kind");
                o.remove("apiVersion");
            }
            v
        })
        .unwrap_or_else(|| serde_json::json!({"metadata": {}}));
    status["code"] = serde_json::json!(code);
    status
}

/// Requests whose response streams for long: their events have a `ResponseStarted` stage.
fn long_running(verb: &str, subresource: &str) -> bool {
    verb == "watch"
        || matches!(
            subresource,
            "exec" | "attach" | "portforward" | "proxy" | "log"
        )
}

/// The audit middleware (after authentication): one event per stage the policy keeps.
pub async fn middleware(State(s): State<Arc<ApiServer>>, req: Request, next: Next) -> Response {
    let Some(auditor) = s.auditor.as_ref() else {
        return next.run(req).await;
    };
    let received = jiff::Timestamp::now();
    let (parts, body) = req.into_parts();
    let (_, info, user) = crate::request_context(&parts);
    let decision = auditor.policy.evaluate(&Attributes {
        user: &user,
        verb: &info.verb,
        resource_request: info.resource_request,
        group: &info.group,
        resource: &info.resource,
        subresource: &info.subresource,
        namespace: &info.namespace,
        name: &info.name,
        path: parts.uri.path(),
    });
    if decision.level == Level::None {
        return next.run(Request::from_parts(parts, body)).await;
    }
    let audit_id = uuid::Uuid::new_v4().to_string();
    let request_uri = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    let mut source_ips: Vec<String> = parts
        .headers
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(',').map(|s| s.trim().to_string()).collect())
        .unwrap_or_default();
    if let Some(PeerAddr(a)) = parts.extensions.get::<PeerAddr>() {
        source_ips.push(a.ip().to_string());
    }
    let user_agent = parts
        .headers
        .get(http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    // Request bodies are read here (the handlers read them whole too) when the level keeps
    // them; streams (exec, port-forward) are never buffered.
    let upgrade = parts.headers.contains_key(http::header::UPGRADE);
    let (body, request_object) = if decision.level >= Level::Request && !upgrade {
        match http_body_util::Limited::new(body, MAX_BODY).collect().await {
            Ok(c) => {
                let bytes = c.to_bytes();
                let obj = decode(&parts.headers, &bytes, decision.omit_managed_fields);
                (Body::from(bytes), obj)
            }
            Err(_) => (Body::empty(), None),
        }
    } else {
        (body, None)
    };
    let received_ts = micro_time(received);
    // Authorization and admission add to the event through the request.
    let context = rudder_registry::AuditContext::collecting();
    let mut parts = parts;
    parts.extensions.insert(context.clone());
    let omit = |stage: Stage| decision.omit_stages.contains(&stage);
    let event = |stage: Stage,
                 response_status: Option<Value>,
                 response_object: Option<Value>,
                 request_object: Option<Value>| Event {
        kind: "Event",
        api_version: "audit.k8s.io/v1",
        level: decision.level,
        audit_id: &audit_id,
        stage,
        request_uri: &request_uri,
        verb: &info.verb,
        user: user_json(&user),
        source_ips: &source_ips,
        user_agent: &user_agent,
        object_ref: info.resource_request.then(|| ObjectRef {
            resource: &info.resource,
            namespace: &info.namespace,
            // A create names its object only in the body, as upstream's `LogRequestObject`
            // completes the reference.
            name: match context.object_name() {
                Some(n) if info.name.is_empty() => n,
                _ => info.name.clone(),
            },
            api_group: &info.group,
            api_version: &info.version,
            subresource: &info.subresource,
        }),
        response_status,
        request_object,
        response_object,
        request_received_timestamp: &received_ts,
        stage_timestamp: micro_time(jiff::Timestamp::now()),
        annotations: context.annotations(),
    };
    if !omit(Stage::RequestReceived) {
        auditor
            .emit(&event(
                Stage::RequestReceived,
                None,
                None,
                request_object.clone(),
            ))
            .await;
    }
    let mut req = Request::from_parts(parts, body);
    if let Ok(v) = http::HeaderValue::from_str(&audit_id) {
        req.headers_mut().insert("audit-id", v);
    }
    let mut resp = next.run(req).await;
    if let Ok(v) = http::HeaderValue::from_str(&audit_id) {
        resp.headers_mut().insert("audit-id", v);
    }
    let code = resp.status().as_u16();
    if long_running(&info.verb, &info.subresource) && code < 300 {
        if !omit(Stage::ResponseStarted) {
            let status = response_status(code, resp.headers(), None);
            auditor
                .emit(&event(
                    Stage::ResponseStarted,
                    Some(status),
                    None,
                    request_object.clone(),
                ))
                .await;
        }
        if omit(Stage::ResponseComplete) {
            return resp;
        }
        // The stream's end completes the request.
        let line = serde_json::to_vec(&event(
            Stage::ResponseComplete,
            Some(response_status(code, resp.headers(), None)),
            None,
            request_object,
        ))
        .ok();
        let tx = auditor.tx.clone();
        let (parts, body) = resp.into_parts();
        let stream = futures::StreamExt::chain(
            body.into_data_stream(),
            futures::stream::once(async move {
                if let Some(mut line) = line {
                    line.push(b'\n');
                    let _ = tx.send(line).await;
                }
                Ok::<Bytes, axum::Error>(Bytes::new())
            }),
        );
        return Response::from_parts(parts, Body::from_stream(stream));
    }
    if omit(Stage::ResponseComplete) {
        return resp;
    }
    // The response is buffered only when the event records it (RequestResponse) or for a
    // failure's Status.
    let keep = decision.level == Level::RequestResponse || code >= 300;
    if !keep {
        let status = response_status(code, resp.headers(), None);
        auditor
            .emit(&event(
                Stage::ResponseComplete,
                Some(status),
                None,
                request_object,
            ))
            .await;
        return resp;
    }
    let (rparts, rbody) = resp.into_parts();
    let bytes = match rbody.collect().await {
        Ok(c) => c.to_bytes(),
        Err(_) => Bytes::new(),
    };
    let status = response_status(code, &rparts.headers, Some(&bytes));
    let response_object = (decision.level == Level::RequestResponse)
        .then(|| decode(&rparts.headers, &bytes, decision.omit_managed_fields))
        .flatten();
    auditor
        .emit(&event(
            Stage::ResponseComplete,
            Some(status),
            response_object,
            request_object,
        ))
        .await;
    Response::from_parts(rparts, Body::from(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs<'a>(
        user: &'a UserInfo,
        verb: &'a str,
        resource: &'a str,
        ns: &'a str,
    ) -> Attributes<'a> {
        Attributes {
            user,
            verb,
            resource_request: !resource.is_empty(),
            group: "",
            resource,
            subresource: "",
            namespace: ns,
            name: "",
            path: "/api/v1/pods",
        }
    }

    const POLICY: &str = r#"
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: None
  users: ["system:kube-proxy"]
  verbs: ["watch"]
- level: RequestResponse
  resources:
  - group: ""
    resources: ["pods/log", "configmaps"]
    resourceNames: ["cm1"]
- level: Metadata
  resources:
  - group: ""
    resources: ["secrets", "*/status"]
- level: Request
  namespaces: ["kube-system"]
- level: None
  nonResourceURLs: ["/healthz*", "/version"]
- level: Metadata
  omitStages: [ResponseStarted]
"#;

    #[test]
    fn the_first_matching_rule_decides_as_upstream() {
        let p = Policy::parse(POLICY, "p.yaml").unwrap();
        let proxy = UserInfo::new("system:kube-proxy");
        let admin = UserInfo::new("admin");
        assert_eq!(
            p.evaluate(&attrs(&proxy, "watch", "services", "")).level,
            Level::None
        );
        assert_eq!(
            p.evaluate(&attrs(&proxy, "list", "services", "")).level,
            Level::Metadata
        );
        assert_eq!(
            p.evaluate(&attrs(&admin, "get", "secrets", "a")).level,
            Level::Metadata
        );
        assert_eq!(
            p.evaluate(&attrs(&admin, "get", "pods", "kube-system"))
                .level,
            Level::Request
        );
        let d = p.evaluate(&attrs(&admin, "get", "pods", "default"));
        assert_eq!(d.level, Level::Metadata);
        assert_eq!(
            d.omit_stages,
            [Stage::RequestReceived, Stage::ResponseStarted]
        );
        let mut a = attrs(&admin, "get", "configmaps", "default");
        a.name = "cm1";
        assert_eq!(p.evaluate(&a).level, Level::RequestResponse);
        a.name = "cm2";
        assert_eq!(p.evaluate(&a).level, Level::Metadata);
        let mut a = attrs(&admin, "update", "pods", "default");
        a.subresource = "status";
        assert_eq!(p.evaluate(&a).level, Level::Metadata);
        let mut a = attrs(&admin, "get", "", "");
        a.path = "/healthz/etcd";
        assert_eq!(p.evaluate(&a).level, Level::None);
        a.path = "/version";
        assert_eq!(p.evaluate(&a).level, Level::None);
        a.path = "/versions";
        assert_eq!(p.evaluate(&a).level, Level::Metadata);
    }

    #[test]
    fn a_bad_policy_names_the_field() {
        let e = Policy::parse(
            "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- levle: None\n",
            "p.yaml",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("levle") && e.contains("p.yaml"), "{e}");
        let e = Policy::parse(
            "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Everything\n",
            "p.yaml",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("Everything"), "{e}");
        let e = Policy::parse("apiVersion: v1\nkind: Policy\nrules: []\n", "p.yaml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("apiVersion"), "{e}");
    }

    #[test]
    fn the_log_rotates_with_lumberjack_names_and_keeps_max_backups() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let mut w = LogWriter::open(LogOptions {
            path: path.clone(),
            max_age_days: 0,
            max_backups: 2,
            max_size_mb: 1,
        })
        .unwrap();
        let line = vec![b'x'; 300 * 1024];
        for _ in 0..16 {
            w.write(&line);
            w.flush();
            // Distinct backup names need distinct milliseconds.
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names.len(), 3, "{names:?}");
        assert_eq!(names[2], "audit.log");
        for n in &names[..2] {
            assert!(
                n.starts_with("audit-") && n.ends_with(".log") && n.len() == 33,
                "{n}"
            );
        }
        assert!(std::fs::metadata(&path).unwrap().len() <= 1024 * 1024);
    }
}
