//! Upstream's Table column definitions, per kind, as current kube-apiserver registers them.
//!
//! The v1.26 data in `rudder-api` lacks the columns added since (jobs' STATUS, cronjobs'
//! TIMEZONE, VOLUMEATTRIBUTESCLASS, PREEMPTIONPOLICY), orders resource quotas' columns the old
//! way and has no descriptions; these definitions are the ones the cells are computed for.

use super::docs as d;

/// One `metav1.TableColumnDefinition`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ColumnDef {
    /// Header text (kubectl upper-cases it).
    pub name: &'static str,
    /// OpenAPI type: `string`, `integer`, `boolean`, `date`.
    pub type_: &'static str,
    /// OpenAPI format: `name` marks the column kubectl treats as the object's name.
    pub format: &'static str,
    /// What the column shows.
    pub description: &'static str,
    /// 0 = always shown, 1 = `-o wide` only.
    pub priority: i32,
}

const fn col(name: &'static str, type_: &'static str, description: &'static str) -> ColumnDef {
    ColumnDef {
        name,
        type_,
        format: "",
        description,
        priority: 0,
    }
}

const fn wide(name: &'static str, type_: &'static str, description: &'static str) -> ColumnDef {
    ColumnDef {
        name,
        type_,
        format: "",
        description,
        priority: 1,
    }
}

const NAME: ColumnDef = ColumnDef {
    name: "Name",
    type_: "string",
    format: "name",
    description: d::META_NAME,
    priority: 0,
};
const AGE: ColumnDef = col("Age", "string", d::META_CREATION_TIMESTAMP);
const CONTAINERS: ColumnDef = wide(
    "Containers",
    "string",
    "Names of each container in the template.",
);
const IMAGES: ColumnDef = wide(
    "Images",
    "string",
    "Images referenced by each container in the template.",
);

/// `rest.NewDefaultTableConvertor`: what every resource without a printer gets.
pub const DEFAULT: &[ColumnDef] = &[NAME, col("Created At", "date", d::META_CREATION_TIMESTAMP)];

pub(crate) const POD: &[ColumnDef] = &[
    NAME,
    col(
        "Ready",
        "string",
        "The aggregate readiness state of this pod for accepting traffic.",
    ),
    col(
        "Status",
        "string",
        "The aggregate status of the containers in this pod.",
    ),
    col(
        "Restarts",
        "string",
        "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.",
    ),
    AGE,
    wide("IP", "string", d::POD_STATUS_POD_IP),
    wide("Node", "string", d::POD_SPEC_NODE_NAME),
    wide("Nominated Node", "string", d::POD_STATUS_NOMINATED_NODE_NAME),
    wide("Readiness Gates", "string", d::POD_SPEC_READINESS_GATES),
];

pub(crate) const POD_TEMPLATE: &[ColumnDef] = &[
    NAME,
    col(
        "Containers",
        "string",
        "Names of each container in the template.",
    ),
    col(
        "Images",
        "string",
        "Images referenced by each container in the template.",
    ),
    col("Pod Labels", "string", "The labels for the pod template."),
];

pub(crate) const POD_DISRUPTION_BUDGET: &[ColumnDef] = &[
    NAME,
    col(
        "Min Available",
        "string",
        "The minimum number of pods that must be available.",
    ),
    col(
        "Max Unavailable",
        "string",
        "The maximum number of pods that may be unavailable.",
    ),
    col(
        "Allowed Disruptions",
        "integer",
        "Calculated number of pods that may be disrupted at this time.",
    ),
    AGE,
];

pub(crate) const REPLICATION_CONTROLLER: &[ColumnDef] = &[
    NAME,
    col("Desired", "integer", d::RC_SPEC_REPLICAS),
    col("Current", "integer", d::RC_STATUS_REPLICAS),
    col("Ready", "integer", d::RC_STATUS_READY_REPLICAS),
    AGE,
    CONTAINERS,
    IMAGES,
    wide("Selector", "string", d::RC_SPEC_SELECTOR),
];

