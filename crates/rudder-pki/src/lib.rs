//! Rudder's cluster PKI: what the API server needs to speak TLS and what clients need to
//! trust it and log in.
//!
//! Everything lives in one directory (`<data-dir>/server/tls`): an ECDSA P-256 cluster CA
//! that is created once and kept, the API server's serving certificate (re-issued when the
//! host's names change or it nears expiry), and, beside that directory, a static token file
//! holding the admin bearer token. [`write_kubeconfig`] turns these into a kubeconfig that
//! stock kubectl uses unchanged.
//!
//! All cryptography goes through aws-lc-rs (rustls's default provider), the single provider
//! of the workspace.

mod clientcert;
mod cluster;
mod csrsign;
mod error;
mod fsutil;
pub mod insecure;
mod kubeconfig;
mod sans;
mod servicekey;
mod token;

pub use cluster::{
    ClusterPki, PkiOptions, CA_CERT_FILE, CA_KEY_FILE, PROXY_CLIENT_NAME,
    REQUEST_HEADER_CA_CERT_FILE, REQUEST_HEADER_CA_KEY_FILE, SERVING_CERT_FILE, SERVING_KEY_FILE,
    TOKEN_FILE_NAME,
};
pub use csrsign::{key_usages, CsrSigner};
pub use error::{PkiError, Result};
pub use fsutil::write_atomic;
pub use kubeconfig::{kubeconfig_yaml, write_kubeconfig, KubeconfigSpec};
pub use sans::{wanted_sans, San, DEFAULT_KUBERNETES_SERVICE_IP};
pub use servicekey::SERVICE_KEY_FILE;
pub use time::OffsetDateTime;
pub use token::{ADMIN_GROUP, ADMIN_UID, ADMIN_USER};
