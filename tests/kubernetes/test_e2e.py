#!/usr/bin/env python3
"""The Kubernetes suite, for real in podman (issue 13): `podman kube play` runs the manifests of
deploy/kubernetes and examples/kubernetes in real containers with real cgroups (no control plane can
be installed here; docs/kubernetes.md says what that leaves untested).

    test_e2e.py CASE BUILD_DIR
      image       every program starts in localhost/shmfaas (ldd closure complete), user 12000, no shell
      node        the store DaemonSet's pod template as a one-replica Deployment and the ResNet-50
                  example with 4 replicas at 64 MiB each: all 4 answer through their own network
                  namespace, the store's cgroup holds the image, each function cgroup peaks under its
                  limit; the store pod is deleted and played again while a client loops through one
                  replica: no failed request, no recompile (re-adopted)
      store-late  a function pod started before its node's store becomes ready when the store arrives
      root        acceptance 3: a function container running as root with podman's default
                  capabilities cannot modify the image it maps (tests/kubernetes/attack_image.c)
      webhook-pod deploy/kubernetes/webhook.yaml's Deployment answering /mutate over HTTPS in podman
      webhook     a faas-netes-shaped Deployment (no socket volume) sent as an AdmissionReview to the
                  real shmfaas-webhook over HTTPS, its JSONPatch applied, played, answering

Each case builds localhost/shmfaas (deploy/images, seconds), uses its own temp dirs and pod names
and removes every pod, container and directory it made (the image stays for the next case).
podman runs with tests/kubernetes/containers.conf (CONTAINERS_CONF) and no network but loopback.
Exit 77 (skip) without root, podman or zoo/resnet50.
"""
import base64
import copy
import hashlib
import json
import os
import re
import resource
import shutil
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

import yaml  # python3-yaml, which python3-kubernetes depends on (scripts/bootstrap)

SRC = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONF = os.path.join(SRC, "tests", "kubernetes", "containers.conf")
IMAGE = "localhost/shmfaas:latest"
PREFIX = "k8se2e-%d" % os.getpid()
READY_BOUND_S = 300  # a first ResNet-50 compile on a busy 2-core machine, generously
MEM_LIMIT = 64 * 1024 * 1024


def log(*a):
    print(*a, flush=True)


def sh(*args, check=True, timeout=120, input=None):
    r = subprocess.run(args, capture_output=True, text=True, timeout=timeout, input=input)
    if check and r.returncode != 0:
        raise RuntimeError("%s: rc %d: %s%s" % (" ".join(args), r.returncode, r.stdout, r.stderr))
    return r


def podman(*args, **kw):
    return sh("podman", *args, **kw)


# ---- manifests: K2's files, pointed at this test's directories ----

def load_docs(rel):
    with open(os.path.join(SRC, rel)) as f:
        return [d for d in yaml.safe_load_all(f) if d]


def retarget_hostpaths(spec, paths):
    """Point each hostPath volume whose node path is in paths at this test's directory."""
    for v in spec.get("volumes", []):
        hp = v.get("hostPath")
        if hp and hp["path"] in paths:
            hp["path"] = paths[hp["path"]]
            hp.pop("type", None)


def as_deployment(ds, name, replicas):
    """A DaemonSet's pod template as a Deployment (podman 4.3 plays no DaemonSet)."""
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "labels": ds["metadata"].get("labels", {})},
            "spec": {"replicas": replicas, "selector": ds["spec"]["selector"],
                     "template": copy.deepcopy(ds["spec"]["template"])}}


def store_manifest(t, name):
    ds = next(d for d in load_docs("deploy/kubernetes/store-daemonset.yaml") if d["kind"] == "DaemonSet")
    dep = as_deployment(ds, name, 1)
    spec = dep["spec"]["template"]["spec"]
    retarget_hostpaths(spec, {"/run/shmfaas": t.run, "/dev/shm/shmfaas-node": t.images,
                              "/var/lib/shmfaas/models": t.models})
    # No kube-apiserver: no service accounts, priority classes or port bindings (network none).
    for k in ("serviceAccountName", "priorityClassName"):
        spec.pop(k, None)
    for c in spec["containers"]:
        c["image"] = IMAGE
        c.pop("ports", None)
        c.pop("livenessProbe", None)
        c.pop("readinessProbe", None)
    cm = next(d for d in load_docs("deploy/kubernetes/store-config.yaml") if d["kind"] == "ConfigMap")
    cm = copy.deepcopy(cm)
    cm["metadata"].pop("namespace", None)
    cm["data"]["budget"] = "512Mi"
    for c in spec["containers"]:
        expand_args(c, cm)
    return dep, cm


