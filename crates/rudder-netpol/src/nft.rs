//! Applying the table: one `nft -f -` transaction that creates the table if missing, deletes
//! it and defines it anew, so the kernel swaps the whole ruleset atomically (packets see the
//! old or the new table, never a half-built one) and nothing from an earlier sync lingers.

use tokio::io::AsyncWriteExt;

use crate::rules::TABLE;
use crate::Error;

/// The script [`apply`] feeds to nft for a table rendered by [`crate::rules::render`].
pub fn replace_script(table: &str) -> String {
    format!("add table inet {TABLE}\ndelete table inet {TABLE}\n{table}")
}

/// Runs `nft -f -` on `script`.
pub async fn run_nft(script: &str) -> Result<(), Error> {
    let mut child = tokio::process::Command::new("nft")
        .args(["-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(Error::Spawn)?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(script.as_bytes())
            .await
            .map_err(Error::Spawn)?;
    }
    let out = child.wait_with_output().await.map_err(Error::Spawn)?;
    if out.status.success() {
        Ok(())
    } else {
        Err(Error::Nft(
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        ))
    }
}

/// Replaces the table with `table`.
pub async fn apply(table: &str) -> Result<(), Error> {
    run_nft(&replace_script(table)).await
}

/// Removes the table (a node where enforcement is turned off keeps no stale rules).
pub async fn remove() -> Result<(), Error> {
    run_nft(&format!(
        "add table inet {TABLE}\ndelete table inet {TABLE}\n"
    ))
    .await
}
