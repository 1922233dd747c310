//! Formatting helpers shared by several printers, each a port of the upstream function named in
//! its doc comment.

use rudder_api::selector::{Operator, Requirement, Selector};
use serde_json::{Map, Value};

use super::json::{arr_at, at, obj_at, str_at};

/// `labels.FormatLabels`: `k=v` pairs sorted as whole strings (so `a.b=2` sorts before `a=1`),
/// joined by `,`; `<none>` when empty.
pub(crate) fn format_labels(map: Option<&Map<String, Value>>) -> String {
    let mut pairs: Vec<String> = map
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
        .collect();
    if pairs.is_empty() {
        return "<none>".to_owned();
    }
    pairs.sort_unstable();
    pairs.join(",")
}

/// `metav1.LabelSelectorAsSelector(sel).String()`: `Err` when the selector does not convert
/// (bad operator, key or value). A nil selector matches nothing and an empty one everything;
/// both print as `""`.
pub(crate) fn label_selector_string(sel: Option<&Value>) -> Result<String, ()> {
    let Some(sel) = sel else {
        return Ok(String::new());
    };
    let labels = obj_at(sel, &["matchLabels"]);
    let exprs = arr_at(sel, &["matchExpressions"]);
    if labels.map_or(0, Map::len) + exprs.len() == 0 {
        return Ok(String::new());
    }
    let mut reqs = Vec::new();
    for (k, v) in labels.into_iter().flatten() {
        let v = v.as_str().ok_or(())?;
        reqs.push(Requirement::new(k, Operator::Equals, vec![v.to_owned()]).map_err(|_| ())?);
    }
    for e in exprs {
        let op = match str_at(e, &["operator"]) {
            "In" => Operator::In,
            "NotIn" => Operator::NotIn,
            "Exists" => Operator::Exists,
            "DoesNotExist" => Operator::DoesNotExist,
            _ => return Err(()),
        };
        let values = arr_at(e, &["values"])
            .iter()
            .map(|v| v.as_str().map(str::to_owned).ok_or(()))
            .collect::<Result<Vec<_>, ()>>()?;
        reqs.push(Requirement::new(str_at(e, &["key"]), op, values).map_err(|_| ())?);
    }
    Ok(Selector::from_requirements(reqs).to_string())
}

/// `metav1.FormatLabelSelector`: `<error>` when it does not convert, `<none>` when it selects
/// nothing or everything.
pub(crate) fn format_label_selector(sel: Option<&Value>) -> String {
    match label_selector_string(sel) {
        Err(()) => "<error>".to_owned(),
        Ok(s) if s.is_empty() => "<none>".to_owned(),
        Ok(s) => s,
    }
}

/// The generated Go `(*metav1.LabelSelector).String()` (gogo-protobuf style), which one printer
/// uses verbatim: `&LabelSelector{MatchLabels:map[string]string{k: v,},MatchExpressions:[]...}`.
pub(crate) fn go_label_selector_string(sel: &Value) -> String {
    let mut labels: Vec<(&String, &str)> = obj_at(sel, &["matchLabels"])
        .into_iter()
        .flatten()
        .map(|(k, v)| (k, v.as_str().unwrap_or_default()))
        .collect();
    labels.sort_unstable();
    let mut out = String::from("&LabelSelector{MatchLabels:map[string]string{");
    for (k, v) in labels {
        out.push_str(&format!("{k}: {v},"));
    }
    out.push_str("},MatchExpressions:[]LabelSelectorRequirement{");
    for e in arr_at(sel, &["matchExpressions"]) {
        let values: Vec<&str> = arr_at(e, &["values"])
            .iter()
            .map(|v| v.as_str().unwrap_or_default())
            .collect();
        out.push_str(&format!(
            "LabelSelectorRequirement{{Key:{},Operator:{},Values:[{}],}},",
            str_at(e, &["key"]),
            str_at(e, &["operator"]),
            values.join(" ")
        ));
    }
    out.push_str("},}");
    out
}

/// `layoutContainerCells`: container names and images, each joined by `,`, from a pod spec.
pub(crate) fn container_cells(pod_spec: Option<&Value>) -> (String, String) {
    let containers = pod_spec.map_or(&[][..], |s| arr_at(s, &["containers"]));
    let names: Vec<&str> = containers.iter().map(|c| str_at(c, &["name"])).collect();
    let images: Vec<&str> = containers.iter().map(|c| str_at(c, &["image"])).collect();
    (names.join(","), images.join(","))
}

/// `intstr.IntOrString.String()`.
pub(crate) fn int_or_string(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => super::json::int(other).to_string(),
    }
}

/// `printBoolPtr`: `True`, `False`, or `<unset>` for nil.
pub(crate) fn print_bool_ptr(v: Option<bool>) -> &'static str {
    match v {
        Some(true) => "True",
        Some(false) => "False",
        None => "<unset>",
    }
}

/// `listWithMoreString`: the first `max` entries, then `+ N more...`; `<unset>` when empty.
pub(crate) fn list_with_more(list: &[String], more: bool, count: usize, max: usize) -> String {
    let ret = list.join(",");
    if more {
        return format!("{ret} + {} more...", count.saturating_sub(max));
    }
    if ret.is_empty() {
        return "<unset>".to_owned();
    }
    ret
}