def expand_args(c, cm):
    """$(VAR) in args from the container's env, as the kubelet expands them (podman 4.3 does not)."""
    env = {}
    for e in c.get("env", []):
        ref = e.get("valueFrom", {}).get("configMapKeyRef")
        env[e["name"]] = cm["data"][ref["key"]] if ref else e.get("value", "")
    c["args"] = [re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: env.get(m.group(1), m.group(0)), a)
                 for a in c.get("args", [])]


def function_manifest(t, name, replicas, env_over=None, drop_socket=False):
    dep = next(d for d in load_docs("examples/kubernetes/function-deployment.yaml")
               if d["kind"] == "Deployment")
    dep = copy.deepcopy(dep)
    dep["metadata"]["name"] = name
    dep["spec"]["replicas"] = replicas
    spec = dep["spec"]["template"]["spec"]
    retarget_hostpaths(spec, {"/run/shmfaas": t.run})
    for c in spec["containers"]:
        c["image"] = IMAGE
        c.pop("ports", None)
        c.pop("livenessProbe", None)
        c.pop("readinessProbe", None)
        # JSON in, JSON out: the zoo's known-answer input for ResNet-50.
        env = [e for e in c["env"] if e["name"] not in ("input", "output", "topk")]
        for k, v in (env_over or {}).items():
            env = [e for e in env if e["name"] != k] + [{"name": k, "value": v}]
        c["env"] = env
    return dep


# ---- the test's node: directories, plays, pods ----

class Node:
    def __init__(self):
        self.tmp = tempfile.mkdtemp(prefix=PREFIX + ".")
        self.run = os.path.join(self.tmp, "run")
        self.models = os.path.join(self.tmp, "models")
        self.images = tempfile.mkdtemp(prefix=PREFIX + ".", dir="/dev/shm")
        os.makedirs(self.run)
        os.makedirs(self.models)
        os.chmod(self.tmp, 0o755)
        src = os.path.join(os.environ.get("SHMFAAS_ZOO", os.path.join(SRC, "zoo")), "resnet50", "model.onnx")
        dst = os.path.join(self.models, "resnet50.onnx")
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy(src, dst)
        self.files = []

    def play(self, docs, extra=()):
        path = os.path.join(self.tmp, "play-%d.yaml" % len(self.files))
        with open(path, "w") as f:
            yaml.safe_dump_all(docs, f)
        self.files.append(path)
        t0 = time.monotonic()
        # No bridge: its private-range addresses are not reachable here; loopback in each pod.
        podman("kube", "play", "--network", "none", *extra, path, timeout=180)
        return time.monotonic() - t0

    def cleanup(self, build):
        r = podman("pod", "ps", "--format", "{{.Name}}", check=False)
        for pod in r.stdout.split():
            if pod.startswith(PREFIX):
                podman("pod", "rm", "-f", "-t", "2", pod, check=False, timeout=120)
        store = os.path.join(build, "src", "store", "shmfaas-store")
        sh(store, "purge", "--dir", self.images, check=False)
        shutil.rmtree(self.images, ignore_errors=True)
        shutil.rmtree(self.tmp, ignore_errors=True)


def pod_containers(pod_prefix):
    """{container name: pid} of the running, non-infra containers of pods named pod_prefix*."""
    r = podman("ps", "--format", "json")
    out = {}
    for c in json.loads(r.stdout or "[]"):
        # Named <pod>-<container>: PodName stays empty in podman 4.3's ps without --pod.
        if c["Names"][0].startswith(pod_prefix) and not c.get("IsInfra"):
            name = c["Names"][0]
            pid = podman("inspect", "--format", "{{.State.Pid}}", name).stdout.strip()
            if pid and pid != "0":
                out[name] = int(pid)
    return out


