//! Bodies encoded by an independent implementation, prost over kube-rs's `k8s-pb` types, shaped
//! the way client-go's gogo-protobuf writes them (every non-pointer field present, zeros
//! included), decoded by this crate and compared with the JSON upstream would produce. Each case
//! also round-trips through this crate's encoder, and prost must accept what it writes.

use std::collections::BTreeMap;
use std::fmt::Debug;

use k8s_pb::api::core::v1 as core;
use k8s_pb::apimachinery::pkg::api::resource::Quantity;
use k8s_pb::apimachinery::pkg::apis::meta::v1 as meta;
use k8s_pb::apimachinery::pkg::runtime::{RawExtension, TypeMeta, Unknown};
use k8s_pb::apimachinery::pkg::util::intstr::IntOrString;
use prost::Message;
use rudder_protobuf::{decode_object, encode_object, is_supported};
use serde_json::{json, Value};

fn body<M: Message>(api_version: &str, kind: &str, obj: &M) -> Vec<u8> {
    let unknown = Unknown {
        type_meta: Some(TypeMeta {
            api_version: Some(api_version.into()),
            kind: Some(kind.into()),
        }),
        raw: Some(obj.encode_to_vec()),
        content_encoding: Some(String::new()),
        content_type: Some(String::new()),
    };
    let mut out = b"k8s\0".to_vec();
    out.extend(unknown.encode_to_vec());
    out
}

fn check<M: Message + Default + Debug>(api_version: &str, kind: &str, obj: &M, expected: Value) {
    let decoded = decode_object(&body(api_version, kind, obj)).unwrap();
    assert_eq!(decoded, expected, "decoding {kind}");

    let ours = encode_object(&decoded).unwrap();
    assert_eq!(
        decode_object(&ours).unwrap(),
        expected,
        "round trip of {kind}"
    );
    let unknown = Unknown::decode(&ours[4..]).unwrap();
    let type_meta = unknown.type_meta.unwrap();
    assert_eq!(type_meta.api_version.as_deref(), Some(api_version));
    assert_eq!(type_meta.kind.as_deref(), Some(kind));
    let reparsed = M::decode(unknown.raw.unwrap_or_default().as_slice()).unwrap();
    assert_eq!(
        decode_object(&body(api_version, kind, &reparsed)).unwrap(),
        expected,
        "prost reading our {kind}"
    );
}

fn s(v: &str) -> Option<String> {
    Some(v.to_string())
}

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn quantities(pairs: &[(&str, &str)]) -> BTreeMap<String, Quantity> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), Quantity { string: s(v) }))
        .collect()
}

/// ObjectMeta as gogo writes it: all value fields present, the zero time as an empty message.
fn meta(name: &str, labels: &[(&str, &str)]) -> Option<meta::ObjectMeta> {
    Some(meta::ObjectMeta {
        name: s(name),
        generate_name: s(""),
        namespace: s(""),
        self_link: s(""),
        uid: s(""),
        resource_version: s(""),
        generation: Some(0),
        creation_timestamp: Some(meta::Time::default()),
        labels: map(labels),
        ..Default::default()
    })
}

fn int_or_string_int(v: i32) -> Option<IntOrString> {
    Some(IntOrString {
        r#type: Some(0),
        int_val: Some(v),
        str_val: s(""),
    })
}

/// A container as `kubectl create deployment|job` builds it, with gogo's zeros.
fn container(name: &str, image: &str) -> core::Container {
    core::Container {
        name: s(name),
        image: s(image),
        working_dir: s(""),
        resources: Some(core::ResourceRequirements::default()),
        termination_message_path: s(""),
        termination_message_policy: s(""),
        image_pull_policy: s(""),
        stdin: Some(false),
        stdin_once: Some(false),
        tty: Some(false),
        ..Default::default()
    }
}

/// A PodSpec with gogo's zeros for the value fields.
fn pod_spec(containers: Vec<core::Container>, restart_policy: &str) -> core::PodSpec {
    core::PodSpec {
        containers,
        restart_policy: s(restart_policy),
        dns_policy: s(""),
        service_account_name: s(""),
        service_account: s(""),
        node_name: s(""),
        host_network: Some(false),
        host_pid: Some(false),
        host_ipc: Some(false),
        hostname: s(""),
        subdomain: s(""),
        scheduler_name: s(""),
        priority_class_name: s(""),
        ..Default::default()
    }
}

#[test]
fn deployment_from_kubectl_create_deployment() {
    use k8s_pb::api::apps::v1 as apps;
    let labels = [("app", "nginx")];
    let deployment = apps::Deployment {
        metadata: meta("nginx", &labels),
        spec: Some(apps::DeploymentSpec {
            replicas: Some(2),
            selector: Some(meta::LabelSelector {
                match_labels: map(&labels),
                match_expressions: vec![],
            }),
            template: Some(core::PodTemplateSpec {
                metadata: meta("", &labels),
                spec: Some(pod_spec(vec![container("nginx", "nginx")], "")),
            }),
            strategy: Some(apps::DeploymentStrategy {
                r#type: s(""),
                rolling_update: None,
            }),
            min_ready_seconds: Some(0),
            paused: Some(false),
            ..Default::default()
        }),
        status: Some(apps::DeploymentStatus {
            observed_generation: Some(0),
            replicas: Some(0),
            updated_replicas: Some(0),
            ready_replicas: Some(0),
            available_replicas: Some(0),
            unavailable_replicas: Some(0),
            ..Default::default()
        }),
    };
    check(
        "apps/v1",
        "Deployment",
        &deployment,
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "nginx", "labels": {"app": "nginx"}},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "nginx"}},
                "template": {
                    "metadata": {"labels": {"app": "nginx"}},
                    "spec": {"containers": [{"name": "nginx", "image": "nginx", "resources": {}}]},
                },
                "strategy": {},
            },
            "status": {},
        }),
    );
}

