use std::fmt;

/// Why a body could not be decoded or an object could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtobufError {
    #[error("empty protobuf body")]
    Empty,
    #[error("body does not start with the Kubernetes protobuf prefix \"k8s\\x00\"")]
    MissingMagic,
    #[error("protobuf envelope has no kind")]
    MissingKind,
    #[error("protobuf envelope for kind {kind:?} has no apiVersion")]
    MissingApiVersion { kind: String },
    #[error("no protobuf schema for apiVersion {api_version:?}, kind {kind:?}")]
    UnsupportedKind { api_version: String, kind: String },
    #[error("protobuf envelope has unsupported contentEncoding {0:?}")]
    UnsupportedContentEncoding(String),
    #[error("protobuf envelope has unsupported contentType {0:?}")]
    UnsupportedContentType(String),
    #[error("malformed protobuf at {path}: {reason}")]
    Malformed { path: String, reason: String },
    #[error("cannot encode {path} as protobuf: {reason}")]
    Encode { path: String, reason: String },
}

impl ProtobufError {
    /// Whether the body may be fine but is of a kind or encoding this crate has no schema for.
    /// The API server answers these with 415 Unsupported Media Type (the client may retry as
    /// JSON) and everything else with 400 Bad Request.
    pub fn is_unsupported_media_type(&self) -> bool {
        matches!(
            self,
            ProtobufError::UnsupportedKind { .. }
                | ProtobufError::UnsupportedContentEncoding(_)
                | ProtobufError::UnsupportedContentType(_)
        )
    }
}

/// Where in the object a problem is, as a linked list on the stack so that the happy path
/// allocates nothing; it is rendered (`spec.template.spec.containers[0].image`) only on error.
#[derive(Clone, Copy)]
pub(crate) struct Path<'a> {
    parent: Option<&'a Path<'a>>,
    seg: Seg<'a>,
}

#[derive(Clone, Copy)]
enum Seg<'a> {
    Root(&'static str),
    Field(&'a str),
    Index(usize),
    Key(&'a str),
}

impl<'a> Path<'a> {
    pub(crate) fn root(name: &'static str) -> Self {
        Path {
            parent: None,
            seg: Seg::Root(name),
        }
    }

    pub(crate) fn field(&'a self, name: &'a str) -> Path<'a> {
        Path {
            parent: Some(self),
            seg: Seg::Field(name),
        }
    }

    pub(crate) fn index(&'a self, i: usize) -> Path<'a> {
        Path {
            parent: Some(self),
            seg: Seg::Index(i),
        }
    }

    pub(crate) fn key(&'a self, key: &'a str) -> Path<'a> {
        Path {
            parent: Some(self),
            seg: Seg::Key(key),
        }
    }

    pub(crate) fn malformed(&self, reason: impl fmt::Display) -> ProtobufError {
        ProtobufError::Malformed {
            path: self.to_string(),
            reason: reason.to_string(),
        }
    }

    pub(crate) fn encode_error(&self, reason: impl fmt::Display) -> ProtobufError {
        ProtobufError::Encode {
            path: self.to_string(),
            reason: reason.to_string(),
        }
    }
}

impl fmt::Display for Path<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut segs = Vec::new();
        let mut cur = Some(self);
        while let Some(p) = cur {
            segs.push(p.seg);
            cur = p.parent;
        }
        let mut out = String::new();
        for seg in segs.iter().rev() {
            match seg {
                Seg::Root(name) => out.push_str(name),
                Seg::Field(name) if out.is_empty() => out.push_str(name),
                Seg::Field(name) => {
                    out.push('.');
                    out.push_str(name);
                }
                Seg::Index(i) => out.push_str(&format!("[{i}]")),
                Seg::Key(k) => out.push_str(&format!("[{k:?}]")),
            }
        }
        f.write_str(if out.is_empty() { "(root)" } else { &out })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_paths() {
        let root = Path::root("");
        let spec = root.field("spec");
        let containers = spec.field("containers");
        let first = containers.index(0);
        let image = first.field("image");
        assert_eq!(image.to_string(), "spec.containers[0].image");
        let labels = root.field("labels");
        assert_eq!(labels.key("app").to_string(), "labels[\"app\"]");
        assert_eq!(
            Path::root("<envelope>").field("raw").to_string(),
            "<envelope>.raw"
        );
        assert_eq!(Path::root("").to_string(), "(root)");
    }
}