def in_netns(pid, *curl_args, timeout=60):
    """curl http://127.0.0.1:8080 inside the network namespace of pid: (status, body)."""
    r = sh("nsenter", "-t", str(pid), "-n", "curl", "-s", "-m", str(timeout), "-o", "-",
           "-w", "\n%{http_code}", *curl_args, check=False, timeout=timeout + 10)
    body, _, code = r.stdout.rpartition("\n")
    return int(code or 0), body


def wait_ready(pid, bound=READY_BOUND_S):
    t0 = time.monotonic()
    while time.monotonic() - t0 < bound:
        code, _ = in_netns(pid, "http://127.0.0.1:8080/_/ready", timeout=5)
        if code == 200:
            return time.monotonic() - t0
        time.sleep(0.5)
    raise RuntimeError("pid %d not ready after %d s" % (pid, bound))


def infer(pid, input_path):
    code, body = in_netns(pid, "--data-binary", "@" + input_path, "-H", "Content-Type: application/json",
                          "http://127.0.0.1:8080/")
    return code, body


def top1(doc):
    """argmax of the first output tensor of a JSON tensors document."""
    outs = doc["outputs"] if "outputs" in doc else doc
    first = next(iter(outs.values()))
    data = first["data"]
    return max(range(len(data)), key=data.__getitem__)


def mem_cgroup(pid):
    for line in open("/proc/%d/cgroup" % pid):
        _, ctrl, path = line.rstrip("\n").split(":", 2)
        if "memory" in ctrl.split(","):
            return "/sys/fs/cgroup/memory" + path
    raise RuntimeError("pid %d: no memory cgroup" % pid)


def cg_read(cg, name):
    with open(os.path.join(cg, name)) as f:
        return f.read()


def cg_stat(cg):
    return {k: int(v) for k, v in (l.split() for l in cg_read(cg, "memory.stat").splitlines())}


def store_stats(build, node):
    store = os.path.join(build, "src", "store", "shmfaas-store")
    r = sh(store, "stats", "--socket", os.path.join(node.run, "store.sock"), check=False, timeout=30)
    return r.returncode, r.stdout + r.stderr


def stat_field(text, name):
    """A figure of `shmfaas-store stats` (JSON): its totals."""
    return json.loads(text)["totals"].get(name)


def wait_store(build, node, bound=60):
    t0 = time.monotonic()
    while time.monotonic() - t0 < bound:
        rc, out = store_stats(build, node)
        if rc == 0:
            return out
        time.sleep(0.2)
    raise RuntimeError("store not answering after %d s: %s" % (bound, out))


def play_store(node, name):
    dep, cm = store_manifest(node, name)
    cmpath = os.path.join(node.tmp, "configmap.yaml")
    with open(cmpath, "w") as f:
        yaml.safe_dump(cm, f)
    return node.play([dep], extra=("--configmap", cmpath))


def expected_top1():
    with open(os.path.join(os.environ.get("SHMFAAS_ZOO", os.path.join(SRC, "zoo")), "resnet50", "output.json")) as f:
        return top1(json.load(f))


def zoo_input():
    return os.path.join(os.environ.get("SHMFAAS_ZOO", os.path.join(SRC, "zoo")), "resnet50", "input.json")


# ---- cases ----

