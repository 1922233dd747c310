//! Regenerates `src/schema/generated.rs` and fails if the checked-in copy differs.
//!
//! Inputs are the sources of two registry crates that cargo has already downloaded:
//! - `k8s-pb` (prost output of upstream's `generated.proto`): messages, field numbers, wire types,
//!   map/repeated, and the Go doc comments;
//! - `k8s-openapi` (generated from upstream's OpenAPI document, newest `v1_*` module): exact JSON
//!   names (`podIP`, not `podIp`), which fields are required (Go field without `omitempty`), and
//!   the apiVersion/kind of every resource.
//!
//! Run `RUDDER_REGEN_SCHEMA=1 cargo nextest run -p rudder-protobuf --test schema_fresh` after
//! bumping either crate. The test is skipped (with a note) when the sources are not on disk, e.g.
//! with a vendored registry.

use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Top-level `k8s-pb` modules that are described; apiextensions (JSONSchemaProps needs its own
/// JSON rules), the aggregator and metrics are never sent by kubectl's typed clients.
const PB_ROOTS: &[&str] = &["api", "apimachinery"];

/// Go pointer fields whose zero value differs from "unset" (`runAsUser: 0` is root, `parallelism:
/// 0` pauses a Job) where neither the OpenAPI document nor the doc comment says so, checked by
/// hand against upstream's types.go for the groups kubectl writes with protobuf. Keyed by
/// `<message name>.<json name>`.
const KEEP_ZERO_EXTRA: &[&str] = &[
    "io.k8s.api.apps.v1.RollingUpdateStatefulSetStrategy.partition",
    "io.k8s.api.authentication.v1.TokenRequestSpec.expirationSeconds",
    "io.k8s.api.autoscaling.v1.HorizontalPodAutoscalerSpec.targetCPUUtilizationPercentage",
    "io.k8s.api.autoscaling.v1.ScaleSpec.replicas",
    "io.k8s.api.autoscaling.v2.HPAScalingRules.stabilizationWindowSeconds",
    "io.k8s.api.autoscaling.v2.MetricTarget.averageUtilization",
    "io.k8s.api.batch.v1.CronJobSpec.startingDeadlineSeconds",
    "io.k8s.api.batch.v1.JobSpec.activeDeadlineSeconds",
    "io.k8s.api.batch.v1.JobSpec.backoffLimitPerIndex",
    "io.k8s.api.batch.v1.JobSpec.completions",
    "io.k8s.api.batch.v1.JobSpec.maxFailedIndexes",
    "io.k8s.api.batch.v1.JobSpec.parallelism",
    "io.k8s.api.batch.v1.JobSpec.ttlSecondsAfterFinished",
    "io.k8s.api.core.v1.DownwardAPIVolumeFile.mode",
    "io.k8s.api.core.v1.KeyToPath.mode",
    "io.k8s.api.core.v1.PersistentVolumeClaimSpec.storageClassName",
    "io.k8s.api.core.v1.PersistentVolumeClaimSpec.volumeAttributesClassName",
    "io.k8s.api.core.v1.PodSecurityContext.fsGroup",
    "io.k8s.api.core.v1.PodSecurityContext.runAsGroup",
    "io.k8s.api.core.v1.PodSecurityContext.runAsUser",
    "io.k8s.api.core.v1.PodSpec.activeDeadlineSeconds",
    "io.k8s.api.core.v1.PodSpec.automountServiceAccountToken",
    "io.k8s.api.core.v1.PodSpec.hostUsers",
    "io.k8s.api.core.v1.PodSpec.priority",
    "io.k8s.api.core.v1.ProjectedVolumeSource.defaultMode",
    "io.k8s.api.core.v1.SecurityContext.runAsGroup",
    "io.k8s.api.core.v1.ServiceAccount.automountServiceAccountToken",
    "io.k8s.api.core.v1.SecurityContext.runAsUser",
    "io.k8s.api.core.v1.Toleration.tolerationSeconds",
    "io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta.remainingItemCount",
    "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta.deletionGracePeriodSeconds",
];

#[test]
fn schema_is_up_to_date() {
    let Some((pb_src, openapi_src)) = locate_sources() else {
        eprintln!(
            "note: k8s-pb or k8s-openapi is not in Cargo.lock or not under CARGO_HOME; skipping"
        );
        return;
    };
    let generated = generate(&pb_src, &openapi_src);
    let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/schema/generated.rs");
    if std::env::var_os("RUDDER_REGEN_SCHEMA").is_some() {
        std::fs::write(&target, &generated).expect("write generated.rs");
        return;
    }
    let current = std::fs::read_to_string(&target).unwrap_or_default();
    assert!(
        current == generated,
        "src/schema/generated.rs is stale: rerun with RUDDER_REGEN_SCHEMA=1"
    );
}

/// The exact versions come from the workspace's Cargo.lock, so a stray second version in the
/// registry cache cannot change the output.
fn locate_sources() -> Option<(PathBuf, PathBuf)> {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent()?.parent()?;
    let lock = std::fs::read_to_string(workspace.join("Cargo.lock")).ok()?;
    let version = |name: &str| {
        let header = format!("name = \"{name}\"\nversion = \"");
        let at = lock.find(&header)? + header.len();
        lock[at..].split('"').next().map(str::to_string)
    };
    let pb_dir = format!("k8s-pb-{}", version("k8s-pb")?);
    let openapi_dir = format!("k8s-openapi-{}", version("k8s-openapi")?);
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))?;
    let registries: Vec<PathBuf> = std::fs::read_dir(home.join("registry/src"))
        .ok()?
        .flatten()
        .map(|e| e.path())
        .collect();
    let find = |dir: &str| registries.iter().map(|r| r.join(dir)).find(|p| p.is_dir());
    let pb = find(&pb_dir)?.join("src");
    let openapi = find(&openapi_dir)?.join("src");
    // The newest Kubernetes version module, e.g. v1_37 (compare numerically: v1_9 < v1_10).
    let newest = std::fs::read_dir(&openapi)
        .ok()?
        .flatten()
        .filter_map(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            let minor: u32 = n.strip_prefix("v1_")?.parse().ok()?;
            Some((minor, e.path()))
        })
        .max()?
        .1;
    Some((pb, newest))
}