#[test]
fn zero_replicas_survive() {
    use k8s_pb::api::apps::v1 as apps;
    let deployment = apps::Deployment {
        metadata: meta("zero", &[]),
        spec: Some(apps::DeploymentSpec {
            replicas: Some(0),
            ..Default::default()
        }),
        status: None,
    };
    check(
        "apps/v1",
        "Deployment",
        &deployment,
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "zero"},
               "spec": {"replicas": 0}}),
    );
}

#[test]
fn replicaset_statefulset_daemonset() {
    use k8s_pb::api::apps::v1 as apps;
    let template = || {
        Some(core::PodTemplateSpec {
            metadata: meta("", &[("app", "db")]),
            spec: Some(pod_spec(vec![container("db", "postgres")], "Always")),
        })
    };
    let selector = || {
        Some(meta::LabelSelector {
            match_labels: map(&[("app", "db")]),
            match_expressions: vec![meta::LabelSelectorRequirement {
                key: s("tier"),
                operator: s("In"),
                values: vec!["a".into(), "b".into()],
            }],
        })
    };
    let template_json = json!({
        "metadata": {"labels": {"app": "db"}},
        "spec": {"containers": [{"name": "db", "image": "postgres", "resources": {}}],
                 "restartPolicy": "Always"},
    });
    let selector_json = json!({
        "matchLabels": {"app": "db"},
        "matchExpressions": [{"key": "tier", "operator": "In", "values": ["a", "b"]}],
    });
    check(
        "apps/v1",
        "ReplicaSet",
        &apps::ReplicaSet {
            metadata: meta("rs", &[]),
            spec: Some(apps::ReplicaSetSpec {
                replicas: Some(3),
                min_ready_seconds: Some(0),
                selector: selector(),
                template: template(),
            }),
            status: None,
        },
        json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "rs"},
               "spec": {"replicas": 3, "selector": selector_json, "template": template_json}}),
    );
    let pvc_template = core::PersistentVolumeClaim {
        metadata: meta("data", &[]),
        spec: Some(core::PersistentVolumeClaimSpec {
            access_modes: vec!["ReadWriteOnce".into()],
            resources: Some(core::VolumeResourceRequirements {
                limits: BTreeMap::new(),
                requests: quantities(&[("storage", "1Gi")]),
            }),
            ..Default::default()
        }),
        status: None,
    };
    check(
        "apps/v1",
        "StatefulSet",
        &apps::StatefulSet {
            metadata: meta("sts", &[]),
            spec: Some(apps::StatefulSetSpec {
                replicas: Some(1),
                selector: selector(),
                template: template(),
                volume_claim_templates: vec![pvc_template],
                service_name: s("db"),
                pod_management_policy: s(""),
                ..Default::default()
            }),
            status: None,
        },
        json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "sts"},
               "spec": {"replicas": 1, "selector": selector_json, "template": template_json,
                        "serviceName": "db",
                        "volumeClaimTemplates": [{"metadata": {"name": "data"},
                            "spec": {"accessModes": ["ReadWriteOnce"],
                                     "resources": {"requests": {"storage": "1Gi"}}}}]}}),
    );
    check(
        "apps/v1",
        "DaemonSet",
        &apps::DaemonSet {
            metadata: meta("ds", &[]),
            spec: Some(apps::DaemonSetSpec {
                selector: selector(),
                template: template(),
                update_strategy: Some(apps::DaemonSetUpdateStrategy {
                    r#type: s("RollingUpdate"),
                    rolling_update: Some(apps::RollingUpdateDaemonSet {
                        max_unavailable: int_or_string_int(1),
                        max_surge: Some(IntOrString {
                            r#type: Some(1),
                            int_val: Some(0),
                            str_val: s("25%"),
                        }),
                    }),
                }),
                ..Default::default()
            }),
            status: None,
        },
        json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "ds"},
               "spec": {"selector": selector_json, "template": template_json,
                        "updateStrategy": {"type": "RollingUpdate",
                            "rollingUpdate": {"maxUnavailable": 1, "maxSurge": "25%"}}}}),
    );
}

#[test]
fn secret_with_binary_data() {
    let secret = core::Secret {
        metadata: meta("creds", &[]),
        data: [
            ("bin".to_string(), vec![0u8, 1, 2, 255, 254]),
            ("empty".to_string(), vec![]),
        ]
        .into_iter()
        .collect(),
        r#type: s("Opaque"),
        string_data: BTreeMap::new(),
        immutable: None,
    };
    check(
        "v1",
        "Secret",
        &secret,
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds"},
               "data": {"bin": "AAEC//4=", "empty": ""}, "type": "Opaque"}),
    );
}

