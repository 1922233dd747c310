//! Server-side printing: the cells of the `meta.k8s.io/v1` Table that `kubectl get` prints.
//!
//! kubectl has no printers of its own any more: it asks for a Table and prints its cells, so
//! every column a user sees is computed here. The cells are ports of upstream kube-apiserver's
//! print functions (current `pkg/printers/internalversion/printers.go`, kube-aggregator's
//! APIService convertor and apiserver's `DefaultTableConvertor`), computed with `Wide: true`
//! as the API server always does: a row holds every column and kubectl hides the
//! `priority: 1` ones unless asked for `-o wide`.
//!
//! Assembling the Table (list metadata, the per-row `object`, `includeObject`, headers only on
//! the first watch event) is the API server's job. This module gives it, per group and kind:
//! - the columns: [`columns`], [`column_definitions`], [`table_columns`];
//! - the cells: [`table_row`] for one object, [`table_rows`] for a list (which also applies the
//!   two list-wide rules upstream has: FlowSchemas sorted by precedence, and only the effective
//!   default StorageClass marked `(default)`);
//! - the row conditions upstream attaches to finished pods: [`row_conditions`].
//!
//! Objects are read as JSON in their served shape; fields that are absent, `null` or of the
//! wrong type read as Go's zero values, so partial or odd objects print instead of failing.
//! `now` is a parameter: nothing here reads a clock.

mod columns;
mod docs;
mod duration;
mod format;
mod json;
mod kinds;
mod pod;
mod quantity;
mod time;

#[cfg(test)]
mod tests;

use std::time::SystemTime;

use rudder_api::resources::{ResourceInfo, TableColumn};
use serde_json::Value;

pub use columns::ColumnDef;
pub use duration::{human_duration, short_human_duration};
pub use quantity::{canonical_quantity, format_json_quantity};
pub use time::{translate_timestamp_since, Timestamp};

use columns as c;
use kinds::Cells;

/// A print function failed; upstream fails the whole request with it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PrintError {
    /// A ControllerRevision's controller reference has an `apiVersion` with more than one `/`
    /// (`schema.ParseGroupVersion`'s error).
    #[error("unexpected GroupVersion string: {value}")]
    GroupVersion {
        /// The offending `apiVersion`.
        value: String,
    },
}

/// One kind's columns and cell function.
struct Printer {
    group: &'static str,
    kind: &'static str,
    columns: &'static [ColumnDef],
    cells: fn(&Value, Timestamp) -> Cells,
}

const fn printer(
    group: &'static str,
    kind: &'static str,
    columns: &'static [ColumnDef],
    cells: fn(&Value, Timestamp) -> Cells,
) -> Printer {
    Printer {
        group,
        kind,
        columns,
        cells,
    }
}

fn pod_cells(o: &Value, now: Timestamp) -> Cells {
    Ok(pod::pod_cells(o, now))
}

