"""bench/benchlib.py — what bench/memory and bench/latency share: the machine line, a shmfaasd
started in a private temp dir (own state, models, store dir, port) and stopped with everything it
started, HTTP over the instances' unix sockets, and PSS summed over a process tree.

Cleanup: Gateway.stop() is idempotent; run_guarded() turns SIGINT/SIGTERM into an exception so
that the `finally` blocks of the benchmarks stop every gateway they started (shmfaasd stops its
instances and store; whatever is left of its process tree is killed; temp and /dev/shm dirs go).
"""
import http.client
import json
import os
import platform
import random
import shlex
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ORT_FN = os.path.join(ROOT, "bench", "ort", "ort_fn.js")
MIB = 1 << 20


class BenchError(Exception):
    pass


def machine():
    """CPU model name (lscpu), online cores, kernel release."""
    model = "?"
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} cores, Linux {platform.release()}"


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def command_line():
    return shlex.join([os.path.relpath(sys.argv[0], ROOT)] + sys.argv[1:])


def mem_available():
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return 0


def raw_input(shape=(1, 3, 224, 224), seed=12345):
    """Seeded random float32 input, little-endian bytes (input=raw)."""
    rng = random.Random(seed)
    n = 1
    for d in shape:
        n *= d
    return struct.pack("<%df" % n, *(rng.random() - 0.5 for _ in range(n)))


def zoo_model(name):
    path = os.path.join(ROOT, "zoo", name, "model.onnx")
    if not os.path.isfile(path):
        raise BenchError(f"{path} missing: run /usr/bin/python3 tools/zoo --out zoo --models {name}")
    return path


def run_guarded(main):
    """Runs main() with SIGTERM/SIGINT raised as KeyboardInterrupt (so `finally` cleans up)."""

    def on_signal(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    prog = os.path.basename(sys.argv[0])
    try:
        sys.exit(main())
    except BenchError as e:
        sys.exit(f"{prog}: {e}")
    except KeyboardInterrupt:
        sys.exit(f"{prog}: interrupted; everything it started was stopped")


# ---- HTTP over a unix socket (the instances' sockets) ----


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout=300):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(self.unix_path)
        self.sock = s


def post(conn, path, body, ctype="application/octet-stream"):
    """POST on a kept-alive connection; returns (status, body bytes)."""
    conn.request("POST", path, body=body, headers={"Content-Type": ctype})
    r = conn.getresponse()
    return r.status, r.read()


def post_ok(conn, path, body):
    status, data = post(conn, path, body)
    if status != 200:
        raise BenchError(f"POST {path}: {status} {data[:300]!r}")
    return data


# ---- memory: PSS of a process tree ----


def _children_map():
    kids = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                st = f.read()
        except OSError:
            continue
        ppid = int(st[st.rindex(")") + 2:].split()[1])
        kids.setdefault(ppid, []).append(int(d))
    return kids