#[test]
fn configmap_namespace_serviceaccount() {
    check(
        "v1",
        "ConfigMap",
        &core::ConfigMap {
            metadata: meta("cfg", &[]),
            data: map(&[("a", "1"), ("b", "")]),
            binary_data: [("blob".to_string(), b"hi".to_vec())].into_iter().collect(),
            immutable: None,
        },
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"},
               "data": {"a": "1", "b": ""}, "binaryData": {"blob": "aGk="}}),
    );
    check(
        "v1",
        "Namespace",
        &core::Namespace {
            metadata: meta("dev", &[]),
            spec: Some(core::NamespaceSpec::default()),
            status: Some(core::NamespaceStatus {
                phase: s(""),
                conditions: vec![],
            }),
        },
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "dev"},
               "spec": {}, "status": {}}),
    );
    check(
        "v1",
        "ServiceAccount",
        &core::ServiceAccount {
            metadata: meta("robot", &[]),
            automount_service_account_token: Some(false),
            ..Default::default()
        },
        json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "robot"},
               "automountServiceAccountToken": false}),
    );
}

#[test]
fn service_with_int_or_string_target_ports() {
    let port = |name: &str, port: i32, target: IntOrString| core::ServicePort {
        name: s(name),
        protocol: s("TCP"),
        port: Some(port),
        target_port: Some(target),
        node_port: Some(0),
        app_protocol: None,
    };
    let service = core::Service {
        metadata: meta("web", &[("app", "web")]),
        spec: Some(core::ServiceSpec {
            ports: vec![
                port("80-8080", 80, int_or_string_int(8080).unwrap()),
                port(
                    "https",
                    443,
                    IntOrString {
                        r#type: Some(1),
                        int_val: Some(0),
                        str_val: s("https"),
                    },
                ),
            ],
            selector: map(&[("app", "web")]),
            cluster_ip: s(""),
            r#type: s("ClusterIP"),
            session_affinity: s(""),
            load_balancer_ip: s(""),
            external_name: s(""),
            external_traffic_policy: s(""),
            health_check_node_port: Some(0),
            publish_not_ready_addresses: Some(false),
            ..Default::default()
        }),
        status: Some(core::ServiceStatus {
            load_balancer: Some(core::LoadBalancerStatus::default()),
            conditions: vec![],
        }),
    };
    check(
        "v1",
        "Service",
        &service,
        json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "web", "labels": {"app": "web"}},
            "spec": {
                "ports": [
                    {"name": "80-8080", "protocol": "TCP", "port": 80, "targetPort": 8080},
                    {"name": "https", "protocol": "TCP", "port": 443, "targetPort": "https"},
                ],
                "selector": {"app": "web"},
                "type": "ClusterIP",
            },
            "status": {"loadBalancer": {}},
        }),
    );
}

#[test]
fn pod_with_quantities_probes_env_and_volumes() {
    let mut c = container("app", "busybox");
    c.resources = Some(core::ResourceRequirements {
        limits: quantities(&[("cpu", "500m"), ("memory", "128Mi")]),
        requests: quantities(&[("cpu", "100m"), ("ephemeral-storage", "")]),
        claims: vec![],
    });
    c.ports = vec![core::ContainerPort {
        name: s(""),
        host_port: Some(0),
        container_port: Some(8080),
        protocol: s("TCP"),
        host_ip: s(""),
    }];
    c.env = vec![
        core::EnvVar {
            name: s("PLAIN"),
            value: s("1"),
            value_from: None,
        },
        core::EnvVar {
            name: s("FROM_CM"),
            value: s(""),
            value_from: Some(core::EnvVarSource {
                config_map_key_ref: Some(core::ConfigMapKeySelector {
                    local_object_reference: Some(core::LocalObjectReference { name: s("cfg") }),
                    key: s("k"),
                    optional: None,
                }),
                ..Default::default()
            }),
        },
    ];
    c.liveness_probe = Some(core::Probe {
        handler: Some(core::ProbeHandler {
            http_get: Some(core::HttpGetAction {
                path: s("/healthz"),
                port: int_or_string_int(8080),
                host: s(""),
                scheme: s("HTTP"),
                http_headers: vec![],
            }),
            ..Default::default()
        }),
        initial_delay_seconds: Some(0),
        timeout_seconds: Some(1),
        period_seconds: Some(10),
        success_threshold: Some(1),
        failure_threshold: Some(3),
        termination_grace_period_seconds: None,
    });
    c.security_context = Some(core::SecurityContext {
        run_as_user: Some(0),
        ..Default::default()
    });
    let mut spec = pod_spec(vec![c], "Always");
    spec.volumes = vec![core::Volume {
        name: s("scratch"),
        volume_source: Some(core::VolumeSource {
            empty_dir: Some(core::EmptyDirVolumeSource {
                medium: s(""),
                size_limit: None,
            }),
            ..Default::default()
        }),
    }];
    spec.termination_grace_period_seconds = Some(30);
    spec.tolerations = vec![core::Toleration {
        key: s("node.kubernetes.io/unreachable"),
        operator: s("Exists"),
        value: s(""),
        effect: s("NoExecute"),
        toleration_seconds: Some(0),
    }];
    spec.security_context = Some(core::PodSecurityContext::default());
    let pod = core::Pod {
        metadata: meta("p", &[]),
        spec: Some(spec),
        status: None,
    };
    check(
        "v1",
        "Pod",
        &pod,
        json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "p"},
            "spec": {
                "volumes": [{"name": "scratch", "emptyDir": {}}],
                "containers": [{
                    "name": "app",
                    "image": "busybox",
                    "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                    "env": [
                        {"name": "PLAIN", "value": "1"},
                        {"name": "FROM_CM", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "k"}}},
                    ],
                    "resources": {
                        "limits": {"cpu": "500m", "memory": "128Mi"},
                        "requests": {"cpu": "100m", "ephemeral-storage": "0"},
                    },
                    "livenessProbe": {
                        "httpGet": {"path": "/healthz", "port": 8080, "scheme": "HTTP"},
                        "timeoutSeconds": 1,
                        "periodSeconds": 10,
                        "successThreshold": 1,
                        "failureThreshold": 3,
                    },
                    "securityContext": {"runAsUser": 0},
                }],
                "restartPolicy": "Always",
                "terminationGracePeriodSeconds": 30,
                "securityContext": {},
                "tolerations": [{"key": "node.kubernetes.io/unreachable", "operator": "Exists",
                                 "effect": "NoExecute", "tolerationSeconds": 0}],
            },
        }),
    );
}