/// Every kind upstream prints with specific columns. Kinds that upstream serves through the
/// default convertor although a print function exists (CSIStorageCapacity) are deliberately
/// absent, as are Role, ClusterRole, LimitRange and CustomResourceDefinition, which have none.
static PRINTERS: &[Printer] = &[
    // core
    printer("", "Pod", c::POD, pod_cells),
    printer("", "PodTemplate", c::POD_TEMPLATE, kinds::pod_template),
    printer(
        "",
        "ReplicationController",
        c::REPLICATION_CONTROLLER,
        kinds::replication_controller,
    ),
    printer("", "Service", c::SERVICE, kinds::service),
    printer("", "Endpoints", c::ENDPOINTS, kinds::endpoints),
    printer("", "Node", c::NODE, kinds::node),
    printer("", "Event", c::EVENT, kinds::event),
    printer("", "Namespace", c::NAMESPACE, kinds::namespace),
    printer("", "Secret", c::SECRET, kinds::secret),
    printer(
        "",
        "ServiceAccount",
        c::SERVICE_ACCOUNT,
        kinds::service_account,
    ),
    printer(
        "",
        "PersistentVolume",
        c::PERSISTENT_VOLUME,
        kinds::persistent_volume,
    ),
    printer(
        "",
        "PersistentVolumeClaim",
        c::PERSISTENT_VOLUME_CLAIM,
        kinds::persistent_volume_claim,
    ),
    printer(
        "",
        "ComponentStatus",
        c::COMPONENT_STATUS,
        kinds::component_status,
    ),
    printer("", "ConfigMap", c::CONFIG_MAP, kinds::config_map),
    printer(
        "",
        "ResourceQuota",
        c::RESOURCE_QUOTA,
        kinds::resource_quota,
    ),
    // apps
    printer("apps", "Deployment", c::DEPLOYMENT, kinds::deployment),
    printer("apps", "ReplicaSet", c::REPLICA_SET, kinds::replica_set),
    printer("apps", "DaemonSet", c::DAEMON_SET, kinds::daemon_set),
    printer("apps", "StatefulSet", c::STATEFUL_SET, kinds::stateful_set),
    printer(
        "apps",
        "ControllerRevision",
        c::CONTROLLER_REVISION,
        kinds::controller_revision,
    ),
    // batch, autoscaling, policy
    printer("batch", "Job", c::JOB, kinds::job),
    printer("batch", "CronJob", c::CRON_JOB, kinds::cron_job),
    printer(
        "autoscaling",
        "HorizontalPodAutoscaler",
        c::HORIZONTAL_POD_AUTOSCALER,
        kinds::horizontal_pod_autoscaler,
    ),
    printer(
        "policy",
        "PodDisruptionBudget",
        c::POD_DISRUPTION_BUDGET,
        kinds::pod_disruption_budget,
    ),
    // networking, discovery, events
    printer("networking.k8s.io", "Ingress", c::INGRESS, kinds::ingress),
    printer(
        "networking.k8s.io",
        "IngressClass",
        c::INGRESS_CLASS,
        kinds::ingress_class,
    ),
    printer(
        "networking.k8s.io",
        "NetworkPolicy",
        c::NETWORK_POLICY,
        kinds::network_policy,
    ),
    printer(
        "networking.k8s.io",
        "ServiceCIDR",
        c::SERVICE_CIDR,
        kinds::service_cidr,
    ),
    printer(
        "networking.k8s.io",
        "IPAddress",
        c::IP_ADDRESS,
        kinds::ip_address,
    ),
    printer(
        "discovery.k8s.io",
        "EndpointSlice",
        c::ENDPOINT_SLICE,
        kinds::endpoint_slice,
    ),
    printer(
        "events.k8s.io",
        "Event",
        c::EVENT,
        kinds::events_k8s_io_event,
    ),
    // rbac, certificates, coordination
    printer(
        "rbac.authorization.k8s.io",
        "RoleBinding",
        c::ROLE_BINDING,
        kinds::role_binding,
    ),
    printer(
        "rbac.authorization.k8s.io",
        "ClusterRoleBinding",
        c::CLUSTER_ROLE_BINDING,
        kinds::role_binding,
    ),
    printer(
        "certificates.k8s.io",
        "CertificateSigningRequest",
        c::CERTIFICATE_SIGNING_REQUEST,
        kinds::certificate_signing_request,
    ),
    printer(
        "certificates.k8s.io",
        "ClusterTrustBundle",
        c::CLUSTER_TRUST_BUNDLE,
        kinds::cluster_trust_bundle,
    ),
    printer("coordination.k8s.io", "Lease", c::LEASE, kinds::lease),
    printer(
        "coordination.k8s.io",
        "LeaseCandidate",
        c::LEASE_CANDIDATE,
        kinds::lease_candidate,
    ),
    // storage, scheduling, node
    printer(
        "storage.k8s.io",
        "StorageClass",
        c::STORAGE_CLASS,
        kinds::storage_class,
    ),
    printer(
        "storage.k8s.io",
        "VolumeAttributesClass",
        c::VOLUME_ATTRIBUTES_CLASS,
        kinds::volume_attributes_class,
    ),
    printer(
        "storage.k8s.io",
        "VolumeAttachment",
        c::VOLUME_ATTACHMENT,
        kinds::volume_attachment,
    ),
    printer(
        "storage.k8s.io",
        "CSIDriver",
        c::CSI_DRIVER,
        kinds::csi_driver,
    ),
    printer("storage.k8s.io", "CSINode", c::CSI_NODE, kinds::csi_node),
    printer(
        "scheduling.k8s.io",
        "PriorityClass",
        c::PRIORITY_CLASS,
        kinds::priority_class,
    ),
    printer(
        "node.k8s.io",
        "RuntimeClass",
        c::RUNTIME_CLASS,
        kinds::runtime_class,
    ),
    // admissionregistration
    printer(
        "admissionregistration.k8s.io",
        "MutatingWebhookConfiguration",
        c::WEBHOOK_CONFIGURATION,
        kinds::webhook_configuration,
    ),
    printer(
        "admissionregistration.k8s.io",
        "ValidatingWebhookConfiguration",
        c::WEBHOOK_CONFIGURATION,
        kinds::webhook_configuration,
    ),
    printer(
        "admissionregistration.k8s.io",
        "ValidatingAdmissionPolicy",
        c::VALIDATING_ADMISSION_POLICY,
        kinds::validating_admission_policy,
    ),
    printer(
        "admissionregistration.k8s.io",
        "ValidatingAdmissionPolicyBinding",
        c::ADMISSION_POLICY_BINDING,
        kinds::admission_policy_binding,
    ),
    printer(
        "admissionregistration.k8s.io",
        "MutatingAdmissionPolicy",
        c::MUTATING_ADMISSION_POLICY,
        kinds::mutating_admission_policy,
    ),
    printer(
        "admissionregistration.k8s.io",
        "MutatingAdmissionPolicyBinding",
        c::ADMISSION_POLICY_BINDING,
        kinds::admission_policy_binding,
    ),
    // flowcontrol, apiregistration
    printer(
        "flowcontrol.apiserver.k8s.io",
        "FlowSchema",
        c::FLOW_SCHEMA,
        kinds::flow_schema,
    ),
    printer(
        "flowcontrol.apiserver.k8s.io",
        "PriorityLevelConfiguration",
        c::PRIORITY_LEVEL_CONFIGURATION,
        kinds::priority_level_configuration,
    ),
    printer(
        "apiregistration.k8s.io",
        "APIService",
        c::API_SERVICE,
        kinds::api_service,
    ),
    // resource.k8s.io
    printer(
        "resource.k8s.io",
        "DeviceClass",
        c::NAME_AGE,
        kinds::name_and_age,
    ),
    printer(
        "resource.k8s.io",
        "ResourceClaim",
        c::RESOURCE_CLAIM,
        kinds::resource_claim,
    ),
    printer(
        "resource.k8s.io",
        "ResourceClaimTemplate",
        c::NAME_AGE,
        kinds::name_and_age,
    ),
    printer(
        "resource.k8s.io",
        "ResourceSlice",
        c::RESOURCE_SLICE,
        kinds::resource_slice,
    ),
    printer("autoscaling", "Scale", c::SCALE, kinds::scale),
];