def case_node(build, node):
    want = expected_top1()
    dt = play_store(node, PREFIX + "-store")
    log("store pod played in %.1f s" % dt)
    wait_store(build, node)
    dt = node.play([function_manifest(node, PREFIX + "-resnet50", 4)])
    log("function deployment (4 replicas) played in %.1f s" % dt)
    fns = pod_containers(PREFIX + "-resnet50")
    assert len(fns) == 4, "want 4 function containers, got %s" % fns
    for name, pid in sorted(fns.items()):
        log("%s ready after %.1f s more" % (name, wait_ready(pid)))
    for name, pid in sorted(fns.items()):
        code, body = infer(pid, zoo_input())
        assert code == 200, "%s: %d %s" % (name, code, body[:300])
        got = top1(json.loads(body))
        assert got == want, "%s: top-1 %d, want %d" % (name, got, want)
        log("%s answered through its own netns: top-1 %d" % (name, got))
    out = wait_store(build, node)
    compiles = stat_field(out, "compiles")
    assert compiles == 1, "one compile for 4 replicas, stats say %s: %s" % (compiles, out)
    spid = next(iter(pod_containers(PREFIX + "-store").values()))
    scg = cg_stat(mem_cgroup(spid))
    shmem = scg.get("shmem", scg.get("total_shmem", 0))
    log("store cgroup: shmem %.1f MiB, cache %.1f MiB, usage %.1f MiB" % (
        shmem / 2**20, scg["cache"] / 2**20, int(cg_read(mem_cgroup(spid), "memory.usage_in_bytes")) / 2**20))
    # the image is a plan part and its weights blob (docs/store.md "Weights blobs")
    image_bytes = sum(os.path.getsize(os.path.join(node.images, f)) for f in os.listdir(node.images)
                      if f.endswith(".plan") or f.endswith(".weights"))
    assert image_bytes > MEM_LIMIT, "the image (%d bytes) is larger than a function's limit" % image_bytes
    assert shmem >= image_bytes * 0.95, "store cgroup shmem %d < image %d" % (shmem, image_bytes)
    log("image %.1f MiB on the node tmpfs, charged to the store's cgroup" % (image_bytes / 2**20))

    def check_limits(when):
        for name, pid in sorted(fns.items()):
            cg = mem_cgroup(pid)
            limit = int(cg_read(cg, "memory.limit_in_bytes"))
            peak = int(cg_read(cg, "memory.max_usage_in_bytes"))
            st = cg_stat(cg)
            log("%s %s: peak %.1f MiB, limit %.0f MiB, shmem %.1f MiB, failcnt %s" % (
                when, name, peak / 2**20, limit / 2**20, st.get("shmem", 0) / 2**20,
                cg_read(cg, "memory.failcnt").strip()))
            assert limit == MEM_LIMIT, "%s: limit %d" % (name, limit)
            assert peak < limit, "%s: peak %d >= limit" % (name, peak)
    check_limits("after inference")

    # The store pod deleted and recreated (what the DaemonSet controller does) while one replica serves.
    name0, pid0 = sorted(fns.items())[0]
    stop = threading.Event()
    results = []

    def loop():
        while not stop.is_set():
            code, body = infer(pid0, zoo_input())
            results.append((code, body[:200] if code != 200 else ""))
    th = threading.Thread(target=loop)
    th.start()
    try:
        time.sleep(2)
        podman("pod", "rm", "-f", "-t", "10", PREFIX + "-store-pod-0", timeout=120)
        t0 = time.monotonic()
        play_store(node, PREFIX + "-store")
        out = wait_store(build, node)
        log("store pod recreated and answering in %.1f s" % (time.monotonic() - t0))
        time.sleep(4)  # instances re-attach (they retry every ~1 s) while the loop keeps going
    finally:
        stop.set()
        th.join(timeout=120)
    failed = [r for r in results if r[0] != 200]
    log("during the restart: %d requests, %d failed" % (len(results), len(failed)))
    assert results and not failed, "failed requests: %s" % failed[:3]
    out = wait_store(build, node)
    compiles = stat_field(out, "compiles")
    assert compiles == 0, "the restarted store recompiled: %s" % out
    for name, pid in sorted(fns.items()):
        code, body = infer(pid, zoo_input())
        assert code == 200 and top1(json.loads(body)) == want, "%s after restart: %d" % (name, code)
    check_limits("after restart")
    # Every replica re-took its lease on the re-adopted image (they retry about once a second).
    t0 = time.monotonic()
    while stat_field(out, "leases") != 4 and time.monotonic() - t0 < 60:
        time.sleep(0.5)
        out = wait_store(build, node)
    assert stat_field(out, "leases") == 4 and stat_field(out, "adopted") == 1, out
    log("all 4 replicas answer and hold leases again; the store compiled nothing (adopted %d image)"
        % stat_field(out, "adopted"))


