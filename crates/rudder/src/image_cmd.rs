//! `rudder image import FILE…` and `rudder image ls`: the node's images without a registry, against
//! the agent's own containerd (k3s offers the same through `k3s ctr images import` and
//! `k3s crictl images`).

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, Subcommand};
use rudder_kubelet::cri::{self, Cri};

#[derive(Args)]
pub struct ImageArgs {
    #[arg(
        long,
        short = 'd',
        env = "RUDDER_DATA_DIR",
        default_value = "/var/lib/rudder",
        global = true
    )]
    pub data_dir: PathBuf,
    /// The CRI socket of a containerd not started by the agent (`unix:///run/containerd/containerd.sock`).
    #[arg(long, global = true)]
    pub container_runtime_endpoint: Option<String>,
    #[command(subcommand)]
    pub command: ImageCommand,
}

#[derive(Subcommand)]
pub enum ImageCommand {
    /// Import image archives (OCI or docker-archive tarballs, as `docker save` or `skopeo copy`
    /// write them) into the node's containerd, where pods can use them without a registry.
    Import {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// List the images the node's runtime has (as `crictl images`).
    #[command(alias = "list")]
    Ls,
}

fn socket(args: &ImageArgs) -> anyhow::Result<PathBuf> {
    match &args.container_runtime_endpoint {
        Some(e) => Ok(cri::socket_path(e)?),
        None => Ok(rudder_kubelet::containerd::Paths::new(&args.data_dir.join("agent")).socket),
    }
}

fn check_socket(socket: &Path) -> anyhow::Result<()> {
    if !socket.exists() {
        anyhow::bail!(
            "no container runtime socket at {} (is the agent running with this --data-dir?)",
            socket.display()
        );
    }
    Ok(())
}

pub async fn run(args: ImageArgs) -> anyhow::Result<()> {
    let socket = socket(&args)?;
    check_socket(&socket)?;
    match &args.command {
        ImageCommand::Import { files } => {
            let mut failed = 0;
            for f in files {
                match rudder_kubelet::images::import_archive(&socket, f).await {
                    Ok(names) => {
                        for n in names {
                            println!("imported {n}");
                        }
                    }
                    Err(e) => {
                        eprintln!("error: {e}");
                        failed += 1;
                    }
                }
            }
            if failed > 0 {
                anyhow::bail!("{failed} of {} archives not imported", files.len());
            }
            Ok(())
        }
        ImageCommand::Ls => {
            let client = Cri::connect(&socket)?;
            let images = client
                .images()
                .list_images(cri::api::ListImagesRequest { filter: None })
                .await
                .with_context(|| format!("listing images on {}", socket.display()))?
                .into_inner()
                .images;
            print!("{}", table(&images));
            Ok(())
        }
    }
}

/// crictl's `images` table: one row per repo tag (or per repo digest of an untagged image),
/// the image ID cut to 13 characters, the size in decimal units with 3 significant digits.
fn table(images: &[cri::api::Image]) -> String {
    let mut rows = vec![[
        "IMAGE".to_string(),
        "TAG".to_string(),
        "IMAGE ID".to_string(),
        "SIZE".to_string(),
    ]];
    for img in images {
        let id: String = img
            .id
            .strip_prefix("sha256:")
            .unwrap_or(&img.id)
            .chars()
            .take(13)
            .collect();
        let size = human_size(img.size);
        let mut refs: Vec<(String, String)> = img
            .repo_tags
            .iter()
            .map(|t| split_tag(t))
            .map(|(r, t)| (r.to_string(), t.to_string()))
            .collect();
        if refs.is_empty() {
            refs = img
                .repo_digests
                .iter()
                .map(|d| {
                    (
                        d.split('@').next().unwrap_or(d).to_string(),
                        "<none>".into(),
                    )
                })
                .collect();
        }
        if refs.is_empty() {
            refs.push(("<none>".into(), "<none>".into()));
        }
        for (repo, tag) in refs {
            rows.push([repo, tag, id.clone(), size.clone()]);
        }
    }
    let mut widths = [0usize; 4];
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.len());
        }
    }
    let mut out = String::new();
    for r in &rows {
        let line: Vec<String> = r
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(line.join("   ").trim_end());
        out.push('\n');
    }
    out
}

/// `repo:tag`, where a `:` before the last `/` belongs to a registry port.
fn split_tag(reference: &str) -> (&str, &str) {
    match reference.rfind(':') {
        Some(i) if !reference[i..].contains('/') => (&reference[..i], &reference[i + 1..]),
        _ => (reference, "<none>"),
    }
}

/// go-units' `HumanSizeWithPrecision(size, 3)`: decimal units, `%.3g`.
fn human_size(size: u64) -> String {
    const UNITS: [&str; 9] = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"];
    let mut v = size as f64;
    let mut i = 0;
    while v >= 1000.0 && i < UNITS.len() - 1 {
        v /= 1000.0;
        i += 1;
    }
    let decimals = if v >= 100.0 {
        0
    } else if v >= 10.0 {
        1
    } else {
        2
    };
    let mut s = format!("{v:.decimals$}");
    if s.contains('.') {
        s = s.trim_end_matches('0').trim_end_matches('.').to_string();
    }
    format!("{s}{}", UNITS[i])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_as_go_units() {
        assert_eq!(human_size(0), "0B");
        assert_eq!(human_size(999), "999B");
        assert_eq!(human_size(1000), "1kB");
        assert_eq!(human_size(683_123), "683kB");
        assert_eq!(human_size(2_100_000), "2.1MB");
        assert_eq!(human_size(12_345_678), "12.3MB");
    }

    #[test]
    fn tags_split_after_the_registry_port() {
        assert_eq!(
            split_tag("127.0.0.1:5000/t/busybox:1"),
            ("127.0.0.1:5000/t/busybox", "1")
        );
        assert_eq!(
            split_tag("127.0.0.1:5000/t/busybox"),
            ("127.0.0.1:5000/t/busybox", "<none>")
        );
        assert_eq!(
            split_tag("rudder.dev/pause:3.10"),
            ("rudder.dev/pause", "3.10")
        );
    }

    #[test]
    fn table_rows_per_tag_and_digest() {
        let images = vec![
            cri::api::Image {
                id: "sha256:0123456789abcdef0123".into(),
                repo_tags: vec!["rudder.dev/pause:3.10".into()],
                size: 683_123,
                ..Default::default()
            },
            cri::api::Image {
                id: "sha256:fedcba9876543210fedc".into(),
                repo_digests: vec!["r.io/x@sha256:aa".into()],
                size: 2_100_000,
                ..Default::default()
            },
        ];
        assert_eq!(
            table(&images),
            "IMAGE              TAG      IMAGE ID        SIZE\n\
             rudder.dev/pause   3.10     0123456789abc   683kB\n\
             r.io/x             <none>   fedcba9876543   2.1MB\n"
        );
    }
}
