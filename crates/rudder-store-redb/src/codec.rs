//! Binary encodings of the values kept in redb tables.
//!
//! Hand-written because they are three fixed little-endian layouts; a serde format would add a
//! dependency and allocations on the write path for no gain.

use bytes::Bytes;
use rudder_store::{KeyValue, Revision, StoreError, WatchEvent};

/// A current key: `create_rev | mod_rev | expires_at_ms (0 = never) | value`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Entry {
    pub create_revision: Revision,
    pub mod_revision: Revision,
    pub expires_at_ms: u64,
    pub value: Bytes,
}

const ENTRY_HEADER: usize = 24;

impl Entry {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(ENTRY_HEADER + self.value.len());
        out.extend_from_slice(&self.create_revision.to_le_bytes());
        out.extend_from_slice(&self.mod_revision.to_le_bytes());
        out.extend_from_slice(&self.expires_at_ms.to_le_bytes());
        out.extend_from_slice(&self.value);
        out
    }

    pub fn decode(raw: &[u8]) -> Result<Entry, StoreError> {
        if raw.len() < ENTRY_HEADER {
            return Err(corrupt("entry shorter than its header"));
        }
        Ok(Entry {
            create_revision: i64_at(raw, 0),
            mod_revision: i64_at(raw, 8),
            expires_at_ms: i64_at(raw, 16) as u64,
            value: Bytes::copy_from_slice(&raw[ENTRY_HEADER..]),
        })
    }

    pub fn into_kv(self, key: &str) -> KeyValue {
        KeyValue {
            key: key.to_string(),
            value: self.value,
            create_revision: self.create_revision,
            mod_revision: self.mod_revision,
        }
    }
}

/// One revision in the history log. It carries the previous value too, so a watch replay and a
/// read at a past revision never need a second lookup.
///
/// Layout: `kind u8 | key_len u32 | key | create_rev i64 | value_len u32 | value |
/// has_prev u8 [| prev_create i64 | prev_mod i64 | prev_value]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct LogRecord {
    pub key: String,
    /// `None` for a delete.
    pub put: Option<(Revision, Bytes)>,
    pub prev: Option<(Revision, Revision, Bytes)>,
}

impl LogRecord {
    pub fn encode(&self) -> Vec<u8> {
        let value_len = self.put.as_ref().map_or(0, |(_, v)| v.len());
        let prev_len = self.prev.as_ref().map_or(0, |(_, _, v)| v.len() + 16);
        let mut out = Vec::with_capacity(1 + 4 + self.key.len() + 8 + 4 + value_len + 1 + prev_len);
        out.push(u8::from(self.put.is_some()));
        out.extend_from_slice(&(self.key.len() as u32).to_le_bytes());
        out.extend_from_slice(self.key.as_bytes());
        let (create, value) = match &self.put {
            Some((create, value)) => (*create, value.as_ref()),
            None => (0, &[][..]),
        };
        out.extend_from_slice(&create.to_le_bytes());
        out.extend_from_slice(&(value.len() as u32).to_le_bytes());
        out.extend_from_slice(value);
        match &self.prev {
            Some((create, modr, value)) => {
                out.push(1);
                out.extend_from_slice(&create.to_le_bytes());
                out.extend_from_slice(&modr.to_le_bytes());
                out.extend_from_slice(value);
            }
            None => out.push(0),
        }
        out
    }

    pub fn decode(raw: &[u8]) -> Result<LogRecord, StoreError> {
        let mut r = Reader { raw, at: 0 };
        let is_put = r.take(1)?[0] == 1;
        let key_len = u32::from_le_bytes(r.array()?) as usize;
        let key = std::str::from_utf8(r.take(key_len)?)
            .map_err(|_| corrupt("log key is not UTF-8"))?
            .to_string();
        let create = i64::from_le_bytes(r.array()?);
        let value_len = u32::from_le_bytes(r.array()?) as usize;
        let value = Bytes::copy_from_slice(r.take(value_len)?);
        let prev = if r.take(1)?[0] == 1 {
            let pc = i64::from_le_bytes(r.array()?);
            let pm = i64::from_le_bytes(r.array()?);
            Some((pc, pm, Bytes::copy_from_slice(r.rest())))
        } else {
            None
        };
        Ok(LogRecord {
            key,
            put: is_put.then_some((create, value)),
            prev,
        })
    }

    pub fn prev_kv(&self) -> Option<KeyValue> {
        self.prev.as_ref().map(|(create, modr, value)| KeyValue {
            key: self.key.clone(),
            value: value.clone(),
            create_revision: *create,
            mod_revision: *modr,
        })
    }

    pub fn into_event(self, revision: Revision) -> Result<WatchEvent, StoreError> {
        let prev = self.prev_kv();
        match self.put {
            Some((create_revision, value)) => Ok(WatchEvent::Put {
                kv: KeyValue {
                    key: self.key,
                    value,
                    create_revision,
                    mod_revision: revision,
                },
                prev,
            }),
            None => Ok(WatchEvent::Delete {
                revision,
                prev: prev.ok_or_else(|| corrupt("delete record without a previous value"))?,
            }),
        }
    }
}

struct Reader<'a> {
    raw: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], StoreError> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.raw.len());
        let end = end.ok_or_else(|| corrupt("log record truncated"))?;
        let out = &self.raw[self.at..end];
        self.at = end;
        Ok(out)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], StoreError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn rest(&mut self) -> &'a [u8] {
        let out = &self.raw[self.at..];
        self.at = self.raw.len();
        out
    }
}

fn i64_at(raw: &[u8], at: usize) -> i64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&raw[at..at + 8]);
    i64::from_le_bytes(b)
}

fn corrupt(what: &str) -> StoreError {
    StoreError::Internal(format!("corrupt record: {what}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_round_trips() {
        let e = Entry {
            create_revision: 3,
            mod_revision: 9,
            expires_at_ms: 12345,
            value: Bytes::from_static(b"{\"a\":1}"),
        };
        assert_eq!(Entry::decode(&e.encode()).unwrap(), e);
        assert!(Entry::decode(b"short").is_err());
    }

    #[test]
    fn log_record_round_trips() {
        for rec in [
            LogRecord {
                key: "/registry/pods/default/a".into(),
                put: Some((4, Bytes::from_static(b"v2"))),
                prev: Some((4, 5, Bytes::from_static(b"v1"))),
            },
            LogRecord {
                key: "k".into(),
                put: Some((7, Bytes::new())),
                prev: None,
            },
            LogRecord {
                key: "k".into(),
                put: None,
                prev: Some((1, 2, Bytes::from_static(b"last"))),
            },
        ] {
            assert_eq!(LogRecord::decode(&rec.encode()).unwrap(), rec);
        }
        assert!(LogRecord::decode(&[1, 200, 0, 0, 0]).is_err());
    }
}
