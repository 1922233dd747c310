//! The node agent (kubelet): registers its Node, renews its Lease, and runs the pods bound to
//! it through CRI (containerd), reporting their status as upstream's kubelet does. An API client
//! only: it reaches the cluster through a `kube::Client` under the identity `system:node:<name>`.

pub mod cri;
