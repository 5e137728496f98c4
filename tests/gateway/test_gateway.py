#!/usr/bin/python3
"""Integration tests of shmfaasd (issue 5 acceptance 1-5): real shmfaasd, real shmfaas-store,
real shmfaas-fn instances, real HTTP. Each case starts its own daemon on a temporary state
directory and port, and always cleans up (daemon, store, instances, tmpfs image directory).

usage: test_gateway.py CASE BUILD_DIR MODELS_DIR
CASE: api | auth | sharing | autoscale | crash | restart | bad
"""
import base64
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

BUILD, MODELS = sys.argv[2], sys.argv[3]
SHMFAASD = os.environ.get("SHMFAASD_BIN") or os.path.join(BUILD, "src/gateway/shmfaasd")
CLI = os.path.join(BUILD, "src/cli/shmfaas")
INPUT = open(os.path.join(MODELS, "input.json"), "rb").read()


def fail(msg):
    raise AssertionError(msg)


def check(cond, msg):
    if not cond:
        fail(msg)


class Reply:
    def __init__(self, status, headers, body):
        self.status, self.headers, self.body = status, headers, body

    def json(self):
        return json.loads(self.body)


class Gateway:
    """One shmfaasd with its own state dir, models dir, store and tmpfs image dir."""

    def __init__(self, tmp, extra=(), auth=None):
        self.tmp, self.extra, self.auth = tmp, list(extra), auth
        self.state = os.path.join(tmp, "state")
        self.models = os.path.join(tmp, "models")
        self.store_dir = tempfile.mkdtemp(prefix="shmfaas-gwtest-", dir="/dev/shm")
        os.makedirs(self.models, exist_ok=True)
        for m in ("tiny_a.onnx", "tiny_b.onnx", "wide.onnx"):
            shutil.copy(os.path.join(MODELS, m), self.models)
        self.proc = None
        self.log = open(os.path.join(tmp, "shmfaasd.log"), "ab")

    def start(self):
        listen_file = os.path.join(self.state, "listen")
        if os.path.exists(listen_file):
            os.unlink(listen_file)
        args = [SHMFAASD, "--state", self.state, "--models", self.models, "--listen",
                "127.0.0.1:0", "--store-dir", self.store_dir, "--budget", "64Mi",
                "--hold", "20s", "--down-delay", "500ms"] + self.extra
        self.proc = subprocess.Popen(args, stderr=self.log, stdout=self.log)
        for _ in range(300):
            if os.path.exists(listen_file):
                self.url = open(listen_file).read().strip()
                self.load_auth()
                return self
            check(self.proc.poll() is None, "shmfaasd exited at start; see shmfaasd.log")
            time.sleep(0.05)
        fail("shmfaasd did not start listening")

    def load_auth(self):
        """Auth is on by default: the credentials shmfaasd generated, unless the flags say else."""
        if self.auth is not None or "--no-auth" in self.extra or "--basic-auth" in self.extra:
            return
        secrets = os.path.join(self.state, "secrets")
        self.auth = tuple(open(os.path.join(secrets, f)).read().strip()
                          for f in ("basic-auth-user", "basic-auth-password"))

    def req(self, method, path, body=None, headers=None, auth=True, timeout=60):
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
        elif isinstance(body, str):
            body = body.encode()
        h = dict(headers or {})
        if auth and self.auth:
            tok = base64.b64encode(("%s:%s" % self.auth).encode()).decode()
            h["Authorization"] = "Basic " + tok
        r = urllib.request.Request(self.url + path, data=body, method=method, headers=h)
        try:
            with urllib.request.urlopen(r, timeout=timeout) as resp:
                return Reply(resp.status, resp.headers, resp.read())
        except urllib.error.HTTPError as e:
            return Reply(e.code, e.headers, e.read())

    def functions(self):
        r = self.req("GET", "/system/functions")
        check(r.status == 200, "list: %d" % r.status)
        return {f["name"]: f for f in r.json()}

    def wait_ready(self, name, n=1, timeout=30):
        deadline = time.time() + timeout
        while time.time() < deadline:
            f = self.functions().get(name)
            if f and f["availableReplicas"] >= n:
                return f
            time.sleep(0.05)
        fail("%s: %d ready instance(s) not reached in %ds" % (name, n, timeout))

    def deploy(self, name, image, labels=None, env=None, **kw):
        dep = {"service": name, "image": image, "labels": labels or {}, "annotations": {},
               "envVars": dict({"input": "json", "output": "json"}, **(env or {}))}
        dep.update(kw)
        r = self.req("PUT", "/system/functions", dep)
        if r.status == 404:
            r = self.req("POST", "/system/functions", dep)
        check(r.status in (200, 202), "deploy %s: %d %s" % (name, r.status, r.body))

    def invoke(self, name, timeout=60):
        return self.req("POST", "/function/%s.openfaas-fn" % name, INPUT,
                        {"Content-Type": "application/json"}, auth=False, timeout=timeout)

    def invoke_model_b(self):
        """tiny_b's answer, from a scratch function."""
        self.deploy("scratch-b", "tiny_b")
        self.wait_ready("scratch-b")
        return self.invoke("scratch-b").body

    def instance_pids(self):
        run = os.path.join(self.state, "pids")
        out = {}
        for f in os.listdir(run):
            if f.endswith(".pid"):
                try:
                    out[f[:-4]] = int(open(os.path.join(run, f)).read().split()[0])
                except (OSError, ValueError, IndexError):
                    pass
        return out

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self):
        """SIGTERM; returns the exit status (0 = clean stop, also under ASan/LSan)."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode if self.proc else 0

    def cleanup(self):
        rc = self.stop()
        for pid in self.instance_pids().values():  # whatever a killed daemon left behind
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        shutil.rmtree(self.store_dir, ignore_errors=True)
        return rc


def alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def hey(url, n=None, duration=None, c=8):
    args = ["hey", "-c", str(c), "-m", "POST", "-T", "application/json", "-D",
            os.path.join(MODELS, "input.json")]
    args += ["-z", duration] if duration else ["-n", str(n)]
    out = subprocess.run(args + [url], capture_output=True, text=True, timeout=120).stdout
    codes = {int(c): int(k) for c, k in re.findall(r"\[(\d+)\]\s+(\d+) responses", out)}
    errors = re.findall(r"\[\d+\]\s+Get|Post .*", out)
    return codes, errors, out


# ---------------------------------------------------------------- cases


def case_api(gw):
    """Acceptance 1: exactly what faas-cli 0.16.x sends, OpenFaaS's codes and shapes."""
    check(gw.req("GET", "/healthz").status == 200, "healthz")
    check(gw.req("GET", "/system/functions").body.strip() == b"[]", "empty list is []")
    info = gw.req("GET", "/system/info").json()
    check(info["provider"]["provider"] == "shmfaasd" and info["provider"]["orchestration"] == "process",
          "system/info shape: %s" % info)
    check(gw.req("GET", "/system/namespaces").json() == ["openfaas-fn"], "namespaces")
    # deploy: PUT first (404 as it does not exist), then POST
    bare = {"service": "echo", "image": "tiny_a", "labels": {}, "annotations": {},
            "envVars": {"input": "json", "output": "json"}}
    r = gw.req("PUT", "/system/functions", bare)
    check(r.status == 404, "PUT of a missing function must be 404, got %d" % r.status)
    r = gw.req("POST", "/system/functions", bare)
    check(r.status in (200, 202), "POST deploy: %d %s" % (r.status, r.body))
    r = gw.req("PUT", "/system/functions", dict(bare, labels={"com.openfaas.scale.max": "2"}))
    check(r.status in (200, 202), "PUT update: %d" % r.status)
    f = gw.wait_ready("echo")
    for k in ("name", "image", "namespace", "envProcess", "envVars", "labels", "annotations",
              "invocationCount", "replicas", "availableReplicas", "createdAt"):
        check(k in f, "FunctionStatus lacks %s" % k)
    check(f["labels"].get("com.openfaas.scale.max") == "2", "update applied")
    d = gw.req("GET", "/system/function/echo?namespace=openfaas-fn&usage=1")
    check(d.status == 200 and "usage" in d.json() and d.json()["usage"]["totalMemoryBytes"] > 0,
          "describe with usage: %s" % d.body)
    r = gw.req("POST", "/function/echo.openfaas-fn", INPUT,
               {"Content-Type": "application/json", "X-Call-Id": "call-123"}, auth=False)
    check(r.status == 200, "invoke: %d %s" % (r.status, r.body))
    check(r.headers.get("Content-Type", "").startswith("application/json"),
          "reply Content-Type is the function's: %s" % r.headers.get("Content-Type"))
    check("y" in r.json()["outputs"], "function answer: %s" % r.body)
    r2 = gw.req("POST", "/function/echo", INPUT, auth=False)
    check(r2.status == 200 and r2.body == r.body, "invoke without namespace suffix")
    check(gw.req("POST", "/function/echo.other-ns", INPUT, auth=False).status == 404,
          "unknown namespace → 404")
    r = gw.req("POST", "/system/scale-function/echo",
               {"serviceName": "echo", "replicas": 2, "namespace": "openfaas-fn"})
    check(r.status in (200, 202), "scale: %d" % r.status)
    gw.wait_ready("echo", 2)
    check(gw.functions()["echo"]["invocationCount"] >= 2, "invocationCount counts")
    check_isolation(gw, "echo")
    m = gw.req("GET", "/metrics").body.decode()
    check('gateway_function_invocation_total{function_name="echo.openfaas-fn",code="200"}' in m,
          "invocation metric")
    check("gateway_functions_seconds_bucket" in m and "gateway_service_count" in m, "metrics")
    p = subprocess.run(["promtool", "check", "metrics"], input=m, capture_output=True, text=True)
    check(p.returncode == 0, "promtool check metrics: %s %s" % (p.stdout, p.stderr))
    logs = gw.req("GET", "/system/logs?name=echo&tail=5")
    check(logs.status == 200, "logs: %d" % logs.status)
    for line in logs.body.decode().splitlines():
        check(set(json.loads(line)) >= {"name", "namespace", "instance", "timestamp", "text"},
              "log line shape: %s" % line)
    # follow=true streams until the function goes (faas-cli logs follows by default)
    follow = {}

    def read_follow():
        t0 = time.time()
        r = gw.req("GET", "/system/logs?name=echo&follow=true", timeout=30)
        follow["status"], follow["secs"] = r.status, time.time() - t0

    ft = threading.Thread(target=read_follow)
    ft.start()
    time.sleep(1.0)
    check(ft.is_alive(), "follow=true keeps the stream open")
    # DELETE with the namespace in the body, then (older clients) in the query
    r = gw.req("DELETE", "/system/functions", {"functionName": "echo", "namespace": "openfaas-fn"})
    ft.join(10)
    check(not ft.is_alive() and follow.get("status") == 200, "follow ends when the function goes")
    check(r.status in (200, 202), "delete: %d" % r.status)
    check(gw.req("DELETE", "/system/functions", {"functionName": "echo"}).status == 404,
          "second delete → 404")
    gw.deploy("echo2", "tiny_a")
    r = gw.req("DELETE", "/system/functions?namespace=openfaas-fn", {"functionName": "echo2"})
    check(r.status in (200, 202), "delete with ?namespace=: %d" % r.status)
    check(gw.functions() == {}, "all gone")
    check(gw.req("GET", "/system/function/echo").status == 404, "describe after delete")


