#!/usr/bin/python3
"""Async invocations (issue 14 acceptance 2): POST /async-function/NAME with X-Callback-Url to a
real callback receiver (http.server on 127.0.0.1 in this process), against a real root shmfaasd
(auth on by default) and its real store and instances. Each case starts its own daemon and cleans
up; each is bounded well under 90 s.

usage: test_async.py CASE BUILD_DIR MODELS_DIR
CASE:
  callbacks  200 async calls to a function scaled from zero: 202 + X-Call-Id at once, every call
             called back (once or more) with its X-Call-Id, X-Function-Status 200,
             X-Function-Name, X-Duration-Seconds and the body a sync invoke gives; a caller's
             X-Call-Id is kept, a malformed one replaced; the queue file is root's 0600 and an
             unprivileged uid cannot read it; /metrics shows the queue.
  restart    kill -9 of shmfaasd with calls queued and a callback in flight; after the restart
             every accepted call is called back, none lost.
  full       --async-max-queue 5 with the receiver holding its replies: the 6th call gets 429 +
             Retry-After; once the receiver answers, the queue drains and takes calls again.
  allow      callbacks outside the allow-list refused at enqueue (400 naming the host): other
             addresses, names, schemes, userinfo tricks; loopback forms accepted; --callback-allow
             NAME lets that name through; unknown function 404, GET 405.
  retry      a receiver answering 500 twice then 200: each call delivered on its 3rd attempt;
             one answering 500 always: given up after --async-retries, counted as a failure.
"""
import http.server
import json
import os
import re
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_gateway as tg  # noqa: E402  (the Gateway class; same argv layout)

check, fail = tg.check, tg.fail
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