pub(crate) const REPLICA_SET: &[ColumnDef] = &[
    NAME,
    col("Desired", "integer", d::RS_SPEC_REPLICAS),
    col("Current", "integer", d::RS_STATUS_REPLICAS),
    col("Ready", "integer", d::RS_STATUS_READY_REPLICAS),
    AGE,
    CONTAINERS,
    IMAGES,
    wide("Selector", "string", d::RS_SPEC_SELECTOR),
];

pub(crate) const DAEMON_SET: &[ColumnDef] = &[
    NAME,
    col("Desired", "integer", d::DS_STATUS_DESIRED),
    col("Current", "integer", d::DS_STATUS_CURRENT),
    col("Ready", "integer", d::DS_STATUS_READY),
    col("Up-to-date", "integer", d::DS_STATUS_UPDATED),
    col("Available", "integer", d::DS_STATUS_AVAILABLE),
    col("Node Selector", "string", d::POD_SPEC_NODE_SELECTOR),
    AGE,
    CONTAINERS,
    IMAGES,
    wide("Selector", "string", d::DS_SPEC_SELECTOR),
];

pub(crate) const JOB: &[ColumnDef] = &[
    NAME,
    col("Status", "string", "Status of the job."),
    col("Completions", "string", d::JOB_STATUS_SUCCEEDED),
    col("Duration", "string", "Time required to complete the job."),
    AGE,
    CONTAINERS,
    IMAGES,
    wide("Selector", "string", d::JOB_SPEC_SELECTOR),
];

pub(crate) const CRON_JOB: &[ColumnDef] = &[
    NAME,
    col("Schedule", "string", d::CRONJOB_SPEC_SCHEDULE),
    col("Timezone", "string", d::CRONJOB_SPEC_TIME_ZONE),
    col("Suspend", "boolean", d::CRONJOB_SPEC_SUSPEND),
    col("Active", "integer", d::CRONJOB_STATUS_ACTIVE),
    col("Last Schedule", "string", d::CRONJOB_STATUS_LAST_SCHEDULE),
    AGE,
    CONTAINERS,
    IMAGES,
    wide("Selector", "string", d::JOB_SPEC_SELECTOR),
];

pub(crate) const SERVICE: &[ColumnDef] = &[
    NAME,
    col("Type", "string", d::SVC_SPEC_TYPE),
    col("Cluster-IP", "string", d::SVC_SPEC_CLUSTER_IP),
    col("External-IP", "string", d::SVC_SPEC_EXTERNAL_IPS),
    col("Port(s)", "string", d::SVC_SPEC_PORTS),
    AGE,
    wide("Selector", "string", d::SVC_SPEC_SELECTOR),
];

pub(crate) const INGRESS: &[ColumnDef] = &[
    NAME,
    col(
        "Class",
        "string",
        "The name of the IngressClass resource that should be used for additional configuration",
    ),
    col(
        "Hosts",
        "string",
        "Hosts that incoming requests are matched against before the ingress rule",
    ),
    col(
        "Address",
        "string",
        "Address is a list containing ingress points for the load-balancer",
    ),
    col("Ports", "string", "Ports of TLS configurations that open"),
    AGE,
];

pub(crate) const INGRESS_CLASS: &[ColumnDef] = &[
    NAME,
    col(
        "Controller",
        "string",
        "Controller that is responsible for handling this class",
    ),
    col(
        "Parameters",
        "string",
        "A reference to a resource with additional parameters",
    ),
    AGE,
];

pub(crate) const STATEFUL_SET: &[ColumnDef] = &[
    NAME,
    col("Ready", "string", "Number of the pod with ready state"),
    AGE,
    CONTAINERS,
    IMAGES,
];

pub(crate) const ENDPOINTS: &[ColumnDef] =
    &[NAME, col("Endpoints", "string", d::ENDPOINTS_SUBSETS), AGE];

