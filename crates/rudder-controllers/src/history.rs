//! ControllerRevision history (upstream's `pkg/controller/history`), shared by the StatefulSet and
//! DaemonSet controllers: a revision records a parent's template as raw JSON, named
//! `<parent>-<hash>` where the hash is upstream's (FNV-1 32-bit over the raw bytes, then the
//! decimal collision count, rendered with `rand.SafeEncodeString`), so the same bytes give the
//! same name as upstream's controllers.
//!
//! Use:
//! - build the data with [`go_json`] (Go's `json.Marshal` bytes of a decoded object, which is how
//!   upstream serializes its patches), then [`new_controller_revision`];
//! - [`History::create`] it with upstream's collision handling (an existing revision with equal
//!   data is reused; otherwise the collision count is bumped and the name recomputed);
//! - [`owned_revisions`] filters an informer's revisions down to a parent's (and orphans), and
//!   [`History::claim`] adopts matching orphans and releases owned ones that stopped matching;
//! - [`sort_revisions`], [`max_revision`], [`next_revision`], [`equal_revision`] and
//!   [`find_equal_revisions`] are upstream's helpers of the same names.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::apps::v1::ControllerRevision;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::runtime::RawExtension;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::{Client, Resource, ResourceExt};
use serde_json::{json, Value};

use crate::controller::{is_conflict, is_not_found};
use crate::podutil::{controller_ref, owner_ref, selector_matches};

/// Upstream's `ControllerRevisionHashLabel`: the hash of a revision's data.
pub const HASH_LABEL: &str = "controller.kubernetes.io/hash";

/// Upstream's `rand.SafeEncodeString` alphabet: no vowels, no look-alikes.
const SAFE: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// How many name collisions `create` tolerates before giving up (upstream loops forever; a
/// bound keeps a worker from spinning on a pathological cluster).
const MAX_COLLISIONS: usize = 100;

/// Upstream's `ControllerRevisionName`: `<prefix>-<hash>`, the prefix cut to 223 bytes so the
/// name stays within 253.
pub fn revision_name(prefix: &str, hash: &str) -> String {
    let mut cut = prefix.len().min(223);
    while !prefix.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}-{hash}", &prefix[..cut])
}

/// Upstream's `HashControllerRevision` over raw data: FNV-1 (Go's `fnv.New32`, not FNV-1a) over
/// the bytes, then over the decimal collision count if any, rendered as a decimal string
/// through the safe alphabet.
pub fn hash_raw(data: &[u8], collision_count: Option<i32>) -> String {
    let mut h: u32 = 0x811c_9dc5;
    let mut feed = |bytes: &[u8]| {
        for b in bytes {
            h = h.wrapping_mul(0x0100_0193);
            h ^= u32::from(*b);
        }
    };
    feed(data);
    if let Some(c) = collision_count {
        feed(c.to_string().as_bytes());
    }
    h.to_string()
        .bytes()
        .map(|b| SAFE[usize::from(b) % SAFE.len()] as char)
        .collect()
}

/// The raw bytes of a revision's data as upstream holds them (`Data.Raw`).
pub fn raw_data(rev: &ControllerRevision) -> String {
    match &rev.data.0 {
        Value::Null => String::new(),
        v => go_json(v),
    }
}

/// A revision's number (upstream's required `revision`, 0 when unset).
pub fn revision_of(rev: &ControllerRevision) -> i64 {
    rev.revision.unwrap_or(0)
}

/// [`hash_raw`] over a revision's data.
pub fn hash_controller_revision(rev: &ControllerRevision, collision_count: Option<i32>) -> String {
    hash_raw(raw_data(rev).as_bytes(), collision_count)
}

/// Go's `json.Marshal` of a value decoded into `map[string]interface{}`: compact, object keys in
/// byte order, and `<`, `>`, `&`, U+2028, U+2029 escaped as Go escapes them. Upstream hashes
/// these bytes, so revision names only match upstream's when the bytes do.
pub fn go_json(v: &Value) -> String {
    let mut out = String::new();
    write_go_json(v, &mut out);
    out
}

fn write_go_json(v: &Value, out: &mut String) {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_go_string(k, out);
                out.push(':');
                write_go_json(&m[k], out);
            }
            out.push('}');
        }
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_go_json(x, out);
            }
            out.push(']');
        }
        Value::String(s) => write_go_string(s, out),
        other => out.push_str(&other.to_string()),
    }
}