#[test]
fn event_times_and_micro_times() {
    let event = core::Event {
        metadata: meta("e1", &[]),
        involved_object: Some(core::ObjectReference {
            kind: s("Pod"),
            namespace: s("default"),
            name: s("p"),
            uid: s(""),
            api_version: s("v1"),
            resource_version: s(""),
            field_path: s(""),
        }),
        reason: s("Started"),
        message: s("started"),
        source: Some(core::EventSource {
            component: s("kubelet"),
            host: s(""),
        }),
        first_timestamp: Some(meta::Time {
            seconds: Some(1_136_214_245),
            nanos: Some(0),
        }),
        last_timestamp: Some(meta::Time {
            seconds: Some(1_136_214_245),
            nanos: Some(999),
        }),
        count: Some(1),
        r#type: s("Normal"),
        event_time: Some(meta::MicroTime {
            seconds: Some(1_136_214_245),
            nanos: Some(123_456_789),
        }),
        ..Default::default()
    };
    let expected = json!({
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": "e1"},
        "involvedObject": {"kind": "Pod", "namespace": "default", "name": "p", "apiVersion": "v1"},
        "reason": "Started",
        "message": "started",
        "source": {"component": "kubelet"},
        "firstTimestamp": "2006-01-02T15:04:05Z",
        "lastTimestamp": "2006-01-02T15:04:05Z",
        "count": 1,
        "type": "Normal",
        "eventTime": "2006-01-02T15:04:05.123456Z",
    });
    assert_eq!(
        decode_object(&body("v1", "Event", &event)).unwrap(),
        expected
    );
    // Whole seconds and microseconds survive our encoder (Go's JSON drops the rest too).
    let again = decode_object(&encode_object(&expected).unwrap()).unwrap();
    assert_eq!(again, expected);
}

#[test]
fn raw_extension_is_embedded_json() {
    use k8s_pb::api::apps::v1 as apps;
    let revision = apps::ControllerRevision {
        metadata: meta("rev", &[]),
        data: Some(RawExtension {
            raw: Some(br#"{"spec":{"template":{"x":[1,"two",null]}}}"#.to_vec()),
        }),
        revision: Some(3),
    };
    check(
        "apps/v1",
        "ControllerRevision",
        &revision,
        json!({"apiVersion": "apps/v1", "kind": "ControllerRevision", "metadata": {"name": "rev"},
               "data": {"spec": {"template": {"x": [1, "two", null]}}}, "revision": 3}),
    );
}

#[test]
fn batch_jobs_and_cronjobs() {
    use k8s_pb::api::batch::v1 as batch;
    let job_spec = || batch::JobSpec {
        template: Some(core::PodTemplateSpec {
            metadata: meta("", &[]),
            spec: Some(pod_spec(vec![container("job", "busybox")], "Never")),
        }),
        ..Default::default()
    };
    let job_spec_json = json!({"template": {"metadata": {}, "spec": {
        "containers": [{"name": "job", "image": "busybox", "resources": {}}],
        "restartPolicy": "Never"}}});
    check(
        "batch/v1",
        "Job",
        &batch::Job {
            metadata: meta("once", &[]),
            spec: Some(job_spec()),
            status: Some(batch::JobStatus {
                active: Some(0),
                succeeded: Some(0),
                failed: Some(0),
                ..Default::default()
            }),
        },
        json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "once"},
               "spec": job_spec_json, "status": {}}),
    );
    let mut paused = job_spec();
    paused.parallelism = Some(0);
    paused.suspend = Some(true);
    let mut paused_json = job_spec_json.clone();
    paused_json["parallelism"] = json!(0);
    paused_json["suspend"] = json!(true);
    check(
        "batch/v1",
        "Job",
        &batch::Job {
            metadata: meta("paused", &[]),
            spec: Some(paused),
            status: None,
        },
        json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "paused"},
               "spec": paused_json}),
    );
    check(
        "batch/v1",
        "CronJob",
        &batch::CronJob {
            metadata: meta("tick", &[]),
            spec: Some(batch::CronJobSpec {
                schedule: s("*/1 * * * *"),
                job_template: Some(batch::JobTemplateSpec {
                    metadata: meta("tick", &[]),
                    spec: Some(job_spec()),
                }),
                concurrency_policy: s(""),
                ..Default::default()
            }),
            status: Some(batch::CronJobStatus::default()),
        },
        json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "tick"},
               "spec": {"schedule": "*/1 * * * *",
                        "jobTemplate": {"metadata": {"name": "tick"}, "spec": job_spec_json}},
               "status": {}}),
    );
}

