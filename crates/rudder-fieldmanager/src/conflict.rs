//! Apply conflicts and upstream's messages for them.

use std::fmt;

use crate::path::{path_string, Path};

/// One field another manager owns with a different value.
#[derive(Debug, Clone, PartialEq)]
pub struct Conflict {
    /// The manager as upstream prints it (`"kubectl-client-side-apply" using apps/v1`,
    /// `"helm"`, `"kubectl" with subresource "status"`).
    pub manager: String,
    /// The conflicting field.
    pub path: Path,
}

impl Conflict {
    /// The `StatusCause` of this conflict: (message, field), as upstream's
    /// `NewConflictError` (cause type `FieldManagerConflict`).
    pub fn cause(&self) -> (String, String) {
        (
            format!("conflict with {}", self.manager),
            path_string(&self.path),
        )
    }
}

/// Every conflict of one apply, ordered by manager then path.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Conflicts(pub Vec<Conflict>);

/// Upstream's `getConflictMessage` (the `Status.message` of the 409).
impl fmt::Display for Conflicts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let [only] = self.0.as_slice() {
            return write!(
                f,
                "Apply failed with 1 conflict: conflict with {}: {}",
                only.manager,
                path_string(&only.path)
            );
        }
        let mut managers: Vec<&str> = self.0.iter().map(|c| c.manager.as_str()).collect();
        managers.sort_unstable();
        managers.dedup();
        let mut lines = Vec::new();
        for manager in managers {
            lines.push(format!("conflicts with {manager}:"));
            for c in self.0.iter().filter(|c| c.manager == manager) {
                lines.push(format!("- {}", path_string(&c.path)));
            }
        }
        write!(
            f,
            "Apply failed with {} conflicts: {}",
            self.0.len(),
            lines.join("\n")
        )
    }
}
