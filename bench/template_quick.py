#!/usr/bin/python3
"""Quick figures of instances forked from templates (issue 15), through a real root shmfaasd:
ready after the fork (shmfaasd's own "ready after N ms" lines: fork request to the readiness
byte), first answer from zero through the gateway vs the warm p50, and the PSS and cgroup memory
of one more idle instance. The full reports are bench/coldstart and bench/memory.

usage: bench/template_quick.py BUILD_DIR [MODEL] [N] [--no-templates] [--threads=K]
  MODEL  a zoo name (default resnet50: $SHMFAAS_ZOO/MODEL/model.onnx and input.json)
  N      instances to add one by one, and answers from zero to time (default 8)
"""
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

args = [a for a in sys.argv[1:] if not a.startswith("--")]
BUILD = os.path.abspath(args[0])
MODEL = args[1] if len(args) > 1 else "resnet50"
N = int(args[2]) if len(args) > 2 else 8
NO_TEMPLATES = "--no-templates" in sys.argv
THREADS = [a.split("=", 1)[1] for a in sys.argv if a.startswith("--threads=")]
ZOO = os.environ.get("SHMFAAS_ZOO") or os.path.join(os.path.dirname(BUILD), "zoo")
INPUT = open(os.path.join(ZOO, MODEL, "input.json"), "rb").read()


def req(url, method="GET", body=None, timeout=120):
    if isinstance(body, dict):
        body = json.dumps(body).encode()
    r = urllib.request.Request(url, data=body, method=method,
                               headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(r, timeout=timeout) as resp:
        return resp.status, resp.read()


def ask(sock):
    """POST the input straight to one instance over its unix socket."""
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(120)
    s.connect(sock)
    s.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(INPUT) + INPUT)
    while s.recv(65536):
        pass
    s.close()


def pss_kib(pid):
    for line in open("/proc/%d/smaps_rollup" % pid):
        if line.startswith("Pss:"):
            return int(line.split()[1])
    return 0


def uss_pte_kib(pid):
    """Private memory (what only this process holds) and its page tables, KiB."""
    uss = pte = 0
    for line in open("/proc/%d/smaps_rollup" % pid):
        if line.startswith(("Private_Clean:", "Private_Dirty:")):
            uss += int(line.split()[1])
    for line in open("/proc/%d/status" % pid):
        if line.startswith("VmPTE:"):
            pte = int(line.split()[1])
    return uss, pte


def cgroup_bytes(pid):
    for line in open("/proc/%d/cgroup" % pid):
        _, ctrl, path = line.rstrip("\n").split(":", 2)
        if "/shmfaas/" not in path:
            continue
        if ctrl == "":
            return int(open("/sys/fs/cgroup%s/memory.current" % path).read())
        if "memory" in ctrl.split(","):
            return int(open("/sys/fs/cgroup/memory%s/memory.usage_in_bytes" % path).read())
    return None


