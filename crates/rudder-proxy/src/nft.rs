//! Running `nft`: each transaction is piped to one `nft -f -`, which the kernel applies
//! atomically or not at all.

use tokio::io::AsyncWriteExt;

#[derive(Debug, thiserror::Error)]
pub enum NftError {
    #[error("running nft: {0}")]
    Spawn(#[from] std::io::Error),
    #[error("nft failed: {0}")]
    Failed(String),
}

/// Applies `text` as one transaction.
pub async fn apply(text: &str) -> Result<(), NftError> {
    let mut child = tokio::process::Command::new("nft")
        .args(["-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(text.as_bytes()).await?;
    }
    let out = child.wait_with_output().await?;
    if out.status.success() {
        Ok(())
    } else {
        Err(NftError::Failed(
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        ))
    }
}

/// Deletes the table if it exists (a fresh start: chains and sets an earlier run left behind
/// are not ours to reason about).
pub async fn delete_table(table: &str) {
    let _ = apply(&format!("add table ip {table}\ndelete table ip {table}\n")).await;
}
