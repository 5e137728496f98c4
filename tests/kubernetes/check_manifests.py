#!/usr/bin/python3
"""Strict offline check of every Kubernetes manifest and example shmfaas ships (test k8s-schema).

No cluster here, so the API server's own validation cannot run. Instead each YAML document is
walked against the Kubernetes API models of Debian's python3-kubernetes (openapi_types gives every
field's type, attribute_map its JSON name): a field the model does not have, a value of the wrong
type, a missing required field or a duplicate key is an error naming its path. (ApiClient's own
deserialize is lenient: it drops unknown fields and coerces types, so it is not used.) A Knative
Service has no model there: its pod spec part is checked as a V1PodSpec plus Knative's few extra
fields. stack.yml is not a Kubernetes object: it is checked against faas-cli's stack file keys and
shmfaas' envVars allow-list. On top of the schema, shmfaas' own rules: only the store runs as root,
function pods mount only the socket directory and read-only, the store pod is Guaranteed QoS with a
memory limit of at least its budget + overhead, references (volumes, ConfigMap keys, $(VAR)) resolve.

usage: check_manifests.py [--root DIR] [--self-test-only] [FILE...]
With no FILE: deploy/kubernetes/*.yaml, examples/kubernetes/*.yaml and examples/kubernetes/stack.yml
under --root, then deploy/kubernetes/make-cert on a copy (its output checked the same way and its
certificate verified with openssl). Always runs the self-test first (broken manifests that must be
caught).
"""
import argparse
import base64
import copy
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile

import yaml
import kubernetes.client as k8s

# ---------------------------------------------------------------------------------------------
# YAML: duplicate keys are an error (PyYAML keeps the last one silently; kubectl refuses them)


class StrictLoader(yaml.SafeLoader):
    pass


def _mapping(loader, node, deep=False):
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if isinstance(key, (dict, list)):
            raise yaml.constructor.ConstructorError(None, None, "a map or list as a key",
                                                    key_node.start_mark)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, "duplicate key %r" % (key,), key_node.start_mark)
        seen.add(key)
    return yaml.SafeLoader.construct_mapping(loader, node, deep)


StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


def load_docs(text, name):
    """(docs, errors) of one YAML stream; empty documents are skipped."""
    try:
        return [d for d in yaml.load_all(text, Loader=StrictLoader) if d is not None], []
    except yaml.YAMLError as e:
        return [], ["%s: YAML: %s" % (name, str(e).replace("\n", " "))]


# ---------------------------------------------------------------------------------------------
# The strict walk over python3-kubernetes' models

KINDS = {
    ("v1", "Namespace"): "V1Namespace",
    ("v1", "ServiceAccount"): "V1ServiceAccount",
    ("v1", "ConfigMap"): "V1ConfigMap",
    ("v1", "Secret"): "V1Secret",
    ("v1", "Service"): "V1Service",
    ("v1", "Pod"): "V1Pod",
    ("v1", "PersistentVolumeClaim"): "V1PersistentVolumeClaim",
    ("apps/v1", "Deployment"): "V1Deployment",
    ("apps/v1", "DaemonSet"): "V1DaemonSet",
    ("rbac.authorization.k8s.io/v1", "Role"): "V1Role",
    ("rbac.authorization.k8s.io/v1", "RoleBinding"): "V1RoleBinding",
    ("rbac.authorization.k8s.io/v1", "ClusterRole"): "V1ClusterRole",
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"): "V1ClusterRoleBinding",
    ("admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration"):
        "V1MutatingWebhookConfiguration",
    ("policy/v1", "PodDisruptionBudget"): "V1PodDisruptionBudget",
}

# Resource quantities: the models type them str, the API server also takes plain numbers.
QUANTITY = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][+-]?\d+)?$")
_required_cache = {}


def model_class(name):
    cls = getattr(k8s, name, None)
    return cls if cls is not None and hasattr(cls, "openapi_types") else None


def required_fields(cls):
    """Attributes whose setter refuses None under client-side validation: the required ones."""
    if cls not in _required_cache:
        conf = k8s.Configuration()
        conf.client_side_validation = True
        obj = cls.__new__(cls)
        obj.local_vars_configuration = conf
        req = set()
        for attr in cls.openapi_types:
            try:
                setattr(obj, attr, None)
            except ValueError:
                req.add(attr)
        _required_cache[cls] = req
    return _required_cache[cls]