pub(crate) const NODE: &[ColumnDef] = &[
    NAME,
    col("Status", "string", "The status of the node"),
    col("Roles", "string", "The roles of the node"),
    AGE,
    col("Version", "string", d::NODE_INFO_KUBELET_VERSION),
    wide("Internal-IP", "string", d::NODE_STATUS_ADDRESSES),
    wide("External-IP", "string", d::NODE_STATUS_ADDRESSES),
    wide("OS-Image", "string", d::NODE_INFO_OS_IMAGE),
    wide("Kernel-Version", "string", d::NODE_INFO_KERNEL_VERSION),
    wide(
        "Container-Runtime",
        "string",
        d::NODE_INFO_CONTAINER_RUNTIME,
    ),
];

pub(crate) const EVENT: &[ColumnDef] = &[
    col("Last Seen", "string", d::EVENT_LAST_TIMESTAMP),
    col("Type", "string", d::EVENT_TYPE),
    col("Reason", "string", d::EVENT_REASON),
    col("Object", "string", d::EVENT_INVOLVED_OBJECT),
    wide("Subobject", "string", d::OBJECT_REFERENCE_FIELD_PATH),
    wide("Source", "string", d::EVENT_SOURCE),
    col("Message", "string", d::EVENT_MESSAGE),
    wide("First Seen", "string", d::EVENT_FIRST_TIMESTAMP),
    wide("Count", "string", d::EVENT_COUNT),
    ColumnDef {
        name: "Name",
        type_: "string",
        format: "name",
        description: d::META_NAME,
        priority: 1,
    },
];

pub(crate) const NAMESPACE: &[ColumnDef] = &[
    NAME,
    col("Status", "string", "The status of the namespace"),
    AGE,
];

pub(crate) const SECRET: &[ColumnDef] = &[
    NAME,
    col("Type", "string", d::SECRET_TYPE),
    col("Data", "string", d::SECRET_DATA),
    AGE,
];

pub(crate) const SERVICE_ACCOUNT: &[ColumnDef] = &[
    NAME,
    col("Secrets", "string", d::SERVICE_ACCOUNT_SECRETS),
    AGE,
];

pub(crate) const PERSISTENT_VOLUME: &[ColumnDef] = &[
    NAME,
    col("Capacity", "string", d::PV_SPEC_CAPACITY),
    col("Access Modes", "string", d::PV_SPEC_ACCESS_MODES),
    col("Reclaim Policy", "string", d::PV_SPEC_RECLAIM_POLICY),
    col("Status", "string", d::PV_STATUS_PHASE),
    col("Claim", "string", d::PV_SPEC_CLAIM_REF),
    col("StorageClass", "string", "StorageClass of the pv"),
    col(
        "VolumeAttributesClass",
        "string",
        "VolumeAttributesClass of the pv",
    ),
    col("Reason", "string", d::PV_STATUS_REASON),
    AGE,
    wide("VolumeMode", "string", d::PV_SPEC_VOLUME_MODE),
];

pub(crate) const PERSISTENT_VOLUME_CLAIM: &[ColumnDef] = &[
    NAME,
    col("Status", "string", d::PVC_STATUS_PHASE),
    col("Volume", "string", d::PVC_SPEC_VOLUME_NAME),
    col("Capacity", "string", d::PVC_STATUS_CAPACITY),
    col("Access Modes", "string", d::PVC_STATUS_ACCESS_MODES),
    col("StorageClass", "string", "StorageClass of the pvc"),
    col(
        "VolumeAttributesClass",
        "string",
        "VolumeAttributesClass of the pvc",
    ),
    AGE,
    wide("VolumeMode", "string", d::PVC_SPEC_VOLUME_MODE),
];

pub(crate) const COMPONENT_STATUS: &[ColumnDef] = &[
    NAME,
    col("Status", "string", "Status of the component conditions"),
    col("Message", "string", "Message of the component conditions"),
    col("Error", "string", "Error of the component conditions"),
];