class Receiver:
    """A callback receiver: records every POST; answer(call_id, attempt) gives the status."""

    def __init__(self, answer=lambda cid, n: 200, delay=0.0, host="127.0.0.1"):
        self.calls, self.lock = [], threading.Lock()
        self.answer, self.delay = answer, delay
        self.gate = threading.Event()
        self.gate.set()
        rec = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                rec.gate.wait(30)
                if rec.delay:
                    time.sleep(rec.delay)
                cid = self.headers.get("X-Call-Id", "")
                with rec.lock:
                    n = sum(1 for c in rec.calls if c["id"] == cid)
                    rec.calls.append({"id": cid, "path": self.path, "body": body,
                                      "status": self.headers.get("X-Function-Status"),
                                      "name": self.headers.get("X-Function-Name"),
                                      "duration": self.headers.get("X-Duration-Seconds"),
                                      "type": self.headers.get("Content-Type")})
                code = rec.answer(cid, n)
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *a):
                pass

        self.server = http.server.ThreadingHTTPServer((host, 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = "http://%s:%d/cb" % (host, self.port)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def ids(self, ok_only=True):
        with self.lock:
            return {c["id"] for c in self.calls}

    def wait_for(self, ids, timeout):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if set(ids) <= self.ids():
                return
            time.sleep(0.05)
        missing = set(ids) - self.ids()
        fail("%d of %d calls never called back (e.g. %s)" % (len(missing), len(ids),
                                                            sorted(missing)[:3]))

    def close(self):
        self.gate.set()
        self.server.shutdown()
        self.server.server_close()


def post_async(gw, name, body, callback=None, headers=None, path=""):
    h = {"Content-Type": "application/json"}
    if callback:
        h["X-Callback-Url"] = callback
    h.update(headers or {})
    return gw.req("POST", "/async-function/%s%s" % (name, path), body, h, auth=False)


def loopback_name():
    """This host's name when it resolves to a loopback address only (Debian: 127.0.1.1)."""
    import socket
    name = socket.gethostname()
    try:
        addrs = {a[4][0] for a in socket.getaddrinfo(name, None, socket.AF_INET)}
    except OSError:
        return None, None
    if len(addrs) == 1 and next(iter(addrs)).startswith("127.") and name.lower() != "localhost":
        return name, next(iter(addrs))
    return None, None


def metrics(gw):
    text = gw.req("GET", "/metrics").body.decode()
    out = {}
    for line in text.splitlines():
        m = re.match(r"^(gateway_async_\w+) (\S+)$", line)
        if m:
            out[m.group(1)] = float(m.group(2))
    return out


def accept_all(gw, name, n, callback, parallel=8):
    """n async calls from `parallel` threads; returns their call ids (each 202)."""
    ids, errors, lock = [], [], threading.Lock()

    def worker(k):
        for _ in range(k):
            r = post_async(gw, name, tg.INPUT, callback)
            with lock:
                if r.status == 202 and r.headers.get("X-Call-Id"):
                    ids.append(r.headers["X-Call-Id"])
                else:
                    errors.append((r.status, r.body[:200]))

    threads = [threading.Thread(target=worker, args=(n // parallel + (i < n % parallel),))
               for i in range(parallel)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    check(not errors, "every call accepted with 202 + X-Call-Id: %s" % errors[:3])
    check(len(set(ids)) == n, "%d distinct call ids (%d)" % (n, len(set(ids))))
    return ids


# ---------------------------------------------------------------- cases


def case_callbacks(gw):
    gw.deploy("ref", "tiny_a")
    gw.wait_ready("ref")
    want = gw.invoke("ref")
    check(want.status == 200, "sync invoke: %d" % want.status)
    labels = {"com.openfaas.scale.min": "0", "com.openfaas.scale.max": "4",
              "com.openfaas.scale.target": "1", "com.openfaas.scale.zero": "true"}
    gw.deploy("batch", "tiny_a", labels=labels)
    check(gw.functions()["batch"]["replicas"] == 0, "batch starts at zero replicas")
    rec = Receiver()
    try:
        t0 = time.time()
        ids = accept_all(gw, "batch", 200, rec.url)
        print("200 calls accepted in %.2f s" % (time.time() - t0))
        check(all(UUID.match(i) for i in ids), "generated call ids are UUIDs: %s" % ids[:2])
        rec.wait_for(ids, 60)
        print("200 calls called back %.2f s after the first was sent" % (time.time() - t0))
        with rec.lock:
            got = [c for c in rec.calls if c["id"] in set(ids)]
        for c in got:
            check(c["status"] == "200", "X-Function-Status: %s" % c["status"])
            check(c["name"] == "batch", "X-Function-Name: %s" % c["name"])
            check(c["duration"] and float(c["duration"]) >= 0, "X-Duration-Seconds: %s" % c)
            check(c["body"] == want.body, "callback body is the function's reply")
            check(c["type"] == want.headers.get("Content-Type"), "Content-Type passed on")
        print("callbacks: %d for %d calls (at-least-once)" % (len(got), len(ids)))
        # the caller's X-Call-Id is kept; a malformed one is replaced
        r = post_async(gw, "batch", tg.INPUT, rec.url, {"X-Call-Id": "job-42.a_b"})
        check(r.status == 202 and r.headers["X-Call-Id"] == "job-42.a_b", "caller's id kept")
        r2 = post_async(gw, "batch", tg.INPUT, rec.url, {"X-Call-Id": "bad id!"})
        check(r2.status == 202 and UUID.match(r2.headers["X-Call-Id"]), "bad id replaced")
        # a path and query reach the function; no callback: runs and leaves the queue
        r3 = post_async(gw, "batch.openfaas-fn", tg.INPUT, None, path="/x?y=1")
        check(r3.status == 202, "no callback: %d" % r3.status)
        rec.wait_for(["job-42.a_b", r2.headers["X-Call-Id"]], 30)
        deadline = time.time() + 30
        while time.time() < deadline and metrics(gw).get("gateway_async_queue_length", 1) > 0:
            time.sleep(0.1)
        m = metrics(gw)
        print("metrics:", m)
        check(m["gateway_async_queue_length"] == 0, "queue drained")
        check(m["gateway_async_enqueued_total"] == 203, "203 enqueued")
        check(m["gateway_async_invocations_total"] >= 203, "203 runs")
        check(m["gateway_async_callbacks_delivered_total"] >= 202, "202 callbacks")
        check(m["gateway_async_queue_oldest_age_seconds"] == 0, "oldest age 0 when empty")
    finally:
        rec.close()
    # the queue is the daemon's alone: root's, 0600, unreadable by an instance's uid
    db = os.path.join(gw.state, "queue.db")
    st = os.stat(db)
    check(st.st_uid == 0 and (st.st_mode & 0o777) == 0o600, "queue.db mode %o" % st.st_mode)
    for f in ("queue.db", "queue.db-wal"):
        p = os.path.join(gw.state, f)
        if os.path.exists(p):
            before = open(p, "rb").read()
            r = subprocess.run(["setpriv", "--reuid=200777", "--regid=200777", "--clear-groups",
                                "cat", p], capture_output=True)
            check(r.returncode != 0 and b"Permission denied" in r.stderr,
                  "uid 200777 cannot read %s: %r" % (f, r.stderr))
            r = subprocess.run(["setpriv", "--reuid=200777", "--regid=200777", "--clear-groups",
                                "sh", "-c", "echo junk >> " + p], capture_output=True)
            check(r.returncode != 0 and open(p, "rb").read() == before,
                  "uid 200777 cannot append to %s" % f)


def case_restart(gw):
    gw.deploy("rq", "tiny_a")
    gw.wait_ready("rq")
    rec = Receiver(delay=0.05)  # one worker, 50 ms a callback: the queue outlives the kill
    try:
        ids = accept_all(gw, "rq", 80, rec.url, parallel=4)
        deadline = time.time() + 30
        while time.time() < deadline and len(rec.ids()) < 10:
            time.sleep(0.01)
        got_before = len(rec.ids())
        gw.kill9()
        print("kill -9 after %d of %d callbacks" % (got_before, len(ids)))
        check(got_before < len(ids) - 20, "the daemon died with calls still queued")
        gw.start()
        rec.wait_for(ids, 60)
        with rec.lock:
            n = len(rec.calls)
            bad = [c for c in rec.calls if c["status"] != "200"]
        print("after the restart: all %d calls called back (%d callbacks)" % (len(ids), n))
        check(not bad, "every callback X-Function-Status 200: %s" % bad[:2])
        deadline = time.time() + 20
        while time.time() < deadline and metrics(gw).get("gateway_async_queue_length", 1) > 0:
            time.sleep(0.1)
        check(metrics(gw)["gateway_async_queue_length"] == 0, "queue drained after the restart")
    finally:
        rec.close()


def case_full(gw):
    gw.deploy("fq", "tiny_a")
    gw.wait_ready("fq")
    rec = Receiver()
    rec.gate.clear()  # hold every callback: nothing leaves the queue
    try:
        ids = [post_async(gw, "fq", tg.INPUT, rec.url).headers.get("X-Call-Id") for _ in range(5)]
        r = post_async(gw, "fq", tg.INPUT, rec.url)
        check(r.status == 429, "6th call: %d %s" % (r.status, r.body))
        check(r.headers.get("Retry-After") and b"full" in r.body, "429 says why, Retry-After")
        check(metrics(gw)["gateway_async_rejected_full_total"] == 1, "counted as rejected")
        rec.gate.set()
        rec.wait_for(ids, 30)
        deadline = time.time() + 20
        while time.time() < deadline and metrics(gw)["gateway_async_queue_length"] > 0:
            time.sleep(0.05)
        r = post_async(gw, "fq", tg.INPUT, rec.url)
        check(r.status == 202, "accepted again once drained: %d" % r.status)
        rec.wait_for([r.headers["X-Call-Id"]], 30)
    finally:
        rec.close()


def case_allow(gw):
    gw.deploy("aq", "tiny_a")
    gw.wait_ready("aq")
    rec = Receiver()
    try:
        p = rec.port
        refused = ["http://10.1.2.3/cb", "http://192.168.0.1:%d/" % p, "http://example.com/",
                   "http://127.0.0.1.nip.io:%d/" % p, "http://[::ffff:10.0.0.1]/",
                   "http://[fe80::1]/", "http://0x7f000001.example/",
                   "http://127.0.0.1@10.0.0.1/", "http://localhost.:%d/" % p,
                   "ftp://127.0.0.1/", "file:///etc/passwd", "gopher://127.0.0.1:%d/" % p,
                   "not a url", "http://", "http://" + "a" * 3000 + "/"]
        for url in refused:
            r = post_async(gw, "aq", tg.INPUT, url)
            msg = json.loads(r.body).get("error", "") if r.body.startswith(b"{") else ""
            check(r.status == 400 and msg, "%s: %d %s" % (url[:60], r.status, r.body[:200]))
            if url in ("http://10.1.2.3/cb", "http://example.com/"):
                host = url.split("/")[2]
                check(host in msg and "not allowed" in msg, "400 names the host: %s" % msg)
        # the same attack from an unprivileged local uid (an instance's, say): refused alike
        host, port = gw.url.rsplit("/", 1)[1].split(":")
        r = subprocess.run(["setpriv", "--reuid=200777", "--regid=200777", "--clear-groups",
                            "curl", "-s", "-w", "\n%{http_code}", "-X", "POST", "--data", "{}",
                            "-H", "X-Callback-Url: http://10.0.0.1:80/probe",
                            "http://%s:%s/async-function/aq" % (host, port)],
                           capture_output=True, text=True, timeout=30)
        check(r.stdout.endswith("\n400") and "10.0.0.1" in r.stdout,
              "as uid 200777: %r %r" % (r.stdout, r.stderr))
        check(metrics(gw)["gateway_async_rejected_callback_total"] == len(refused) + 1,
              "refusals counted")
        check(metrics(gw)["gateway_async_queue_length"] == 0, "nothing refused was queued")
        ok = ["http://127.0.0.1:%d/a" % p, "http://127.7.7.7:%d/b" % p,
              "http://localhost:%d/c" % p, "http://LOCALHOST:%d/d" % p]
        ids = []
        for url in ok:
            r = post_async(gw, "aq", tg.INPUT, url)
            check(r.status == 202, "%s: %d %s" % (url, r.status, r.body))
            ids.append(r.headers["X-Call-Id"])
        rec.wait_for(ids[:1] + ids[2:], 30)  # 127.7.7.7 is loopback, but nothing listens there
        # --callback-allow NAME: a name the host resolves (from /etc/hosts) to a loopback
        # address becomes a target, resolved once per attempt and pinned; a range lets its
        # addresses through (only refusals are tried here: tests never connect off loopback)
        name, addr = loopback_name()
        url = "http://%s:%d/e" % (name, p) if name else None
        if url:
            r = post_async(gw, "aq", tg.INPUT, url)
            check(r.status == 400 and name in r.body.decode(), "%s before --callback-allow: %d"
                  % (name, r.status))
        gw.stop()
        gw.extra += ["--callback-allow", ",".join(([name] if name else []) + ["10.9.0.0/16"])]
        gw.start()
        if url:
            named = Receiver(host=addr)
            try:
                url = "http://%s:%d/e" % (name, named.port)
                r = post_async(gw, "aq", tg.INPUT, url)
                check(r.status == 202, "%s allowed by --callback-allow: %d %s"
                      % (name, r.status, r.body))
                named.wait_for([r.headers["X-Call-Id"]], 30)
                print("callback to %s (%s) delivered" % (name, addr))
            finally:
                named.close()
        else:
            print("no host name resolving to loopback here: the named case is skipped")
        r = post_async(gw, "aq", tg.INPUT, "http://10.10.0.1:1/f")
        check(r.status == 400, "10.10.0.1 outside 10.9.0.0/16: %d" % r.status)
        # routes
        r = post_async(gw, "nosuch", tg.INPUT, rec.url)
        check(r.status == 404, "unknown function: %d" % r.status)
        r = gw.req("GET", "/async-function/aq", auth=False)
        check(r.status == 405, "GET /async-function: %d" % r.status)
    finally:
        rec.close()


def case_retry(gw):
    gw.deploy("tq", "tiny_a")
    gw.wait_ready("tq")
    flaky = Receiver(answer=lambda cid, n: 500 if n < 2 else 200)
    try:
        ids = [post_async(gw, "tq", tg.INPUT, flaky.url).headers["X-Call-Id"] for _ in range(3)]
        deadline = time.time() + 40
        while time.time() < deadline:
            with flaky.lock:
                counts = {i: sum(1 for c in flaky.calls if c["id"] == i) for i in ids}
            if all(n >= 3 for n in counts.values()):
                break
            time.sleep(0.1)
        check(all(n == 3 for n in counts.values()), "each call tried 3 times: %s" % counts)
        m = metrics(gw)
        check(m["gateway_async_callback_retries_total"] == 6, "6 retries: %s" % m)
        check(m["gateway_async_callbacks_delivered_total"] == 3, "3 delivered")
    finally:
        flaky.close()
    down = Receiver(answer=lambda cid, n: 503)
    try:
        cid = post_async(gw, "tq", tg.INPUT, down.url).headers["X-Call-Id"]
        deadline = time.time() + 40
        while time.time() < deadline and metrics(gw)["gateway_async_callback_failures_total"] < 1:
            time.sleep(0.1)
        with down.lock:
            n = sum(1 for c in down.calls if c["id"] == cid)
        check(n == 3, "given up after 1 + --async-retries 2 attempts: %d" % n)
        check(metrics(gw)["gateway_async_queue_length"] == 0, "a given-up call leaves the queue")
    finally:
        down.close()


CASES = {"callbacks": case_callbacks, "restart": case_restart, "full": case_full,
         "allow": case_allow, "retry": case_retry}
FLAGS = {"callbacks": [], "restart": ["--async-workers", "1"],
         "full": ["--async-max-queue", "5", "--async-workers", "2"], "allow": [],
         "retry": ["--async-retries", "2"]}


if __name__ == "__main__":
    tg.run_main(CASES, "shmfaas-async-", lambda case: FLAGS[case])