def proc_cgroup_dir(pid):
    """The instance's own cgroup directory (v2 or v1 memory), or None."""
    for line in open("/proc/%d/cgroup" % pid):
        hid, ctrl, path = line.rstrip("\n").split(":", 2)
        if "/shmfaas/" in path:
            if ctrl == "":
                return "/sys/fs/cgroup" + path, "memory.max"
            if "memory" in ctrl.split(","):
                return "/sys/fs/cgroup/memory" + path, "memory.limit_in_bytes"
    return None, None


def check_isolation(gw, name):
    """What the host allows is applied: cgroup with limits.memory, own netns, nobody, no_new_privs."""
    gw.deploy(name, "tiny_a", limits={"memory": "256Mi"})
    gw.wait_ready(name)
    time.sleep(0.3)
    pids = [p for k, p in gw.instance_pids().items() if k.startswith(name + "-")]
    check(pids, "instance pidfiles")
    pid = max(pids)
    status = open("/proc/%d/status" % pid).read()
    check(re.search(r"NoNewPrivs:\s+1", status), "no_new_privs set")
    if os.geteuid() == 0:
        uid = int(re.search(r"Uid:\s+(\d+)\s", status).group(1))
        check(200000 <= uid <= 265535, "runs as its function's uid %d when the daemon is root" % uid)
    log = open(os.path.join(gw.tmp, "shmfaasd.log")).read()
    if "cannot create network namespaces" not in log:
        check(os.readlink("/proc/%d/ns/net" % pid) != os.readlink("/proc/self/ns/net"),
              "own network namespace")
    cg, limit_file = proc_cgroup_dir(pid)
    if "no writable cgroup" not in log:
        check(cg, "instance in its own cgroup")
        limit = int(open(os.path.join(cg, limit_file)).read())
        check(limit == 256 << 20, "memory limit %d == 256Mi" % limit)
    fds = os.listdir("/proc/%d/fd" % pid)
    print("isolation of %s pid %d: cgroup %s, fds %s" % (name, pid, cg, sorted(fds)))