fn write_go_string(s: &str, out: &mut String) {
    let quoted = Value::String(s.to_string()).to_string();
    for c in quoted.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
}

/// Upstream's `NewControllerRevision`: owned by `parent` (controller ref), labelled with the
/// template's labels plus [`HASH_LABEL`], holding `data` at `revision`, named by the hash with
/// `collision_count`. The namespace is the parent's.
pub fn new_controller_revision<K: Resource<DynamicType = ()>>(
    parent: &K,
    template_labels: Option<&BTreeMap<String, String>>,
    data: Value,
    revision: i64,
    collision_count: Option<i32>,
) -> ControllerRevision {
    let mut cr = ControllerRevision {
        metadata: ObjectMeta {
            namespace: parent.meta().namespace.clone(),
            labels: Some(template_labels.cloned().unwrap_or_default()),
            owner_references: Some(vec![owner_ref(parent)]),
            ..Default::default()
        },
        data: RawExtension(data),
        revision: Some(revision),
    };
    let hash = hash_controller_revision(&cr, collision_count);
    cr.metadata.name = Some(revision_name(
        parent.meta().name.as_deref().unwrap_or(""),
        &hash,
    ));
    if let Some(l) = cr.metadata.labels.as_mut() {
        l.insert(HASH_LABEL.into(), hash);
    }
    cr
}

/// Upstream's `byRevision`: by revision, then oldest first, then by name (stable).
pub fn revision_order(a: &ControllerRevision, b: &ControllerRevision) -> Ordering {
    revision_of(a)
        .cmp(&revision_of(b))
        .then_with(|| {
            let t = |r: &ControllerRevision| r.metadata.creation_timestamp.as_ref().map(|t| t.0);
            t(a).cmp(&t(b))
        })
        .then_with(|| a.metadata.name.cmp(&b.metadata.name))
}

/// Upstream's `SortControllerRevisions`.
pub fn sort_revisions(revs: &mut [Arc<ControllerRevision>]) {
    revs.sort_by(|a, b| revision_order(a, b));
}

/// The highest revision number, 0 for none (upstream's DaemonSet `maxRevision`).
pub fn max_revision(revs: &[Arc<ControllerRevision>]) -> i64 {
    revs.iter().map(|r| revision_of(r)).max().unwrap_or(0)
}

/// Upstream's StatefulSet `nextRevision`: one past the last of `sorted`, 1 for none.
pub fn next_revision(sorted: &[Arc<ControllerRevision>]) -> i64 {
    sorted.last().map_or(1, |r| revision_of(r) + 1)
}

/// Upstream's `EqualRevision`: different hash labels (when both parse as numbers, as upstream
/// checks) mean different revisions; otherwise the data decide.
pub fn equal_revision(a: &ControllerRevision, b: &ControllerRevision) -> bool {
    let hash = |r: &ControllerRevision| {
        r.labels()
            .get(HASH_LABEL)
            .and_then(|h| h.parse::<i32>().ok())
    };
    if let (Some(x), Some(y)) = (hash(a), hash(b)) {
        if x != y {
            return false;
        }
    }
    a.data == b.data
}

/// Upstream's `FindEqualRevisions`, in the order given.
pub fn find_equal_revisions(
    revs: &[Arc<ControllerRevision>],
    needle: &ControllerRevision,
) -> Vec<Arc<ControllerRevision>> {
    revs.iter()
        .filter(|r| equal_revision(r, needle))
        .cloned()
        .collect()
}

/// Upstream's `ListControllerRevisions`: the revisions (of the parent's namespace) matching
/// `selector` that the parent controls or that no controller owns.
pub fn owned_revisions(
    revs: &[Arc<ControllerRevision>],
    parent_uid: &str,
    selector: &LabelSelector,
) -> Vec<Arc<ControllerRevision>> {
    revs.iter()
        .filter(|r| selector_matches(selector, r.metadata.labels.as_ref()))
        .filter(|r| controller_ref(&r.metadata).is_none_or(|c| c.uid == parent_uid))
        .cloned()
        .collect()
}

#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error(transparent)]
    Api(#[from] kube::Error),
    #[error("attempt to adopt revision {0} owned by another controller")]
    Owned(String),
    #[error("too many name collisions creating a revision of {0}")]
    Collisions(String),
}

/// The API side of upstream's `history.Interface`.
#[derive(Clone)]
pub struct History {
    client: Client,
}

impl History {
    pub fn new(client: Client) -> History {
        History { client }
    }

