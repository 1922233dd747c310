//! The write-ahead log that makes a write durable with one sequential `fdatasync`.
//!
//! A durable redb commit writes B-tree pages all over its file and costs about two disk
//! flushes' worth of time here (`BENCHMARKS.md`); appending one small record to a pre-zeroed
//! file and flushing it costs one, and touches no file-system metadata. So, as etcd does with
//! its WAL and bbolt, each committed batch is first written here and flushed, then applied to
//! redb with a non-durable commit, and only then acknowledged. Every so often a durable redb
//! commit (a checkpoint) makes everything applied so far durable in redb itself, and the log
//! starts again at offset 0.
//!
//! After a crash, redb reopens at its last checkpoint and the records written since are replayed.
//! Records carry a sequence number; redb stores the sequence of the last record it applied, so
//! replay knows exactly where to resume and stops at the first record that is torn, stale (left
//! over from before the log last wrapped) or out of sequence. Hand-written: it is ~200 lines
//! and no maintained crate offers a WAL with this recycling shape.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

use bytes::Bytes;
use rudder_store::Revision;

const MAGIC: u32 = 0x5244_5752; // "RDWR"
const HEADER: usize = 12; // magic, payload length, crc32

/// One change, as decided by the writer; replaying it reproduces the change exactly.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum WalOp {
    Put {
        revision: Revision,
        key: String,
        create_revision: Revision,
        expires_at_ms: u64,
        value: Bytes,
    },
    Delete {
        revision: Revision,
        key: String,
    },
    Compact {
        revision: Revision,
    },
}

/// The log file: fixed size, zero-filled, overwritten in place.
pub(crate) struct Wal {
    file: File,
    size: u64,
    offset: u64,
}

impl Wal {
    /// Open (creating and zero-filling if needed) the log at `path`, `size` bytes long.
    pub fn open(path: &Path, size: u64) -> io::Result<Wal> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        let len = file.metadata()?.len();
        if len < size {
            // Written zeros, not a sparse or fallocated range: overwriting written blocks and
            // flushing them changes no extent metadata, so fdatasync stays a pure data flush.
            let chunk = vec![0u8; 1 << 20];
            let mut at = len;
            while at < size {
                let n = chunk.len().min((size - at) as usize);
                file.write_all_at(&chunk[..n], at)?;
                at += n as u64;
            }
            file.sync_all()?;
            if let Some(dir) = path.parent() {
                // Make the new file's directory entry durable too.
                File::open(dir)?.sync_all()?;
            }
        }
        Ok(Wal {
            file,
            size: size.max(len),
            offset: 0,
        })
    }

    /// Bytes one record with `payload_len` bytes of payload takes.
    pub fn record_len(payload_len: usize) -> u64 {
        (HEADER + payload_len) as u64
    }

    /// Whether a record of `len` bytes fits after the current offset.
    pub fn fits(&self, len: u64) -> bool {
        self.offset + len <= self.size
    }

    /// The largest record the log can ever hold.
    pub fn capacity(&self) -> u64 {
        self.size
    }

    /// Append one record and flush it to disk.
    pub fn append(&mut self, payload: &[u8]) -> io::Result<()> {
        let len = Self::record_len(payload.len());
        if !self.fits(len) {
            return Err(io::Error::other("write-ahead log full"));
        }
        let mut rec = Vec::with_capacity(len as usize);
        rec.extend_from_slice(&MAGIC.to_le_bytes());
        rec.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        rec.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
        rec.extend_from_slice(payload);
        self.file.write_all_at(&rec, self.offset)?;
        self.file.sync_data()?;
        self.offset += len;
        Ok(())
    }

    /// Start overwriting from the beginning: everything before is in a durable redb commit.
    pub fn rewind(&mut self) {
        self.offset = 0;
    }

    /// Read the records from offset 0 until the first one that is torn or not a record.
    pub fn read_all(&self) -> io::Result<Vec<Vec<u8>>> {
        let mut out = Vec::new();
        let mut at = 0u64;
        let mut header = [0u8; HEADER];
        while at + HEADER as u64 <= self.size {
            self.file.read_exact_at(&mut header, at)?;
            let word = |i: usize| {
                u32::from_le_bytes([header[i], header[i + 1], header[i + 2], header[i + 3]])
            };
            let (magic, len, crc) = (word(0), word(4) as u64, word(8));
            if magic != MAGIC || at + HEADER as u64 + len > self.size {
                break;
            }
            let mut payload = vec![0u8; len as usize];
            self.file.read_exact_at(&mut payload, at + HEADER as u64)?;
            if crc32fast::hash(&payload) != crc {
                break;
            }
            out.push(payload);
            at += HEADER as u64 + len;
        }
        Ok(out)
    }
}

