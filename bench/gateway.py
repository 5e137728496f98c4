#!/usr/bin/python3
"""bench/gateway: what the shmfaasd hop adds (issue 5, criterion 6; goal <= 150 us at p50).

Starts shmfaasd (with its store) on a tiny model, deploys one function with exactly one instance,
and starts a second shmfaas-fn on TCP with the same store so `hey` can reach it directly. Then:
  1. latency, one client: hey -c 1 direct to shmfaas-fn vs through shmfaasd → p50/p99 and the
     difference (the added latency of the gateway hop);
  2. throughput: hey -c C through shmfaasd on a function with max instances = cores.
Prints figures and the exact hey commands.

usage: bench/gateway.py [--build build] [-n 5000] [-c 8]
"""
import argparse
import base64
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_http(url, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.05)
    sys.exit("bench: %s not ready" % url)


def req(url, method="GET", body=None, state=None):
    """A /system call with the admin password shmfaasd generated in STATE/secrets (auth is on by
    default; the timed /function calls stay open)."""
    h = {}
    if state:
        sec = os.path.join(state, "secrets")
        user, pw = (open(os.path.join(sec, f)).read().strip()
                    for f in ("basic-auth-user", "basic-auth-password"))
        h["Authorization"] = "Basic " + base64.b64encode(("%s:%s" % (user, pw)).encode()).decode()
    r = urllib.request.Request(url, data=json.dumps(body).encode() if body else None,
                               method=method, headers=h)
    with urllib.request.urlopen(r, timeout=30) as resp:
        return resp.read()


def hey(url, body_file, n=None, c=1, duration=None):
    cmd = ["hey", "-c", str(c), "-m", "POST", "-T", "application/json", "-D", body_file]
    cmd += ["-z", duration] if duration else ["-n", str(n)]
    cmd += ["-o", "csv", url]
    t0 = time.time()
    out = subprocess.run(cmd, capture_output=True, text=True).stdout
    wall = time.time() - t0
    lat, codes = [], {}
    for line in out.splitlines()[1:]:
        f = line.split(",")
        if len(f) >= 7:
            lat.append(float(f[0]))
            codes[f[6]] = codes.get(f[6], 0) + 1
    return cmd, sorted(lat), codes, wall


def py_latency(url, body_file, n):
    """Per-request latency with one keep-alive client and a ns clock (hey's CSV has 100 us steps)."""
    import http.client
    import urllib.parse
    u = urllib.parse.urlparse(url)
    body = open(body_file, "rb").read()
    conn = http.client.HTTPConnection(u.hostname, u.port)
    lat = []
    for _ in range(n):
        t0 = time.perf_counter()
        conn.request("POST", u.path, body, {"Content-Type": "application/json"})
        r = conn.getresponse()
        r.read()
        lat.append(time.perf_counter() - t0)
        if r.status != 200:
            sys.exit("bench: %s answered %d" % (url, r.status))
    conn.close()
    return sorted(lat)