def case_stream(gw):
    """A reply larger than one read passes through as it arrives (chunked), whole and intact."""
    gw.deploy("wide", "wide")
    gw.wait_ready("wide")
    body = open(os.path.join(MODELS, "input_wide.json"), "rb").read()
    for _ in range(3):
        r = gw.req("POST", "/function/wide", body, {"Content-Type": "application/json"},
                   auth=False)
        check(r.status == 200, "wide invoke: %d %s" % (r.status, r.body[:300]))
        y = json.loads(r.body)["outputs"]["y"]
        check(y["shape"] == [1, 64, 64, 64], "shape %s" % y["shape"])
        flat = y["data"]
        while isinstance(flat[0], list):
            flat = [v for row in flat for v in row]
        check(len(flat) == 64 * 64 * 64, "all %d values arrived" % len(flat))
        print("wide reply: %d bytes, Transfer-Encoding %s" % (len(r.body),
              r.headers.get("Transfer-Encoding")))
    check(gw.invoke("wide").status == 400, "a wrong input shape is the function's 400")


def case_update(gw):
    """PUT under load (what every faas-cli deploy of an existing function does): the old instances
    serve until the new ones are ready, no request fails, the new spec is what runs after."""
    gw.deploy("upd", "tiny_a", labels={"com.openfaas.scale.min": "2"})
    gw.wait_ready("upd", 2)
    old = {k: p for k, p in gw.instance_pids().items() if k.startswith("upd-")}
    result = {}

    def load():
        result["v"] = hey(gw.url + "/function/upd", duration="3s", c=2)

    t = threading.Thread(target=load)
    t.start()
    time.sleep(1.0)
    gw.deploy("upd", "tiny_b", labels={"com.openfaas.scale.min": "2"})
    t.join()
    codes, errors, out = result["v"]
    print("hey status codes across the update:", codes)
    check(set(codes) == {200} and not errors, "no request fails during the update:\n" + out)
    gw.wait_ready("upd", 2)
    time.sleep(0.5)
    now = {k: p for k, p in gw.instance_pids().items() if k.startswith("upd-")}
    check(not set(old) & set(now), "old instances retired: %s → %s" % (old, now))
    check(gw.invoke("upd").body == gw.invoke_model_b(), "the new model answers")


