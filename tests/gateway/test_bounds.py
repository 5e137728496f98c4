#!/usr/bin/python3
"""Gateway resource bounds and HTTP parser holes (issue 12): a real shmfaasd (as root, auth on by
default) attacked as a network client would. Each case starts its own daemon and cleans up.

usage: test_bounds.py CASE BUILD_DIR MODELS_DIR
CASE:
  slowloris  1000 clients trickling header bytes (from 20 loopback addresses, more than
             --max-connections) while fresh clients get /healthz 200 within 1 s; the slow ones get
             408 at the header deadline; the per-address cap refuses the 65th connection of one
             address; a kept-alive connection trickling its next head is closed too.
  uploads    12 parallel 250 MB uploads: those past --max-body-inflight get 503 + Retry-After at
             once, the others are read whole; the gateway's peak RSS (VmHWM) stays under the
             documented cap (docs/api.md "Bounds": max-body-inflight + 128 KiB a connection +
             32 MiB); it serves normally after.
  heads      malformed heads (Content-Length: abc, ...) get JSON errors, never MHD's HTML; %00 in
             a path is a 400 and does not invoke the truncated name; an invalid UTF-8 name is a
             400 "... is not valid"; user:pass\\0junk fails basic auth.
"""
import base64
import json
import os
import resource
import selectors
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_gateway as tg  # noqa: E402  (the Gateway class; same argv layout)

check, fail = tg.check, tg.fail


def raw(gw, data, src="127.0.0.1", timeout=5):
    """Sends bytes as they are, returns (status, headers dict, body) of the first reply."""
    host, port = gw.url.rsplit("/", 1)[1].split(":")
    s = socket.create_connection((host, int(port)), timeout=timeout, source_address=(src, 0))
    try:
        s.sendall(data)
        return parse(read_reply(s))
    finally:
        s.close()


def read_reply(s):
    out = b""
    while True:
        try:
            d = s.recv(65536)
        except (ConnectionResetError, socket.timeout):
            break
        if not d:
            break
        out += d
        head, sep, body = out.partition(b"\r\n\r\n")
        if sep:
            h = parse_headers(head)
            if len(body) >= int(h.get("content-length", "-1")) >= 0:
                break
    return out


def parse_headers(head):
    h = {}
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        h[k.strip().lower().decode()] = v.strip().decode(errors="replace")
    return h


def parse(reply):
    head, _, body = reply.partition(b"\r\n\r\n")
    line = head.split(b"\r\n", 1)[0].split()
    check(len(line) >= 2 and line[0].startswith(b"HTTP/1."), "not an HTTP reply: %r" % reply[:200])
    return int(line[1]), parse_headers(head), body


def json_error(status, headers, body, what):
    check(headers.get("content-type", "").startswith("application/json"),
          "%s: Content-Type %s, body %r" % (what, headers.get("content-type"), body[:200]))
    try:
        msg = json.loads(body)["error"]
    except (ValueError, KeyError, TypeError):
        fail("%s: %d reply is not {\"error\": ...}: %r" % (what, status, body[:300]))
    check(isinstance(msg, str) and msg, "%s: empty error" % what)
    return msg


def raise_nofile(n):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, max(soft, n)) if hard != resource.RLIM_INFINITY else max(soft, n)
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    check(want >= n, "RLIMIT_NOFILE hard limit %d is below the %d this test needs" % (hard, n))


def port_of(gw):
    return int(gw.url.rsplit(":", 1)[1])


# ---------------------------------------------------------------- slowloris

def connect_nb(port, src):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((src, 0))
    s.setblocking(False)
    s.connect_ex(("127.0.0.1", port))
    return s


def healthz_time(gw):
    t = time.monotonic()
    status, _, body = raw(gw, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                          timeout=5)
    return status, time.monotonic() - t