fn find(group: &str, kind: &str) -> Option<&'static Printer> {
    PRINTERS.iter().find(|p| p.group == group && p.kind == kind)
}

/// True when the kind has specific columns; false means [`default_columns`] and
/// [`default_row`] apply.
pub fn has_printer(group: &str, kind: &str) -> bool {
    find(group, kind).is_some()
}

/// The columns a kind's rows line up with: its printer's, or the default Name and Created At.
pub fn columns(group: &str, kind: &str) -> &'static [ColumnDef] {
    find(group, kind).map_or(c::DEFAULT, |p| p.columns)
}

/// The columns of a resource of the built-in table, in `rudder-api`'s type.
///
/// Use these rather than `info.columns` (upstream v1.26 data): they are the columns the cells
/// are computed for, with the columns and descriptions upstream has added since.
pub fn table_columns(info: &ResourceInfo) -> Vec<TableColumn> {
    columns(&info.group, &info.kind)
        .iter()
        .map(|c| TableColumn {
            name: c.name.to_owned(),
            type_: c.type_.to_owned(),
            format: c.format.to_owned(),
            description: c.description.to_owned(),
            priority: c.priority,
        })
        .collect()
}

/// The `columnDefinitions` JSON array of a resource's Table.
pub fn column_definitions(info: &ResourceInfo) -> Value {
    column_definitions_of(&info.group, &info.kind)
}

/// The `columnDefinitions` of a kind's Table, also for kinds that are not resources (a
/// subresource's `Scale`).
pub fn column_definitions_of(group: &str, kind: &str) -> Value {
    columns_json(columns(group, kind))
}