#[test]
fn rbac_objects() {
    use k8s_pb::api::rbac::v1 as rbac;
    let rule = rbac::PolicyRule {
        verbs: vec!["get".into(), "list".into()],
        api_groups: vec!["".into()],
        resources: vec!["pods".into()],
        resource_names: vec![],
        non_resource_ur_ls: vec![],
    };
    let rule_json = json!({"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods"]});
    check(
        "rbac.authorization.k8s.io/v1",
        "Role",
        &rbac::Role {
            metadata: meta("reader", &[]),
            rules: vec![rule.clone()],
        },
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
               "metadata": {"name": "reader"}, "rules": [rule_json]}),
    );
    check(
        "rbac.authorization.k8s.io/v1",
        "ClusterRole",
        &rbac::ClusterRole {
            metadata: meta("metrics", &[]),
            rules: vec![rbac::PolicyRule {
                verbs: vec!["get".into()],
                non_resource_ur_ls: vec!["/metrics".into()],
                ..Default::default()
            }],
            aggregation_rule: None,
        },
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
               "metadata": {"name": "metrics"},
               "rules": [{"verbs": ["get"], "nonResourceURLs": ["/metrics"]}]}),
    );
    let role_ref = |kind: &str| {
        Some(rbac::RoleRef {
            api_group: s("rbac.authorization.k8s.io"),
            kind: s(kind),
            name: s("reader"),
        })
    };
    check(
        "rbac.authorization.k8s.io/v1",
        "RoleBinding",
        &rbac::RoleBinding {
            metadata: meta("rb", &[]),
            subjects: vec![rbac::Subject {
                kind: s("User"),
                api_group: s("rbac.authorization.k8s.io"),
                name: s("alice"),
                namespace: s(""),
            }],
            role_ref: role_ref("Role"),
        },
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
               "metadata": {"name": "rb"},
               "subjects": [{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "alice"}],
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "reader"}}),
    );
    check(
        "rbac.authorization.k8s.io/v1",
        "ClusterRoleBinding",
        &rbac::ClusterRoleBinding {
            metadata: meta("crb", &[]),
            subjects: vec![rbac::Subject {
                kind: s("ServiceAccount"),
                api_group: s(""),
                name: s("robot"),
                namespace: s("default"),
            }],
            role_ref: role_ref("ClusterRole"),
        },
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
               "metadata": {"name": "crb"},
               "subjects": [{"kind": "ServiceAccount", "name": "robot", "namespace": "default"}],
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "reader"}}),
    );
}

#[test]
fn policy_scheduling_networking() {
    use k8s_pb::api::networking::v1 as net;
    use k8s_pb::api::policy::v1 as policy;
    use k8s_pb::api::scheduling::v1 as sched;
    check(
        "policy/v1",
        "PodDisruptionBudget",
        &policy::PodDisruptionBudget {
            metadata: meta("pdb", &[]),
            spec: Some(policy::PodDisruptionBudgetSpec {
                min_available: int_or_string_int(1),
                selector: Some(meta::LabelSelector {
                    match_labels: map(&[("app", "web")]),
                    match_expressions: vec![],
                }),
                ..Default::default()
            }),
            status: Some(policy::PodDisruptionBudgetStatus {
                observed_generation: Some(0),
                disruptions_allowed: Some(0),
                current_healthy: Some(0),
                desired_healthy: Some(0),
                expected_pods: Some(0),
                ..Default::default()
            }),
        },
        json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "pdb"},
               "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "web"}}},
               "status": {"disruptionsAllowed": 0, "currentHealthy": 0, "desiredHealthy": 0,
                          "expectedPods": 0}}),
    );
    check(
        "policy/v1",
        "Eviction",
        &policy::Eviction {
            metadata: meta("p", &[]),
            delete_options: Some(meta::DeleteOptions {
                grace_period_seconds: Some(0),
                dry_run: vec![],
                ..Default::default()
            }),
        },
        json!({"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "p"},
               "deleteOptions": {"gracePeriodSeconds": 0}}),
    );
    check(
        "scheduling.k8s.io/v1",
        "PriorityClass",
        &sched::PriorityClass {
            metadata: meta("zero", &[]),
            value: Some(0),
            global_default: Some(false),
            description: s(""),
            preemption_policy: s("Never"),
        },
        json!({"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
               "metadata": {"name": "zero"}, "value": 0, "preemptionPolicy": "Never"}),
    );
    let ingress = net::Ingress {
        metadata: meta("simple", &[]),
        spec: Some(net::IngressSpec {
            rules: vec![net::IngressRule {
                host: s("foo.com"),
                ingress_rule_value: Some(net::IngressRuleValue {
                    http: Some(net::HttpIngressRuleValue {
                        paths: vec![net::HttpIngressPath {
                            path: s("/bar"),
                            path_type: s("Exact"),
                            backend: Some(net::IngressBackend {
                                service: Some(net::IngressServiceBackend {
                                    name: s("svc1"),
                                    port: Some(net::ServiceBackendPort {
                                        name: s(""),
                                        number: Some(8080),
                                    }),
                                }),
                                resource: None,
                            }),
                        }],
                    }),
                }),
            }],
            ..Default::default()
        }),
        status: Some(net::IngressStatus {
            load_balancer: Some(net::IngressLoadBalancerStatus::default()),
        }),
    };
    check(
        "networking.k8s.io/v1",
        "Ingress",
        &ingress,
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "simple"},
               "spec": {"rules": [{"host": "foo.com", "http": {"paths": [{"path": "/bar",
                   "pathType": "Exact",
                   "backend": {"service": {"name": "svc1", "port": {"number": 8080}}}}]}}]},
               "status": {"loadBalancer": {}}}),
    );
}