def tree(pid):
    """pid and all its descendants."""
    kids = _children_map()
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def start_time(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            st = f.read()
        return st[st.rindex(")") + 2:].split()[19]
    except (OSError, ValueError, IndexError):
        return None


def kill_if_same(procs):
    """SIGKILL each (pid, start time) that is still that same process."""
    for pid, t in procs:
        if t is not None and start_time(pid) == t:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass


def comm(pid):
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return ""


def pss_bytes(pid):
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def mapped_rss(pids, path):
    """The largest Rss any of pids has of a mapping of `path` (pages of the file that are mapped)."""
    best = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/smaps") as f:
                cur = False
                rss = 0
                for line in f:
                    first = line.split(None, 1)[0]
                    if "-" in first and not first.endswith(":"):
                        best = max(best, rss)
                        rss = 0
                        cur = line.rstrip("\n").endswith(path)
                    elif cur and first == "Rss:":
                        rss += int(line.split()[1]) * 1024
                best = max(best, rss)
        except OSError:
            continue
    return best


def tmpfs_unmapped(pids, d):
    """Bytes of the files in tmpfs dir d that no process of pids maps (file size - the largest
    mapped Rss; an upper bound, which counts against the shared store)."""
    total = 0
    if not d or not os.path.isdir(d):
        return 0
    for name in os.listdir(d):
        path = os.path.join(d, name)
        try:
            st = os.stat(path)
        except OSError:
            continue
        used = st.st_blocks * 512
        total += max(0, used - mapped_rss(pids, path))
    return total


# ---- shmfaasd in a temp dir ----


def auth_header(state):
    """Basic auth with the admin password shmfaasd generated into STATE/secrets (auth is on by
    default; /function/* stays open, so what the benchmarks time is unchanged)."""
    sec = os.path.join(state, "secrets")
    try:
        user, pw = (open(os.path.join(sec, f)).read().strip()
                    for f in ("basic-auth-user", "basic-auth-password"))
    except OSError:
        return {}
    import base64
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{pw}".encode()).decode()}



class Gateway:
    """shmfaasd with its own state dir, models dir (hard links of zoo models), store dir, port."""

    def __init__(self, build, models, fn_bin=None, budget="8GiB", tag="bench", log_level="warn",
                 args=(), cgroup=None, wait_policy="PASSIVE"):
        """args: more shmfaasd options; cgroup: a MemCgroup that shmfaasd (and so its store and
        every instance cgroup it makes under its own) is started in; wait_policy: the
        OMP_WAIT_POLICY shmfaasd passes on to its instances (None: their own, src/engine/omp.c)."""
        self.proc = None
        self.tmp = tempfile.mkdtemp(prefix=f"shmfaas-{tag}-")
        os.chmod(self.tmp, 0o755)
        self.state = os.path.join(self.tmp, "state")
        self.models = os.path.join(self.tmp, "models")
        self.store_dir = f"/dev/shm/shmfaas-{tag}-{os.getpid()}-{os.path.basename(self.tmp)}"
        os.makedirs(self.state)
        os.makedirs(self.models)
        os.chmod(self.models, 0o755)
        for m in models:
            dst = os.path.join(self.models, m + ".onnx")
            try:
                os.link(zoo_model(m), dst)
            except OSError:
                shutil.copyfile(zoo_model(m), dst)
            os.chmod(dst, 0o644)
        exe = os.path.join(build, "src", "gateway", "shmfaasd")
        if not os.access(exe, os.X_OK):
            raise BenchError(f"{exe} not built (meson setup {build} && ninja -C {build})")
        cmd = [exe, "--listen", "127.0.0.1:0", "--state", self.state, "--models", self.models,
               "--store-dir", self.store_dir, "--budget", budget, "--log-level", log_level]
        if fn_bin:
            cmd += ["--fn-bin", fn_bin]
        cmd += list(args)
        env = dict(os.environ)
        env.pop("OMP_WAIT_POLICY", None)
        if wait_policy:
            env["OMP_WAIT_POLICY"] = wait_policy
        self.log = open(os.path.join(self.tmp, "shmfaasd.log"), "w")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, env=env,
                                     start_new_session=True,
                                     preexec_fn=cgroup.join_self if cgroup else None)
        self.url = self._wait_listen()

    def _wait_listen(self):
        path = os.path.join(self.state, "listen")
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise BenchError(f"shmfaasd exited: {self.log_tail()}")
            try:
                with open(path) as f:
                    url = f.read().strip()
                if url:
                    if not url.startswith("http"):
                        url = "http://" + url
                    with urllib.request.urlopen(url + "/healthz", timeout=2):
                        return url
            except OSError:
                pass
            time.sleep(0.05)
        raise BenchError(f"shmfaasd did not start: {self.log_tail()}")

    def log_tail(self, n=1500):
        try:
            with open(os.path.join(self.tmp, "shmfaasd.log")) as f:
                return f.read()[-n:]
        except OSError:
            return "(no log)"

    def request(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        r = urllib.request.Request(self.url + path, data=data, method=method,
                                   headers=dict(auth_header(self.state),
                                                **{"Content-Type": "application/json"}))
        try:
            with urllib.request.urlopen(r, timeout=60) as resp:
                return resp.read()
        except urllib.error.HTTPError as e:
            raise BenchError(f"{method} {path}: {e.code} {e.read()[:300]!r}") from None

    def deploy(self, name, image, env, private=False, max_replicas=16, labels=None):
        labels = dict({"com.openfaas.scale.min": "1", "com.openfaas.scale.max": str(max_replicas)},
                      **(labels or {}))
        if private:
            labels["com.shmfaas.private"] = "true"
        self.request("POST", "/system/functions",
                     {"service": name, "image": image, "envVars": env, "labels": labels})

    def scale(self, name, n):
        self.request("POST", f"/system/scale-function/{name}",
                     {"serviceName": name, "replicas": n})

    def remove(self, name):
        self.request("DELETE", "/system/functions", {"functionName": name})

    def ready(self, name):
        st = json.loads(self.request("GET", f"/system/function/{name}"))
        return st.get("availableReplicas", 0)

    def wait_ready(self, name, n, timeout=300):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.ready(name) >= n:
                return
            if self.proc.poll() is not None:
                raise BenchError(f"shmfaasd exited: {self.log_tail()}")
            time.sleep(0.1)
        raise BenchError(f"{name}: {n} instances not ready after {timeout} s; "
                         f"instance log: {self.fn_log(name)}")

    def fn_log(self, name, n=1500):
        try:
            with open(os.path.join(self.state, "logs", name + ".log")) as f:
                return f.read()[-n:]
        except OSError:
            return "(no log)"

    def sockets(self, name):
        """The instance sockets of function name: STATE/run/NAME/ID.sock (STATE/run/NAME-ID.sock
        before shmfaasd gave each function its own directory)."""
        run = os.path.join(self.state, "run")
        d = os.path.join(run, name)
        if os.path.isdir(d):
            socks = [os.path.join(d, f) for f in os.listdir(d) if f.endswith(".sock")]
        else:
            socks = [os.path.join(run, f) for f in os.listdir(run)
                     if f.startswith(name + "-") and f.endswith(".sock")]
        return sorted(socks, key=lambda p: int(os.path.basename(p)[:-5].rsplit("-", 1)[-1]))

    def pids(self):
        return tree(self.proc.pid) if self.proc and self.proc.poll() is None else []

    def memory(self):
        """(total PSS of shmfaasd + store + instances, image bytes in the store dir nobody maps)."""
        parts = self.memory_parts()
        return parts["shmfaasd"] + parts["store"] + parts["instances"], parts["unmapped"]

    def memory_parts(self):
        """PSS of shmfaasd, of its store, of all instances; unmapped image bytes; instance count."""
        pids = self.pids()
        parts = {"shmfaasd": 0, "store": 0, "instances": 0, "n_instances": 0}
        for p in pids:
            if p == self.proc.pid:
                parts["shmfaasd"] += pss_bytes(p)
            elif comm(p) == "shmfaas-store":
                parts["store"] += pss_bytes(p)
            else:
                parts["instances"] += pss_bytes(p)
                parts["n_instances"] += 1
        parts["unmapped"] = tmpfs_unmapped(pids, self.store_dir)
        return parts

    def stop(self):
        if self.proc is not None:
            procs = [(p, start_time(p)) for p in self.pids()]
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(30)
                except subprocess.TimeoutExpired:
                    pass
            kill_if_same(procs)
            if self.proc.poll() is None:
                self.proc.wait()
            self.proc = None
            self.log.close()
        shutil.rmtree(self.tmp, ignore_errors=True)
        if os.path.ismount(self.store_dir):  # a killed store's huge-page tmpfs (--huge-pages)
            subprocess.run(["umount", "-l", self.store_dir], capture_output=True)
        shutil.rmtree(self.store_dir, ignore_errors=True)


# ---- one memory cgroup that holds a whole deployment ----


def _own_cgroup(controller):
    """Our cgroup path for a v1 controller ("memory") or v2 ("")."""
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, ctrls, path = line.rstrip("\n").split(":", 2)
            if ctrls == controller or controller in ctrls.split(","):
                return "" if path == "/" else path
    return None


def _read_int(path):
    try:
        with open(path) as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _read_stat(path):
    out = {}
    try:
        with open(path) as f:
            for line in f:
                k, v = line.split()[:2]
                out[k] = int(v)
    except (OSError, ValueError):
        pass
    return out


class MemCgroup:
    """A fresh memory cgroup below our own (v2, or the v1 memory hierarchy), to start shmfaasd in:
    its store, any template and every instance cgroup shmfaasd makes below its own cgroup are then
    in this one's subtree and counted in it. remove() kills whatever is left in the subtree (all of
    it was started here) and removes the cgroups, bottom up."""

    def __init__(self, tag="bench"):
        name = f"shmfaas-{tag}-{os.getpid()}"
        self.path = None
        if os.path.exists("/sys/fs/cgroup/cgroup.controllers") and _own_cgroup("") is not None:
            self.v2 = True
            self.path = f"/sys/fs/cgroup{_own_cgroup('')}/{name}"
        elif _own_cgroup("memory") is not None:
            self.v2 = False
            self.path = f"/sys/fs/cgroup/memory{_own_cgroup('memory')}/{name}"
        else:
            raise BenchError("no memory cgroup (v2 or v1 memory hierarchy) to measure in")
        try:
            os.mkdir(self.path)
        except OSError as e:
            self.path = None
            raise BenchError(f"cannot create a memory cgroup: {e}") from None
        if self.v2 and not os.path.exists(os.path.join(self.path, "memory.current")):
            self.remove()
            raise BenchError("cgroup v2 without the memory controller in our cgroup's "
                             "subtree_control: nothing to read the deployment's memory from")
        if not self.v2 and _read_int(os.path.join(self.path, "memory.use_hierarchy")) != 1:
            self.remove()
            raise BenchError("cgroup v1 memory.use_hierarchy is 0: nested instance cgroups "
                             "would not be counted in the parent")
        self.kind = "v2" if self.v2 else "v1 memory (use_hierarchy=1)"

    def join_self(self):
        """preexec_fn: moves the calling (child) process into this cgroup."""
        with open(os.path.join(self.path, "cgroup.procs"), "w") as f:
            f.write(str(os.getpid()))

    def _dirs(self):
        """This cgroup and every cgroup below it, deepest first."""
        out = []
        for root, dirs, _ in os.walk(self.path):
            out.append(root)
        return sorted(out, key=lambda p: p.count("/"), reverse=True)

    def pids(self):
        out = []
        for d in self._dirs() if self.path else []:
            try:
                with open(os.path.join(d, "cgroup.procs")) as f:
                    out.extend(int(x) for x in f.read().split())
            except OSError:
                pass
        return out

    def read(self):
        """Bytes: total (usage as the kernel charges it), anon, shmem, file (page cache, less
        shmem), kernel (page tables, slab, stacks...), and deployment = anon + shmem + kernel."""
        p = self.path
        if self.v2:
            st = _read_stat(os.path.join(p, "memory.stat"))
            kernel = st.get("kernel")
            if kernel is None:
                kernel = sum(st.get(k, 0) for k in ("kernel_stack", "pagetables", "sec_pagetables",
                                                   "percpu", "sock", "slab", "vmalloc"))
            r = {"total": _read_int(os.path.join(p, "memory.current")) or 0,
                 "anon": st.get("anon", 0), "shmem": st.get("shmem", 0),
                 "file": st.get("file", 0) - st.get("shmem", 0), "kernel": kernel,
                 "pagetables": st.get("pagetables")}
        else:
            st = _read_stat(os.path.join(p, "memory.stat"))
            r = {"total": _read_int(os.path.join(p, "memory.usage_in_bytes")) or 0,
                 "anon": st.get("total_rss", 0), "shmem": st.get("total_shmem", 0),
                 "file": st.get("total_cache", 0) - st.get("total_shmem", 0),
                 "kernel": _read_int(os.path.join(p, "memory.kmem.usage_in_bytes")) or 0,
                 "pagetables": None}
        r["deployment"] = r["anon"] + r["shmem"] + r["kernel"]
        return r

    def remove(self):
        if not self.path:
            return
        for _ in range(100):
            pids = self.pids()
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            for d in self._dirs():
                try:
                    os.rmdir(d)
                except OSError:
                    pass
            if not os.path.exists(self.path):
                break
            time.sleep(0.05)
        if os.path.exists(self.path):
            print(f"warning: cgroup {self.path} could not be removed", file=sys.stderr)
        self.path = None


def vm_pte(pid):
    """VmPTE of pid in bytes (its page tables)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmPTE:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0