def basic(user, password):
    return "Basic " + base64.b64encode(("%s:%s" % (user, password)).encode()).decode()


def check_auth_refusals(gw):
    """What every auth mode refuses: no, wrong, NUL-padded or undecodable credentials."""
    r = gw.req("GET", "/system/functions", auth=False)
    check(r.status == 401, "no credentials: %d" % r.status)
    check(r.headers.get("WWW-Authenticate") == 'Basic realm="Restricted"', "WWW-Authenticate")
    check("error" in r.json(), "401 is a JSON error: %s" % r.body)
    user, password = gw.auth
    for hdr in (basic(user, "wrong"), basic(user, password + "\0junk"),
                basic(user + "\0", password), basic(user, password)[:-2] + "*=",
                "Basic " + base64.b64encode(("%s:%s" % gw.auth).encode()).decode() + "AAAA=",
                "Bearer "):
        r = gw.req("GET", "/system/functions", headers={"Authorization": hdr}, auth=False)
        check(r.status == 401, "refused credentials %r: %d" % (hdr, r.status))
    r = gw.req("POST", "/system/functions", {"service": "x", "image": "tiny_a"}, auth=False)
    check(r.status == 401, "deploy without auth: %d" % r.status)
    check(gw.req("GET", "/system/functions").status == 200, "right credentials")
    check(gw.req("GET", "/healthz", auth=False).status == 200, "healthz open")
    check(gw.req("GET", "/metrics", auth=False).status == 200, "metrics open")
    check(gw.req("POST", "/function/none", b"", auth=False).status == 404, "function route open")
    check(gw.functions() == {}, "the refused deploy changed nothing")


def case_auth(gw):
    """Basic auth on by default (issue 12): a generated password in STATE/secrets (0700/0600),
    what faas-cli and the shmfaas CLI send; --basic-auth DIR; --no-auth; --auth-functions.
    /function, /healthz and /metrics stay open unless --auth-functions."""
    secrets = os.path.join(gw.state, "secrets")
    st = os.stat(secrets)
    check(st.st_uid == os.geteuid() and st.st_mode & 0o777 == 0o700, "secrets dir 0700 ours")
    for f in ("basic-auth-user", "basic-auth-password"):
        st = os.lstat(os.path.join(secrets, f))
        check(st.st_mode & 0o777 == 0o600 and os.path.isfile(os.path.join(secrets, f)),
              "%s is a 0600 file" % f)
    user, password = gw.auth
    check(user == "admin" and len(password) == 32 and re.fullmatch(r"[A-Za-z0-9_-]+", password),
          "generated admin password: %r" % password)
    log = open(os.path.join(gw.tmp, "shmfaasd.log"), errors="replace").read()
    check(secrets in log and password not in log, "the log names the file, never the password")
    check_auth_refusals(gw)
    # faas-cli login --password-stdin -g URL: GET /system/functions with basic auth, then list
    fc = {"User-Agent": "faas-cli/0.16.37", "Authorization": basic(user, password)}
    check(gw.req("GET", "/system/functions", headers=fc, auth=False).status == 200, "faas-cli login")
    # shmfaas login --password-stdin: saved 0600 for this gateway, used by every verb
    home = os.path.join(gw.tmp, "home")
    env = {"HOME": home, "SHMFAAS_STATE": os.path.join(gw.tmp, "none")}
    rc, out, err = cli(gw, "login", "--password-stdin", stdin=b"wrong\n", env=env)
    check(rc == 1 and "401" in err, "login with a wrong password fails: %s %s" % (out, err))
    rc, out, err = cli(gw, "list", env=env)
    check(rc == 1 and "401" in err, "no credentials, no list: %s" % err)
    rc, out, err = cli(gw, "login", "--username", "admin", "--password-stdin",
                       stdin=(password + "\n").encode(), env=env)
    check(rc == 0, "login: %s %s" % (out, err))
    cred = os.path.join(home, ".shmfaas", "credentials")
    check(os.stat(cred).st_mode & 0o777 == 0o600, "credentials file 0600")
    rc, out, err = cli(gw, "list", env=env)
    check(rc == 0, "list after login: %s" % err)
    # as root, the CLI reads the generated password from the state dir itself
    rc, out, err = cli(gw, "--state", gw.state, "list", env={"HOME": os.path.join(gw.tmp, "h2")})
    check(rc == 0, "list as root with --state: %s" % err)
    # the password survives a restart
    check(gw.stop() == 0, "clean stop")
    gw.start()
    check(gw.req("GET", "/system/functions").status == 200, "same password after a restart")
    check(gw.stop() == 0, "clean stop")
    # --basic-auth DIR (OpenFaaS secret files) instead of the generated password
    sec = os.path.join(gw.tmp, "ofsecrets")
    os.makedirs(sec)
    open(os.path.join(sec, "basic-auth-user"), "w").write("admin\n")
    open(os.path.join(sec, "basic-auth-password"), "w").write("s3cret\n")
    other = Gateway(gw.tmp, ["--basic-auth", sec], ("admin", "s3cret")).start()
    try:
        check_auth_refusals(other)
        r = other.req("GET", "/system/functions", headers={"Authorization": basic(user, password)},
                      auth=False)
        check(r.status == 401, "--basic-auth DIR replaces the generated password: %d" % r.status)
        check(other.stop() == 0, "clean stop")
    finally:
        other.cleanup()
    # --no-auth: open; faas-cli's empty bearer token (not logged in) is ignored
    other = Gateway(gw.tmp, ["--no-auth"]).start()
    try:
        check(other.auth is None, "--no-auth: no credentials")
        check(other.req("GET", "/system/functions").status == 200, "--no-auth: open")
        r = other.req("GET", "/system/functions", headers={"Authorization": "Bearer "})
        check(r.status == 200, "empty bearer with auth off: %d" % r.status)
        check("--no-auth" in open(os.path.join(gw.tmp, "shmfaasd.log"), errors="replace").read(),
              "--no-auth is logged as a warning")
        check(other.stop() == 0, "clean stop")
    finally:
        other.cleanup()
    # --auth-functions: invokes need the credentials too
    other = Gateway(gw.tmp, ["--auth-functions"]).start()
    try:
        r = other.req("POST", "/function/none", b"", auth=False)
        check(r.status == 401, "--auth-functions: invoke without credentials %d" % r.status)
        check(other.req("POST", "/function/none", b"").status == 404, "with credentials: 404")
        check(other.req("GET", "/healthz", auth=False).status == 200, "healthz still open")
        check(other.stop() == 0, "clean stop")
    finally:
        other.cleanup()
    gw.start()  # main() stops it


