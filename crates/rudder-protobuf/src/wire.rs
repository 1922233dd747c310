//! Protobuf wire format: varints, tags and length-delimited fields.
//!
//! Hand-written because the whole codec needs about a hundred lines of it, and a protobuf runtime
//! would bring code generation or reflection that the static schema makes unnecessary.

use std::fmt;

/// The wire types Kubernetes objects use. Groups (3, 4) are never written by gogo-protobuf and
/// are rejected rather than skipped, so a garbage body fails early instead of "decoding".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WireType {
    Varint,
    Fixed64,
    Len,
    Fixed32,
}

impl fmt::Display for WireType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            WireType::Varint => "varint",
            WireType::Fixed64 => "fixed64",
            WireType::Len => "length-delimited",
            WireType::Fixed32 => "fixed32",
        })
    }
}

/// Why the bytes are not protobuf; the caller adds where it happened.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum WireError {
    TruncatedVarint,
    VarintTooLong,
    TruncatedField { wanted: u64, left: usize },
    InvalidWireType(u64),
    FieldNumberZero,
    FieldNumberTooLarge(u64),
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WireError::TruncatedVarint => f.write_str("truncated varint"),
            WireError::VarintTooLong => f.write_str("varint longer than 10 bytes"),
            WireError::TruncatedField { wanted, left } => {
                write!(f, "field wants {wanted} bytes but only {left} are left")
            }
            WireError::InvalidWireType(t) => write!(f, "invalid wire type {t}"),
            WireError::FieldNumberZero => f.write_str("field number 0"),
            WireError::FieldNumberTooLarge(n) => write!(f, "field number {n} out of range"),
        }
    }
}

pub(crate) struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Reader { buf }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    pub(crate) fn varint(&mut self) -> Result<u64, WireError> {
        let mut value: u64 = 0;
        for (i, byte) in self.buf.iter().enumerate() {
            if i == 10 {
                return Err(WireError::VarintTooLong);
            }
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                self.buf = &self.buf[i + 1..];
                return Ok(value);
            }
        }
        Err(if self.buf.len() >= 10 {
            WireError::VarintTooLong
        } else {
            WireError::TruncatedVarint
        })
    }

    pub(crate) fn tag(&mut self) -> Result<(u32, WireType), WireError> {
        let key = self.varint()?;
        let wire = match key & 7 {
            0 => WireType::Varint,
            1 => WireType::Fixed64,
            2 => WireType::Len,
            5 => WireType::Fixed32,
            other => return Err(WireError::InvalidWireType(other)),
        };
        match key >> 3 {
            0 => Err(WireError::FieldNumberZero),
            n => u32::try_from(n)
                .ok()
                .filter(|n| *n <= MAX_FIELD_NUMBER)
                .map(|n| (n, wire))
                .ok_or(WireError::FieldNumberTooLarge(n)),
        }
    }

    pub(crate) fn bytes(&mut self) -> Result<&'a [u8], WireError> {
        let len = self.varint()?;
        self.take(len)
    }

    fn take(&mut self, len: u64) -> Result<&'a [u8], WireError> {
        let left = self.buf.len();
        let n = usize::try_from(len)
            .ok()
            .filter(|n| *n <= left)
            .ok_or(WireError::TruncatedField { wanted: len, left })?;
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    /// Skips a field the schema does not know (newer Kubernetes, or a field we do not model).
    pub(crate) fn skip(&mut self, wire: WireType) -> Result<(), WireError> {
        match wire {
            WireType::Varint => self.varint().map(drop),
            WireType::Fixed64 => self.take(8).map(drop),
            WireType::Len => self.bytes().map(drop),
            WireType::Fixed32 => self.take(4).map(drop),
        }
    }
}

/// The largest field number protobuf allows (2^29 - 1).
const MAX_FIELD_NUMBER: u32 = (1 << 29) - 1;

pub(crate) fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

pub(crate) fn put_tag(out: &mut Vec<u8>, number: u32, wire: WireType) {
    let code = match wire {
        WireType::Varint => 0,
        WireType::Fixed64 => 1,
        WireType::Len => 2,
        WireType::Fixed32 => 5,
    };
    put_varint(out, (u64::from(number) << 3) | code);
}

pub(crate) fn put_len(out: &mut Vec<u8>, number: u32, bytes: &[u8]) {
    put_tag(out, number, WireType::Len);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// Writes a signed integer the way protobuf's `int32`/`int64` do: two's complement, so negative
/// numbers always take ten bytes.
pub(crate) fn put_int(out: &mut Vec<u8>, number: u32, value: i64) {
    put_tag(out, number, WireType::Varint);
    put_varint(out, value as u64);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varint_round_trip() {
        for v in [0u64, 1, 127, 128, 300, u32::MAX as u64, u64::MAX] {
            let mut out = Vec::new();
            put_varint(&mut out, v);
            let mut r = Reader::new(&out);
            assert_eq!(r.varint(), Ok(v));
            assert!(r.is_empty());
        }
    }

    #[test]
    fn varint_errors() {
        assert_eq!(
            Reader::new(&[0x80]).varint(),
            Err(WireError::TruncatedVarint)
        );
        assert_eq!(Reader::new(&[]).varint(), Err(WireError::TruncatedVarint));
        assert_eq!(
            Reader::new(&[0xff; 11]).varint(),
            Err(WireError::VarintTooLong)
        );
    }

    #[test]
    fn negative_int_takes_ten_bytes() {
        let mut out = Vec::new();
        put_int(&mut out, 1, -1);
        assert_eq!(out.len(), 11);
        let mut r = Reader::new(&out);
        assert_eq!(r.tag(), Ok((1, WireType::Varint)));
        assert_eq!(r.varint().map(|v| v as i64), Ok(-1));
    }

    #[test]
    fn tag_errors() {
        assert_eq!(Reader::new(&[0x02]).tag(), Err(WireError::FieldNumberZero));
        assert_eq!(
            Reader::new(&[0x0b]).tag(),
            Err(WireError::InvalidWireType(3))
        );
        let mut r = Reader::new(&[0x0a, 0x05, b'a']);
        assert_eq!(r.tag(), Ok((1, WireType::Len)));
        assert_eq!(
            r.bytes(),
            Err(WireError::TruncatedField { wanted: 5, left: 1 })
        );
    }
}