pub(crate) const DEPLOYMENT: &[ColumnDef] = &[
    NAME,
    col("Ready", "string", "Number of the pod with ready state"),
    col("Up-to-date", "string", d::DEPLOY_STATUS_UPDATED),
    col("Available", "string", d::DEPLOY_STATUS_AVAILABLE),
    AGE,
    CONTAINERS,
    IMAGES,
    wide("Selector", "string", d::DEPLOY_SPEC_SELECTOR),
];

pub(crate) const HORIZONTAL_POD_AUTOSCALER: &[ColumnDef] = &[
    NAME,
    col("Reference", "string", d::HPA_SPEC_SCALE_TARGET_REF),
    col("Targets", "string", d::HPA_SPEC_METRICS),
    col("MinPods", "string", d::HPA_SPEC_MIN_REPLICAS),
    col("MaxPods", "string", d::HPA_SPEC_MAX_REPLICAS),
    col("Replicas", "string", d::HPA_STATUS_CURRENT_REPLICAS),
    AGE,
];

pub(crate) const CONFIG_MAP: &[ColumnDef] = &[NAME, col("Data", "string", d::CONFIG_MAP_DATA), AGE];

pub(crate) const NETWORK_POLICY: &[ColumnDef] = &[
    NAME,
    col("Pod-Selector", "string", d::NETPOL_SPEC_POD_SELECTOR),
    AGE,
];

pub(crate) const ROLE_BINDING: &[ColumnDef] = &[
    NAME,
    col("Role", "string", d::ROLE_BINDING_ROLE_REF),
    AGE,
    wide("Users", "string", "Users in the roleBinding"),
    wide("Groups", "string", "Groups in the roleBinding"),
    wide(
        "ServiceAccounts",
        "string",
        "ServiceAccounts in the roleBinding",
    ),
];

pub(crate) const CLUSTER_ROLE_BINDING: &[ColumnDef] = &[
    NAME,
    col("Role", "string", d::CLUSTER_ROLE_BINDING_ROLE_REF),
    AGE,
    wide("Users", "string", "Users in the clusterRoleBinding"),
    wide("Groups", "string", "Groups in the clusterRoleBinding"),
    wide(
        "ServiceAccounts",
        "string",
        "ServiceAccounts in the clusterRoleBinding",
    ),
];

pub(crate) const CERTIFICATE_SIGNING_REQUEST: &[ColumnDef] = &[
    NAME,
    AGE,
    col("SignerName", "string", d::CSR_SPEC_SIGNER_NAME),
    col("Requestor", "string", d::CSR_SPEC_REQUEST),
    col(
        "RequestedDuration",
        "string",
        d::CSR_SPEC_EXPIRATION_SECONDS,
    ),
    col("Condition", "string", d::CSR_STATUS_CONDITIONS),
];

pub(crate) const CLUSTER_TRUST_BUNDLE: &[ColumnDef] =
    &[NAME, col("SignerName", "string", d::CTB_SPEC_SIGNER_NAME)];

pub(crate) const LEASE: &[ColumnDef] = &[NAME, col("Holder", "string", d::LEASE_SPEC_HOLDER), AGE];

/// Upstream looks up BinaryVersion and EmulationVersion in ObjectMeta's docs, which have no
/// such keys: their descriptions are empty there too.
pub(crate) const LEASE_CANDIDATE: &[ColumnDef] = &[
    NAME,
    col("LeaseName", "string", d::LEASE_CANDIDATE_SPEC_LEASE_NAME),
    col("BinaryVersion", "string", ""),
    col("EmulationVersion", "string", ""),
    AGE,
];

pub(crate) const STORAGE_CLASS: &[ColumnDef] = &[
    NAME,
    col("Provisioner", "string", d::SC_PROVISIONER),
    col("ReclaimPolicy", "string", d::SC_RECLAIM_POLICY),
    col("VolumeBindingMode", "string", d::SC_VOLUME_BINDING_MODE),
    col(
        "AllowVolumeExpansion",
        "string",
        d::SC_ALLOW_VOLUME_EXPANSION,
    ),
    AGE,
];