def store_models(gw):
    st = gw.req("GET", "/system/models").json()["store"]
    check(st is not None, "store stats unavailable")
    return st


def case_sharing(gw):
    """Acceptance 2: two functions on one model + one on another: one image per model."""
    gw.deploy("fa", "tiny_a")
    gw.deploy("fb", "tiny_a")
    gw.deploy("fc", "tiny_b")
    for n in ("fa", "fb", "fc"):
        gw.wait_ready(n)
        r = gw.invoke(n)
        check(r.status == 200, "invoke %s: %d %s" % (n, r.status, r.body))
    check(gw.invoke("fa").body == gw.invoke("fb").body, "fa and fb answer alike")
    st = store_models(gw)
    resident = [m for m in st["models"] if m["state"] == "resident"]
    check(len(resident) == 2, "one image per model: %s" % st["models"])
    by_leases = sorted(m["leases"] for m in resident)
    check(by_leases == [1, 2], "leases per image (tiny_b 1, tiny_a 2): %s" % by_leases)
    out = cli(gw, "--gateway", gw.url, "stats")[1]
    print(out)
    check(all(n in out for n in ("fa", "fb", "fc")), "stats lists the functions")
    check("2 models in use" in out and "3 instances" in out, "stats shows the sharing")
    check("saved by sharing" in out, "stats compares with private copies")
    # the baseline: com.shmfaas.private runs instances with --private <image> --models <models>
    # (the instance opens the file itself, confined to the models directory)
    gw.deploy("fp", "tiny_a", labels={"com.shmfaas.private": "true"})
    gw.wait_ready("fp")
    check(gw.invoke("fp").body == gw.invoke("fa").body, "private copy answers alike")
    pid = [p for k, p in gw.instance_pids().items() if k.startswith("fp-")][0]
    argv = open("/proc/%d/cmdline" % pid).read().split("\0")
    check("--private" in argv and argv[argv.index("--private") + 1] == "tiny_a" and
          argv[argv.index("--models") + 1] == gw.models,
          "private instance argv: %s" % argv)
    leases = sorted(m["leases"] for m in store_models(gw)["models"] if m["state"] == "resident")
    check(leases == [1, 2], "a private instance takes no lease: %s" % leases)