def case_store_late(build, node):
    dt = node.play([function_manifest(node, PREFIX + "-late", 1)])
    log("function pod played with no store in %.1f s" % dt)
    # While the node has no store the instance stays up (a kubelet would back off a container
    # that exits, for minutes): /_/health 200 (liveness passes), /_/ready 503 (no traffic).
    t0 = time.monotonic()
    health = 0
    while time.monotonic() - t0 < 30:
        fns = pod_containers(PREFIX + "-late")
        if fns:
            pid = next(iter(fns.values()))
            health, _ = in_netns(pid, "http://127.0.0.1:8080/_/health", timeout=5)
            if health == 200:
                break
        time.sleep(0.5)
    name = PREFIX + "-late-pod-0-resnet50"
    restarts = podman("inspect", "--format", "{{.RestartCount}}", name).stdout.strip()
    assert health == 200, "/_/health %d without a store (container restarts: %s)" % (health, restarts)
    time.sleep(3)
    ready, _ = in_netns(pid, "http://127.0.0.1:8080/_/ready", timeout=5)
    restarts = podman("inspect", "--format", "{{.RestartCount}}", name).stdout.strip()
    assert ready == 503 and restarts == "0", "no store: /_/ready %d, restarts %s" % (ready, restarts)
    log("no store: /_/health 200, /_/ready 503, no restart")
    play_store(node, PREFIX + "-store")
    wait_store(build, node)
    t0 = time.monotonic()
    log("ready %.1f s after the store arrived" % wait_ready(pid))
    restarts = podman("inspect", "--format", "{{.RestartCount}}", name).stdout.strip()
    assert restarts == "0", "the instance restarted %s times" % restarts
    code, body = infer(pid, zoo_input())
    assert code == 200 and top1(json.loads(body)) == expected_top1(), "%d %s" % (code, body[:200])


def image_digests(node):
    out = {}
    for f in sorted(os.listdir(node.images)):
        st = os.stat(os.path.join(node.images, f))
        with open(os.path.join(node.images, f), "rb") as fh:
            out[f] = (st.st_mode, st.st_uid, hashlib.sha256(fh.read()).hexdigest())
    return out


def case_root(build, node):
    attacker = os.path.join(build, "tests", "kubernetes", "attack-image")
    play_store(node, PREFIX + "-store")
    wait_store(build, node)
    dep = function_manifest(node, PREFIX + "-root", 1)
    spec = dep["spec"]["template"]["spec"]
    # As root, podman's default capabilities (no securityContext at all), the image directory
    # mounted read-write by name and the attacker mounted in.
    spec["securityContext"] = {"runAsUser": 0, "runAsGroup": 0}
    c = spec["containers"][0]
    c.pop("securityContext", None)
    c.setdefault("volumeMounts", []).extend([
        {"name": "images", "mountPath": "/images"},
        {"name": "attack", "mountPath": "/attack-image", "readOnly": True}])
    spec["volumes"].extend([{"name": "images", "hostPath": {"path": node.images}},
                            {"name": "attack", "hostPath": {"path": attacker, "type": "File"}}])
    node.play([dep])
    name, pid = next(iter(pod_containers(PREFIX + "-root").items()))
    wait_ready(pid)
    status = dict(l.split(":", 1) for l in open("/proc/%d/status" % pid))
    uid, capeff = int(status["Uid"].split()[0]), int(status["CapEff"], 16)
    log("%s runs as uid %d, CapEff %#x" % (name, uid, capeff))
    # Root with DAC_OVERRIDE and FOWNER (podman's defaults) but not LINUX_IMMUTABLE (bit 9).
    assert uid == 0 and capeff & (1 << 1) and capeff & (1 << 3) and not capeff & (1 << 9), status["CapEff"]
    before = image_digests(node)
    r = podman("exec", name, "/attack-image", "/images", check=False)
    log(r.stdout + r.stderr)
    assert r.returncode == 0, "attack-image rc %d" % r.returncode
    after = image_digests(node)
    assert before == after, "image dir changed: %s -> %s" % (before, after)
    code, body = infer(pid, zoo_input())
    assert code == 200 and top1(json.loads(body)) == expected_top1(), "after the attack: %d" % code


# ---- webhook: AdmissionReview out, JSONPatch back (RFC 6902 add/replace/remove, RFC 6901 paths) ----

def json_pointer(path):
    if path == "":
        return []
    assert path.startswith("/"), path
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def apply_patch(doc, ops):
    doc = copy.deepcopy(doc)
    for op in ops:
        parts = json_pointer(op["path"])
        parent = doc
        for p in parts[:-1]:
            parent = parent[int(p)] if isinstance(parent, list) else parent[p]
        last = parts[-1]
        if op["op"] == "add":
            if isinstance(parent, list):
                parent.insert(len(parent) if last == "-" else int(last), op["value"])
            else:
                parent[last] = op["value"]
        elif op["op"] == "replace":
            parent[int(last) if isinstance(parent, list) else last] = op["value"]
        elif op["op"] == "remove":
            del parent[int(last) if isinstance(parent, list) else last]
        else:
            raise AssertionError("unexpected op %s" % op)
    return doc