pub(crate) const VOLUME_ATTRIBUTES_CLASS: &[ColumnDef] =
    &[NAME, col("DriverName", "string", d::VAC_DRIVER_NAME), AGE];

pub(crate) const RESOURCE_QUOTA: &[ColumnDef] = &[
    NAME,
    col(
        "Request",
        "string",
        "Request represents a minimum amount of cpu/memory that a container may consume.",
    ),
    col(
        "Limit",
        "string",
        "Limits control the maximum amount of cpu/memory that a container may use independent of contention on the node.",
    ),
    AGE,
];

pub(crate) const PRIORITY_CLASS: &[ColumnDef] = &[
    NAME,
    col("Value", "integer", d::PRIORITY_CLASS_VALUE),
    col(
        "Global-Default",
        "boolean",
        d::PRIORITY_CLASS_GLOBAL_DEFAULT,
    ),
    AGE,
    col(
        "PreemptionPolicy",
        "string",
        d::PRIORITY_CLASS_PREEMPTION_POLICY,
    ),
];

/// Upstream describes HANDLER with ObjectMeta's (non-existent) `handler` doc: empty.
pub(crate) const RUNTIME_CLASS: &[ColumnDef] = &[NAME, col("Handler", "string", ""), AGE];

pub(crate) const VOLUME_ATTACHMENT: &[ColumnDef] = &[
    NAME,
    ColumnDef {
        name: "Attacher",
        type_: "string",
        format: "name",
        description: d::VA_SPEC_ATTACHER,
        priority: 0,
    },
    col("PV", "string", d::VA_SOURCE_PV_NAME),
    col("Node", "string", d::VA_SPEC_NODE_NAME),
    col("Attached", "boolean", d::VA_STATUS_ATTACHED),
    AGE,
];

pub(crate) const ENDPOINT_SLICE: &[ColumnDef] = &[
    NAME,
    col("AddressType", "string", d::ENDPOINT_SLICE_ADDRESS_TYPE),
    col("Ports", "string", d::ENDPOINT_SLICE_PORTS),
    col("Endpoints", "string", d::ENDPOINT_SLICE_ENDPOINTS),
    AGE,
];

pub(crate) const CSI_NODE: &[ColumnDef] = &[
    NAME,
    col(
        "Drivers",
        "integer",
        "Drivers indicates the number of CSI drivers registered on the node",
    ),
    AGE,
];

pub(crate) const CSI_DRIVER: &[ColumnDef] = &[
    NAME,
    col("AttachRequired", "boolean", d::CSI_DRIVER_ATTACH_REQUIRED),
    col("PodInfoOnMount", "boolean", d::CSI_DRIVER_POD_INFO_ON_MOUNT),
    col("StorageCapacity", "boolean", d::CSI_DRIVER_STORAGE_CAPACITY),
    col("TokenRequests", "string", d::CSI_DRIVER_TOKEN_REQUESTS),
    col(
        "RequiresRepublish",
        "boolean",
        d::CSI_DRIVER_REQUIRES_REPUBLISH,
    ),
    col("Modes", "string", d::CSI_DRIVER_MODES),
    AGE,
];

const WEBHOOKS: ColumnDef = col(
    "Webhooks",
    "integer",
    "Webhooks indicates the number of webhooks registered in this configuration",
);

pub(crate) const WEBHOOK_CONFIGURATION: &[ColumnDef] = &[NAME, WEBHOOKS, AGE];

const PARAM_KIND: ColumnDef = col(
    "ParamKind",
    "string",
    "ParamKind specifies the kind of resources used to parameterize this policy",
);

pub(crate) const VALIDATING_ADMISSION_POLICY: &[ColumnDef] = &[
    NAME,
    col(
        "Validations",
        "integer",
        "Validations indicates the number of validation rules defined in this configuration",
    ),
    PARAM_KIND,
    AGE,
];