/// The `columnDefinitions` of the default convertor (Name, Created At).
pub fn default_columns() -> Value {
    columns_json(c::DEFAULT)
}

fn columns_json(cols: &[ColumnDef]) -> Value {
    Value::Array(
        cols.iter()
            .map(|c| column_json(c.name, c.type_, c.format, c.description, c.priority))
            .collect(),
    )
}

fn column_json(name: &str, type_: &str, format: &str, description: &str, priority: i32) -> Value {
    serde_json::json!({
        "name": name,
        "type": type_,
        "format": format,
        "description": description,
        "priority": priority,
    })
}

/// The default convertor's cells: the name and the creation time in RFC 3339 UTC
/// (`0001-01-01T00:00:00Z` when unset, as upstream formats Go's zero time).
pub fn default_row(obj: &Value) -> Vec<Value> {
    let created =
        time::time_at(obj, &["metadata", "creationTimestamp"]).unwrap_or(Timestamp::GO_ZERO);
    vec![
        Value::from(json::name(obj)),
        Value::from(created.to_rfc3339()),
    ]
}

/// The cells of one object's row, lined up with [`columns`] for its group and kind.
///
/// For lists use [`table_rows`], which applies upstream's list-wide rules. A StorageClass on
/// its own is marked `(default)` when it carries the default annotation; see
/// [`storage_class_row`] to print one in the context of the others.
pub fn table_row(
    group: &str,
    kind: &str,
    obj: &Value,
    now: SystemTime,
) -> Result<Vec<Value>, PrintError> {
    row_at(group, kind, obj, Timestamp::from_system_time(now))
}

fn row_at(group: &str, kind: &str, obj: &Value, now: Timestamp) -> Result<Vec<Value>, PrintError> {
    match find(group, kind) {
        Some(p) => (p.cells)(obj, now),
        None => Ok(default_row(obj)),
    }
}

/// The `conditions` of an object's `TableRow`, where upstream sets any: pods that succeeded or
/// failed are marked `Completed`.
pub fn row_conditions(group: &str, kind: &str, obj: &Value) -> Option<Value> {
    (group.is_empty() && kind == "Pod")
        .then(|| pod::pod_row_conditions(obj))
        .flatten()
}

/// One row of a list's Table.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    /// Position of the object in the input, for attaching `object` to the row: rows are not
    /// always in input order (FlowSchemas are sorted).
    pub index: usize,
    /// The cells, lined up with [`columns`].
    pub cells: Vec<Value>,
    /// `TableRow.conditions`, when upstream sets any ([`row_conditions`]).
    pub conditions: Option<Value>,
}

/// The rows of a list, as upstream's list print functions produce them: FlowSchemas ordered
/// by matching precedence then name, and only the effective default StorageClass (the newest
/// one annotated default) marked `(default)`.
pub fn table_rows<'a>(
    group: &str,
    kind: &str,
    objs: impl IntoIterator<Item = &'a Value>,
    now: SystemTime,
) -> Result<Vec<Row>, PrintError> {
    let now = Timestamp::from_system_time(now);
    let objs: Vec<&Value> = objs.into_iter().collect();
    let mut order: Vec<usize> = (0..objs.len()).collect();
    let storage_class = group == "storage.k8s.io" && kind == "StorageClass";
    // Looked up once: a list can hold tens of thousands of objects.
    let printer = find(group, kind);
    if group == "flowcontrol.apiserver.k8s.io" && kind == "FlowSchema" {
        let key = |i: usize| {
            (
                json::int_at(objs[i], &["spec", "matchingPrecedence"]),
                json::name(objs[i]),
            )
        };
        order.sort_by(|&a, &b| key(a).cmp(&key(b)));
    }
    let default_class = if storage_class {
        effective_default_storage_class(objs.iter().copied())
    } else {
        None
    };
    order
        .into_iter()
        .map(|i| {
            let obj = objs[i];
            let cells = if storage_class {
                storage_class_cells(obj, now, default_class)?
            } else {
                match printer {
                    Some(p) => (p.cells)(obj, now)?,
                    None => default_row(obj),
                }
            };
            Ok(Row {
                index: i,
                cells,
                conditions: row_conditions(group, kind, obj),
            })
        })
        .collect()
}