def pct(xs, p):
    return xs[min(len(xs) - 1, int(len(xs) * p / 100))] if xs else float("nan")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("-n", type=int, default=5000)
    ap.add_argument("-c", type=int, default=8)
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="shmfaas-bench-gw-")
    os.chmod(tmp, 0o711)
    models = os.path.join(tmp, "models")
    subprocess.run(["/usr/bin/python3", os.path.join(ROOT, "tests/gateway/gen_models.py"), models],
                   check=True)
    body = os.path.join(models, "input.json")
    state = os.path.join(tmp, "state")
    store_dir = tempfile.mkdtemp(prefix="shmfaas-bench-", dir="/dev/shm")
    log = open(os.path.join(tmp, "shmfaasd.log"), "w")
    gw = subprocess.Popen([os.path.join(a.build, "src/gateway/shmfaasd"), "--state", state,
                           "--models", models, "--listen", "127.0.0.1:0", "--store-dir",
                           store_dir, "--log-level", "warn"], stderr=log)
    fn = None
    try:
        for _ in range(200):
            if os.path.exists(os.path.join(state, "listen")):
                break
            time.sleep(0.05)
        url = open(os.path.join(state, "listen")).read().strip()
        one = {"com.openfaas.scale.min": "1", "com.openfaas.scale.max": "1"}
        env = {"input": "json", "output": "json"}
        req(url + "/system/functions", "POST",
            {"service": "one", "image": "tiny_a", "envVars": env, "labels": one}, state)
        cores = str(os.cpu_count() or 2)
        req(url + "/system/functions", "POST",
            {"service": "many", "image": "tiny_a", "envVars": env,
             "labels": {"com.openfaas.scale.min": cores, "com.openfaas.scale.max": cores}},
            state)
        port = free_port()
        fn = subprocess.Popen([os.path.join(a.build, "src/fn/shmfaas-fn"), "--listen",
                               "127.0.0.1:%d" % port, "--model", "tiny_a", "--store",
                               os.path.join(state, "store.sock")], stderr=log,
                              env=dict(os.environ, input="json", output="json", max_inflight="0"))
        direct = "http://127.0.0.1:%d/" % port
        wait_http(direct + "_/ready")
        for _ in range(200):
            fs = {f["name"]: f for f in json.loads(req(url + "/system/functions", state=state))}
            if fs["one"]["availableReplicas"] == 1 and fs["many"]["availableReplicas"] == int(cores):
                break
            time.sleep(0.05)
        via = url + "/function/one"
        hey(direct, body, n=200)  # warm both paths
        hey(via, body, n=200)
        rows = []
        for name, target in (("direct to shmfaas-fn", direct), ("through shmfaasd", via)):
            cmd, lat, codes, wall = hey(target, body, n=a.n, c=1)
            rows.append((name, cmd, lat, codes))
        print("# bench/gateway: added latency of the gateway hop (tiny_a, 1 client, %d requests)"
              % a.n)
        print("%-22s %10s %10s %10s  %s" % ("path", "p50 us", "p99 us", "mean us", "codes"))
        for name, cmd, lat, codes in rows:
            print("%-22s %10.0f %10.0f %10.0f  %s" % (name, pct(lat, 50) * 1e6, pct(lat, 99) * 1e6,
                                                      statistics.mean(lat) * 1e6, codes))
        d50 = (pct(rows[1][2], 50) - pct(rows[0][2], 50)) * 1e6
        d99 = (pct(rows[1][2], 99) - pct(rows[0][2], 99)) * 1e6
        print("added by shmfaasd: p50 %.0f us, p99 %.0f us (goal <= 150 us at p50)" % (d50, d99))
        for name, cmd, _, _ in rows:
            print("  %s: %s" % (name, " ".join(cmd)))
        py = [py_latency(direct, body, a.n), py_latency(via, body, a.n)]
        print("same with a Python keep-alive client and a ns clock (hey's CSV rounds to 100 us):")
        for name, lat in zip(("direct to shmfaas-fn", "through shmfaasd"), py):
            print("%-22s %10.0f %10.0f %10.0f" % (name, pct(lat, 50) * 1e6, pct(lat, 99) * 1e6,
                                                  statistics.mean(lat) * 1e6))
        print("added by shmfaasd: p50 %.0f us, p99 %.0f us" %
              ((pct(py[1], 50) - pct(py[0], 50)) * 1e6, (pct(py[1], 99) - pct(py[0], 99)) * 1e6))
        cmd, lat, codes, wall = hey(url + "/function/many", body, c=a.c, duration="5s")
        print("throughput through shmfaasd, %d clients, %s instances: %.0f req/s, p50 %.0f us, "
              "p99 %.0f us, codes %s" % (a.c, cores, len(lat) / 5.0, pct(lat, 50) * 1e6,
                                         pct(lat, 99) * 1e6, codes))
        print("  %s" % " ".join(cmd))
        cmd, lat, codes, wall = hey(direct, body, c=a.c, duration="5s")
        print("throughput direct to one shmfaas-fn (TCP), %d clients: %.0f req/s, codes %s"
              % (a.c, len(lat) / 5.0, codes))
        print("  %s" % " ".join(cmd))
    finally:
        if fn:
            fn.send_signal(signal.SIGTERM)
            fn.wait()
        gw.send_signal(signal.SIGTERM)
        gw.wait()
        shutil.rmtree(store_dir, ignore_errors=True)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