pub(crate) const MUTATING_ADMISSION_POLICY: &[ColumnDef] = &[
    NAME,
    col(
        "Mutations",
        "integer",
        "Mutation indicates the number of mutations rules defined in this configuration",
    ),
    PARAM_KIND,
    AGE,
];

pub(crate) const ADMISSION_POLICY_BINDING: &[ColumnDef] = &[
    NAME,
    col(
        "PolicyName",
        "string",
        "PolicyName indicates the policy definition which the policy binding binded to",
    ),
    col(
        "ParamRef",
        "string",
        "ParamRef indicates the param resource which sets the configration param",
    ),
    AGE,
];

pub(crate) const FLOW_SCHEMA: &[ColumnDef] = &[
    NAME,
    col("PriorityLevel", "string", d::PL_REFERENCE_NAME),
    col(
        "MatchingPrecedence",
        "string",
        d::FLOW_SCHEMA_MATCHING_PRECEDENCE,
    ),
    col(
        "DistinguisherMethod",
        "string",
        d::FLOW_SCHEMA_DISTINGUISHER,
    ),
    AGE,
    col(
        "MissingPL",
        "string",
        "references a broken or non-existent PriorityLevelConfiguration",
    ),
];

pub(crate) const PRIORITY_LEVEL_CONFIGURATION: &[ColumnDef] = &[
    NAME,
    col("Type", "string", d::PL_SPEC_TYPE),
    col("NominalConcurrencyShares", "string", d::PL_LIMITED_NCS),
    col("Queues", "string", d::QUEUING_QUEUES),
    col("HandSize", "string", d::QUEUING_HAND_SIZE),
    col("QueueLengthLimit", "string", d::QUEUING_QUEUE_LENGTH_LIMIT),
    AGE,
];

pub(crate) const API_SERVICE: &[ColumnDef] = &[
    NAME,
    col(
        "Service",
        "string",
        "The reference to the service that hosts this API endpoint.",
    ),
    col("Available", "string", "Whether this service is available."),
    AGE,
];

pub(crate) const CONTROLLER_REVISION: &[ColumnDef] = &[
    NAME,
    col("Controller", "string", "Controller of the object"),
    col("Revision", "string", d::CONTROLLER_REVISION_REVISION),
    AGE,
];

pub(crate) const SERVICE_CIDR: &[ColumnDef] =
    &[NAME, col("CIDRs", "string", d::SERVICE_CIDR_CIDRS), AGE];

/// Upstream registers only Name and ParentRef but prints an age as well; the AGE column is
/// added here so cells and columns line up.
pub(crate) const IP_ADDRESS: &[ColumnDef] = &[
    NAME,
    col("ParentRef", "string", d::IP_ADDRESS_PARENT_REF),
    AGE,
];

pub(crate) const NAME_AGE: &[ColumnDef] = &[NAME, AGE];

/// `scaleColumnDefinitions` (its Name column has no `name` format upstream).
pub(crate) const SCALE: &[ColumnDef] = &[
    col("Name", "string", d::META_NAME),
    col(
        "Desired",
        "integer",
        "replicas is the desired number of instances for the scaled object.",
    ),
    col(
        "Available",
        "integer",
        "replicas is the actual number of observed instances of the scaled object.",
    ),
    AGE,
];

pub(crate) const RESOURCE_CLAIM: &[ColumnDef] = &[
    NAME,
    col(
        "State",
        "string",
        "A summary of the current state (allocated, pending, reserved, etc.).",
    ),
    AGE,
];

pub(crate) const RESOURCE_SLICE: &[ColumnDef] = &[
    NAME,
    col("Node", "string", d::RESOURCE_SLICE_NODE_NAME),
    col("Driver", "string", d::RESOURCE_SLICE_DRIVER),
    col("Pool", "string", d::RESOURCE_POOL_NAME),
    AGE,
];
