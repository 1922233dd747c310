//! Container logs from the CRI log files (upstream's `kuberuntime/logs`): the
//! `<RFC3339Nano> <stream> <P|F> <text>` records joined back into lines, with `tailLines`,
//! `sinceSeconds`/`sinceTime`, `timestamps`, `limitBytes` and `follow`.

use std::io::{BufRead, Seek, SeekFrom};
use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;

#[derive(Clone, Debug, Default)]
pub struct LogOptions {
    pub follow: bool,
    pub tail_lines: Option<usize>,
    pub limit_bytes: Option<usize>,
    pub since: Option<jiff::Timestamp>,
    pub timestamps: bool,
}

/// One CRI log record.
#[derive(Debug, PartialEq)]
pub struct Record<'a> {
    pub time: &'a str,
    pub stream: &'a str,
    pub partial: bool,
    pub text: &'a str,
}

pub fn parse(line: &str) -> Option<Record<'_>> {
    let mut parts = line.splitn(4, ' ');
    let time = parts.next()?;
    let stream = parts.next()?;
    let tag = parts.next()?;
    let text = parts.next().unwrap_or("");
    Some(Record {
        time,
        stream,
        partial: tag.starts_with('P'),
        text,
    })
}

/// Turns records into output lines as upstream prints them (partial records joined; with
/// timestamps, each line prefixed by its first record's time).
pub struct Assembler {
    opts: LogOptions,
    pending: String,
    pending_time: Option<String>,
}

impl Assembler {
    pub fn new(opts: LogOptions) -> Assembler {
        Assembler {
            opts,
            pending: String::new(),
            pending_time: None,
        }
    }

    /// Feeds one file line; returns a complete output line when one ends.
    pub fn push(&mut self, line: &str) -> Option<String> {
        let r = parse(line)?;
        if let Some(since) = self.opts.since {
            if let Ok(t) = r.time.parse::<jiff::Timestamp>() {
                if t < since {
                    return None;
                }
            }
        }
        if self.pending_time.is_none() {
            self.pending_time = Some(r.time.to_string());
        }
        self.pending.push_str(r.text);
        if r.partial {
            return None;
        }
        let mut out = String::new();
        if self.opts.timestamps {
            out.push_str(self.pending_time.as_deref().unwrap_or(r.time));
            out.push(' ');
        }
        out.push_str(&self.pending);
        out.push('\n');
        self.pending.clear();
        self.pending_time = None;
        Some(out)
    }
}

/// The output lines of a whole file (for `tailLines`, only the last N).
pub fn read_all(path: &PathBuf, opts: &LogOptions) -> std::io::Result<(Vec<String>, u64)> {
    let mut f = std::fs::File::open(path)?;
    let mut asm = Assembler::new(opts.clone());
    let mut lines = Vec::new();
    let mut reader = std::io::BufReader::new(&mut f);
    let mut buf = String::new();
    let mut offset = 0u64;
    loop {
        buf.clear();
        let n = reader.read_line(&mut buf)?;
        if n == 0 || !buf.ends_with('\n') {
            break;
        }
        offset += n as u64;
        if let Some(l) = asm.push(buf.trim_end_matches('\n')) {
            lines.push(l);
        }
    }
    if let Some(n) = opts.tail_lines {
        let start = lines.len().saturating_sub(n);
        lines.drain(..start);
    }
    Ok((lines, offset))
}