    fn api(&self, ns: &str) -> Api<ControllerRevision> {
        Api::namespaced(self.client.clone(), ns)
    }

    /// Upstream's `CreateControllerRevision`: creates `rev` named by its hash with
    /// `*collision_count`; on AlreadyExists, an existing revision with the same data is
    /// returned, otherwise the count is bumped (the caller persists it in its status as
    /// `collisionCount`) and the create retried under the new name.
    pub async fn create<K: Resource<DynamicType = ()>>(
        &self,
        parent: &K,
        rev: &ControllerRevision,
        collision_count: &mut i32,
    ) -> Result<ControllerRevision, HistoryError> {
        let ns = parent.meta().namespace.clone().unwrap_or_default();
        let parent_name = parent.meta().name.clone().unwrap_or_default();
        let api = self.api(&ns);
        let raw = raw_data(rev);
        let mut clone = rev.clone();
        clone.metadata.namespace = Some(ns);
        for _ in 0..MAX_COLLISIONS {
            let hash = hash_raw(raw.as_bytes(), Some(*collision_count));
            let name = revision_name(&parent_name, &hash);
            clone.metadata.name = Some(name.clone());
            match api.create(&PostParams::default(), &clone).await {
                Err(e) if is_conflict(&e) => {
                    let exists = api.get(&name).await?;
                    if raw_data(&exists) == raw {
                        return Ok(exists);
                    }
                    *collision_count += 1;
                }
                r => return Ok(r?),
            }
        }
        Err(HistoryError::Collisions(parent_name))
    }