def main():
    tmp = tempfile.mkdtemp(prefix="shmfaas-tq-")
    os.chmod(tmp, 0o711)
    state, models = os.path.join(tmp, "state"), os.path.join(tmp, "models")
    store_dir = tempfile.mkdtemp(prefix="shmfaas-tq-", dir="/dev/shm")
    os.makedirs(models)
    shutil.copy(os.path.join(ZOO, MODEL, "model.onnx"), os.path.join(models, MODEL + ".onnx"))
    logf = os.path.join(tmp, "shmfaasd.log")
    cmd = [os.path.join(BUILD, "src/gateway/shmfaasd"), "--state", state, "--models", models,
           "--listen", "127.0.0.1:0", "--store-dir", store_dir, "--budget", "2Gi", "--no-auth",
           "--log-level", "info", "--down-delay", "200ms", "--hold", "120s"]
    cmd += ["--no-templates"] if NO_TEMPLATES else []
    print("load average:", open("/proc/loadavg").read().split()[:3])
    print("command:", " ".join(sys.argv))
    d = subprocess.Popen(cmd, stdout=open(logf, "ab"), stderr=subprocess.STDOUT)
    try:
        for _ in range(600):
            if os.path.exists(os.path.join(state, "listen")):
                break
            time.sleep(0.05)
        url = open(os.path.join(state, "listen")).read().strip()
        dep = {"service": "r", "image": MODEL, "labels": {"com.openfaas.scale.max": "64"},
               "envVars": dict({"input": "json", "output": "json"},
                               **({"threads": THREADS[0]} if THREADS else {}))}
        req(url + "/system/functions", "POST", dep)

        def fn():
            return json.loads(req(url + "/system/function/r")[1])

        def wait(cond, timeout=300):
            t = time.time() + timeout
            while time.time() < t:
                if cond():
                    return
                time.sleep(0.02)
            raise SystemExit("timed out; see " + logf)

        def invoke():
            t = time.perf_counter()
            st, _ = req(url + "/function/r", "POST", INPUT)
            assert st == 200, st
            return (time.perf_counter() - t) * 1000

        wait(lambda: fn()["availableReplicas"] >= 1)
        if not NO_TEMPLATES:
            wait(lambda: (fn().get("template") or {}).get("state") == "ready")
        warm = [invoke() for _ in range(20)]
        for n in range(2, N + 2):
            req(url + "/system/scale-function/r", "POST", {"serviceName": "r", "replicas": n})
            wait(lambda: fn()["availableReplicas"] >= n)
        log = open(logf).read()
        ready = [float(m) for m in re.findall(r"instance r-\d+: ready after ([\d.]+) ms \((?:forked, )?pushed\)", log)[1:]]
        for i in [int(m) for m in re.findall(r"instance r-(\d+): (?:forked|started) pid", log)]:
            ask(os.path.join(state, "run", "r", "%d.sock" % i))  # each has answered once
        time.sleep(2.5)  # idle_release (1 s): arenas given back
        pids = {}
        for f in os.listdir(os.path.join(state, "pids")):
            m = re.fullmatch(r"r-(\d+)\.pid", f)
            if m:
                pids[int(m.group(1))] = int(open(os.path.join(state, "pids", f)).read().split()[0])
        forked = {int(i) for i in re.findall(r"instance r-(\d+): forked pid", log)}
        first = min(pids)
        mem = {i: (pss_kib(p), cgroup_bytes(p)) + uss_pte_kib(p) for i, p in pids.items()}
        tpid = (fn().get("template") or {}).get("pid")
        # first answer from zero: scaled to zero by hand, each request starts one instance
        req(url + "/system/scale-function/r", "POST", {"serviceName": "r", "replicas": 0})
        zero = []
        for _ in range(N):
            wait(lambda: fn()["replicas"] == 0)
            time.sleep(0.3)
            zero.append(invoke())
        p50 = statistics.median
        print("model %s, %s, threads %s" % (MODEL, "--no-templates" if NO_TEMPLATES else "templates",
                                            THREADS[0] if THREADS else 1))
        print("ready after the fork/exec (shmfaasd: fork request to readiness byte), ms: p50 %.1f,"
              " all %s" % (p50(ready), ready))
        print("warm answer p50 %.1f ms; first answer from zero p50 %.1f ms (%.2fx warm), all %s"
              % (p50(warm), p50(zero), p50(zero) / p50(warm), ["%.0f" % z for z in zero]))
        others = [i for i in mem if i != first and (NO_TEMPLATES or i in forked)]
        print("idle instance (after one answer) PSS KiB: first (exec'd) %d; each %s one: p50 %d, all %s"
              % (mem[first][0], "exec'd" if NO_TEMPLATES else "forked",
                 p50([mem[i][0] for i in others]), [mem[i][0] for i in others]))
        print("idle instance USS + page tables KiB: first %d + %d; others p50 %d + %d"
              % (mem[first][2], mem[first][3], p50([mem[i][2] for i in others]),
                 p50([mem[i][3] for i in others])))
        cg = [mem[i][1] for i in others if mem[i][1] is not None]
        if cg:
            print("idle instance cgroup memory KiB: first %s; others p50 %d, all %s"
                  % (mem[first][1] // 1024 if mem[first][1] else None, p50(cg) // 1024,
                     [c // 1024 for c in cg]))
        if tpid:
            print("template pid %d: PSS %d KiB, cgroup %s KiB" % (tpid, pss_kib(tpid),
                                                                 (cgroup_bytes(tpid) or 0) // 1024))
    finally:
        d.send_signal(signal.SIGTERM)
        try:
            d.wait(timeout=30)
        except subprocess.TimeoutExpired:
            d.kill()
        subprocess.run([os.path.join(BUILD, "src/store/shmfaas-store"), "purge", "--dir", store_dir],
                       capture_output=True)
        shutil.rmtree(store_dir, ignore_errors=True)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