def case_autoscale(gw):
    """Acceptance 3: hey -c 8 on target 1 max 4 → 4 instances, no failure; idle → 0; wake."""
    labels = {"com.openfaas.scale.min": "1", "com.openfaas.scale.max": "4",
              "com.openfaas.scale.target": "1", "com.openfaas.scale.zero": "true",
              "com.openfaas.scale.zero-duration": "2s"}
    gw.deploy("auto", "tiny_a", labels=labels)
    gw.wait_ready("auto")
    peak = [0]
    stop = threading.Event()

    def watch():
        while not stop.is_set():
            peak[0] = max(peak[0], gw.functions()["auto"]["replicas"])
            time.sleep(0.05)

    t = threading.Thread(target=watch)
    t.start()
    codes, errors, out = hey(gw.url + "/function/auto.openfaas-fn", duration="6s", c=8)
    stop.set()
    t.join()
    print("hey status codes:", codes, "peak replicas:", peak[0])
    check(codes and set(codes) == {200} and not errors, "every request succeeds:\n" + out)
    check(peak[0] == 4, "scaled to max 4 (peak %d)" % peak[0])
    deadline = time.time() + 40
    while time.time() < deadline and gw.functions()["auto"]["replicas"] > 0:
        time.sleep(0.1)
    check(gw.functions()["auto"]["replicas"] == 0, "idle → scaled to zero")
    time.sleep(0.5)
    check(not [k for k in gw.instance_pids() if k.startswith("auto-")], "no instance left")
    t0 = time.time()
    r = gw.invoke("auto")
    print("first request from zero: %.0f ms" % ((time.time() - t0) * 1000))
    check(r.status == 200, "request at zero is held and served: %d %s" % (r.status, r.body))


def case_crash(gw):
    """Acceptance 4a: kill -9 of an instance under load: only the documented 502s."""
    labels = {"com.openfaas.scale.min": "2", "com.openfaas.scale.max": "2"}
    gw.deploy("crash", "tiny_a", labels=labels)
    gw.wait_ready("crash", 2)
    result = {}

    def load():
        result["v"] = hey(gw.url + "/function/crash", duration="4s", c=4)

    t = threading.Thread(target=load)
    t.start()
    time.sleep(1.0)
    victim = sorted(gw.instance_pids().items())[0]
    os.kill(victim[1], signal.SIGKILL)
    print("killed instance", victim)
    t.join()
    codes, errors, out = result["v"]
    print("hey status codes:", codes)
    bad = {c: n for c, n in codes.items() if c != 200}
    check(not errors, "transport errors:\n" + out)
    check(set(bad) <= {502} and sum(bad.values()) <= 1,
          "only the 502 of a request that had its answer started may fail: %s" % bad)
    gw.wait_ready("crash", 2)
    check(victim[0] not in gw.instance_pids(), "the crashed instance was replaced")
    check(gw.invoke("crash").status == 200, "serves after the crash")


def case_restart(gw):
    """Acceptance 4b: kill -9 of shmfaasd, restart: functions back, orphans reaped, images re-adopted."""
    gw.deploy("ra", "tiny_a", labels={"com.openfaas.scale.min": "2"})
    gw.deploy("rb", "tiny_b")
    gw.wait_ready("ra", 2)
    gw.wait_ready("rb")
    before = gw.functions()
    old = gw.instance_pids()
    check(len(old) >= 4, "instances + store have pidfiles: %s" % old)
    gw.kill9()
    # templates ("NAME.tID") exit with their daemon (their control socket closes); instances stay
    check(all(alive(p) for k, p in old.items() if ".t" not in k),
          "instances outlive a SIGKILLed daemon")
    gw.start()
    for p in old.values():
        check(not alive(p), "orphan pid %d reaped" % p)
    after = gw.wait_ready("ra", 2)
    gw.wait_ready("rb")
    check(set(gw.functions()) == set(before), "all functions back")
    check(after["image"] == "tiny_a" and after["labels"] == before["ra"]["labels"], "spec back")
    check(gw.invoke("ra").status == 200 and gw.invoke("rb").status == 200, "invoke after restart")
    totals = store_models(gw).get("totals", {})
    print("store totals after restart:", totals)
    check(totals.get("adopted", 0) >= 2 and totals.get("compiles", 1) == 0,
          "images re-adopted, not recompiled: %s" % totals)
    # our store dies: shmfaasd starts a new one, instances keep serving and re-attach
    store_pid = gw.instance_pids()["store"]
    os.kill(store_pid, signal.SIGKILL)
    check(gw.invoke("ra").status == 200, "serving while the store is down")
    deadline = time.time() + 20
    while time.time() < deadline and gw.instance_pids().get("store", store_pid) == store_pid:
        time.sleep(0.05)
    check(gw.instance_pids().get("store", store_pid) != store_pid, "store restarted")
    deadline = time.time() + 20
    while time.time() < deadline:
        st = gw.req("GET", "/system/models").json()["store"]
        if st and st["totals"]["leases"] >= 3:
            break
        time.sleep(0.1)
    check(st and st["totals"]["leases"] >= 3, "instances re-attached to the new store: %s" % st)
    check(gw.invoke("rb").status == 200, "serving after the store restart")