/// The StorageClass a claim without a class gets when several are annotated default: the most
/// recently created, ties going to the alphabetically first name (upstream's admission rule,
/// which `kubectl get storageclass` reflects since kubernetes#135964).
pub fn effective_default_storage_class<'a>(
    items: impl IntoIterator<Item = &'a Value>,
) -> Option<&'a str> {
    let created = |o: &Value| time::time_or_zero(o, &["metadata", "creationTimestamp"]);
    items
        .into_iter()
        .filter(|o| kinds::is_default_storage_class(o))
        .reduce(|best, o| {
            let (tb, to) = (created(best), created(o));
            if to > tb || (to == tb && json::name(o) < json::name(best)) {
                o
            } else {
                best
            }
        })
        .map(json::name)
}

/// A StorageClass's cells given the effective default (from [`effective_default_storage_class`]
/// over all classes), for printing one class, such as a watch event, consistently with lists.
pub fn storage_class_row(
    obj: &Value,
    now: SystemTime,
    effective_default: Option<&str>,
) -> Vec<Value> {
    // Infallible: StorageClass cells never fail.
    storage_class_cells(obj, Timestamp::from_system_time(now), effective_default)
        .unwrap_or_else(|_| default_row(obj))
}

fn storage_class_cells(obj: &Value, now: Timestamp, effective_default: Option<&str>) -> Cells {
    let is_default = effective_default.is_some_and(|d| !d.is_empty() && d == json::name(obj));
    kinds::storage_class_with_default(obj, now, is_default)
}

/// A custom resource's Table from its CRD's `additionalPrinterColumns` (upstream's
/// `tableconvertor`): Name, then each column's value at its JSONPath, typed as the column
/// says (`date` as an age); a value of another type, or none, is an empty cell.
pub fn custom_table(
    columns: &[rudder_registry::PrinterColumn],
    objs: &[&Value],
    now: SystemTime,
) -> (Value, Vec<Vec<Value>>) {
    let now = Timestamp::from_system_time(now);
    // The default convertor's Name column, then the CRD's.
    let mut defs: Vec<Value> = c::DEFAULT[..1]
        .iter()
        .map(|c| column_json(c.name, c.type_, c.format, c.description, c.priority))
        .collect();
    defs.extend(
        columns
            .iter()
            .map(|c| column_json(&c.name, &c.type_, &c.format, &c.description, c.priority)),
    );
    let rows = objs
        .iter()
        .map(|obj| {
            let mut cells = vec![Value::from(json::name(obj))];
            cells.extend(
                columns
                    .iter()
                    .map(|c| match simple_json_path(obj, &c.json_path) {
                        Some(v) => typed_cell(&c.type_, v, now),
                        None => Value::Null,
                    }),
            );
            cells
        })
        .collect();
    (Value::Array(defs), rows)
}

/// The value at a simple JSONPath: dotted fields and `[n]` indexes (what CRD validation
/// allows in printer columns that matter in practice).
fn simple_json_path<'a>(obj: &'a Value, path: &str) -> Option<&'a Value> {
    let path = path.trim().trim_start_matches('{').trim_end_matches('}');
    let mut cur = obj;
    for part in path.trim_start_matches('.').split('.') {
        if part.is_empty() {
            continue;
        }
        let (field, indexes) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if !field.is_empty() {
            cur = cur.get(field)?;
        }
        for ix in indexes.split('[').filter(|s| !s.is_empty()) {
            let n: usize = ix.trim_end_matches(']').parse().ok()?;
            cur = cur.get(n)?;
        }
    }
    Some(cur)
}

/// Upstream's `cellForJSONValue`, and `string` columns printed as JSONPath prints.
fn typed_cell(type_: &str, v: &Value, now: Timestamp) -> Value {
    match (type_, v) {
        ("integer", Value::Number(n)) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64))
            .map_or(Value::Null, Value::from),
        ("number", Value::Number(n)) => n.as_f64().map_or(Value::Null, Value::from),
        ("boolean", Value::Bool(b)) => Value::from(*b),
        ("date", Value::String(s)) => match Timestamp::parse(s) {
            Some(t) => Value::from(time::translate_timestamp_since(Some(t), now)),
            None => Value::Null,
        },
        ("string", Value::String(s)) => Value::from(s.clone()),
        ("string", other) => Value::from(other.to_string()),
        _ => Value::Null,
    }
}