def setter_check(cls, attr, value):
    """The model's own value checks (enums, ranges) on a primitive; an error string or None."""
    conf = k8s.Configuration()
    conf.client_side_validation = True
    obj = cls.__new__(cls)
    obj.local_vars_configuration = conf
    try:
        setattr(obj, attr, value)
    except ValueError as e:
        return str(e)
    return None


def is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def walk(value, typ, path, errs, relax_required=False):
    """Check value against the model type string typ ('str', 'list[V1Container]', ...)."""
    if typ.startswith("list["):
        if not isinstance(value, list):
            errs.append("%s: expected a list (%s), got %s" % (path, typ, type(value).__name__))
            return
        for i, v in enumerate(value):
            walk(v, typ[5:-1], "%s[%d]" % (path, i), errs, relax_required)
        return
    if typ.startswith("dict("):
        inner = typ[typ.index(",") + 1:-1].strip()
        if not isinstance(value, dict):
            errs.append("%s: expected a map (%s), got %s" % (path, typ, type(value).__name__))
            return
        for k, v in value.items():
            if not isinstance(k, str):
                errs.append("%s: key %r is not a string" % (path, k))
            walk(v, inner, "%s.%s" % (path, k), errs, relax_required)
        return
    if typ == "str":
        if not isinstance(value, str):
            errs.append("%s: expected a string, got %s %r" % (path, type(value).__name__, value))
        return
    if typ == "int":
        if not is_int(value):
            errs.append("%s: expected an integer, got %s %r" % (path, type(value).__name__, value))
        return
    if typ == "float":
        if not (is_int(value) or isinstance(value, float)):
            errs.append("%s: expected a number, got %s %r" % (path, type(value).__name__, value))
        return
    if typ == "bool":
        if not isinstance(value, bool):
            errs.append("%s: expected true/false, got %s %r" % (path, type(value).__name__, value))
        return
    if typ == "datetime":
        if not isinstance(value, str):
            errs.append("%s: expected a timestamp string" % path)
        return
    if typ == "object":
        # Every 'object' field of the models used here is an IntOrString (ports, maxUnavailable).
        if not (is_int(value) or isinstance(value, str)):
            errs.append("%s: expected an integer or a string, got %s" % (path, type(value).__name__))
        return
    cls = model_class(typ)
    if cls is None:
        errs.append("%s: checker does not know type %s" % (path, typ))
        return
    walk_model(value, cls, path, errs, relax_required)


def walk_model(value, cls, path, errs, relax_required=False):
    if not isinstance(value, dict):
        errs.append("%s: expected an object (%s), got %s" % (path, cls.__name__, type(value).__name__))
        return
    by_json = {j: a for a, j in cls.attribute_map.items()}
    for key, v in value.items():
        attr = by_json.get(key)
        if attr is None:
            errs.append("%s.%s: unknown field (not in %s)" % (path, key, cls.__name__))
            continue
        typ = cls.openapi_types[attr]
        sub = "%s.%s" % (path, key)
        if cls.__name__ == "V1ResourceRequirements" and typ == "dict(str, str)":
            check_quantities(v, sub, errs)
            continue
        walk(v, typ, sub, errs, relax_required)
        if typ in ("str", "int", "bool") and not errs_for(errs, sub):
            msg = setter_check(cls, attr, v)
            if msg:
                errs.append("%s: %s" % (sub, msg))
    if not relax_required:
        for attr in sorted(required_fields(cls)):
            if cls.attribute_map[attr] not in value:
                errs.append("%s: required field %s missing (%s)" % (path, cls.attribute_map[attr],
                                                                    cls.__name__))


def errs_for(errs, path):
    return any(e.startswith(path + ":") for e in errs)


def check_quantities(value, path, errs):
    if not isinstance(value, dict):
        errs.append("%s: expected a map of quantities" % path)
        return
    for k, q in value.items():
        if isinstance(q, bool) or not (is_int(q) or isinstance(q, float) or isinstance(q, str)):
            errs.append("%s.%s: expected a quantity, got %s" % (path, k, type(q).__name__))
        elif not QUANTITY.match(str(q)):
            errs.append("%s.%s: %r is not a quantity" % (path, k, q))


# ---------------------------------------------------------------------------------------------
# Knative Service: serving.knative.dev/v1 has no model here; its template's spec is a PodSpec subset
# plus these fields (knative.dev/serving pkg/apis/serving/v1 RevisionSpec, ServiceSpec).