/// A batch's record: `seq u64 | n u32 | ops`.
pub(crate) fn encode_batch(seq: u64, ops: &[WalOp]) -> Vec<u8> {
    let size: usize = ops
        .iter()
        .map(|op| match op {
            WalOp::Put { key, value, .. } => 1 + 8 + 8 + 8 + 4 + key.len() + 4 + value.len(),
            WalOp::Delete { key, .. } => 1 + 8 + 4 + key.len(),
            WalOp::Compact { .. } => 9,
        })
        .sum();
    let mut out = Vec::with_capacity(12 + size);
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&(ops.len() as u32).to_le_bytes());
    for op in ops {
        match op {
            WalOp::Put {
                revision,
                key,
                create_revision,
                expires_at_ms,
                value,
            } => {
                out.push(1);
                out.extend_from_slice(&revision.to_le_bytes());
                out.extend_from_slice(&create_revision.to_le_bytes());
                out.extend_from_slice(&expires_at_ms.to_le_bytes());
                out.extend_from_slice(&(key.len() as u32).to_le_bytes());
                out.extend_from_slice(key.as_bytes());
                out.extend_from_slice(&(value.len() as u32).to_le_bytes());
                out.extend_from_slice(value);
            }
            WalOp::Delete { revision, key } => {
                out.push(2);
                out.extend_from_slice(&revision.to_le_bytes());
                out.extend_from_slice(&(key.len() as u32).to_le_bytes());
                out.extend_from_slice(key.as_bytes());
            }
            WalOp::Compact { revision } => {
                out.push(3);
                out.extend_from_slice(&revision.to_le_bytes());
            }
        }
    }
    out
}

/// Decode a batch record; `None` if it is malformed (treated like a torn record).
pub(crate) fn decode_batch(raw: &[u8]) -> Option<(u64, Vec<WalOp>)> {
    let mut at = 0usize;
    let mut take = |n: usize| -> Option<&[u8]> {
        let s = raw.get(at..at.checked_add(n)?)?;
        at += n;
        Some(s)
    };
    let u64_of = |s: &[u8]| u64::from_le_bytes(s.try_into().unwrap_or([0; 8]));
    let u32_of = |s: &[u8]| u32::from_le_bytes(s.try_into().unwrap_or([0; 4])) as usize;
    let seq = u64_of(take(8)?);
    let n = u32_of(take(4)?);
    let mut ops = Vec::with_capacity(n.min(4096));
    for _ in 0..n {
        let tag = take(1)?[0];
        match tag {
            1 => {
                let revision = u64_of(take(8)?) as i64;
                let create_revision = u64_of(take(8)?) as i64;
                let expires_at_ms = u64_of(take(8)?);
                let klen = u32_of(take(4)?);
                let key = String::from_utf8(take(klen)?.to_vec()).ok()?;
                let vlen = u32_of(take(4)?);
                let value = Bytes::copy_from_slice(take(vlen)?);
                ops.push(WalOp::Put {
                    revision,
                    key,
                    create_revision,
                    expires_at_ms,
                    value,
                });
            }
            2 => {
                let revision = u64_of(take(8)?) as i64;
                let klen = u32_of(take(4)?);
                let key = String::from_utf8(take(klen)?.to_vec()).ok()?;
                ops.push(WalOp::Delete { revision, key });
            }
            3 => ops.push(WalOp::Compact {
                revision: u64_of(take(8)?) as i64,
            }),
            _ => return None,
        }
    }
    Some((seq, ops))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ops() -> Vec<WalOp> {
        vec![
            WalOp::Put {
                revision: 7,
                key: "/registry/a".into(),
                create_revision: 5,
                expires_at_ms: 99,
                value: Bytes::from_static(b"{}"),
            },
            WalOp::Delete {
                revision: 8,
                key: "/registry/b".into(),
            },
            WalOp::Compact { revision: 6 },
        ]
    }

    #[test]
    fn batch_round_trips() {
        let raw = encode_batch(42, &ops());
        assert_eq!(decode_batch(&raw), Some((42, ops())));
        assert_eq!(decode_batch(&raw[..raw.len() - 1]), None);
        assert_eq!(decode_batch(&[]), None);
    }

    #[test]
    fn log_stops_at_torn_or_stale_records() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wal");
        let mut wal = Wal::open(&path, 4096).unwrap();
        wal.append(b"first").unwrap();
        wal.append(b"second").unwrap();
        assert_eq!(
            wal.read_all().unwrap(),
            vec![b"first".to_vec(), b"second".to_vec()]
        );
        // A torn write: corrupt the second record's payload.
        let second_at = Wal::record_len(5) + HEADER as u64;
        wal.file.write_all_at(b"X", second_at).unwrap();
        assert_eq!(wal.read_all().unwrap(), vec![b"first".to_vec()]);
        // Rewinding overwrites from the start; what follows is stale and stays readable, which
        // is why replay checks sequence numbers.
        wal.rewind();
        wal.append(b"third").unwrap();
        assert_eq!(wal.read_all().unwrap()[0], b"third".to_vec());
        assert!(!wal.fits(5000));
        // Reopening keeps the size and contents.
        drop(wal);
        let wal = Wal::open(&path, 4096).unwrap();
        assert_eq!(wal.read_all().unwrap()[0], b"third".to_vec());
    }
}