def case_bad(gw):
    """Acceptance 5: bad requests → documented 4xx with a message; nothing changes."""
    gw.deploy("keep", "tiny_a")
    gw.wait_ready("keep")
    spec_file = os.path.join(gw.state, "functions", "keep.json")
    spec_before = open(spec_file).read()
    before = gw.functions()
    cases = [
        ("POST", "/system/functions", b"{not json", 400, "invalid JSON"),
        ("POST", "/system/functions", {"image": "tiny_a"}, 400, "service"),
        ("POST", "/system/functions", {"service": "nope"}, 400, "image"),
        ("POST", "/system/functions", {"service": "nope", "image": "no_such_model"}, 400,
         "unknown model"),
        ("POST", "/system/functions", {"service": "nope", "image": "../etc/passwd"}, 400, "model"),
        ("POST", "/system/functions",
         {"service": "nope", "image": "tiny_a", "limits": {"memory": "12 parsecs"}}, 400,
         "quantity"),
        ("POST", "/system/functions",
         {"service": "nope", "image": "tiny_a", "labels": {"com.openfaas.scale.max": "lots"}},
         400, "com.openfaas.scale.max"),
        ("POST", "/system/functions", {"service": "keep", "image": "tiny_a"}, 409, "exists"),
        ("PUT", "/system/functions", {"service": "keep", "image": "no_such_model"}, 400,
         "unknown model"),
        ("PUT", "/system/functions", {"service": "keep", "image": "tiny_a",
                                      "limits": {"memory": "-1Mi"}}, 400, "quantity"),
        ("POST", "/system/functions", {"service": "nope", "image": "tiny_a",
                                       "namespace": "prod"}, 400, "namespace"),
        ("GET", "/system/function/ghost", None, 404, "not found"),
        ("GET", "/system/functions?namespace=prod", None, 400, "namespace"),
        ("DELETE", "/system/functions", {"functionName": "ghost"}, 404, "not found"),
        ("DELETE", "/system/functions", b"[]", 400, "JSON"),
        ("POST", "/system/scale-function/ghost", {"serviceName": "ghost", "replicas": 1}, 404,
         "not found"),
        ("POST", "/system/scale-function/keep", {"serviceName": "keep", "replicas": -3}, 400,
         "replicas"),
        ("POST", "/function/ghost", b"{}", 404, "not found"),
        ("GET", "/system/logs?name=ghost", None, 404, "not found"),
        ("POST", "/system/models/..bad", b"x", 400, "model name"),
    ]
    for method, path, body, code, needle in cases:
        r = gw.req(method, path, body)
        msg = r.body.decode(errors="replace")
        check(r.status == code, "%s %s: want %d, got %d %s" % (method, path, code, r.status, msg))
        check(needle.lower() in msg.lower(), "%s %s: message %r lacks %r" % (method, path, msg, needle))
        print("%s %s → %d %s" % (method, path, r.status, msg))
    check(gw.functions().keys() == before.keys(), "no function added or removed")
    check(open(spec_file).read() == spec_before, "the persisted spec is unchanged")
    check(gw.invoke("keep").status == 200, "still serving")


def cli(gw, *args, stdin=None, env=None):
    e = dict(os.environ, OPENFAAS_URL=gw.url, HOME=gw.tmp, SHMFAAS_STATE=gw.state)
    e.update(env or {})
    p = subprocess.run([CLI] + list(args), input=stdin, capture_output=True, env=e, timeout=60)
    return p.returncode, p.stdout.decode(), p.stderr.decode()