/// `loadBalancerStatusStringer` with `wide` set (the API server always prints wide): the IPs,
/// or hostnames where an entry has no IP, sorted and de-duplicated.
pub(crate) fn load_balancer_status(status: Option<&Value>) -> String {
    let mut out: Vec<&str> = status
        .map_or(&[][..], |s| arr_at(s, &["ingress"]))
        .iter()
        .filter_map(|i| {
            let ip = str_at(i, &["ip"]);
            let host = str_at(i, &["hostname"]);
            if !ip.is_empty() {
                Some(ip)
            } else if !host.is_empty() {
                Some(host)
            } else {
                None
            }
        })
        .collect();
    out.sort_unstable();
    out.dedup();
    out.join(",")
}

/// `helper.GetAccessModesAsString`: short names in a fixed order, whatever the list's order.
pub(crate) fn access_modes(modes: &[Value]) -> String {
    let has = |m: &str| modes.iter().any(|v| v.as_str() == Some(m));
    [
        ("ReadWriteOnce", "RWO"),
        ("ReadOnlyMany", "ROX"),
        ("ReadWriteMany", "RWX"),
        ("ReadWriteOncePod", "RWOP"),
    ]
    .iter()
    .filter(|(long, _)| has(long))
    .map(|(_, short)| *short)
    .collect::<Vec<_>>()
    .join(",")
}

/// `net.JoinHostPort`: brackets around hosts containing a colon (IPv6).
pub(crate) fn join_host_port(host: &str, port: i64) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// The first condition of `type` in a `conditions` list.
pub(crate) fn condition<'a>(conditions: &'a [Value], type_: &str) -> Option<&'a Value> {
    conditions.iter().find(|c| str_at(c, &["type"]) == type_)
}

/// True when the first condition of `type` has status `True` (`hasJobCondition` and friends).
pub(crate) fn condition_true(conditions: &[Value], type_: &str) -> bool {
    condition(conditions, type_).is_some_and(|c| str_at(c, &["status"]) == "True")
}

/// `fmt.Sprintf("%s/%s", ...)` of a `{kind, name}`-style reference.
pub(crate) fn slash_pair(v: Option<&Value>, a: &str, b: &str) -> String {
    let v = v.unwrap_or(&Value::Null);
    format!("{}/{}", str_at(v, &[a]), str_at(v, &[b]))
}

/// The value at `path` if it is a non-empty string, else `<none>`.
pub(crate) fn or_none(v: &Value, path: &[&str]) -> String {
    match at(v, path).and_then(Value::as_str) {
        Some(s) if !s.is_empty() => s.to_owned(),
        _ => "<none>".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn labels_sort_as_whole_pairs() {
        let m = json!({"a": "1", "a.b": "2", "b": ""});
        assert_eq!(format_labels(m.as_object()), "a.b=2,a=1,b=");
        assert_eq!(format_labels(None), "<none>");
        assert_eq!(format_labels(json!({}).as_object()), "<none>");
    }

    #[test]
    fn label_selectors_print_like_upstream() {
        let sel = json!({
            "matchLabels": {"app": "web"},
            "matchExpressions": [
                {"key": "tier", "operator": "In", "values": ["b", "a"]},
                {"key": "env", "operator": "NotIn", "values": ["prod"]},
                {"key": "canary", "operator": "DoesNotExist"},
                {"key": "zone", "operator": "Exists", "values": []}
            ]
        });
        assert_eq!(
            format_label_selector(Some(&sel)),
            "app=web,!canary,env notin (prod),tier in (a,b),zone"
        );
        assert_eq!(format_label_selector(None), "<none>");
        assert_eq!(format_label_selector(Some(&json!({}))), "<none>");
        assert_eq!(label_selector_string(None), Ok(String::new()));
        for bad in [
            json!({"matchExpressions": [{"key": "a", "operator": "Gt", "values": ["1"]}]}),
            json!({"matchExpressions": [{"key": "a", "operator": "In"}]}),
            json!({"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]}),
            json!({"matchLabels": {"bad key!": "x"}}),
            json!({"matchLabels": {"k": "bad value!"}}),
            json!({"matchLabels": {"k": 1}}),
        ] {
            assert_eq!(format_label_selector(Some(&bad)), "<error>", "{bad}");
        }
    }

    #[test]
    fn go_selector_string() {
        let sel = json!({"matchLabels": {"b": "2", "a": "1"},
                         "matchExpressions": [{"key": "k", "operator": "In", "values": ["x", "y"]}]});
        assert_eq!(
            go_label_selector_string(&sel),
            "&LabelSelector{MatchLabels:map[string]string{a: 1,b: 2,},MatchExpressions:\
             []LabelSelectorRequirement{LabelSelectorRequirement{Key:k,Operator:In,Values:[x y],},},}"
        );
    }

    #[test]
    fn small_helpers() {
        assert_eq!(
            access_modes(&[json!("ReadWriteMany"), json!("ReadWriteOnce"), json!(3)]),
            "RWO,RWX"
        );
        assert_eq!(join_host_port("10.0.0.1", 80), "10.0.0.1:80");
        assert_eq!(join_host_port("2001:db8::1", 80), "[2001:db8::1]:80");
        assert_eq!(int_or_string(&json!(22)), "22");
        assert_eq!(int_or_string(&json!("50%")), "50%");
        assert_eq!(
            load_balancer_status(Some(&json!({"ingress": [
                {"ip": "3.4.5.6"}, {"hostname": "lb.example"}, {"ip": "3.4.5.6"}, {}
            ]}))),
            "3.4.5.6,lb.example"
        );
        assert_eq!(list_with_more(&[], false, 0, 3), "<unset>");
    }
}
