#!/usr/bin/env python3
"""test_webhook — the real shmfaas-webhook over HTTPS (issue 13), with a self-signed certificate
made by openssl in a temporary directory: /healthz, a faas-netes pod's review answered with a JSON
Patch that applies, a garbage review refused with HTTP 400, a body over the limit refused with 413
before it is read, a plaintext client on the TLS port and silent clients dropped within the header
deadline while the server keeps serving, bad flags refused, SIGTERM exits 0.

    test_webhook.py CASE      (SHMFAAS_BUILD names the build directory)
"""
import base64
import http.client
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time

BUILD = os.environ.get("SHMFAAS_BUILD", "build")
PROG = os.path.join(BUILD, "src", "webhook", "shmfaas-webhook")
HEADER_TIMEOUT_S = 10  # HTTP_DEFAULT_HEADER_TIMEOUT_MS
MAX_BODY = 2 << 20     # ADMISSION_MAX_BODY


def check(cond, what):
    if not cond:
        raise AssertionError(what)


class Webhook:
    def __init__(self, tmp):
        self.tmp = tmp
        self.cert = os.path.join(tmp, "tls.crt")
        self.key = os.path.join(tmp, "tls.key")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                        "-keyout", self.key, "-out", self.cert, "-subj", "/CN=127.0.0.1",
                        "-addext", "subjectAltName=IP:127.0.0.1"],
                       check=True, capture_output=True, timeout=60)
        self.log = open(os.path.join(tmp, "webhook.log"), "w+")
        self.proc = subprocess.Popen([PROG, "--listen", "127.0.0.1:0", "--tls-cert", self.cert,
                                      "--tls-key", self.key], stderr=self.log)
        self.port = None
        deadline = time.monotonic() + 20
        while self.port is None and time.monotonic() < deadline and self.proc.poll() is None:
            time.sleep(0.05)
            m = re.search(r"\(port (\d+)\)", open(self.log.name).read())
            self.port = int(m.group(1)) if m else None
        check(self.port, "shmfaas-webhook did not start: " + open(self.log.name).read())
        self.ctx = ssl.create_default_context(cafile=self.cert)

    def request(self, method, path, body=None, headers=None):
        c = http.client.HTTPSConnection("127.0.0.1", self.port, context=self.ctx, timeout=30)
        try:
            c.request(method, path, body=body, headers=headers or {})
            r = c.getresponse()
            return r.status, r.read()
        finally:
            c.close()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                return "killed"
        return self.proc.returncode


FAAS_NETES_POD = {
    "metadata": {"labels": {"faas_function": "resnet50", "com.shmfaas.model": "resnet50"}},
    "spec": {"containers": [{
        "name": "resnet50", "image": "localhost/shmfaas:latest",
        "ports": [{"containerPort": 8080, "protocol": "TCP"}],
        "readinessProbe": {"httpGet": {"path": "/_/health", "port": 8080},
                           "initialDelaySeconds": 2, "periodSeconds": 2, "timeoutSeconds": 1,
                           "failureThreshold": 3}}]}}


def review(pod, uid="9c1d-0001"):
    return json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                       "request": {"uid": uid, "kind": {"group": "", "version": "v1", "kind": "Pod"},
                                   "operation": "CREATE", "object": pod}}).encode()


def unescape(tok):
    return tok.replace("~1", "/").replace("~0", "~")


def apply_patch(doc, patch):
    """RFC 6902 add/replace (what the webhook emits)."""
    for op in patch:
        check(op["op"] in ("add", "replace"), "unexpected op %r" % op)
        toks = [unescape(t) for t in op["path"].split("/")[1:]]
        parent = doc
        for t in toks[:-1]:
            parent = parent[int(t)] if isinstance(parent, list) else parent[t]
        last = toks[-1]
        if isinstance(parent, list):
            if last == "-":
                parent.append(op["value"])
            elif op["op"] == "add":
                parent.insert(int(last), op["value"])
            else:
                parent[int(last)] = op["value"]
        else:
            check(op["op"] == "add" or last in parent, "replace of a missing member")
            parent[last] = op["value"]
    return doc


def case_mutate(w):
    st, body = w.request("GET", "/healthz")
    check(st == 200 and body == b"ok\n", "healthz: %s %r" % (st, body))
    st, body = w.request("POST", "/mutate", review(FAAS_NETES_POD),
                         {"Content-Type": "application/json"})
    check(st == 200, "mutate: %s %r" % (st, body))
    resp = json.loads(body)["response"]
    check(resp["uid"] == "9c1d-0001" and resp["allowed"] is True, "response %r" % resp)
    check(resp["patchType"] == "JSONPatch", "patchType %r" % resp)
    pod = apply_patch(json.loads(json.dumps(FAAS_NETES_POD)),
                      json.loads(base64.b64decode(resp["patch"])))
    spec = pod["spec"]
    c = spec["containers"][0]
    check(c["volumeMounts"] == [{"name": "shmfaas-socket", "mountPath": "/run/shmfaas",
                                 "readOnly": True}], "mounts %r" % c)
    check({"name": "store_socket", "value": "/run/shmfaas/store.sock"} in c["env"], "env %r" % c)
    check(spec["volumes"][0]["hostPath"]["path"] == "/run/shmfaas", "volumes %r" % spec)
    check(spec["securityContext"] == {"runAsNonRoot": True, "runAsUser": 12000}, "sc %r" % spec)
    st, body = w.request("POST", "/mutate", review(pod))
    again = json.loads(body)["response"]
    check(st == 200 and again["allowed"] and "patch" not in again, "second pass %r" % again)
    root = json.loads(json.dumps(FAAS_NETES_POD))
    root["spec"]["securityContext"] = {"runAsUser": 0}
    st, body = w.request("POST", "/mutate", review(root))
    resp = json.loads(body)["response"]
    check(st == 200 and resp["allowed"] is False and resp["status"]["code"] == 403,
          "root pod %r" % resp)