// ---------------------------------------------------------------------------------------------
// k8s-openapi

#[derive(Default)]
struct OpenapiType {
    /// squashed rust field name (see [`squash`]) → (JSON name, required)
    fields: HashMap<String, (String, bool)>,
    resource: Option<(String, String)>,
    /// The exact type name, e.g. `CSIDriver` for prost's `CsiDriver`.
    name: String,
}

/// Keyed by (module like `api.core.v1`, lower-case type name without underscores).
fn parse_openapi(root: &Path) -> HashMap<(String, String), OpenapiType> {
    let mut out = HashMap::new();
    let mut files = Vec::new();
    walk(root, &mut files);
    for file in files {
        let text = std::fs::read_to_string(&file).expect("read k8s-openapi source");
        let Some(def) = text
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("// Generated from definition io.k8s."))
        else {
            continue;
        };
        let Some((module, name)) = def.trim().rsplit_once('.') else {
            continue;
        };
        let mut t = OpenapiType {
            name: name.to_string(),
            ..Default::default()
        };
        let mut required = HashMap::new();
        let mut in_struct = false;
        let (mut api_version, mut kind) = (None, None);
        for line in text.lines() {
            if line.starts_with("pub struct ") && line.ends_with('{') {
                in_struct = true;
            } else if in_struct && line == "}" {
                in_struct = false;
            } else if in_struct {
                if let Some(rest) = line.trim().strip_prefix("pub ") {
                    if let Some((field, ty)) = rest.split_once(": ") {
                        required.insert(squash(field), !ty.starts_with("Option<"));
                    }
                }
            }
            let trimmed = line.trim();
            if let Some(rest) = trimmed.strip_prefix("const API_VERSION: &'static str = \"") {
                api_version = rest.strip_suffix("\";").map(str::to_string);
            }
            if let Some(rest) = trimmed.strip_prefix("const KIND: &'static str = \"") {
                kind = rest.strip_suffix("\";").map(str::to_string);
            }
            // "podIP" => Field::Key_pod_ip,
            if let Some((json, rest)) = trimmed
                .strip_prefix('"')
                .and_then(|r| r.split_once("\" => Field::Key_"))
            {
                if let Some(field) = rest.strip_suffix(',') {
                    t.fields.insert(squash(field), (json.to_string(), false));
                }
            }
        }
        for (field, (_, req)) in t.fields.iter_mut() {
            *req = required.get(field).copied().unwrap_or(false);
        }
        if let (Some(v), Some(k)) = (api_version, kind) {
            t.resource = Some((v, k));
        }
        out.insert((module.to_string(), squash(name)), t);
    }
    out
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .expect("read source dir")
        .flatten()
        .map(|e| e.path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            walk(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

/// Compares names across the two generators: prost writes `uID` as `u_id` and `podIPs` as
/// `pod_i_ps`, k8s-openapi writes `uid` and `pod_ips`, and `type` becomes `r#type` or `type_`.
fn squash(s: &str) -> String {
    s.trim_start_matches("r#")
        .chars()
        .filter(|c| *c != '_')
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

// ---------------------------------------------------------------------------------------------
// k8s-pb

struct PbField {
    rust: String,
    number: u32,
    /// string, bytes, bool, int32, int64, message
    ty: String,
    card: &'static str,
    /// Fully qualified message (`api.core.v1.Container`) for message-typed fields and map values.
    message: Option<String>,
    doc: Vec<String>,
}

struct PbMessage {
    module: String,
    name: String,
    doc: Vec<String>,
    fields: Vec<PbField>,
}

fn parse_pb(root: &Path) -> Vec<PbMessage> {
    let mut out = Vec::new();
    let mut files = Vec::new();
    for r in PB_ROOTS {
        walk(&root.join(r), &mut files);
    }
    for file in files {
        let rel = file
            .parent()
            .expect("file has a parent")
            .strip_prefix(root)
            .expect("under root");
        let module: Vec<String> = rel
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        if module.iter().any(|m| m == "testapigroup") {
            continue;
        }
        let text = std::fs::read_to_string(&file).expect("read k8s-pb source");
        let mut doc = Vec::new();
        let mut current: Option<PbMessage> = None;
        let mut attr: Option<String> = None;
        // rustfmt wraps long field types over several lines; join them back.
        let mut pending = String::new();
        for line in text.lines() {
            let trimmed = line.trim();
            if !pending.is_empty() {
                pending.push(' ');
                pending.push_str(trimmed);
                let balanced = pending.matches('<').count() == pending.matches('>').count();
                if !(balanced && pending.ends_with(',')) {
                    continue;
                }
                let joined = std::mem::take(&mut pending)
                    .replace("< ", "<")
                    .replace(", >", ">")
                    .replace(" >", ">");
                if let Some(m) = current.as_mut() {
                    push_field(m, &module, &joined, attr.take(), &mut doc);
                }
                continue;
            }
            if let Some(d) = trimmed.strip_prefix("///") {
                doc.push(d.trim().to_string());
            } else if let Some(name) = line
                .strip_prefix("pub struct ")
                .and_then(|l| l.strip_suffix(" {"))
            {
                current = Some(PbMessage {
                    module: module.join("."),
                    name: name.to_string(),
                    doc: std::mem::take(&mut doc),
                    fields: Vec::new(),
                });
            } else if let Some(name) = line
                .strip_prefix("pub struct ")
                .and_then(|l| l.strip_suffix(" {}"))
            {
                out.push(PbMessage {
                    module: module.join("."),
                    name: name.to_string(),
                    doc: std::mem::take(&mut doc),
                    fields: Vec::new(),
                });
            } else if line == "}" {
                if let Some(m) = current.take() {
                    out.push(m);
                }
                doc.clear();
            } else if trimmed.starts_with("#[prost(") {
                attr = Some(trimmed.to_string());
            } else if let (Some(m), Some(rest)) = (current.as_mut(), trimmed.strip_prefix("pub ")) {
                if rest.ends_with(',') {
                    push_field(m, &module, rest, attr.take(), &mut doc);
                } else {
                    pending = rest.to_string();
                }
            } else if trimmed.starts_with("#[derive") {
                // struct attributes sit between the doc comment and the struct line
            } else if !trimmed.is_empty() && current.is_none() {
                doc.clear();
            }
        }
    }
    out
}

fn push_field(
    m: &mut PbMessage,
    module: &[String],
    line: &str,
    attr: Option<String>,
    doc: &mut Vec<String>,
) {
    let attr = attr.expect("every field has a #[prost] attribute");
    let (rust, ty) = line.split_once(':').expect("field line");
    let rust = rust.trim().trim_start_matches("r#").to_string();
    let ty = ty.trim().trim_end_matches(',');
    m.fields
        .push(parse_field(module, rust, &attr, ty, std::mem::take(doc)));
}

fn parse_field(module: &[String], rust: String, attr: &str, ty: &str, doc: Vec<String>) -> PbField {
    let number: u32 = attr
        .split("tag = \"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .and_then(|n| n.parse().ok())
        .expect("tag");
    let inner = attr.trim_start_matches("#[prost(");
    let (wire, card) = if let Some(m) = inner.strip_prefix("btree_map = \"string, ") {
        (m.split('"').next().expect("map value").to_string(), "Map")
    } else {
        let first = inner.split([',', ' ']).next().expect("type").to_string();
        let card = if inner.contains("repeated") {
            "Repeated"
        } else {
            "One"
        };
        (first, card)
    };
    let message = (wire == "message").then(|| resolve(module, innermost(ty)));
    PbField {
        rust,
        number,
        ty: wire,
        card,
        message,
        doc,
    }
}

/// `::core::option::Option<super::super::x::Y>` → `super::super::x::Y`;
/// `BTreeMap<String, Y>` → `Y`.
fn innermost(ty: &str) -> &str {
    let mut t = ty;
    loop {
        let Some(open) = t.find('<') else { return t };
        let inner = &t[open + 1..t.len() - 1];
        t = match inner.split_once(", ") {
            Some((_, v)) if t[..open].ends_with("BTreeMap") => v,
            _ => inner,
        };
    }
}

fn resolve(module: &[String], path: &str) -> String {
    let mut base: Vec<&str> = module.iter().map(String::as_str).collect();
    let mut parts: Vec<&str> = path.split("::").collect();
    if parts.first() == Some(&"crate") {
        base.clear();
        parts.remove(0);
    }
    while parts.first() == Some(&"super") {
        base.pop();
        parts.remove(0);
    }
    base.extend(parts);
    base.join(".")
}

// ---------------------------------------------------------------------------------------------
// generation

struct Out {
    full: String,
    ident: String,
    special: &'static str,
    fields: Vec<OutField>,
}

struct OutField {
    number: u32,
    json: String,
    /// The `Ty` expression written to the table.
    ty: String,
    card: &'static str,
    keep_zero: bool,
}

/// Where a message's JSON names come from: its own k8s-openapi type, the same type in another
/// version of the group (k8s-openapi only has the versions Kubernetes still serves), or the
/// type it is inlined into (VolumeSource into Volume: the embedded type has no definition).
type ApiFields<'a> = Option<&'a HashMap<String, (String, bool)>>;

fn generate(pb_src: &Path, openapi_src: &Path) -> String {
    let openapi = parse_openapi(openapi_src);
    let mut pb = parse_pb(pb_src);
    pb.sort_by(|a, b| (&a.module, &a.name).cmp(&(&b.module, &b.name)));
    let index: HashMap<String, usize> = pb
        .iter()
        .enumerate()
        .map(|(i, m)| (format!("{}.{}", m.module, m.name), i))
        .collect();

    // Phase 1: the k8s-openapi type of each message, own or a sibling version's.
    let mut by_group: HashMap<(String, String), Vec<&String>> = HashMap::new();
    for (module, name) in openapi.keys() {
        if let Some((group, _)) = module.rsplit_once('.') {
            by_group
                .entry((group.to_string(), name.clone()))
                .or_default()
                .push(module);
        }
    }
    let own: Vec<Option<&OpenapiType>> = pb
        .iter()
        .map(|m| openapi.get(&(m.module.clone(), squash(&m.name))))
        .collect();
    let sibling: Vec<Option<&OpenapiType>> = pb
        .iter()
        .map(|m| {
            let (group, _) = m.module.rsplit_once('.')?;
            let mut modules = by_group.get(&(group.to_string(), squash(&m.name)))?.clone();
            modules.sort();
            let module = modules.first()?;
            openapi.get(&((*module).clone(), squash(&m.name)))
        })
        .collect();
    let mut api: Vec<ApiFields> = own
        .iter()
        .zip(&sibling)
        .map(|(o, s)| o.or(*s).map(|t| &t.fields))
        .collect();

    // Phase 2: Go embeds some structs with `json:",inline"` (ConfigMapKeySelector embeds
    // LocalObjectReference): protobuf has a nested message, JSON has its fields in the parent.
    // Such a field is missing from the parent's JSON names while the nested fields are present.
    let specials: Vec<&'static str> = pb
        .iter()
        .map(|m| special_of(&full_name(m, own_name(&own, &index, m)), m))
        .collect();
    let mut inline: BTreeSet<(usize, usize)> = BTreeSet::new();
    let mut memo: HashMap<usize, BTreeSet<String>> = HashMap::new();
    for i in 0..pb.len() {
        for k in 0..pb[i].fields.len() {
            if is_inline(i, k, &pb, &api, &specials, &index, &mut memo) {
                inline.insert((i, k));
            }
        }
    }
    for &(i, k) in &inline {
        let target = index[pb[i].fields[k].message.as_ref().expect("message")];
        if api[target].is_none() {
            api[target] = api[i];
        }
    }

    // Phase 3: exact names. prost renames `CSIDriver` to `CsiDriver`; take the name from
    // k8s-openapi, else from the Go doc comment, which starts with the type name.
    let fulls: Vec<String> = pb
        .iter()
        .map(|m| full_name(m, own_name(&own, &index, m)))
        .collect();

    let mut outs: Vec<Out> = Vec::new();
    let mut missing_numbers: Vec<String> = Vec::new();
    for (i, m) in pb.iter().enumerate() {
        let full = &fulls[i];
        let mut fields = Vec::new();
        for (k, f) in m.fields.iter().enumerate() {
            let from_openapi = api[i].and_then(|t| t.get(&squash(&f.rust)));
            let json = from_openapi
                .map(|(j, _)| j.clone())
                .or_else(|| {
                    first_word_matching(&f.doc, &f.rust)
                        .filter(|w| w.starts_with(|c: char| c.is_ascii_lowercase()))
                })
                .unwrap_or_else(|| lower_camel(&f.rust));
            let required = from_openapi.is_some_and(|(_, r)| *r);
            let ty = match (f.ty.as_str(), &f.message) {
                ("message", Some(target)) => match index.get(target) {
                    Some(t) => format!("M(&{})", ident(&fulls[*t])),
                    None => panic!("{full}.{}: unknown message {target}", f.rust),
                },
                ("string", _) => "S".into(),
                ("bytes", _) => "B".into(),
                ("bool", _) => "Bool".into(),
                ("int32", _) => "I32".into(),
                ("int64", _) => "I64".into(),
                (other, _) => panic!("unsupported protobuf type {other} in {full}"),
            };
            let card = if inline.contains(&(i, k)) {
                "Inline"
            } else {
                f.card
            };
            fields.push(OutField {
                number: f.number,
                keep_zero: keep_zero(full, &json, f, required),
                json,
                ty,
                card,
            });
        }
        if let Some(t) = own[i] {
            let known = flat_squashed(i, &pb, &api, &specials, &index, &mut memo);
            for (key, (json, _)) in &t.fields {
                if !known.contains(key) && json != "apiVersion" && json != "kind" {
                    missing_numbers.push(format!("{full}.{json}"));
                }
            }
        }
        fields.sort_by_key(|f| f.number);
        outs.push(Out {
            ident: ident(full),
            full: full.clone(),
            special: specials[i],
            fields,
        });
    }

    // Phase 4: kinds. Resources k8s-openapi knows, their lists, and kinds of versions it no
    // longer has (group taken from a sibling version): anything whose `metadata` is ObjectMeta.
    let mut kinds: BTreeSet<(String, String, String)> = BTreeSet::new();
    let mut group_of_module: HashMap<String, String> = HashMap::new();
    for (i, m) in pb.iter().enumerate() {
        if let Some((v, k)) = own[i].and_then(|t| t.resource.as_ref()) {
            kinds.insert((v.clone(), k.clone(), fulls[i].clone()));
            let group_dir = m.module.rsplit_once('.').map_or("", |(g, _)| g);
            let group = v.rsplit_once('/').map_or("", |(g, _)| g);
            group_of_module.insert(group_dir.to_string(), group.to_string());
        }
    }
    let all: BTreeSet<&str> = fulls.iter().map(String::as_str).collect();
    let mut extra = Vec::new();
    for (v, k, full) in &kinds {
        let list = format!("{full}List");
        if all.contains(list.as_str()) {
            extra.push((v.clone(), format!("{k}List"), list));
        }
    }
    kinds.extend(extra);
    let known: BTreeSet<String> = kinds.iter().map(|k| k.2.clone()).collect();
    for o in &outs {
        if known.contains(&o.full) || o.full.starts_with("io.k8s.apimachinery.") {
            continue;
        }
        let has_meta = o.fields.iter().any(|f| {
            f.number == 1
                && f.json == "metadata"
                && (f.ty.ends_with("META_V1_OBJECT_META)") || f.ty.ends_with("META_V1_LIST_META)"))
        });
        let Some((module, kind)) = o
            .full
            .strip_prefix("io.k8s.")
            .and_then(|r| r.rsplit_once('.'))
        else {
            continue;
        };
        let Some((group_dir, version)) = module.rsplit_once('.') else {
            continue;
        };
        if let (true, Some(group)) = (has_meta, group_of_module.get(group_dir)) {
            let v = if group.is_empty() {
                version.to_string()
            } else {
                format!("{group}/{version}")
            };
            kinds.insert((v, kind.to_string(), o.full.clone()));
        }
    }

    outs.sort_by(|a, b| a.full.cmp(&b.full));
    let idents: BTreeSet<&str> = outs.iter().map(|o| o.ident.as_str()).collect();
    assert_eq!(
        idents.len(),
        outs.len(),
        "two messages map to one identifier"
    );
    emit(&outs, &kinds, &missing_numbers)
}

fn own_name<'a>(
    own: &'a [Option<&OpenapiType>],
    index: &HashMap<String, usize>,
    m: &PbMessage,
) -> Option<&'a str> {
    own[index[&format!("{}.{}", m.module, m.name)]].map(|t| t.name.as_str())
}

fn full_name(m: &PbMessage, openapi_name: Option<&str>) -> String {
    let exact = openapi_name
        .map(str::to_string)
        .or_else(|| first_word_matching(&m.doc, &m.name))
        .unwrap_or_else(|| m.name.clone());
    format!("io.k8s.{}.{}", m.module, exact)
}

/// The squashed field names a message contributes to its parent, inlined messages flattened.
fn flat_squashed(
    i: usize,
    pb: &[PbMessage],
    api: &[ApiFields],
    specials: &[&str],
    index: &HashMap<String, usize>,
    memo: &mut HashMap<usize, BTreeSet<String>>,
) -> BTreeSet<String> {
    if let Some(names) = memo.get(&i) {
        return names.clone();
    }
    let mut names = BTreeSet::new();
    for k in 0..pb[i].fields.len() {
        if is_inline(i, k, pb, api, specials, index, memo) {
            let target = index[pb[i].fields[k].message.as_ref().expect("message")];
            names.extend(flat_squashed(target, pb, api, specials, index, memo));
        } else {
            names.insert(squash(&pb[i].fields[k].rust));
        }
    }
    memo.insert(i, names.clone());
    names
}

fn is_inline(
    i: usize,
    k: usize,
    pb: &[PbMessage],
    api: &[ApiFields],
    specials: &[&str],
    index: &HashMap<String, usize>,
    memo: &mut HashMap<usize, BTreeSet<String>>,
) -> bool {
    let f = &pb[i].fields[k];
    let (Some(target), Some(parent)) = (f.message.as_ref(), api[i]) else {
        return false;
    };
    let t = index[target];
    if f.card != "One" || specials[t] != "None" || parent.contains_key(&squash(&f.rust)) {
        return false;
    }
    let nested = flat_squashed(t, pb, api, specials, index, memo);
    !nested.is_empty() && nested.iter().all(|n| parent.contains_key(n))
}

fn emit(outs: &[Out], kinds: &BTreeSet<(String, String, String)>, missing: &[String]) -> String {
    let mut s = String::new();
    s.push_str(
        "// @generated by tests/schema_fresh.rs from k8s-pb (field numbers, wire types) and\n\
         // k8s-openapi (JSON names, required fields, kinds). Do not edit by hand; regenerate with\n\
         // RUDDER_REGEN_SCHEMA=1 cargo nextest run -p rudder-protobuf --test schema_fresh\n\n\
         use super::Card::{Inline, Map, One, Repeated};\n\
         use super::Ty::{Bool, Bytes as B, Int32 as I32, Int64 as I64, Message as M, String as S};\n\
         use super::{f, Kind, Message, Special};\n\n",
    );
    for o in outs {
        let _ = writeln!(
            s,
            "pub(crate) static {}: Message = Message {{ name: \"{}\", special: Special::{}, fields: &[",
            o.ident, o.full, o.special
        );
        for f in &o.fields {
            let _ = writeln!(
                s,
                "    f({}, \"{}\", {}, {}, {}),",
                f.number, f.json, f.ty, f.card, f.keep_zero
            );
        }
        s.push_str("] };\n");
    }
    let _ = writeln!(
        s,
        "\n#[cfg(test)]\npub(crate) static MESSAGES: [&Message; {}] = [",
        outs.len()
    );
    for o in outs {
        let _ = writeln!(s, "    &{},", o.ident);
    }
    s.push_str("];\n");
    let _ = writeln!(s, "\npub(crate) static KINDS: [Kind; {}] = [", kinds.len());
    for (v, k, full) in kinds {
        let _ = writeln!(
            s,
            "    Kind {{ api_version: \"{v}\", kind: \"{k}\", message: &{} }},",
            ident(full)
        );
    }
    s.push_str("];\n");
    let mut missing = missing.to_vec();
    missing.sort();
    let _ = writeln!(
        s,
        "\n// Fields that k8s-openapi knows but k8s-pb has no field number for (newer Kubernetes);\n\
         // the decoder cannot see them and drops them as unknown fields ({}):",
        missing.len()
    );
    for m in missing {
        let _ = writeln!(s, "//   {m}");
    }
    s
}

fn special_of(full: &str, m: &PbMessage) -> &'static str {
    match full {
        "io.k8s.apimachinery.pkg.apis.meta.v1.Time" => "Time",
        "io.k8s.apimachinery.pkg.apis.meta.v1.MicroTime" => "MicroTime",
        "io.k8s.apimachinery.pkg.apis.meta.v1.Duration" => "Duration",
        "io.k8s.apimachinery.pkg.api.resource.Quantity"
        | "io.k8s.apimachinery.pkg.api.resource.QuantityValue" => "Quantity",
        "io.k8s.apimachinery.pkg.util.intstr.IntOrString" => "IntOrString",
        "io.k8s.apimachinery.pkg.runtime.RawExtension"
        | "io.k8s.apimachinery.pkg.apis.meta.v1.FieldsV1" => "RawJson",
        _ if m.doc.iter().any(|d| d == "+protobuf.nullable=true")
            && m.fields.len() == 1
            && m.fields[0].ty == "string"
            && m.fields[0].card == "Repeated" =>
        {
            "StringList"
        }
        _ => "None",
    }
}

/// See `Field::keep_zero`. Go writes a zero into JSON for a field without `omitempty`: those are
/// `required` in OpenAPI, or lack the `+optional` marker in the Go doc comment. For optional
/// fields the Go type (pointer or not) is in neither source. Dropping a zero is harmless when
/// zero is what "unset" means anyway, so integers and booleans drop it unless the doc names a
/// non-zero default or talks about a pointer/nil (then zero differs from unset), plus a short
/// list of known pointer fields. Optional strings always drop "" unless listed.
fn keep_zero(full: &str, json: &str, f: &PbField, required: bool) -> bool {
    if f.card != "One" {
        return false;
    }
    let optional = f
        .doc
        .iter()
        .any(|d| d == "+optional" || d.starts_with("+k8s:optional"));
    if required || !optional || KEEP_ZERO_EXTRA.contains(&format!("{full}.{json}").as_str()) {
        return true;
    }
    // For messages this only matters for a zero `Time` or empty `RawExtension`, which Go writes
    // as `null`; `omitempty` cannot drop a struct, but `null` is noise where the field is optional.
    if f.ty == "message" {
        return false;
    }
    if matches!(f.ty.as_str(), "int32" | "int64" | "bool") {
        let doc = f.doc.join(" ").to_ascii_lowercase();
        return doc.contains("pointer") || doc.contains("nil") || names_nonzero_default(&doc);
    }
    false
}

/// Whether a doc comment says the field defaults to something other than 0/false.
fn names_nonzero_default(doc: &str) -> bool {
    doc.match_indices("default").any(|(at, _)| {
        let after = &doc[at..];
        let mut words = after
            .split_whitespace()
            .skip(1)
            .map(|w| w.trim_matches(|c: char| !c.is_ascii_alphanumeric()))
            .filter(|w| !matches!(*w, "to" | "is" | "of" | "value" | "will" | "be" | "set"));
        match words.next() {
            Some("0" | "false" | "zero") => false,
            Some(w) => w.starts_with(|c: char| c.is_ascii_digit()) || w == "true",
            None => false,
        }
    })
}

fn first_word_matching(doc: &[String], name: &str) -> Option<String> {
    let word: String = doc
        .first()?
        .split_whitespace()
        .next()?
        .trim_end_matches([',', '.', ':'])
        .to_string();
    (squash(&word) == squash(name)).then_some(word)
}

fn lower_camel(snake: &str) -> String {
    let mut out = String::new();
    let mut upper = false;
    for c in snake.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.push(c.to_ascii_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// `io.k8s.api.core.v1.PodSpec` → `API_CORE_V1_POD_SPEC`.
fn ident(full: &str) -> String {
    let rest = full.strip_prefix("io.k8s.").unwrap_or(full);
    let mut out = String::new();
    let chars: Vec<char> = rest.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        if c == '.' || c == '-' {
            out.push('_');
        } else if c.is_ascii_uppercase() {
            let prev = i.checked_sub(1).map(|p| chars[p]);
            let next = chars.get(i + 1);
            let boundary = prev.is_some_and(|p| p.is_ascii_lowercase() || p.is_ascii_digit())
                || (prev.is_some_and(|p| p.is_ascii_uppercase())
                    && next.is_some_and(|n| n.is_ascii_lowercase()));
            if boundary && !out.ends_with('_') {
                out.push('_');
            }
            out.push(c);
        } else {
            out.push(c.to_ascii_uppercase());
        }
    }
    out
}