def faas_netes_deployment(name):
    """A Deployment shaped as faas-netes builds one from a stack.yml function: no volumes."""
    labels = {"faas_function": name, "com.shmfaas.model": "resnet50"}
    probe = {"httpGet": {"path": "/_/health", "port": 8080, "scheme": "HTTP"},
             "initialDelaySeconds": 2, "periodSeconds": 2, "timeoutSeconds": 1, "failureThreshold": 3}
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "labels": labels,
                         "annotations": {"prometheus.io.scrape": "false"}},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"faas_function": name}},
                     "template": {"metadata": {"name": name, "labels": labels,
                                               "annotations": {"prometheus.io.scrape": "false"}},
                                  "spec": {"containers": [{
                                      "name": name, "image": IMAGE, "imagePullPolicy": "Never",
                                      "env": [{"name": "fprocess", "value": ""},
                                              {"name": "model", "value": "resnet50"}],
                                      "resources": {"limits": {"memory": "64Mi"}},
                                      "livenessProbe": probe, "readinessProbe": probe}],
                                      "enableServiceLinks": False}}}}


def case_webhook(build, node):
    hook = os.path.join(build, "src", "webhook", "shmfaas-webhook")
    if not os.access(hook, os.X_OK):
        log("SKIP: %s not built" % hook)
        return 77
    cert, key = os.path.join(node.tmp, "tls.crt"), os.path.join(node.tmp, "tls.key")
    sh("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
       "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", key, "-out", cert)
    logpath = os.path.join(node.tmp, "webhook.log")
    logf = open(logpath, "w+")
    proc = subprocess.Popen([hook, "--listen", "127.0.0.1:0", "--tls-cert", cert, "--tls-key", key,
                             "--socket-dir", node.run], stdout=logf, stderr=subprocess.STDOUT)
    try:
        port, t0 = None, time.monotonic()
        while port is None and time.monotonic() - t0 < 20 and proc.poll() is None:
            m = re.search(r"\(port (\d+)\)", open(logpath).read())
            port = int(m.group(1)) if m else None
            time.sleep(0.1)
        assert port, "shmfaas-webhook did not start: %s" % open(logpath).read()
        ctx = ssl.create_default_context(cafile=cert)
        dep = faas_netes_deployment(PREFIX + "-fn")
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": dep["spec"]["template"]["metadata"],
               "spec": dep["spec"]["template"]["spec"]}
        review = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                  "request": {"uid": "e2e-1", "kind": {"group": "", "version": "v1", "kind": "Pod"},
                              "resource": {"group": "", "version": "v1", "resource": "pods"},
                              "operation": "CREATE", "namespace": "openfaas-fn", "object": pod}}
        def mutate(rv):
            req = urllib.request.Request("https://127.0.0.1:%d/mutate" % port, json.dumps(rv).encode(),
                                         {"Content-Type": "application/json"})
            return json.load(urllib.request.urlopen(req, context=ctx, timeout=10))
        resp = mutate(review)
        # The same pod asking for root is refused: it could map images as root.
        rooted = copy.deepcopy(review)
        rooted["request"]["uid"] = "e2e-root"
        rooted["request"]["object"]["spec"]["securityContext"] = {"runAsUser": 0}
        refused = mutate(rooted)["response"]
        assert refused["allowed"] is False and "patch" not in refused, refused
        log("root pod refused: %s" % refused.get("status", {}).get("message"))
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        logf.close()
        out = open(logpath).read()
    r = resp["response"]
    assert r["uid"] == "e2e-1" and r["allowed"] is True and r.get("patchType") == "JSONPatch", r
    ops = json.loads(base64.b64decode(r["patch"]))
    log("webhook patch: %s" % json.dumps(ops))
    patched = apply_patch(pod, ops)
    spec = patched["spec"]
    assert any(v.get("hostPath", {}).get("path") == node.run for v in spec.get("volumes", [])), spec
    uid = (spec.get("securityContext") or {}).get("runAsUser")
    assert uid not in (None, 0), "no non-root runAsUser: %s" % spec.get("securityContext")
    play_store(node, PREFIX + "-store")
    wait_store(build, node)
    dep["spec"]["template"]["metadata"] = patched["metadata"]
    dep["spec"]["template"]["spec"] = spec
    node.play([dep])
    name, pid = next(iter(pod_containers(PREFIX + "-fn").items()))
    log("patched faas-netes pod ready after %.1f s" % wait_ready(pid))
    status = dict(l.split(":", 1) for l in open("/proc/%d/status" % pid))
    mounts = [l.split() for l in open("/proc/%d/mountinfo" % pid)]
    sock = [m for m in mounts if m[4] == "/run/shmfaas"]
    assert int(status["Uid"].split()[0]) == uid, status["Uid"]
    assert sock and "ro" in sock[0][5].split(","), "socket dir not mounted read-only: %s" % sock
    code, body = infer(pid, zoo_input())
    assert code == 200 and top1(json.loads(body)) == expected_top1(), "%d %s" % (code, body[:200])
    log("the patched faas-netes pod (uid %s) answered; webhook log tail: %s" % (uid, out[-300:]))