    /// Upstream's `UpdateControllerRevision`: sets `revision`, retrying on conflicts with a
    /// fresh read.
    pub async fn update_revision(
        &self,
        rev: &ControllerRevision,
        revision: i64,
    ) -> Result<ControllerRevision, HistoryError> {
        let api = self.api(rev.metadata.namespace.as_deref().unwrap_or(""));
        let mut clone = rev.clone();
        let mut attempts = 0;
        loop {
            if clone.revision == Some(revision) {
                return Ok(clone);
            }
            clone.revision = Some(revision);
            match api
                .replace(&clone.name_any(), &PostParams::default(), &clone)
                .await
            {
                Ok(updated) => return Ok(updated),
                Err(e) if is_conflict(&e) && attempts < 5 => {
                    attempts += 1;
                    clone = api.get(&clone.name_any()).await?;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Deletes a revision; one already gone counts as deleted.
    pub async fn delete(&self, rev: &ControllerRevision) -> Result<(), HistoryError> {
        match self
            .api(rev.metadata.namespace.as_deref().unwrap_or(""))
            .delete(&rev.name_any(), &DeleteParams::default())
            .await
        {
            Err(e) if !is_not_found(&e) => Err(e.into()),
            _ => Ok(()),
        }
    }

    /// Upstream's `AdoptControllerRevision`: adds `parent` as controller (strategic merge patch
    /// with the revision's UID as precondition); an owned revision is refused.
    pub async fn adopt<K: Resource<DynamicType = ()>>(
        &self,
        parent: &K,
        rev: &ControllerRevision,
    ) -> Result<ControllerRevision, HistoryError> {
        if controller_ref(&rev.metadata).is_some() {
            return Err(HistoryError::Owned(rev.name_any()));
        }
        let patch =
            json!({"metadata": {"ownerReferences": [owner_ref(parent)], "uid": rev.metadata.uid}});
        Ok(self
            .api(parent.meta().namespace.as_deref().unwrap_or(""))
            .patch(
                &rev.name_any(),
                &PatchParams::default(),
                &Patch::Strategic(&patch),
            )
            .await?)
    }

    /// Upstream's `ReleaseControllerRevision`: removes `parent`'s reference; a revision that is
    /// gone (404) or no longer owned (422) is ignored and `None` returned.
    pub async fn release<K: Resource<DynamicType = ()>>(
        &self,
        parent: &K,
        rev: &ControllerRevision,
    ) -> Result<Option<ControllerRevision>, HistoryError> {
        let patch = json!({"metadata": {
            "ownerReferences": [{"$patch": "delete", "uid": parent.meta().uid}],
            "uid": rev.metadata.uid,
        }});
        match self
            .api(rev.metadata.namespace.as_deref().unwrap_or(""))
            .patch(
                &rev.name_any(),
                &PatchParams::default(),
                &Patch::Strategic(&patch),
            )
            .await
        {
            Ok(r) => Ok(Some(r)),
            Err(kube::Error::Api(s)) if s.code == 404 || s.code == 422 => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Upstream's `ClaimControllerRevisions` (ControllerRevisionControllerRefManager): of the
    /// namespace's revisions `revs`, keeps those `parent` controls that match `selector`,
    /// releases those it controls that no longer match, and adopts matching orphans while the
    /// parent is not being deleted. Returns the parent's revisions afterwards.
    pub async fn claim<K: Resource<DynamicType = ()>>(
        &self,
        parent: &K,
        selector: &LabelSelector,
        revs: &[Arc<ControllerRevision>],
    ) -> Result<Vec<Arc<ControllerRevision>>, HistoryError> {
        let uid = parent.meta().uid.clone().unwrap_or_default();
        let deleting = parent.meta().deletion_timestamp.is_some();
        let mut out = Vec::new();
        for rev in revs {
            let matches = selector_matches(selector, rev.metadata.labels.as_ref());
            match controller_ref(&rev.metadata) {
                Some(c) if c.uid == uid => {
                    if matches {
                        out.push(rev.clone());
                    } else if !deleting {
                        self.release(parent, rev).await?;
                    }
                }
                Some(_) => {}
                None if matches && !deleting && rev.metadata.deletion_timestamp.is_none() => {
                    match self.adopt(parent, rev).await {
                        Ok(r) => out.push(Arc::new(r)),
                        Err(HistoryError::Api(e)) if is_not_found(&e) => {}
                        Err(e) => return Err(e),
                    }
                }
                None => {}
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::StatefulSet;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn set(name: &str, uid: &str) -> StatefulSet {
        serde_json::from_value(
            json!({"metadata": {"name": name, "namespace": "default", "uid": uid},
            "spec": {"selector": {"matchLabels": {"foo": "bar"}}, "serviceName": "s",
                "template": {"metadata": {"labels": {"foo": "bar"}}}}}),
        )
        .unwrap()
    }

    fn rev(
        parent: &StatefulSet,
        data: Value,
        revision: i64,
        cc: Option<i32>,
    ) -> ControllerRevision {
        let labels = parent
            .spec
            .template
            .metadata
            .as_ref()
            .unwrap()
            .labels
            .clone();
        new_controller_revision(parent, labels.as_ref(), data, revision, cc)
    }

    /// The revision data and name a 1.33 kube-controller-manager wrote for a StatefulSet
    /// (upstream's `stateful_set_compatibility_test.go`): same bytes, same hash.
    #[test]
    fn hash_matches_upstream() {
        let raw = r#"{"spec":{"template":{"$patch":"replace","metadata":{"annotations":{"test":"value"},"creationTimestamp":null,"labels":{"app":"foo"}},"spec":{"containers":[{"image":"test","imagePullPolicy":"Always","name":"test","resources":{},"terminationMessagePath":"/dev/termination-log","terminationMessagePolicy":"File"}],"dnsPolicy":"ClusterFirst","restartPolicy":"Always","schedulerName":"default-scheduler","securityContext":{},"terminationGracePeriodSeconds":30}}}}"#;
        assert_eq!(hash_raw(raw.as_bytes(), Some(0)), "c77f6d978");
        // Go's encoding of the decoded value gives back the same bytes.
        let v: Value = serde_json::from_str(raw).unwrap();
        assert_eq!(go_json(&v), raw);
        let s = set("test", "ssuid");
        let cr = new_controller_revision(&s, None, v, 1, Some(0));
        assert_eq!(cr.metadata.name.as_deref(), Some("test-c77f6d978"));
        assert_eq!(cr.labels()[HASH_LABEL], "c77f6d978");
        // 1.34 dropped `creationTimestamp: null` (testdata/compatibility_revision_1.34.0.json).
        let raw = raw.replace(r#""creationTimestamp":null,"#, "");
        assert_eq!(hash_raw(raw.as_bytes(), Some(0)), "776999688b");
    }

    #[test]
    fn go_json_escapes_as_go() {
        let v = json!({"b": "<a&b>", "a": [1, 2.5, true, null], "c": "\u{2028}\n"});
        assert_eq!(
            go_json(&v),
            r#"{"a":[1,2.5,true,null],"b":"\u003ca\u0026b\u003e","c":"\u2028\n"}"#
        );
    }

    /// Upstream's `TestNewControllerRevision` / `TestHashControllerRevision` properties: owner,
    /// labels, naming, and the collision count changing the hash.
    #[test]
    fn new_revision_is_owned_labelled_and_named() {
        let s = set("ss1", "u1");
        let data = json!({"spec": {"template": {"$patch": "replace"}}});
        let r = rev(&s, data.clone(), 3, None);
        let o = controller_ref(&r.metadata).unwrap();
        assert_eq!((o.kind.as_str(), o.uid.as_str()), ("StatefulSet", "u1"));
        assert_eq!(r.revision, Some(3));
        assert_eq!(r.labels()["foo"], "bar");
        let hash = r.labels()[HASH_LABEL].clone();
        assert_eq!(r.name_any(), format!("ss1-{hash}"));
        assert!(hash.bytes().all(|b| SAFE.contains(&b)));
        let r1 = rev(&s, data.clone(), 3, Some(1));
        assert_ne!(r1.name_any(), r.name_any());
        // Same data, same name; different data, different name.
        assert_eq!(rev(&s, data, 9, None).name_any(), r.name_any());
        assert_ne!(rev(&s, json!({"x": 1}), 3, None).name_any(), r.name_any());
        assert_eq!(revision_name(&"a".repeat(300), "h").len(), 225);
    }

    /// Upstream's `TestEqualRevision`/`TestFindEqualRevisions`.
    #[test]
    fn equality_by_hash_then_data() {
        let s = set("ss1", "u1");
        let a = rev(&s, json!({"a": 1}), 1, None);
        let b = rev(&s, json!({"a": 1}), 2, None);
        let c = rev(&s, json!({"a": 2}), 3, None);
        assert!(equal_revision(&a, &b));
        assert!(!equal_revision(&a, &c));
        // Upstream compares the labels only when both parse as numbers, which safe-encoded
        // hashes rarely do: the data decide.
        let mut d = a.clone();
        d.labels_mut().insert(HASH_LABEL.into(), "12".into());
        let mut e = a.clone();
        e.labels_mut().insert(HASH_LABEL.into(), "13".into());
        assert!(!equal_revision(&d, &e));
        let all = vec![Arc::new(a.clone()), Arc::new(c), Arc::new(b)];
        let eq = find_equal_revisions(&all, &a);
        assert_eq!(
            eq.iter().map(|r| revision_of(r)).collect::<Vec<_>>(),
            vec![1, 2]
        );
    }

    /// Upstream's `TestSortControllerRevisions`: by revision, then creation time, then name.
    #[test]
    fn sorting_and_numbering() {
        let s = set("ss1", "u1");
        let mk = |name: &str, revision: i64, t: &str| {
            let mut r = rev(&s, json!({}), revision, None);
            r.metadata.name = Some(name.into());
            r.metadata.creation_timestamp = Some(Time(t.parse().unwrap()));
            Arc::new(r)
        };
        let mut revs = vec![
            mk("c", 3, "2020-01-01T00:00:00Z"),
            mk("b", 1, "2020-01-01T00:00:02Z"),
            mk("z", 1, "2020-01-01T00:00:01Z"),
            mk("a", 1, "2020-01-01T00:00:01Z"),
        ];
        sort_revisions(&mut revs);
        let names: Vec<_> = revs.iter().map(|r| r.name_any()).collect();
        assert_eq!(names, ["a", "z", "b", "c"]);
        assert_eq!(max_revision(&revs), 3);
        assert_eq!(next_revision(&revs), 4);
        assert_eq!(next_revision(&[]), 1);
        assert_eq!(max_revision(&[]), 0);
    }

    /// Upstream's `TestRealHistory_ListControllerRevisions`: owned and orphaned revisions that
    /// match the selector, not other controllers' or non-matching ones.
    #[test]
    fn listing_owned_and_orphans() {
        let s1 = set("ss1", "u1");
        let s2 = set("ss2", "u2");
        let owned = rev(&s1, json!({"a": 1}), 1, None);
        let other = rev(&s2, json!({"a": 2}), 1, None);
        let mut orphan = rev(&s1, json!({"a": 3}), 2, None);
        orphan.metadata.owner_references = None;
        let mut unmatched = orphan.clone();
        unmatched.metadata.labels = Some(BTreeMap::from([("foo".into(), "baz".into())]));
        let all: Vec<_> = [owned, other, orphan, unmatched]
            .into_iter()
            .map(Arc::new)
            .collect();
        let sel = s1.spec.selector.clone();
        let got = owned_revisions(&all, "u1", &sel);
        assert_eq!(
            got.iter().map(|r| revision_of(r)).collect::<Vec<_>>(),
            vec![1, 2]
        );
    }
}