/// Streams a container's log into `tx`; with `follow`, keeps reading while `running` says
/// the container runs.
pub async fn stream(
    path: PathBuf,
    opts: LogOptions,
    tx: mpsc::Sender<Result<Bytes, std::io::Error>>,
    running: impl Fn() -> futures::future::BoxFuture<'static, bool> + Send + 'static,
) {
    let mut budget = opts.limit_bytes.unwrap_or(usize::MAX);
    let mut send = |s: String| {
        let mut s = s;
        if budget == 0 {
            return None;
        }
        if s.len() > budget {
            let mut cut = budget;
            while !s.is_char_boundary(cut) {
                cut -= 1;
            }
            s.truncate(cut);
        }
        budget -= s.len();
        Some(Bytes::from(s))
    };
    let p = path.clone();
    let o = opts.clone();
    let Ok(Ok((lines, mut offset))) = tokio::task::spawn_blocking(move || read_all(&p, &o)).await
    else {
        let _ = tx
            .send(Err(std::io::Error::other(format!(
                "failed to open log file {}",
                path.display()
            ))))
            .await;
        return;
    };
    for l in lines {
        let Some(b) = send(l) else { return };
        if tx.send(Ok(b)).await.is_err() {
            return;
        }
    }
    if !opts.follow {
        return;
    }
    let mut asm = Assembler::new(LogOptions {
        since: None,
        ..opts.clone()
    });
    let mut idle = 0u32;
    loop {
        let p = path.clone();
        let read = tokio::task::spawn_blocking(move || -> std::io::Result<(Vec<String>, u64)> {
            let mut f = std::fs::File::open(&p)?;
            let len = f.metadata()?.len();
            // A rotated (shorter) file starts over.
            let start = if len < offset { 0 } else { offset };
            f.seek(SeekFrom::Start(start))?;
            let mut reader = std::io::BufReader::new(f);
            let mut out = Vec::new();
            let mut pos = start;
            let mut buf = String::new();
            loop {
                buf.clear();
                let n = reader.read_line(&mut buf)?;
                if n == 0 || !buf.ends_with('\n') {
                    break;
                }
                pos += n as u64;
                out.push(buf.trim_end_matches('\n').to_string());
            }
            Ok((out, pos))
        })
        .await;
        let Ok(Ok((raw, pos))) = read else { return };
        offset = pos;
        let got = !raw.is_empty();
        for r in raw {
            if let Some(l) = asm.push(&r) {
                let Some(b) = send(l) else { return };
                if tx.send(Ok(b)).await.is_err() {
                    return;
                }
            }
        }
        if got {
            idle = 0;
            continue;
        }
        idle += 1;
        // Checking the container is an RPC: once a second while idle.
        if idle.is_multiple_of(4) && !running().await {
            return;
        }
        if tx.is_closed() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(lines: &[&str]) -> (tempfile::TempDir, PathBuf) {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("0.log");
        std::fs::write(&p, lines.join("\n") + "\n").unwrap();
        (d, p)
    }

    const LINES: &[&str] = &[
        "2026-01-01T00:00:01.000000001Z stdout F one",
        "2026-01-01T00:00:02.000000002Z stderr P tw",
        "2026-01-01T00:00:02.500000000Z stderr F o",
        "2026-01-01T00:00:03.000000003Z stdout F three",
    ];

    #[test]
    fn records_join_and_tail() {
        let (_d, p) = write(LINES);
        let (all, _) = read_all(&p, &LogOptions::default()).unwrap();
        assert_eq!(all, ["one\n", "two\n", "three\n"]);
        let (tail, _) = read_all(
            &p,
            &LogOptions {
                tail_lines: Some(2),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(tail, ["two\n", "three\n"]);
        let (ts, _) = read_all(
            &p,
            &LogOptions {
                timestamps: true,
                tail_lines: Some(1),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(ts, ["2026-01-01T00:00:03.000000003Z three\n"]);
        let since = "2026-01-01T00:00:02Z".parse().ok();
        let (s, _) = read_all(
            &p,
            &LogOptions {
                since,
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(s, ["two\n", "three\n"]);
    }

    #[tokio::test]
    async fn limit_bytes_cuts_the_stream() {
        let (_d, p) = write(LINES);
        let (tx, mut rx) = mpsc::channel(8);
        stream(
            p,
            LogOptions {
                limit_bytes: Some(6),
                ..Default::default()
            },
            tx,
            || Box::pin(async { false }),
        )
        .await;
        let mut out = Vec::new();
        while let Some(Ok(b)) = rx.recv().await {
            out.extend_from_slice(&b);
        }
        assert_eq!(out, b"one\ntw");
    }
}