def case_image(build, node):
    """Every program in the image starts (its ldd closure is complete), as user 12000 by default."""
    user = podman("image", "inspect", "--format", "{{.Config.User}}", IMAGE).stdout.strip()
    assert user == "12000:12000", "default USER %r" % user
    progs = podman("run", "--rm", "--network", "none", "--entrypoint", "/usr/bin/shmfaas-store", IMAGE,
                   "--help", check=False)
    assert "usage" in progs.stdout + progs.stderr, progs
    names = ["shmfaas-store", "shmfaas-fn", "shmfaasd", "shmfaas"]
    if os.access(os.path.join(build, "src", "webhook", "shmfaas-webhook"), os.X_OK):
        names.append("shmfaas-webhook")
    for n in names:
        r = podman("run", "--rm", "--network", "none", "--entrypoint", "/usr/bin/" + n, IMAGE, "--help",
                   check=False)
        out = r.stdout + r.stderr
        assert r.returncode not in (126, 127) and "error while loading shared libraries" not in out, (n, out)
        assert "usage" in out.lower(), (n, out[:300])
        log("%s starts in the image (rc %d)" % (n, r.returncode))
    r = podman("run", "--rm", "--network", "none", "--entrypoint", "/usr/bin/sh", IMAGE, "-c", "true",
               check=False)
    assert r.returncode != 0, "a shell in the image"
    log("no shell in the image; default user %s" % user)


