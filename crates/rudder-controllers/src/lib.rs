//! Rudder's controller manager: upstream kube-controller-manager's controllers, each a small
//! reconciler over shared informers and a rate-limited work queue, talking to the cluster only
//! through a `kube::Client`.

pub mod certificates;
pub mod clusterroleaggregation;
pub mod controller;
pub mod cronjob;
pub mod daemonset;
pub mod deployment;
pub mod disruption;
pub mod endpoints;
pub mod endpointslice;
pub mod endpointslicemirroring;
// The event recorder is shared with the kubelet (rudder-component); the path stays for the controllers.
pub use rudder_component::events;
pub mod expectations;
pub mod garbagecollector;
pub mod history;
pub mod informer;
pub mod job;
pub mod localpath;
pub mod manager;
pub mod namespace;
pub mod nodeipam;
pub mod nodelifecycle;
pub mod nodeutil;
pub mod podautoscaler;
pub mod podgc;
pub mod podutil;
pub mod pvbinder;
pub mod replicaset;
pub mod resourcequota;
pub mod rootcacertpublisher;
pub mod serviceaccount;
pub mod servicelb;
pub mod statefulset;
pub mod tainteviction;
pub mod tokencleaner;
pub mod tokens;
pub mod ttlafterfinished;
pub mod volumeprotection;
pub mod workqueue;

pub use manager::{run, Options};
pub use workqueue::QueueMetrics;
