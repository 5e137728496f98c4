#!/usr/bin/python3
"""What a deployer may name (issue 12, "Deployer-controlled environment", "Refusals that never
stop"): a real root shmfaasd + shmfaas-store + shmfaas-fn. Every refusal is a 400 at deploy naming
the problem, with nothing deployed; the store and the instance refuse the same things when asked
directly, by the same code (common/modelref.h, common/confine.h, common/fnenv.h).

usage: test_deploy_refusals.py CASE BUILD_DIR MODELS_DIR
CASE: env | labels | model | private | store
  env      LD_PRELOAD and every other key outside the allow-list → 400 naming it; allowed keys
           deploy and reach the instance, nothing else of the deployer's does; a persisted spec
           with a bad key (an older version's) is skipped at load with a log line
  labels   a labels path escaping the models directory (../, absolute, symlink out), a directory,
           a FIFO, a missing file → 400; one inside is read by the instance (topk labels); the
           instance itself refuses an escaping labels path
  model    a model symlink out of the models directory, an absolute path outside, '..' out, a
           directory, a FIFO, a missing model, a tag nobody pushed, a tag directory symlinked
           out → 400 (an escaping symlink was 202);
           name:latest is the name; a refused update leaves the old spec
  private  com.shmfaas.private with a symlink out, or a sha256 ref → 400; a good one serves; the
           instance itself refuses --private through a symlink out
  store    shmfaas-store refuses the same refs when a client (an unprivileged uid the store admits,
           as an instance is) attaches directly
"""
import json
import os
import subprocess
import sys
import tempfile
import shutil

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_gateway as tg  # noqa: E402  (same argv: CASE BUILD_DIR MODELS_DIR)

check, fail = tg.check, tg.fail
FN_BIN = os.path.join(tg.BUILD, "src/fn/shmfaas-fn")
STORE_BIN = os.path.join(tg.BUILD, "src/store/shmfaas-store")
ATTACKER = 200500  # inside shmfaasd's default --uid-range 200000-265535, which its store admits


def dep(name, image, env=None, labels=None):
    return {"service": name, "image": image, "labels": labels or {}, "annotations": {},
            "envVars": dict({"input": "json", "output": "json"}, **(env or {}))}


def refused(gw, d, needle, method="POST"):
    """A deploy answered 400 with a JSON error that contains needle."""
    r = gw.req(method, "/system/functions", d)
    check(r.status == 400, "%s %s: expected 400, got %d %s" % (d["image"], d["envVars"], r.status,
                                                                r.body))
    msg = r.json().get("error", "")
    check(needle in msg, "error %r does not say %r" % (msg, needle))
    return msg


def plant_tree(gw):
    """Things a deployer could name, inside and outside the models directory."""
    outside = os.path.join(gw.tmp, "outside")
    os.makedirs(outside, exist_ok=True)
    shutil.copy(os.path.join(gw.models, "tiny_a.onnx"), os.path.join(outside, "stolen.onnx"))
    open(os.path.join(outside, "secret.txt"), "w").write("root-only secret\n")
    m = gw.models
    os.symlink(os.path.join(outside, "stolen.onnx"), os.path.join(m, "evil.onnx"))
    os.symlink("../outside/stolen.onnx", os.path.join(m, "evil_rel.onnx"))
    os.symlink("tiny_a.onnx", os.path.join(m, "alias.onnx"))  # stays inside: allowed
    os.symlink(outside, os.path.join(m, "evildir"))  # a model's tag directory leading out
    os.makedirs(os.path.join(m, "adir.onnx"), exist_ok=True)
    os.mkfifo(os.path.join(m, "fifo.onnx"))
    open(os.path.join(m, "labels.txt"), "w").write("alpha\nbeta\ngamma\n")
    os.symlink(os.path.join(outside, "secret.txt"), os.path.join(m, "labels_out.txt"))
    os.mkfifo(os.path.join(m, "labels.fifo"))
    return outside


def run_fn(args, env):
    """shmfaas-fn as an instance runs (an unprivileged uid), until it fails at start (or 20 s)."""
    e = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "input": "json", "output": "json"}
    e.update(env)
    for k in ("ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS"):
        if k in os.environ:
            e[k] = os.environ[k]
    sock = os.path.join(tempfile.mkdtemp(prefix="shmfaas-refs-fn-"), "fn.sock")
    os.chown(os.path.dirname(sock), ATTACKER, ATTACKER)
    who = ["setpriv", "--reuid=%d" % ATTACKER, "--regid=%d" % ATTACKER, "--clear-groups"]
    try:
        p = subprocess.run(who + [FN_BIN, "--listen", "unix:" + sock] + args, env=e,
                           capture_output=True, timeout=20)
        return p.returncode, p.stderr.decode(errors="replace")
    finally:
        shutil.rmtree(os.path.dirname(sock), ignore_errors=True)


# ---------------------------------------------------------------- cases