def case_webhook_pod(build, node):
    """deploy/kubernetes/webhook.yaml's Deployment in a real container: its Secret volume becomes a
    hostPath holding an openssl certificate (podman 4.3 has no Secret objects), and a review sent
    over HTTPS inside the pod's network namespace is answered with a patch."""
    if not os.access(os.path.join(build, "src", "webhook", "shmfaas-webhook"), os.X_OK):
        log("SKIP: shmfaas-webhook not built")
        return 77
    tls = os.path.join(node.tmp, "tls")
    os.makedirs(tls)
    cert, key = os.path.join(tls, "tls.crt"), os.path.join(tls, "tls.key")
    sh("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
       "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", key, "-out", cert)
    dep = next(d for d in load_docs("deploy/kubernetes/webhook.yaml") if d["kind"] == "Deployment")
    dep = copy.deepcopy(dep)
    dep["metadata"] = {"name": PREFIX + "-webhook", "labels": dep["metadata"]["labels"]}
    dep["spec"]["replicas"] = 1
    spec = dep["spec"]["template"]["spec"]
    spec.pop("serviceAccountName", None)
    uid = spec["securityContext"]["runAsUser"]
    os.chown(key, 0, spec["securityContext"].get("runAsGroup", uid))
    os.chmod(key, 0o440)  # the Secret's defaultMode 0440 with the pod's group, as the kubelet does
    for v in spec["volumes"]:
        if "secret" in v:
            v.pop("secret")
            v["hostPath"] = {"path": tls}
    for c in spec["containers"]:
        c["image"] = IMAGE
        c.pop("ports", None)
        c.pop("livenessProbe", None)
        c.pop("readinessProbe", None)
    node.play([dep])
    name, pid = next(iter(pod_containers(PREFIX + "-webhook").items()))
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "f", "labels": {"com.shmfaas.model": "resnet50"}},
           "spec": {"containers": [{"name": "f", "image": IMAGE}]}}
    review = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
              "request": {"uid": "pod-1", "kind": {"group": "", "version": "v1", "kind": "Pod"},
                          "operation": "CREATE", "object": pod}}
    body = os.path.join(node.tmp, "review.json")
    with open(body, "w") as f:
        json.dump(review, f)
    t0 = time.monotonic()
    while True:
        code, out = in_netns(pid, "--cacert", cert, "https://127.0.0.1:8443/healthz", timeout=5)
        if code == 200 or time.monotonic() - t0 > 30:
            break
        time.sleep(0.3)
    assert code == 200, "webhook pod /healthz: %d %s" % (code, out)
    code, out = in_netns(pid, "--cacert", cert, "-H", "Content-Type: application/json", "--data-binary",
                         "@" + body, "https://127.0.0.1:8443/mutate", timeout=10)
    r = json.loads(out)["response"] if code == 200 else None
    assert r and r["uid"] == "pod-1" and r["allowed"] and r.get("patch"), "%d %s" % (code, out[:300])
    status = dict(l.split(":", 1) for l in open("/proc/%d/status" % pid))
    assert int(status["Uid"].split()[0]) == uid and int(status["CapEff"], 16) == 0, status
    log("webhook pod (uid %d, no capabilities) answered /mutate over HTTPS in its netns with %d patch ops"
        % (uid, len(json.loads(base64.b64decode(r["patch"])))))


CASES = {"image": case_image, "webhook-pod": case_webhook_pod, "node": case_node, "store-late": case_store_late, "root": case_root, "webhook": case_webhook}


def containers_conf():
    """tests/kubernetes/containers.conf, or a copy with lower ulimits where the hard limits are lower."""
    text = open(CONF).read()
    hard = {"nofile": resource.getrlimit(resource.RLIMIT_NOFILE)[1],
            "nproc": resource.getrlimit(resource.RLIMIT_NPROC)[1]}

    def fit(m):
        lim = hard[m.group(1)]
        v = int(m.group(2)) if lim == resource.RLIM_INFINITY else min(int(m.group(2)), lim)
        return "%s=%d:%d" % (m.group(1), v, v)
    fitted = re.sub(r"(nofile|nproc)=(\d+):\d+", fit, text)
    if fitted == text:
        return CONF
    path = os.path.join(tempfile.gettempdir(), "%s-containers.conf" % PREFIX)
    with open(path, "w") as f:
        f.write(fitted)
    return path


def main():
    case, build = sys.argv[1], os.path.abspath(sys.argv[2])
    zoo = os.environ.get("SHMFAAS_ZOO", os.path.join(SRC, "zoo"))
    if os.geteuid() != 0 or not shutil.which("podman") or not shutil.which("nsenter"):
        log("SKIP: needs root, podman and nsenter (scripts/bootstrap installs podman)")
        return 77
    if not os.path.isfile(os.path.join(zoo, "resnet50", "model.onnx")):
        log("SKIP: no zoo/resnet50 (make zoo)")
        return 77
    os.environ["CONTAINERS_CONF"] = containers_conf()
    node = None
    try:
        r = sh(os.path.join(SRC, "deploy", "images"), "--build", build, timeout=300)
        log(r.stdout.strip())
        node = Node()
        rc = CASES[case](build, node)
    except Exception:
        for pod in podman("pod", "ps", "--format", "{{.Name}}", check=False).stdout.split():
            if pod.startswith(PREFIX):
                for c in podman("ps", "-a", "--filter", "pod=" + pod, "--format", "{{.Names}}").stdout.split():
                    lg = podman("logs", c, check=False)
                    log("--- %s ---\n%s%s" % (c, lg.stdout[-1500:], lg.stderr[-1500:]))
        raise
    finally:
        if node:
            node.cleanup(build)
        if os.environ["CONTAINERS_CONF"] != CONF:
            os.unlink(os.environ["CONTAINERS_CONF"])
    return rc or 0


if __name__ == "__main__":
    sys.exit(main())