def case_refusals(w):
    st, body = w.request("POST", "/mutate", b"{not json")
    check(st == 400 and "not JSON" in json.loads(body)["error"], "garbage: %s %r" % (st, body))
    st, body = w.request("GET", "/mutate")
    check(st == 405, "GET /mutate: %s" % st)
    st, body = w.request("POST", "/other", b"{}")
    check(st == 404, "POST /other: %s" % st)
    # over the limit: refused from Content-Length, before the body is sent
    c = http.client.HTTPSConnection("127.0.0.1", w.port, context=w.ctx, timeout=30)
    c.putrequest("POST", "/mutate")
    c.putheader("Content-Length", str(MAX_BODY + 1))
    c.endheaders()
    r = c.getresponse()
    check(r.status == 413 and "error" in json.loads(r.read()), "huge body: %s" % r.status)
    c.close()


def case_hostile_clients(w):
    """A plaintext client, a TCP client that sends nothing and a TLS client that sends no request
    are all dropped within the header deadline; the server serves throughout."""
    t0 = time.monotonic()
    plain = socket.create_connection(("127.0.0.1", w.port), timeout=30)
    plain.sendall(b"POST /mutate HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}")
    silent = socket.create_connection(("127.0.0.1", w.port), timeout=30)
    tls = w.ctx.wrap_socket(socket.create_connection(("127.0.0.1", w.port), timeout=30),
                            server_hostname="127.0.0.1")
    closed = {}

    def wait_closed(name, s):
        try:
            while s.recv(4096):
                pass
        except (OSError, ssl.SSLError):
            pass
        closed[name] = time.monotonic() - t0

    threads = [threading.Thread(target=wait_closed, args=a)
               for a in (("plain", plain), ("silent", silent), ("tls", tls))]
    for t in threads:
        t.start()
    st, _ = w.request("GET", "/healthz")
    check(st == 200, "healthz with hostile clients open: %s" % st)
    for t in threads:
        t.join(timeout=3 * HEADER_TIMEOUT_S)
    for s in (plain, silent, tls):
        s.close()
    for name in ("plain", "silent", "tls"):
        check(name in closed and closed[name] < 2.5 * HEADER_TIMEOUT_S,
              "%s client not dropped within %d s: %r" % (name, 2.5 * HEADER_TIMEOUT_S, closed))
    st, _ = w.request("GET", "/healthz")
    check(st == 200, "healthz after: %s" % st)


def case_flags(w):
    def rc_of(args):
        return subprocess.run([PROG] + args, capture_output=True, timeout=20)
    r = rc_of(["--listen", "127.0.0.1:0", "--tls-cert", w.cert])
    check(r.returncode == 2, "no key: %s" % r.returncode)
    r = rc_of(["--listen", "127.0.0.1:0", "--tls-cert", w.cert, "--tls-key", w.key,
               "--run-as-user", "0"])
    check(r.returncode == 2 and b"non-root" in r.stderr, "uid 0: %s %r" % (r.returncode, r.stderr))
    r = rc_of(["--listen", "127.0.0.1:0", "--tls-cert", w.cert, "--tls-key",
               os.path.join(w.tmp, "missing.key")])
    check(r.returncode == 1 and b"missing.key" in r.stderr, "missing key: %r" % r.stderr)


def case_memory(w):
    """Eight concurrent reviews of ~2 MiB with ~100 k values each (within every bound): all
    answered, and the process's peak resident memory stays under the 64 MiB limit of
    deploy/kubernetes/webhook.yaml (48 MiB asserted; 32 MiB measured)."""
    body = ('{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u",'
            '"object":[' + ",".join(['"%s"' % ("x" * 18)] * 99000) + ']}}').encode()
    check(len(body) < MAX_BODY, "body %d" % len(body))
    results = []

    def send():
        try:
            results.append(w.request("POST", "/mutate", body)[0])
        except OSError as e:
            results.append(repr(e))

    threads = [threading.Thread(target=send) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    # 200 (a review refused: the object is no pod) or 503 when the body budget was taken
    check(len(results) == 8 and all(r in (200, 503) for r in results), "results %r" % results)
    hwm = [l for l in open("/proc/%d/status" % w.proc.pid) if l.startswith("VmHWM")][0]
    kib = int(hwm.split()[1])
    print("peak resident: %d KiB after 8 concurrent %d-byte reviews (%r)" % (kib, len(body),
                                                                            results))
    check(kib < 48 * 1024, "peak resident %d KiB" % kib)


CASES = {"mutate": case_mutate, "memory": case_memory, "refusals": case_refusals, "hostile-clients": case_hostile_clients,
         "flags": case_flags}


def main():
    case = sys.argv[1]
    tmp = tempfile.mkdtemp(prefix="shmfaas-webhook-")
    w = None
    ok = False
    try:
        w = Webhook(tmp)
        CASES[case](w)
        rc = w.stop()
        check(rc == 0, "shmfaas-webhook exit status on SIGTERM: %s" % rc)
        ok = True
        print("ok:", case)
    finally:
        if w:
            w.stop()
            if not ok:
                sys.stdout.write(open(w.log.name, errors="replace").read()[-4000:])
            w.log.close()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