def case_slowloris(gw):
    raise_nofile(4096)
    port = port_of(gw)
    head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 64  # never ends
    slow = [connect_nb(port, "127.0.0.%d" % (2 + i % 20)) for i in range(1000)]
    t0 = time.monotonic()
    sent = [0] * len(slow)
    worst = 0.0
    probes = 0
    # one header byte per slow client about every 0.4 s, for 3 s (well inside the 5 s deadline)
    while time.monotonic() - t0 < 3.0:
        for i, s in enumerate(slow):
            if sent[i] < len(head):
                try:
                    sent[i] += s.send(head[sent[i]:sent[i] + 1])
                except (BlockingIOError, OSError):
                    pass
        status, dt = healthz_time(gw)
        check(status == 200, "fresh client during the attack: %d" % status)
        worst, probes = max(worst, dt), probes + 1
        time.sleep(0.2)
    check(worst < 1.0, "a fresh client waited %.2f s for /healthz during the attack" % worst)
    # at the deadline (5 s after accept) every slow client gets 408 and is closed
    closed, answers = 0, {}
    deadline = time.monotonic() + 20
    sel = selectors.DefaultSelector()  # epoll: fds past FD_SETSIZE are fine
    for s in slow:
        sel.register(s, selectors.EVENT_READ)
    while closed < len(slow) and time.monotonic() < deadline:
        for key, _ in sel.select(0.5):
            try:
                data = key.fileobj.recv(4096)
            except OSError:
                data = b""
            if data.startswith(b"HTTP/1.1 "):
                answers[data[9:12]] = answers.get(data[9:12], 0) + 1
            sel.unregister(key.fileobj)
            closed += 1
    sel.close()
    elapsed = time.monotonic() - t0
    for s in slow:
        s.close()
    check(closed == len(slow), "%d of %d slow clients still open after %.1f s" %
          (len(slow) - closed, len(slow), elapsed))
    check(answers.get(b"408", 0) >= len(slow) * 9 // 10, "slow clients got 408: %s" % answers)
    check(elapsed < 30, "slow clients closed by the header deadline: %.1f s" % elapsed)
    print("slowloris: %d probes, worst /healthz %.0f ms, slow clients closed after %.1f s (%s)"
          % (probes, worst * 1000, elapsed, answers))

    # the per-address cap (64 here): the 65th connection of one address is refused with 429
    held = [socket.create_connection(("127.0.0.1", port), source_address=("127.0.0.40", 0))
            for _ in range(64)]
    try:
        time.sleep(0.2)
        status, h, body = raw(gw, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", src="127.0.0.40")
        check(status == 429, "65th connection from one address: %d" % status)
        json_error(status, h, body, "per-address cap")
        check(healthz_time(gw)[0] == 200, "other addresses still served")
    finally:
        for s in held:
            s.close()

    # a kept-alive connection: after one reply, its next head is due within the deadline too
    s = socket.create_connection(("127.0.0.1", port), timeout=15)
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    check(s.recv(4096).startswith(b"HTTP/1.1 200"), "first request on a kept-alive connection")
    t = time.monotonic()
    for c in b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaa":
        try:
            s.send(bytes([c]))
        except OSError:
            break
        time.sleep(0.25)
        if time.monotonic() - t > 12:
            break
    try:
        s.settimeout(10)
        rest = s.recv(4096)
    except OSError:
        rest = b""
    s.close()
    check(rest == b"" and time.monotonic() - t < 12,
          "a trickling kept-alive connection is closed at the deadline (%r after %.1f s)" %
          (rest[:60], time.monotonic() - t))


# ---------------------------------------------------------------- uploads

UPLOAD = 250 * 1000 * 1000


def vm_hwm(pid):
    for line in open("/proc/%d/status" % pid):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    fail("no VmHWM for pid %d" % pid)


def upload_head(n):
    return (b"POST /function/nosuch HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream"
            b"\r\nContent-Length: %d\r\nExpect: 100-continue\r\n\r\n" % n)


def send_body(s, n, errors):
    chunk = bytes(range(256)) * 4096  # 1 MiB, generated once, sent over and over
    try:
        left = n
        while left:
            k = s.send(chunk[:min(left, len(chunk))])
            left -= k
    except OSError as e:
        errors.append(e)


def case_uploads(gw):
    cap = 1 << 30  # the default --max-body-inflight
    port = port_of(gw)
    conns = [socket.create_connection(("127.0.0.1", port), timeout=60) for _ in range(12)]
    for s in conns:
        s.sendall(upload_head(UPLOAD))
    go, refused = [], 0
    for s in conns:  # every head is answered at once: 100 Continue, or 503 for the excess
        status, h, body = parse(read_reply_head(s))
        if status == 100:
            go.append(s)
            continue
        check(status == 503, "upload past the in-flight cap: %d %r" % (status, body[:200]))
        check(h.get("retry-after", "").isdigit(), "503 carries Retry-After: %s" % h)
        json_error(status, h, body, "503 in-flight cap")
        refused += 1
        s.close()
    check(len(go) == cap // UPLOAD, "%d uploads admitted, %d expected under a %d-byte cap" %
          (len(go), cap // UPLOAD, cap))
    check(refused == 12 - len(go), "the rest refused: %d" % refused)
    errors = []
    threads = [threading.Thread(target=send_body, args=(s, UPLOAD, errors)) for s in go]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    check(not errors, "uploads failed: %s" % errors)
    for s in go:
        status, h, body = parse(read_reply(s))
        check(status == 404, "a whole upload reaches the handler (404 nosuch): %d" % status)
        s.close()
    hwm = vm_hwm(gw.proc.pid)
    bound = cap + 12 * (128 << 10) + (32 << 20)  # docs/api.md "Bounds", with 12 connections
    if "libasan" in open("/proc/%d/maps" % gw.proc.pid).read():
        bound += cap // 8  # an ASan build's shadow memory: 1 byte per 8 of the bodies
    print("uploads: %d admitted, %d refused 503, gateway VmHWM %.0f MiB (bound %.0f MiB)" %
          (len(go), refused, hwm / 2**20, bound / 2**20))
    check(hwm < bound, "gateway peak RSS %d > %d" % (hwm, bound))
    check(tg.Gateway.req(gw, "GET", "/healthz").status == 200, "serving after the uploads")
    status, h, body = raw(gw, upload_head(5)[:-4].replace(b"Expect: 100-continue", b"X: y") +
                          b"\r\n\r\nhello")
    check(status == 404, "a small upload after the big ones: %d" % status)


def read_reply_head(s):
    out = b""
    while b"\r\n\r\n" not in out:
        d = s.recv(4096)
        if not d:
            break
        out += d
    head, _, body = out.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 100"):
        n = int(parse_headers(head).get("content-length", "0"))
        while len(body) < n:
            d = s.recv(4096)
            if not d:
                break
            body += d
    return head + b"\r\n\r\n" + body


# ---------------------------------------------------------------- heads

def case_heads(gw):
    auth = "Authorization: Basic " + base64.b64encode(("%s:%s" % gw.auth).encode()).decode()
    bad = [
        (b"POST /function/x HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n", 400),
        (b"POST /function/x HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", 400),
        (b"POST /function/x HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
         400),
        (b"POST /function/x HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\n\r\n",
         413),
        (b"POST /function/x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
         b"Content-Length: 3\r\n\r\n", 400),
        (b"POST /function/x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
        (b"GET /healthz HTTP/1.1\r\n\r\n", 400),
        (b"GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
        (b"GET /healthz HTTP/2.0\r\nHost: x\r\n\r\n", 505),
        (b"GET /healthz FOO/1.1\r\nHost: x\r\n\r\n", 400),
        (b"GET\r\n\r\n", 400),
        (b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\r\n\r\n", 400),
        (b"GET /healthz HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n", 400),
        (b"GET /healthz HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n", 400),
        (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX: a\x00b\r\n\r\n", 400),
        (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX: " + b"a" * 20000 + b"\r\n\r\n", 431),
        (b"GET /heal thz HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    ]
    for data, want in bad:
        status, h, body = raw(gw, data)
        check(status == want, "%r: %d, want %d (%r)" % (data[:70], status, want, body[:200]))
        json_error(status, h, body, repr(data[:60]))
        check(h.get("x-openfaas-internal") == "gateway", "%r: X-OpenFaaS-Internal" % data[:40])
    # %00: never the truncated name. Deploy nothing called "fr": a 400 names the NUL
    for path in (b"/function/fr%00xyz", b"/function/fr%00", b"/system/function/fr%00x",
                 b"/healthz?x=%00"):
        status, h, body = raw(gw, b"GET " + path + b" HTTP/1.1\r\nHost: x\r\n" + auth.encode() +
                              b"\r\nConnection: close\r\n\r\n")
        msg = json_error(status, h, body, path.decode())
        check(status == 400 and "NUL" in msg, "%s: %d %s" % (path, status, msg))
    # invalid UTF-8 (and other bytes no name can hold) in a function name: 400 "... is not valid"
    for path in (b"/function/\xff\xfe", b"/function/%C3%28", b"/system/function/%ff",
                 b"/function/a%20b"):
        status, h, body = raw(gw, b"GET " + path + b" HTTP/1.1\r\nHost: x\r\n" + auth.encode() +
                              b"\r\nConnection: close\r\n\r\n")
        msg = json_error(status, h, body, repr(path))
        check(status == 400 and "is not valid" in msg and "out of memory" not in msg,
              "%r: %d %s" % (path, status, msg))
    # a later request on a kept-alive connection still gets a JSON error for what the handler sees
    status, h, body = raw(gw, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
                          b"GET /function/fr%00x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    check(status == 200, "first of two pipelined requests")
    # basic auth: user:pass\0junk, NUL in the user, undecodable base64 -> 401; exact -> 200
    user, password = gw.auth
    for cred in ((user + ":" + password + "\0junk").encode(), (user + "\0:" + password).encode()):
        hdr = b"Authorization: Basic " + base64.b64encode(cred)
        status, h, body = raw(gw, b"GET /system/functions HTTP/1.1\r\nHost: x\r\n" + hdr +
                              b"\r\nConnection: close\r\n\r\n")
        check(status == 401, "%r: %d" % (cred, status))
        json_error(status, h, body, "401")
    status, _, _ = raw(gw, b"GET /system/functions HTTP/1.1\r\nHost: x\r\nAuthorization: Basic "
                       b"!!!!\r\nConnection: close\r\n\r\n")
    check(status == 401, "undecodable base64: %d" % status)
    status, _, body = raw(gw, b"GET /system/functions HTTP/1.1\r\nHost: x\r\n" + auth.encode() +
                          b"\r\nConnection: close\r\n\r\n")
    check(status == 200 and body.strip() == b"[]", "exact credentials: %d" % status)
    # the daemon is still fine
    check(gw.req("GET", "/healthz").status == 200, "healthz after the malformed heads")


CASES = {"slowloris": case_slowloris, "uploads": case_uploads, "heads": case_heads}
FLAGS = {"slowloris": ["--header-timeout", "5s", "--max-connections", "64",
                       "--max-conns-per-addr", "64"],
         "uploads": [], "heads": []}


if __name__ == "__main__":
    tg.run_main(CASES, "shmfaas-bounds-", lambda case: FLAGS[case])