#[test]
fn autoscaling_scale_and_hpas() {
    use k8s_pb::api::autoscaling::{v1 as as1, v2 as as2};
    check(
        "autoscaling/v1",
        "Scale",
        &as1::Scale {
            metadata: meta("web", &[]),
            spec: Some(as1::ScaleSpec { replicas: Some(0) }),
            status: Some(as1::ScaleStatus {
                replicas: Some(0),
                selector: s(""),
            }),
        },
        json!({"apiVersion": "autoscaling/v1", "kind": "Scale", "metadata": {"name": "web"},
               "spec": {"replicas": 0}, "status": {"replicas": 0}}),
    );
    let target = |kind: &str| as1::CrossVersionObjectReference {
        kind: s(kind),
        name: s("web"),
        api_version: s("apps/v1"),
    };
    check(
        "autoscaling/v1",
        "HorizontalPodAutoscaler",
        &as1::HorizontalPodAutoscaler {
            metadata: meta("web", &[]),
            spec: Some(as1::HorizontalPodAutoscalerSpec {
                scale_target_ref: Some(target("Deployment")),
                min_replicas: Some(1),
                max_replicas: Some(5),
                target_cpu_utilization_percentage: Some(80),
            }),
            status: Some(as1::HorizontalPodAutoscalerStatus {
                current_replicas: Some(0),
                desired_replicas: Some(0),
                ..Default::default()
            }),
        },
        json!({"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler",
               "metadata": {"name": "web"},
               "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web", "apiVersion": "apps/v1"},
                        "minReplicas": 1, "maxReplicas": 5, "targetCPUUtilizationPercentage": 80},
               "status": {"currentReplicas": 0, "desiredReplicas": 0}}),
    );
    check(
        "autoscaling/v2",
        "HorizontalPodAutoscaler",
        &as2::HorizontalPodAutoscaler {
            metadata: meta("web", &[]),
            spec: Some(as2::HorizontalPodAutoscalerSpec {
                scale_target_ref: Some(as2::CrossVersionObjectReference {
                    kind: s("Deployment"),
                    name: s("web"),
                    api_version: s("apps/v1"),
                }),
                min_replicas: Some(1),
                max_replicas: Some(5),
                metrics: vec![as2::MetricSpec {
                    r#type: s("Resource"),
                    resource: Some(as2::ResourceMetricSource {
                        name: s("cpu"),
                        target: Some(as2::MetricTarget {
                            r#type: s("Utilization"),
                            average_utilization: Some(80),
                            ..Default::default()
                        }),
                    }),
                    ..Default::default()
                }],
                behavior: Some(as2::HorizontalPodAutoscalerBehavior {
                    scale_down: Some(as2::HpaScalingRules {
                        stabilization_window_seconds: Some(0),
                        select_policy: None,
                        policies: vec![as2::HpaScalingPolicy {
                            r#type: s("Pods"),
                            value: Some(1),
                            period_seconds: Some(60),
                        }],
                        tolerance: Some(Quantity { string: s("50m") }),
                    }),
                    scale_up: None,
                }),
            }),
            status: Some(as2::HorizontalPodAutoscalerStatus {
                current_replicas: Some(0),
                desired_replicas: Some(0),
                ..Default::default()
            }),
        },
        json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
               "metadata": {"name": "web"},
               "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web", "apiVersion": "apps/v1"},
                        "minReplicas": 1, "maxReplicas": 5,
                        "metrics": [{"type": "Resource", "resource": {"name": "cpu",
                            "target": {"type": "Utilization", "averageUtilization": 80}}}],
                        "behavior": {"scaleDown": {"stabilizationWindowSeconds": 0,
                            "policies": [{"type": "Pods", "value": 1, "periodSeconds": 60}],
                            "tolerance": "50m"}}},
               "status": {"desiredReplicas": 0}}),
    );
}