KNATIVE_REVISION_EXTRA = {"containerConcurrency": "int", "timeoutSeconds": "int",
                          "responseStartTimeoutSeconds": "int", "idleTimeoutSeconds": "int"}
KNATIVE_TRAFFIC = {"revisionName": "str", "configurationName": "str", "latestRevision": "bool",
                   "percent": "int", "tag": "str", "url": "str"}


def check_knative_service(doc, path, errs):
    allowed_top = {"apiVersion", "kind", "metadata", "spec", "status"}
    for k in doc:
        if k not in allowed_top:
            errs.append("%s.%s: unknown field (Knative Service)" % (path, k))
    walk(doc.get("metadata", {}), "V1ObjectMeta", path + ".metadata", errs)
    spec = doc.get("spec")
    if not isinstance(spec, dict):
        errs.append("%s.spec: required object missing" % path)
        return
    for k, v in spec.items():
        if k == "template":
            continue
        if k != "traffic":
            errs.append("%s.spec.%s: unknown field (Knative ServiceSpec)" % (path, k))
            continue
        if not isinstance(v, list):
            errs.append("%s.spec.traffic: expected a list" % path)
            continue
        for i, t in enumerate(v):
            check_fields(t, KNATIVE_TRAFFIC, "%s.spec.traffic[%d]" % (path, i), errs)
    tmpl = spec.get("template")
    if not isinstance(tmpl, dict):
        errs.append("%s.spec.template: required object missing" % path)
        return
    for k in tmpl:
        if k not in ("metadata", "spec"):
            errs.append("%s.spec.template.%s: unknown field" % (path, k))
    walk(tmpl.get("metadata", {}), "V1ObjectMeta", path + ".spec.template.metadata", errs)
    pod = tmpl.get("spec")
    if not isinstance(pod, dict):
        errs.append("%s.spec.template.spec: required object missing" % path)
        return
    core = {k: v for k, v in pod.items() if k not in KNATIVE_REVISION_EXTRA}
    extra = {k: v for k, v in pod.items() if k in KNATIVE_REVISION_EXTRA}
    check_fields(extra, KNATIVE_REVISION_EXTRA, path + ".spec.template.spec", errs)
    # Knative defaults container names and probe ports: required-ness is relaxed, types are not.
    walk(core, "V1PodSpec", path + ".spec.template.spec", errs, relax_required=True)
    if not isinstance(core.get("containers"), list) or not core["containers"]:
        errs.append("%s.spec.template.spec.containers: at least one container" % path)


def check_fields(value, fields, path, errs):
    if not isinstance(value, dict):
        errs.append("%s: expected an object" % path)
        return
    for k, v in value.items():
        if k not in fields:
            errs.append("%s.%s: unknown field" % (path, k))
        else:
            walk(v, fields[k], "%s.%s" % (path, k), errs)


# ---------------------------------------------------------------------------------------------
# One Kubernetes document

def meta_name(doc):
    meta = doc.get("metadata")
    return meta.get("name", "?") if isinstance(meta, dict) else "?"


def check_doc(doc, path, errs):
    if not isinstance(doc, dict):
        errs.append("%s: a document must be an object" % path)
        return
    av, kind = doc.get("apiVersion"), doc.get("kind")
    if not isinstance(av, str) or not isinstance(kind, str):
        errs.append("%s: apiVersion and kind are required strings" % path)
        return
    path = "%s(%s %s)" % (path, kind, meta_name(doc))
    if (av, kind) == ("serving.knative.dev/v1", "Service"):
        check_knative_service(doc, path, errs)
    elif (av, kind) in KINDS:
        walk(doc, KINDS[(av, kind)], path, errs)
    else:
        errs.append("%s: apiVersion %s kind %s is not one this checker knows (a typo?)" % (path, av, kind))
        return
    meta = doc.get("metadata")
    if not isinstance(meta, dict) or not isinstance(meta.get("name"), str) or not meta["name"]:
        errs.append("%s: metadata.name is required" % path)


# ---------------------------------------------------------------------------------------------
# shmfaas' own rules over the documents of one set (deploy/ or examples/)

FUNCTION_LABEL = "com.shmfaas.model"
SOCKET_DIR = "/run/shmfaas"
STORE_OVERHEAD = 512 << 20  # the daemon + one compile of a ResNet-50-sized model (docs/kubernetes.md)
SIZE = re.compile(r"^(\d+(?:\.\d+)?)\s*([KMGT]?)(i?B?|iB)?$")