def case_cli(gw):
    """The shmfaas CLI end to end: stack.yml with ${VAR}, list, describe, invoke, scale, logs,
    model push/ls/rm, remove."""
    stack = os.path.join(gw.tmp, "stack.yml")
    open(stack, "w").write(
        "version: 1.0\nprovider: {name: openfaas, gateway: http://127.0.0.1:1}\n"
        "functions:\n"
        "  c1:\n    image: ${MODEL}\n    environment: {input: json, output: json}\n"
        "    labels: {com.openfaas.scale.max: \"3\"}\n"
        "  c2:\n    image: ${OTHER:-tiny_b}\n    environment: {input: json, output: json}\n")
    rc, out, err = cli(gw, "deploy", "-f", stack, env={"MODEL": "tiny_a"})
    check(rc == 0 and "Deployed c1" in out and "Deployed c2" in out, "deploy -f: %s %s" % (out, err))
    gw.wait_ready("c1")
    gw.wait_ready("c2")
    check(gw.functions()["c2"]["image"] == "tiny_b", "${OTHER:-tiny_b} default applied")
    rc, out, err = cli(gw, "list")
    check(rc == 0 and "c1" in out and "tiny_a" in out and "c2" in out, "list: %s" % out)
    rc, out, err = cli(gw, "describe", "c1")
    check(rc == 0 and "Ready" in out and "tiny_a" in out, "describe: %s %s" % (out, err))
    rc, out, err = cli(gw, "invoke", "c1", stdin=INPUT)
    check(rc == 0 and json.loads(out)["outputs"]["y"]["shape"] == [1, 3], "invoke: %s %s" % (out, err))
    rc, out, err = cli(gw, "invoke", "c1", stdin=b"{broken")
    check(rc == 1 and "400" in err, "invoke with a bad body reports the 400: %s" % err)
    rc, out, err = cli(gw, "scale", "c1", "2")
    check(rc == 0, "scale: %s" % err)
    gw.wait_ready("c1", 2)
    rc, out, err = cli(gw, "logs", "c1", "--tail", "5")
    check(rc == 0, "logs: %s" % err)
    rc, out, err = cli(gw, "model", "push", "pushed", os.path.join(MODELS, "tiny_b.onnx"))
    check(rc == 0 and os.path.exists(os.path.join(gw.models, "pushed.onnx")), "model push: %s" % err)
    rc, out, err = cli(gw, "model", "ls")
    check(rc == 0 and "pushed" in out and "tiny_a" in out, "model ls: %s" % out)
    rc, out, err = cli(gw, "deploy", "--name", "c3", "--image", "pushed", "--env", "input=json",
                       "--env", "output=json", "--memory", "128Mi")
    check(rc == 0, "deploy with flags: %s" % err)
    gw.wait_ready("c3")
    check(gw.invoke("c3").body == gw.invoke("c2").body, "pushed model = tiny_b")
    rc, out, err = cli(gw, "model", "rm", "pushed")
    check(rc == 1 and "409" in err, "model rm of a model in use is refused: %s" % err)
    for n in ("c1", "c2", "c3"):
        rc, out, err = cli(gw, "remove", n)
        check(rc == 0, "remove %s: %s" % (n, err))
    rc, out, err = cli(gw, "model", "rm", "pushed")
    check(rc == 0 and not os.path.exists(os.path.join(gw.models, "pushed.onnx")), "model rm")
    rc, out, err = cli(gw, "describe", "c1")
    check(rc == 1 and "404" in err, "describe after remove: %s" % err)
    rc, out, err = cli(gw, "frobnicate")
    check(rc == 2, "unknown command → usage, exit 2")


CASES = {"api": case_api, "cli": case_cli, "stream": case_stream, "update": case_update, "auth": case_auth, "sharing": case_sharing,
         "autoscale": case_autoscale, "crash": case_crash, "restart": case_restart,
         "bad": case_bad}


def purge_leftovers(gw):
    """What a failed case may leave: this daemon's cgroups (<own>/shmfaas/<hash of STATE>) and
    sealed (immutable) images that rmtree cannot remove."""
    h = hashlib.sha256(os.path.realpath(gw.state).encode()).hexdigest()[:12]
    for line in open("/proc/self/cgroup"):
        _, ctrl, path = line.rstrip("\n").split(":", 2)
        mount = "/sys/fs/cgroup" if ctrl == "" else "/sys/fs/cgroup/memory"
        if ctrl != "" and "memory" not in ctrl.split(","):
            continue
        root = os.path.join(mount + (path if path != "/" else ""), "shmfaas", h)
        if not os.path.isdir(root):
            continue
        for sub in [os.path.join(root, d) for d in os.listdir(root)]:
            if os.path.isdir(sub):
                for pid in open(os.path.join(sub, "cgroup.procs")).read().split():
                    try:
                        os.kill(int(pid), signal.SIGKILL)
                    except OSError:
                        pass
        for _ in range(50):
            subs = [os.path.join(root, d) for d in os.listdir(root)
                    if os.path.isdir(os.path.join(root, d))]
            for d in subs + [root]:
                try:
                    os.rmdir(d)
                except OSError:
                    pass
            if not os.path.exists(root):
                break
            time.sleep(0.1)
    if os.path.ismount(gw.store_dir):  # a killed store's huge-page tmpfs (--huge-pages)
        subprocess.run(["umount", "-l", gw.store_dir], capture_output=True)
    if os.path.isdir(gw.store_dir):
        for f in os.listdir(gw.store_dir):
            subprocess.run(["chattr", "-i", os.path.join(gw.store_dir, f)], capture_output=True)
        shutil.rmtree(gw.store_dir, ignore_errors=True)

def run_main(cases, prefix, flags=lambda case: [], tail=6000):
    """Runs case sys.argv[1] of cases on a fresh Gateway (extra daemon flags from flags(case)),
    always cleaning up; on failure prints the tail of shmfaasd's log."""
    case = sys.argv[1]
    tmp = tempfile.mkdtemp(prefix=prefix)
    os.chmod(tmp, 0o711)  # instances run as their function's uid and must reach the store socket
    gw = Gateway(tmp, flags(case))  # auth on by default: Gateway reads the generated password
    ok = False
    try:
        gw.start()
        cases[case](gw)
        rc = gw.cleanup()
        check(rc == 0, "shmfaasd exit status on SIGTERM: %s" % rc)
        ok = True
        print("ok:", case)
    finally:
        gw.cleanup()
        if not ok:
            sys.stdout.write(open(os.path.join(tmp, "shmfaasd.log"), errors="replace").read()[-tail:])
        purge_leftovers(gw)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    run_main(CASES, "shmfaas-gw-")