#[test]
fn auth_reviews_and_token_requests() {
    use k8s_pb::api::authentication::v1 as authn;
    use k8s_pb::api::authorization::v1 as authz;
    // kubectl auth can-i create pods
    check(
        "authorization.k8s.io/v1",
        "SelfSubjectAccessReview",
        &authz::SelfSubjectAccessReview {
            metadata: meta("", &[]),
            spec: Some(authz::SelfSubjectAccessReviewSpec {
                resource_attributes: Some(authz::ResourceAttributes {
                    namespace: s("default"),
                    verb: s("create"),
                    group: s(""),
                    version: s(""),
                    resource: s("pods"),
                    subresource: s(""),
                    name: s(""),
                    ..Default::default()
                }),
                non_resource_attributes: None,
            }),
            status: Some(authz::SubjectAccessReviewStatus {
                allowed: Some(false),
                denied: Some(false),
                reason: s(""),
                evaluation_error: s(""),
            }),
        },
        json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
               "metadata": {},
               "spec": {"resourceAttributes": {"namespace": "default", "verb": "create",
                                               "resource": "pods"}},
               "status": {"allowed": false}}),
    );
    check(
        "authorization.k8s.io/v1",
        "SubjectAccessReview",
        &authz::SubjectAccessReview {
            metadata: meta("", &[]),
            spec: Some(authz::SubjectAccessReviewSpec {
                non_resource_attributes: Some(authz::NonResourceAttributes {
                    path: s("/healthz"),
                    verb: s("get"),
                }),
                user: s("alice"),
                groups: vec!["devs".into()],
                extra: [(
                    "scopes".to_string(),
                    authz::ExtraValue {
                        items: vec!["a".into(), "b".into()],
                    },
                )]
                .into_iter()
                .collect(),
                uid: s(""),
                ..Default::default()
            }),
            status: None,
        },
        json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
               "metadata": {},
               "spec": {"nonResourceAttributes": {"path": "/healthz", "verb": "get"},
                        "user": "alice", "groups": ["devs"], "extra": {"scopes": ["a", "b"]}}}),
    );
    // kubectl auth whoami
    check(
        "authentication.k8s.io/v1",
        "SelfSubjectReview",
        &authn::SelfSubjectReview {
            metadata: meta("", &[]),
            status: Some(authn::SelfSubjectReviewStatus {
                user_info: Some(authn::UserInfo {
                    username: s(""),
                    uid: s(""),
                    ..Default::default()
                }),
            }),
        },
        json!({"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview",
               "metadata": {}, "status": {"userInfo": {}}}),
    );
    // kubectl create token robot --duration=1h
    check(
        "authentication.k8s.io/v1",
        "TokenRequest",
        &authn::TokenRequest {
            metadata: meta("", &[]),
            spec: Some(authn::TokenRequestSpec {
                audiences: vec![],
                expiration_seconds: Some(3600),
                bound_object_ref: None,
            }),
            status: Some(authn::TokenRequestStatus {
                token: s(""),
                expiration_timestamp: Some(meta::Time::default()),
            }),
        },
        json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "metadata": {},
               "spec": {"expirationSeconds": 3600},
               "status": {"token": "", "expirationTimestamp": null}}),
    );
}

#[test]
fn core_node_pvc_quota_binding() {
    check(
        "v1",
        "Node",
        &core::Node {
            metadata: meta("n1", &[("kubernetes.io/hostname", "n1")]),
            spec: Some(core::NodeSpec {
                pod_cidr: s("10.0.0.0/24"),
                pod_cid_rs: vec!["10.0.0.0/24".into()],
                unschedulable: Some(false),
                taints: vec![core::Taint {
                    key: s("dedicated"),
                    value: s(""),
                    effect: s("NoSchedule"),
                    time_added: None,
                }],
                provider_id: s(""),
                ..Default::default()
            }),
            status: None,
        },
        json!({"apiVersion": "v1", "kind": "Node",
               "metadata": {"name": "n1", "labels": {"kubernetes.io/hostname": "n1"}},
               "spec": {"podCIDR": "10.0.0.0/24", "podCIDRs": ["10.0.0.0/24"],
                        "taints": [{"key": "dedicated", "effect": "NoSchedule"}]}}),
    );
    check(
        "v1",
        "PersistentVolumeClaim",
        &core::PersistentVolumeClaim {
            metadata: meta("data", &[]),
            spec: Some(core::PersistentVolumeClaimSpec {
                access_modes: vec!["ReadWriteOnce".into()],
                resources: Some(core::VolumeResourceRequirements {
                    limits: BTreeMap::new(),
                    requests: quantities(&[("storage", "1Gi")]),
                }),
                storage_class_name: s(""),
                volume_mode: s("Filesystem"),
                ..Default::default()
            }),
            status: None,
        },
        json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data"},
               "spec": {"accessModes": ["ReadWriteOnce"],
                        "resources": {"requests": {"storage": "1Gi"}},
                        "storageClassName": "", "volumeMode": "Filesystem"}}),
    );
    check(
        "v1",
        "ResourceQuota",
        &core::ResourceQuota {
            metadata: meta("q", &[]),
            spec: Some(core::ResourceQuotaSpec {
                hard: quantities(&[("pods", "10"), ("requests.cpu", "1")]),
                scopes: vec![],
                scope_selector: None,
            }),
            status: Some(core::ResourceQuotaStatus::default()),
        },
        json!({"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "q"},
               "spec": {"hard": {"pods": "10", "requests.cpu": "1"}}, "status": {}}),
    );
    check(
        "v1",
        "Binding",
        &core::Binding {
            metadata: meta("p", &[]),
            target: Some(core::ObjectReference {
                kind: s("Node"),
                name: s("n1"),
                ..Default::default()
            }),
        },
        json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "p"},
               "target": {"kind": "Node", "name": "n1"}}),
    );
}

