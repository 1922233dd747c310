#!/usr/bin/env python3
"""Derives `discovery-v1.37-delta.json` from k8s-openapi's Kubernetes 1.37 types.

The resource table's base is upstream kube-apiserver 1.26's captured discovery
(`discovery-v1.26.json`). Upstream 1.37 serves, by default, every GA (v1, v2) group
version and no beta or alpha ones, so this script lists:
- "remove": the group/versions of the capture upstream no longer serves (betas);
- "add": GA resources of the 1.37 API absent from the capture, with their kind, scope,
  verbs (review kinds are create-only, as upstream), a `status` subresource when the type
  has a status, and the short names and categories upstream declares for them (kept by
  hand below: the types do not carry them).
Run: python3 gen-discovery-1.37.py <k8s-openapi-0.29 src/v1_37 dir> > discovery-v1.37-delta.json
"""
import json, os, re, sys

root = sys.argv[1]
base = json.load(open(os.path.join(os.path.dirname(__file__), "discovery-v1.26.json")))
FULL = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
# Upstream's short names and categories for the resources added since 1.26.
SHORT = {"ipaddresses": ["ip"], "volumeattributesclasses": ["vac"]}
CATEGORIES = {
    "validatingadmissionpolicies": ["api-extensions"],
    "validatingadmissionpolicybindings": ["api-extensions"],
    "mutatingadmissionpolicies": ["api-extensions"],
    "mutatingadmissionpolicybindings": ["api-extensions"],
}
# Subresources the types do not reveal.
EXTRA = {("", "v1", "pods"): [("resize", "Pod", ["get", "patch", "update"])]}

def gv_key(api_version):
    return "core/v1" if api_version == "v1" else api_version

add = {}
for dirpath, _, files in os.walk(os.path.join(root, "api")):
    for f in sorted(files):
        src = open(os.path.join(dirpath, f)).read()
        m = re.search(r'impl crate::Resource for (\w+) \{\s*const API_VERSION: &\'static str = "([^"]+)";'
                      r'.*?const KIND: &\'static str = "(\w+)";.*?const URL_PATH_SEGMENT: &\'static str = "(\w+)";'
                      r'\s*type Scope = crate::(\w+);', src, re.S)
        if not m:
            continue
        _, api_version, kind, plural, scope = m.groups()
        version = api_version.split("/")[-1]
        if not re.fullmatch(r"v\d+", version) or scope == "SubResourceScope":
            continue
        key = gv_key(api_version)
        if any(r["name"] == plural for r in base.get(key, [])):
            continue
        listable = f"impl crate::ListableResource for {kind}" in src
        namespaced = scope == "NamespaceResourceScope"
        verbs = FULL if listable else ["create"]
        entry = {"kind": kind, "name": plural, "namespaced": namespaced, "singularName": "",
                 "verbs": verbs}
        if plural in SHORT:
            entry["shortNames"] = SHORT[plural]
        if plural in CATEGORIES:
            entry["categories"] = CATEGORIES[plural]
        rs = add.setdefault(key, [])
        rs.append(entry)
        if listable and re.search(r"\n    pub status: ", src):
            rs.append({"kind": kind, "name": plural + "/status", "namespaced": namespaced,
                       "singularName": "", "verbs": ["get", "patch", "update"]})
for (group, version, plural), subs in EXTRA.items():
    key = gv_key(f"{group}/{version}" if group else version)
    for name, kind, verbs in subs:
        ns = next(r["namespaced"] for r in base[key] if r["name"] == plural)
        add.setdefault(key, []).append({"kind": kind, "name": f"{plural}/{name}", "namespaced": ns,
                                        "singularName": "", "verbs": verbs})
remove = sorted(k for k in base if not re.fullmatch(r"v\d+", k.split("/")[-1]))
print(json.dumps({"remove": remove, "add": {k: add[k] for k in sorted(add)}}, indent=1))