def case_env(gw):
    for key in ("LD_PRELOAD", "LD_LIBRARY_PATH", "LD_AUDIT", "PATH", "GCONV_PATH", "MALLOC_ARENA_MAX",
                "MALLOC_CHECK_", "OMP_NUM_THREADS", "DNNL_VERBOSE", "HOME", "lowercase_unknown"):
        refused(gw, dep("envf", "tiny_a", {key: "/tmp/x.so"}), "envVars." + key)
    for key in ("model", "store_socket", "PORT"):  # the platform's: not a deployer's to set
        refused(gw, dep("envf", "tiny_a", {key: "x"}), "set by shmfaasd")
    msg = refused(gw, dep("envf", "tiny_a", {"LD_PRELOAD": "/x.so"}), "not a setting of shmfaas-fn")
    check("input" in msg and "max_inflight" in msg, "the error lists the allowed keys: %s" % msg)
    refused(gw, dep("envf", "tiny_a", {"\u00e9\u0001": "x"}), "envVars.")  # odd bytes: still JSON
    check(gw.functions() == {}, "refused deploys deployed nothing")
    # allowed keys deploy, and the instance sees no key of the deployer's outside the list
    allowed = {"topk": "2", "max_inflight": "2", "exec_timeout": "20s", "log_level": "info",
               "threads": "1", "max_body": "1Mi"}
    gw.deploy("envok", "tiny_a", env=allowed)
    gw.wait_ready("envok")
    check(gw.invoke("envok").status == 200, "the allowed settings serve")
    pid = [p for n, p in gw.instance_pids().items() if n.startswith("envok")][0]
    environ = open("/proc/%d/environ" % pid, "rb").read().split(b"\0")
    keys = {kv.split(b"=", 1)[0].decode() for kv in environ if kv}
    for k in allowed:
        check(k in keys, "allowed key %s reached the instance" % k)
    check("LD_PRELOAD" not in keys, "no LD_PRELOAD in the instance: %s" % sorted(keys))
    # an updated spec with a bad key is refused and the old one stays
    refused(gw, dep("envok", "tiny_a", {"LD_PRELOAD": "/x.so"}), "envVars.LD_PRELOAD", "PUT")
    check(gw.functions()["envok"]["envVars"].get("topk") == "2", "the refused update changed nothing")
    # a spec persisted by an older version with LD_PRELOAD: skipped at load, logged, no crash
    old = dep("oldbad", "tiny_a", {"LD_PRELOAD": "/tmp/evil.so"})
    old["namespace"] = "openfaas-fn"
    path = os.path.join(gw.state, "functions", "oldbad.json")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.write(fd, json.dumps({"deployment": old, "createdAt": 1, "replicas": 1}).encode())
    os.close(fd)
    check(gw.stop() == 0, "clean stop")
    gw.start()
    fns = gw.functions()
    check("oldbad" not in fns and "envok" in fns, "the bad persisted spec is skipped: %s" % list(fns))
    log = open(os.path.join(gw.tmp, "shmfaasd.log"), errors="replace").read()
    check("oldbad.json" in log and "LD_PRELOAD" in log and "skipped" in log,
          "the skip is logged with the key")
    gw.wait_ready("envok")


def case_labels(gw):
    outside = plant_tree(gw)
    secret = os.path.join(outside, "secret.txt")
    for labels, needle in (("../outside/secret.txt", "outside the models directory"),
                           (secret, "outside the models directory"),
                           ("/etc/passwd", "outside the models directory"),
                           ("labels_out.txt", "outside the models directory"),
                           (os.path.join(gw.models, "..", "outside", "secret.txt"), "outside"),
                           ("adir.onnx", "directory"),
                           ("labels.fifo", "FIFO"),
                           ("missing.txt", "No such file")):
        msg = refused(gw, dep("lab", "tiny_a", {"output": "topk", "labels": labels}), needle)
        check("envVars.labels" in msg, "the error names envVars.labels: %s" % msg)
        check("root-only secret" not in msg, "the error leaks nothing of the file")
    check(gw.functions() == {}, "refused deploys deployed nothing")
    # inside: relative to the models directory, or absolute inside it; the instance reads it
    for name, labels in (("labrel", "labels.txt"), ("lababs", os.path.join(gw.models, "labels.txt"))):
        gw.deploy(name, "tiny_a", env={"output": "topk", "topk": "3", "labels": labels})
        gw.wait_ready(name)
        r = gw.invoke(name)
        check(r.status == 200, "topk with labels: %d %s" % (r.status, r.body))
        got = {p.get("label") for p in r.json()["predictions"]}
        check(got == {"alpha", "beta", "gamma"}, "labels read by the instance: %s" % got)
    # the instance refuses by itself too (a spec from before, a file swapped after deploy)
    rc, err = run_fn(["--private", "tiny_a", "--models", gw.models],
                     {"output": "topk", "labels": "labels_out.txt"})
    check(rc != 0 and "outside the models directory" in err, "instance labels check: %d %s" % (rc, err))
    check("root-only secret" not in err, "the instance leaks nothing of the file")


