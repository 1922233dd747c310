use std::path::PathBuf;

/// Everything that can go wrong while loading, creating or using the cluster PKI.
///
/// Paths are carried in the variants because the caller is usually a server start-up that can
/// only report the error: "which file" is the first thing an operator needs.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PkiError {
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid certificate {path}: {reason}")]
    InvalidCertificate { path: PathBuf, reason: String },
    #[error("invalid private key {path}: {reason}")]
    InvalidKey { path: PathBuf, reason: String },
    /// The CA certificate exists but its key does not. Generating a new CA here would silently
    /// invalidate every kubeconfig and client certificate already handed out, so this is fatal.
    #[error(
        "CA certificate {cert} exists but its key {key} is missing; restore the key or remove \
         both files to create a new CA (existing kubeconfigs will stop working)"
    )]
    MissingCaKey { cert: PathBuf, key: PathBuf },
    #[error("CA key algorithm {0} cannot sign client certificates")]
    UnsupportedCaKey(String),
    #[error("invalid subject alternative name {0:?}")]
    InvalidSan(String),
    #[error("invalid client certificate request: {0}")]
    InvalidClientCertRequest(String),
    #[error("certificate generation: {0}")]
    Rcgen(#[from] rcgen::Error),
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
    #[error("TLS client verifier: {0}")]
    ClientVerifier(#[from] rustls::server::VerifierBuilderError),
    #[error("kubeconfig serialization: {0}")]
    Yaml(#[from] serde_saphyr::SerializeError),
    #[error("the system random number generator failed")]
    Random,
}

/// Shorthand used across the crate.
pub type Result<T, E = PkiError> = std::result::Result<T, E>;

impl PkiError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        PkiError::Io {
            op,
            path: path.into(),
            source,
        }
    }
}