def parse_size(s):
    """Bytes of a store --budget or a memory quantity (Ki/Mi/Gi, KiB/MiB/GiB, K/M/G)."""
    if is_int(s):
        return s
    m = SIZE.match(str(s).strip())
    if not m:
        return None
    unit = m.group(2)
    binary = (m.group(3) or "").startswith("i") or unit in ("",) or m.group(3) == "B"
    mult = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40} if binary else \
        {"K": 10 ** 3, "M": 10 ** 6, "G": 10 ** 9, "T": 10 ** 12}
    return int(float(m.group(1)) * mult[unit])


def env_allow_list(root):
    """Keys shmfaas-fn reads (src/common/fnenv.c: the one allow-list)."""
    with open(os.path.join(root, "src/common/fnenv.c")) as f:
        return set(re.findall(r'^\s*\{"([A-Za-z_]+)", (?:true|false)\},', f.read(), re.M))


def pod_templates(doc):
    """(labels, pod spec, what) of each pod a document makes."""
    kind = doc.get("kind")
    spec = doc.get("spec") or {}
    if kind == "Pod":
        return [((doc.get("metadata") or {}).get("labels") or {}, spec, "pod")]
    if kind in ("Deployment", "DaemonSet") or (kind == "Service" and "serving.knative.dev" in
                                               str(doc.get("apiVersion"))):
        t = spec.get("template") or {}
        return [((t.get("metadata") or {}).get("labels") or {}, t.get("spec") or {}, "template")]
    return []


def runs_as_root(pod, c):
    psc, csc = pod.get("securityContext") or {}, c.get("securityContext") or {}
    uid = csc.get("runAsUser", psc.get("runAsUser"))
    nonroot = csc.get("runAsNonRoot", psc.get("runAsNonRoot"))
    return uid == 0 or (uid is None and nonroot is not True) or csc.get("privileged") is True