#[test]
fn delete_options_under_any_group_version() {
    let opts = meta::DeleteOptions {
        grace_period_seconds: Some(0),
        propagation_policy: s("Foreground"),
        dry_run: vec!["All".into()],
        ..Default::default()
    };
    for api_version in ["meta.k8s.io/v1", "v1", "apps/v1", "policy/v1"] {
        check(
            api_version,
            "DeleteOptions",
            &opts,
            json!({"apiVersion": api_version, "kind": "DeleteOptions", "gracePeriodSeconds": 0,
                   "propagationPolicy": "Foreground", "dryRun": ["All"]}),
        );
    }
}

#[test]
fn managed_fields_and_owner_references() {
    let mut m = meta("cm", &[]).unwrap();
    m.owner_references = vec![meta::OwnerReference {
        api_version: s("apps/v1"),
        kind: s("ReplicaSet"),
        name: s("rs"),
        uid: s("1234"),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }];
    m.managed_fields = vec![meta::ManagedFieldsEntry {
        manager: s("kubectl"),
        operation: s("Update"),
        api_version: s("v1"),
        time: Some(meta::Time {
            seconds: Some(1_136_214_245),
            nanos: Some(0),
        }),
        fields_type: s("FieldsV1"),
        fields_v1: Some(meta::FieldsV1 {
            raw: Some(br#"{"f:data":{".":{}}}"#.to_vec()),
        }),
        subresource: s(""),
    }];
    m.creation_timestamp = Some(meta::Time {
        seconds: Some(1_136_214_245),
        nanos: Some(0),
    });
    m.finalizers = vec!["example.com/x".into()];
    m.annotations = map(&[("note", "")]);
    check(
        "v1",
        "ConfigMap",
        &core::ConfigMap {
            metadata: Some(m),
            ..Default::default()
        },
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {
            "name": "cm",
            "creationTimestamp": "2006-01-02T15:04:05Z",
            "annotations": {"note": ""},
            "finalizers": ["example.com/x"],
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs",
                                 "uid": "1234", "controller": true, "blockOwnerDeletion": true}],
            "managedFields": [{"manager": "kubectl", "operation": "Update", "apiVersion": "v1",
                               "time": "2006-01-02T15:04:05Z", "fieldsType": "FieldsV1",
                               "fieldsV1": {"f:data": {".": {}}}, "subresource": ""}],
        }}),
    );
}

#[test]
fn required_kinds_are_supported() {
    for (v, k) in [
        ("v1", "ConfigMap"),
        ("v1", "Secret"),
        ("v1", "Namespace"),
        ("v1", "Service"),
        ("v1", "ServiceAccount"),
        ("v1", "Pod"),
        ("v1", "ResourceQuota"),
        ("v1", "Event"),
        ("v1", "Node"),
        ("v1", "PersistentVolumeClaim"),
        ("v1", "Binding"),
        ("apps/v1", "Deployment"),
        ("apps/v1", "ReplicaSet"),
        ("apps/v1", "StatefulSet"),
        ("apps/v1", "DaemonSet"),
        ("batch/v1", "Job"),
        ("batch/v1", "CronJob"),
        ("rbac.authorization.k8s.io/v1", "Role"),
        ("rbac.authorization.k8s.io/v1", "RoleBinding"),
        ("rbac.authorization.k8s.io/v1", "ClusterRole"),
        ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"),
        ("policy/v1", "PodDisruptionBudget"),
        ("policy/v1", "Eviction"),
        ("scheduling.k8s.io/v1", "PriorityClass"),
        ("networking.k8s.io/v1", "Ingress"),
        ("autoscaling/v1", "Scale"),
        ("autoscaling/v2", "HorizontalPodAutoscaler"),
        ("authorization.k8s.io/v1", "SelfSubjectAccessReview"),
        ("authentication.k8s.io/v1", "TokenRequest"),
        ("authentication.k8s.io/v1", "SelfSubjectReview"),
        ("meta.k8s.io/v1", "DeleteOptions"),
        ("events.k8s.io/v1", "Event"),
        ("v1", "PodList"),
    ] {
        assert!(is_supported(v, k), "{v} {k}");
    }
    assert!(rudder_protobuf::supported_kinds().count() > 250);
}

#[test]
fn encoder_rejects_what_it_cannot_represent() {
    let err = |v: Value| encode_object(&v).unwrap_err().to_string();
    assert_eq!(
        err(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "bogus": 1}})),
        "cannot encode metadata.bogus as protobuf: not a field of io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
    );
    assert_eq!(
        err(json!({"apiVersion": "apps/v1", "kind": "Deployment", "spec": {"replicas": "two"}})),
        "cannot encode spec.replicas as protobuf: expected an integer"
    );
    assert_eq!(
        err(
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "spec": {"replicas": 4294967296u64}})
        ),
        "cannot encode spec.replicas as protobuf: out of range for int32"
    );
    assert_eq!(
        err(json!({"apiVersion": "v1", "kind": "Secret", "data": {"k": "%%%"}})),
        "cannot encode data[\"k\"] as protobuf: invalid base64: Invalid symbol 37, offset 0."
    );
    assert!(
        err(json!({"apiVersion": "v1", "kind": "Event", "firstTimestamp": "yesterday"}))
            .contains("firstTimestamp")
    );
    assert!(err(json!({"kind": "Pod"})).contains("apiVersion"));
    assert!(encode_object(&json!({"apiVersion": "x/v1", "kind": "Y"}))
        .unwrap_err()
        .is_unsupported_media_type());
}