def case_model(gw):
    outside = plant_tree(gw)
    for image, needle in (("evil", "outside the models directory"),  # was 202 before issue 12
                          ("evil_rel", "outside the models directory"),
                          (os.path.join(outside, "stolen.onnx"), "outside the models directory"),
                          (os.path.join(gw.models, "..", "outside", "stolen.onnx"), "outside"),
                          (os.path.join(gw.models, "evil.onnx"), "outside"),
                          ("adir", "directory"),
                          ("fifo", "FIFO"),
                          ("missing", "shmfaas model push"),
                          ("tiny_a:v2", "tiny_a/v2.onnx"),  # a tag no one pushed
                          ("reg.io//tiny_a:latest", "registry/path"),
                          ("tiny_a@sha256:" + "0" * 64, "digest"),
                          ("../tiny_a", "registry/path"),
                          ("evildir:stolen", "outside the models directory"),  # a tag dir out
                          ("sha256:123", "64 hex")):
        msg = refused(gw, dep("mod", image), needle)
        check("model" in msg, "the error talks about the model: %s" % msg)
    check(gw.functions() == {}, "refused deploys deployed nothing")
    # what is fine: a symlink that stays inside, an absolute path inside, name:latest (faas-cli)
    for name, image in (("alias", "alias"), ("abs", os.path.join(gw.models, "tiny_b.onnx")),
                        ("latest", "tiny_a:latest")):
        gw.deploy(name, image)
        gw.wait_ready(name)
        check(gw.invoke(name).status == 200, "%s (%s) serves" % (name, image))
    check(gw.functions()["latest"]["image"] == "tiny_a:latest", "the image is shown as deployed")
    # a refused update (PUT) leaves the old spec and its instances alone
    refused(gw, dep("latest", "evil"), "outside the models directory", "PUT")
    check(gw.functions()["latest"]["image"] == "tiny_a:latest", "the refused update changed nothing")
    check(gw.invoke("latest").status == 200, "and it still serves")


def case_private(gw):
    plant_tree(gw)
    priv = {"com.shmfaas.private": "true"}
    refused(gw, dep("priv", "evil", labels=priv), "outside the models directory")
    refused(gw, dep("priv", "evil_rel", labels=priv), "outside the models directory")
    refused(gw, dep("priv", "sha256:" + "ab" * 32, labels=priv), "private")
    refused(gw, dep("priv", "tiny_a?x=1x3x8x8", labels=priv), "input_shape")
    check(gw.functions() == {}, "refused deploys deployed nothing")
    gw.deploy("priv", "tiny_a", labels=priv)
    gw.wait_ready("priv")
    check(gw.invoke("priv").status == 200, "a private function inside the models dir serves")
    # the instance refuses by itself: --private through a symlink out, '..' out, a hash
    for ref in ("evil", "evil_rel", os.path.join(gw.models, "..", "outside", "stolen.onnx")):
        rc, err = run_fn(["--private", ref, "--models", gw.models], {})
        check(rc != 0 and "outside the models directory" in err,
              "instance --private %s: %d %s" % (ref, rc, err))
    rc, err = run_fn(["--private", "sha256:" + "ab" * 32, "--models", gw.models], {})
    check(rc != 0 and "private model is a file" in err, "instance --private sha256: %s" % err)


def case_store(gw):
    outside = plant_tree(gw)
    sock = os.path.join(gw.state, "store.sock")
    check(os.path.exists(sock), "the store child's socket")

    # as an unprivileged uid the store admits (one of the function uid range, as an instance)
    who = ["setpriv", "--reuid=%d" % ATTACKER, "--regid=%d" % ATTACKER, "--clear-groups"]

    def attach(ref):
        p = subprocess.Popen(who + [STORE_BIN, "attach", ref, "--socket", sock],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            out, err = p.communicate(timeout=30)
        except subprocess.TimeoutExpired:  # attached: it holds the lease until SIGINT
            p.send_signal(2)
            out, err = p.communicate(timeout=10)
            return 0, out.decode(errors="replace")
        return p.returncode, (out + err).decode(errors="replace")

    for ref, needle in (("evil", "outside the models directory"),
                        ("evil_rel", "outside the models directory"),
                        (os.path.join(outside, "stolen.onnx"), "outside the models directory"),
                        (os.path.join(gw.models, "..", "outside", "stolen.onnx"), "outside"),
                        ("adir", "directory"), ("fifo", "FIFO"), ("missing", "No such file"),
                        ("tiny_a:v2", "tiny_a/v2.onnx"), ("../tiny_a", "registry/path"),
                        ("evildir:stolen", "outside the models directory"),
                        ("tiny_a@sha256:" + "0" * 64, "digest")):
        rc, out = attach(ref)
        check(rc != 0 and needle in out, "store attach %s: %d %s" % (ref, rc, out))
    # the same parser as the gateway: name:latest is the name (one image for both spellings)
    p = subprocess.Popen(who + [STORE_BIN, "attach", "tiny_a:latest", "--socket", sock],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        line = p.stdout.readline().decode(errors="replace")
        check(line.startswith("attached tiny_a"), "store attach tiny_a:latest: %s" % line)
    finally:
        p.send_signal(2)
        p.communicate(timeout=10)


CASES = {"env": case_env, "labels": case_labels, "model": case_model, "private": case_private,
         "store": case_store}



if __name__ == "__main__":
    tg.run_main(CASES, "shmfaas-refs-")