def check_rules(docs, root, errs):
    """docs: [(path, doc)] of one set, schema-valid."""
    configmaps = {(d.get("metadata") or {}).get("name"): d.get("data") or {}
                  for _, d in docs if d.get("kind") == "ConfigMap"}
    allowed_env = env_allow_list(root)
    for path, doc in docs:
        name = "%s(%s %s)" % (path, doc.get("kind"), meta_name(doc))
        if doc.get("kind") in ("Deployment", "DaemonSet"):
            sel = ((doc.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
            labels = (((doc.get("spec") or {}).get("template") or {}).get("metadata") or {}).get("labels") or {}
            for k, v in sel.items():
                if labels.get(k) != v:
                    errs.append("%s: selector %s=%s does not match the template's labels" % (name, k, v))
        for labels, pod, _ in pod_templates(doc):
            check_pod(name, labels, pod, configmaps, allowed_env, errs)


def check_pod(name, labels, pod, configmaps, allowed_env, errs):
    containers = (pod.get("containers") or []) + (pod.get("initContainers") or [])
    volumes = {v.get("name"): v for v in pod.get("volumes") or []}
    store = any("shmfaas-store" in " ".join(c.get("command") or []) for c in containers)
    function = FUNCTION_LABEL in labels
    for c in containers:
        cname = "%s container %s" % (name, c.get("name", "?"))
        envs = {e.get("name"): e for e in c.get("env") or []}
        for word in (c.get("command") or []) + (c.get("args") or []):
            for var in re.findall(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", str(word)):
                if var not in envs:
                    errs.append("%s: $(%s) is not in its env" % (cname, var))
        for e in envs.values():
            ref = ((e.get("valueFrom") or {}).get("configMapKeyRef")) or {}
            if ref and ref.get("name") in configmaps and ref.get("key") not in configmaps[ref["name"]]:
                errs.append("%s: env %s: ConfigMap %s has no key %s" % (cname, e["name"], ref["name"],
                                                                        ref.get("key")))
        for m in c.get("volumeMounts") or []:
            if m.get("name") not in volumes:
                errs.append("%s: volumeMount %s names no volume" % (cname, m.get("name")))
        if runs_as_root(pod, c) and not store:
            errs.append("%s: runs as root (or may): only the store pod may (set runAsNonRoot and a "
                        "non-root runAsUser)" % cname)
        if function:
            check_function_container(cname, c, volumes, allowed_env, errs)
        if store:
            check_store_container(cname, c, configmaps, errs)
    if function:
        for v in volumes.values():
            hp = (v.get("hostPath") or {}).get("path")
            if hp is not None and hp.rstrip("/") != SOCKET_DIR:
                errs.append("%s: function pods mount only %s from the node, not %s" % (name, SOCKET_DIR, hp))


def check_function_container(cname, c, volumes, allowed_env, errs):
    sc = c.get("securityContext") or {}
    if sc.get("allowPrivilegeEscalation") is not False:
        errs.append("%s: set allowPrivilegeEscalation: false (the webhook refuses it otherwise)" % cname)
    for e in c.get("env") or []:
        if e.get("name") not in allowed_env:
            errs.append("%s: env %s is not one shmfaas-fn reads (src/common/fnenv.c)" % (cname, e.get("name")))
    for m in c.get("volumeMounts") or []:
        hp = ((volumes.get(m.get("name")) or {}).get("hostPath") or {}).get("path")
        if hp is not None and m.get("readOnly") is not True:
            errs.append("%s: the socket directory must be mounted readOnly" % cname)
    for probe, want in (("livenessProbe", "/_/health"), ("readinessProbe", "/_/ready")):
        got = ((c.get(probe) or {}).get("httpGet") or {}).get("path")
        if got is not None and got != want:
            errs.append("%s: %s should GET %s, not %s" % (cname, probe, want, got))


def check_store_container(cname, c, configmaps, errs):
    res = c.get("resources") or {}
    req, lim = res.get("requests") or {}, res.get("limits") or {}
    for r in ("cpu", "memory"):
        if r not in lim or str(req.get(r)) != str(lim.get(r)):
            errs.append("%s: Guaranteed QoS needs requests.%s == limits.%s" % (cname, r, r))
    caps = (c.get("securityContext") or {}).get("capabilities") or {}
    if caps.get("drop") != ["ALL"] or caps.get("add") != ["LINUX_IMMUTABLE"]:
        errs.append("%s: drop ALL capabilities, add only LINUX_IMMUTABLE" % cname)
    args = c.get("args") or []
    if "--keep-images" not in args:
        errs.append("%s: --keep-images is needed so a restarted store re-adopts its images" % cname)
    budget = None
    for a in args:
        if str(a).startswith("--budget="):
            budget = str(a)[len("--budget="):]
    m = re.fullmatch(r"\$\(([A-Za-z_0-9]+)\)", budget or "")
    if m:
        env = {e.get("name"): e for e in c.get("env") or []}.get(m.group(1)) or {}
        ref = (env.get("valueFrom") or {}).get("configMapKeyRef") or {}
        budget = (configmaps.get(ref.get("name")) or {}).get(ref.get("key"))
    b, limit = parse_size(budget) if budget else None, parse_size(lim.get("memory", ""))
    if b is None or limit is None:
        errs.append("%s: cannot read --budget %r or the memory limit" % (cname, budget))
    elif limit < b + STORE_OVERHEAD:
        errs.append("%s: memory limit %s < budget %s + %d MiB overhead" % (cname, lim["memory"], budget,
                                                                           STORE_OVERHEAD >> 20))


# ---------------------------------------------------------------------------------------------
# Files that are not Kubernetes objects

KUSTOMIZATION = {"apiVersion": "str", "kind": "str", "namespace": "str", "resources": "list[str]",
                 "images": "list[object]", "labels": "list[object]", "commonLabels": "dict(str, str)",
                 "commonAnnotations": "dict(str, str)", "patches": "list[object]",
                 "configMapGenerator": "list[object]", "secretGenerator": "list[object]",
                 "namePrefix": "str", "nameSuffix": "str"}


def check_kustomization(doc, path, errs):
    if not isinstance(doc, dict):
        errs.append("%s: not an object" % path)
        return []
    for k, v in doc.items():
        if k not in KUSTOMIZATION:
            errs.append("%s.%s: unknown field (Kustomization)" % (path, k))
        elif KUSTOMIZATION[k] in ("list[object]",):
            if not isinstance(v, list) or not all(isinstance(x, dict) for x in v):
                errs.append("%s.%s: expected a list of objects" % (path, k))
        else:
            walk(v, KUSTOMIZATION[k], "%s.%s" % (path, k), errs)
    if doc.get("apiVersion") != "kustomize.config.k8s.io/v1beta1" or doc.get("kind") != "Kustomization":
        errs.append("%s: apiVersion kustomize.config.k8s.io/v1beta1, kind Kustomization" % path)
    images = doc.get("images") if isinstance(doc.get("images"), list) else []
    for i, img in enumerate(images):
        if isinstance(img, dict):
            check_fields(img, {"name": "str", "newName": "str", "newTag": "str", "digest": "str"},
                         "%s.images[%d]" % (path, i), errs)
    resources = doc.get("resources") if isinstance(doc.get("resources"), list) else []
    return [r for r in resources if isinstance(r, str)]


STACK_FUNCTION = {"image": "str", "lang": "str", "handler": "str", "fprocess": "str",
                  "environment": "dict(str, str)", "environment_file": "list[str]",
                  "labels": "dict(str, str)", "annotations": "dict(str, str)", "secrets": "list[str]",
                  "constraints": "list[str]", "limits": "dict(str, str)", "requests": "dict(str, str)",
                  "readonly_root_filesystem": "bool", "namespace": "str", "build_args": "dict(str, str)",
                  "skip_build": "bool"}


def check_stack(doc, path, root, errs):
    """faas-cli's stack file (not a Kubernetes object): its keys, and what faas-netes will deploy."""
    if not isinstance(doc, dict):
        errs.append("%s: not an object" % path)
        return
    for k in doc:
        if k not in ("version", "provider", "functions", "configuration"):
            errs.append("%s.%s: unknown field (stack file)" % (path, k))
    check_fields(doc.get("provider") or {}, {"name": "str", "gateway": "str", "network": "str"},
                 path + ".provider", errs)
    allowed_env = env_allow_list(root)
    fns = doc.get("functions")
    if not isinstance(fns, dict) or not fns:
        errs.append("%s.functions: at least one function" % path)
        return
    for name, fn in fns.items():
        p = "%s.functions.%s" % (path, name)
        check_fields(fn, STACK_FUNCTION, p, errs)
        if not isinstance(fn, dict):
            continue
        for k in ("limits", "requests"):
            if isinstance(fn.get(k), dict):
                for r in fn[k]:
                    if r not in ("memory", "cpu"):
                        errs.append("%s.%s.%s: unknown field (memory, cpu)" % (p, k, r))
                for r, q in fn[k].items():
                    if isinstance(q, str) and not QUANTITY.match(q):
                        errs.append("%s.%s.%s: %r is not a quantity" % (p, k, r, q))
        labels = fn.get("labels") if isinstance(fn.get("labels"), dict) else {}
        if FUNCTION_LABEL not in labels:
            errs.append("%s: label %s is what makes shmfaas-webhook inject the socket" % (p, FUNCTION_LABEL))
        env = fn.get("environment") if isinstance(fn.get("environment"), dict) else {}
        for k in env:
            if k not in allowed_env:
                errs.append("%s.environment.%s: not a key shmfaas-fn reads" % (p, k))
        if "model" not in env:
            errs.append("%s.environment: model is required (the store resolves it)" % p)


# ---------------------------------------------------------------------------------------------
# Driver

def check_file(path, root, errs):
    """Schema-check one file; returns its Kubernetes documents [(path, doc)] for check_rules."""
    with open(path) as f:
        text = f.read()
    rel = os.path.relpath(path, root)
    docs, e = load_docs(text, rel)
    errs.extend(e)
    if not docs and not e:
        errs.append("%s: no documents" % rel)
    base = os.path.basename(path)
    if base == "stack.yml":
        for i, d in enumerate(docs):
            check_stack(d, "%s[%d]" % (rel, i), root, errs)
        return []
    if base == "kustomization.yaml":
        for d in docs:
            for r in check_kustomization(d, rel, errs):
                if not os.path.isfile(os.path.join(os.path.dirname(path), r)):
                    errs.append("%s: resource %s does not exist" % (rel, r))
            listed = set(check_kustomization(d, rel, []))
            for other in sorted(glob.glob(os.path.join(os.path.dirname(path), "*.yaml"))):
                o = os.path.basename(other)
                if o != base and o not in listed:
                    errs.append("%s: %s is not in resources" % (rel, o))
        return []
    out = []
    for i, d in enumerate(docs):
        p = "%s[%d]" % (rel, i)
        n = len(errs)
        check_doc(d, p, errs)
        if len(errs) == n:
            out.append((p, d))
    return out


def check_set(files, root):
    errs, docs = [], []
    for f in files:
        docs.extend(check_file(f, root, errs))
    check_rules(docs, root, errs)
    return errs


def self_test(root):
    """Broken variants of the shipped manifests: each must be caught, naming the path."""
    src = os.path.join(root, "examples/kubernetes/function-deployment.yaml")
    with open(src) as f:
        good = list(yaml.load_all(f, Loader=StrictLoader))
    dep = good[0]

    def variant(mutate):
        d = copy.deepcopy(dep)
        mutate(d)
        return d

    pod = lambda d: d["spec"]["template"]["spec"]  # noqa: E731
    cases = [
        ("unknown field", "imagePullPolicyy: unknown field",
         variant(lambda d: pod(d)["containers"][0].update(imagePullPolicyy="Always"))),
        ("unknown top-level field", "specs: unknown field", variant(lambda d: d.update(specs={}))),
        ("wrong type (string for int)", "spec.replicas: expected an integer",
         variant(lambda d: d["spec"].update(replicas="4"))),
        ("wrong type (int for string)", "image: expected a string",
         variant(lambda d: pod(d)["containers"][0].update(image=5))),
        ("wrong type (map for list)", "containers: expected a list",
         variant(lambda d: pod(d).update(containers={"name": "x"}))),
        ("wrong type (string for bool)", "readOnly: expected true/false",
         variant(lambda d: pod(d)["containers"][0]["volumeMounts"][0].update(readOnly="yes"))),
        ("bad quantity", "is not a quantity",
         variant(lambda d: pod(d)["containers"][0]["resources"]["limits"].update(memory="64 MB"))),
        ("missing required", "required field name missing",
         variant(lambda d: pod(d)["containers"][0].pop("name"))),
        ("unknown kind", "not one this checker knows", variant(lambda d: d.update(kind="Deploymnet"))),
        ("function pod as root", "runs as root",
         variant(lambda d: pod(d)["securityContext"].update(runAsUser=0))),
        ("function pod mounts /dev/shm", "mount only /run/shmfaas",
         variant(lambda d: pod(d)["volumes"][0]["hostPath"].update(path="/dev/shm"))),
        ("env outside the allow-list", "LD_PRELOAD is not one shmfaas-fn reads",
         variant(lambda d: pod(d)["containers"][0]["env"].append({"name": "LD_PRELOAD", "value": "x"}))),
        ("liveness on /_/ready", "should GET /_/health",
         variant(lambda d: pod(d)["containers"][0]["livenessProbe"]["httpGet"].update(path="/_/ready"))),
    ]
    failures = []
    for what, want, doc in cases:
        errs, docs = [], []
        check_doc(doc, "selftest", errs)
        if not errs:
            docs.append(("selftest", doc))
        check_rules(docs, root, errs)
        if not any(want in e for e in errs):
            failures.append("self-test %s: expected an error containing %r, got %r" % (what, want, errs))
    failures += self_test_sets(root)
    n = len(cases) + 1 + 5
    dup = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\ndata: {k: a, k: b}\n"
    if not any("duplicate key" in e for e in load_docs(dup, "dup")[1]):
        failures.append("self-test duplicate key: not caught")
    errs = []
    check_doc(dep, "selftest", errs)
    check_rules([("selftest", dep)], root, errs)
    if errs:
        failures.append("self-test: the unmodified example fails: %r" % errs)
    return failures, n


def self_test_sets(root):
    """Rules that need several documents (the store and its ConfigMap), Knative and stack.yml."""
    def load(rel):
        with open(os.path.join(root, rel)) as f:
            return list(yaml.load_all(f, Loader=StrictLoader))

    store, config = load("deploy/kubernetes/store-daemonset.yaml")[0], load("deploy/kubernetes/store-config.yaml")[0]
    knative, stack = load("examples/kubernetes/knative-service.yaml")[0], load("examples/kubernetes/stack.yml")[0]
    sc = lambda d: d["spec"]["template"]["spec"]["containers"][0]  # noqa: E731

    def with_(doc, mutate):
        d = copy.deepcopy(doc)
        mutate(d)
        return d

    cases = [
        ("store limit below budget + overhead", "< budget",
         [with_(store, lambda d: sc(d)["resources"].update(limits={"cpu": "1", "memory": "1Gi"},
                                                          requests={"cpu": "1", "memory": "1Gi"})), config]),
        ("store not Guaranteed", "Guaranteed QoS",
         [with_(store, lambda d: sc(d)["resources"]["requests"].update(memory="512Mi")), config]),
        ("store keeps CAP_SYS_ADMIN", "add only LINUX_IMMUTABLE",
         [with_(store, lambda d: sc(d)["securityContext"]["capabilities"].update(add=["LINUX_IMMUTABLE",
                                                                                      "SYS_ADMIN"])), config]),
        ("Knative unknown field", "containerConcurency: unknown field",
         [with_(knative, lambda d: d["spec"]["template"]["spec"].update(containerConcurency=1))]),
    ]
    failures = []
    for what, want, docs in cases:
        errs, ok = [], []
        for i, d in enumerate(docs):
            n = len(errs)
            check_doc(d, "selftest[%d]" % i, errs)
            if len(errs) == n:
                ok.append(("selftest[%d]" % i, d))
        check_rules(ok, root, errs)
        if not any(want in e for e in errs):
            failures.append("self-test %s: expected %r, got %r" % (what, want, errs))
    errs = []
    bad = with_(stack, lambda d: d["functions"]["resnet50"]["environment"].update(OMP_NUM_THREADS="8"))
    check_stack(bad, "selftest", root, errs)
    if not any("OMP_NUM_THREADS: not a key" in e for e in errs):
        failures.append("self-test stack.yml env: not caught: %r" % errs)
    return failures


def check_make_cert(root):
    """deploy/kubernetes/make-cert on a copy: the filled-in manifests still pass, and the Secret's
    certificate verifies against the caBundle for the webhook Service's name."""
    if shutil.which("openssl") is None:
        print("make-cert: skipped (no openssl)")
        return []
    tmp = tempfile.mkdtemp(prefix="shmfaas-k8s-schema.")
    try:
        d = os.path.join(tmp, "kubernetes")
        shutil.copytree(os.path.join(root, "deploy/kubernetes"), d)
        r = subprocess.run([os.path.join(d, "make-cert"), d], capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            return ["make-cert failed: %s" % r.stderr.strip()]
        errs = check_set(sorted(glob.glob(os.path.join(d, "*.yaml"))), root)
        with open(os.path.join(d, "webhook.yaml")) as f:
            hook = [x for x in yaml.load_all(f, Loader=StrictLoader) if x and x["kind"] ==
                    "MutatingWebhookConfiguration"][0]
        with open(os.path.join(d, "webhook-secret.yaml")) as f:
            secret = yaml.load(f, Loader=StrictLoader)
        svc = hook["webhooks"][0]["clientConfig"]["service"]
        with open(os.path.join(tmp, "ca.crt"), "wb") as f:
            f.write(base64.b64decode(hook["webhooks"][0]["clientConfig"]["caBundle"]))
        with open(os.path.join(tmp, "tls.crt"), "wb") as f:
            f.write(base64.b64decode(secret["data"]["tls.crt"]))
        host = "%s.%s.svc" % (svc["name"], svc["namespace"])
        r = subprocess.run(["openssl", "verify", "-purpose", "sslserver", "-verify_hostname", host,
                            "-CAfile", os.path.join(tmp, "ca.crt"), os.path.join(tmp, "tls.crt")],
                           capture_output=True, text=True, timeout=30)
        if r.returncode != 0:
            errs.append("make-cert: certificate does not verify for %s: %s" % (host, r.stdout + r.stderr))
        return errs
    finally:
        shutil.rmtree(tmp)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--root", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "../.."))
    ap.add_argument("--self-test-only", action="store_true")
    ap.add_argument("files", nargs="*")
    a = ap.parse_args()
    root = os.path.abspath(a.root)
    failures, n = self_test(root)
    for f in failures:
        print("FAIL", f)
    print("self-test: %d broken manifests, %d caught" % (n, n - len(failures)))
    if a.self_test_only:
        return 1 if failures else 0
    sets = [[os.path.abspath(f) for f in a.files]] if a.files else [
        sorted(glob.glob(os.path.join(root, "deploy/kubernetes/*.yaml"))),
        sorted(glob.glob(os.path.join(root, "examples/kubernetes/*.yaml")) +
               glob.glob(os.path.join(root, "examples/kubernetes/*.yml")))]
    total = 0
    for files in sets:
        if not files:
            failures.append("no manifests found")
        errs = check_set(files, root)
        for e in errs:
            print("ERROR", e)
        failures.extend(errs)
        total += len(files)
    if not a.files:
        errs = check_make_cert(root)
        for e in errs:
            print("ERROR", e)
        failures.extend(errs)
        print("make-cert: the filled-in manifests pass and the certificate verifies" if not errs else "")
    print("%d files checked, %d errors" % (total, len(failures)))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
