#!/usr/bin/python3
"""Privilege separation of shmfaasd (issue 12): real root shmfaasd + shmfaas-store + shmfaas-fn,
attacked for real by unprivileged uids (setpriv) — a function's own uid and another function's.

usage: test_privsep.py CASE BUILD_DIR MODELS_DIR
CASE: layout | plant | sockets | uids | cleanup | refusal
  layout   nothing under the state dir or the store's image dir is writable by an instance uid
  plant    symlinks and pidfiles planted where an instance uid could write before (the old
           STATE/run) or forged in STATE/pids: root follows none, kills nothing it cannot prove
  sockets  another function's uid, and the function's own uid outside the instance, cannot
           unlink, rebind, connect or enter a function's socket directory
  uids     two functions run as two uids of --uid-range; one cannot signal or ptrace the other
  cleanup  cgroups of stopped and reaped instances go; a clean stop leaves no image behind
  refusal  a model the budget can never hold: no crash loop, describe says why, invoke is 503
"""
import json
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_gateway as tg  # noqa: E402  (same argv: CASE BUILD_DIR MODELS_DIR)

check, fail = tg.check, tg.fail

# Runs as the attacker: each named attempt is "ok" or the errno name it failed with.
ATTACK = r"""
import ctypes, errno, json, os, socket, sys
res = {}
def t(name, f):
    try:
        f()
        res[name] = "ok"
    except OSError as e:
        res[name] = errno.errorcode.get(e.errno, str(e.errno))
def ptrace(pid):
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.ptrace(16, pid, None, None) != 0:  # PTRACE_ATTACH
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    libc.ptrace(17, pid, None, None)  # PTRACE_DETACH
def connect(path):
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(2)
    s.connect(path)
    s.close()
def bind(path):
    socket.socket(socket.AF_UNIX).bind(path)
def write(path):
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
for spec in sys.argv[1:]:
    what, arg = spec.split("=", 1)
    t(spec, {
        "unlink": lambda: os.unlink(arg),
        "connect": lambda: connect(arg),
        "bind": lambda: bind(arg),
        "listdir": lambda: os.listdir(arg),
        "rename": lambda: os.rename(arg, arg + ".moved"),
        "rmdir": lambda: os.rmdir(arg),
        "symlink": lambda: os.symlink("/etc/shadow", arg),
        "write": lambda: write(arg),
        "kill0": lambda: os.kill(int(arg), 0),
        "kill": lambda: os.kill(int(arg), 9),
        "environ": lambda: open("/proc/%s/environ" % arg).read(),
        "ptrace": lambda: ptrace(int(arg)),
    }[what])
print(json.dumps(res))
"""

# Runs as the attacker: which of the given paths it may write (sockets aside: the store's socket
# is meant to be connectable by instances; root never creates, truncates or follows it).
WRITABLE = r"""
import json, os, stat, sys
out = []
for p in sys.argv[1:]:
    try:
        st = os.lstat(p)
    except OSError:
        continue
    if not stat.S_ISSOCK(st.st_mode) and os.access(p, os.W_OK, follow_symlinks=False):
        out.append(p)
print(json.dumps(out))
"""


def as_uid(uid, script, *args):
    """Runs script with python3 as uid:gid uid, no groups; returns its JSON output."""
    r = subprocess.run(["setpriv", "--reuid=%d" % uid, "--regid=%d" % uid, "--clear-groups",
                        sys.executable, "-c", script] + [str(a) for a in args],
                       capture_output=True, text=True, timeout=60)
    check(r.returncode == 0, "attacker script as uid %d: %s" % (uid, r.stderr[-2000:]))
    return json.loads(r.stdout)


def attack(uid, *attempts):
    """Every attempt ("what=arg") must fail; returns the errno names."""
    res = as_uid(uid, ATTACK, *attempts)
    print("as uid %d:" % uid, res)
    for k, v in res.items():
        check(v != "ok", "as uid %d, %s succeeded" % (uid, k))
    return res


def pidfiles(gw):
    return gw.instance_pids()


def instance_pid(gw, name):
    pids = sorted(p for k, p in pidfiles(gw).items() if k.startswith(name + "-"))
    check(pids, "an instance pidfile of %s" % name)
    return pids[-1]


def proc_uid(pid):
    m = re.search(r"^Uid:\s+(\d+)\s+(\d+)", open("/proc/%d/status" % pid).read(), re.M)
    return int(m.group(1))


def starttime(pid):
    return open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()[19]


def walk(*roots):
    out = []
    for root in roots:
        out.append(root)
        for d, dirs, files in os.walk(root):
            out += [os.path.join(d, x) for x in dirs + files]
    return out


def log_text(gw):
    return open(os.path.join(gw.tmp, "shmfaasd.log"), errors="replace").read()


def two_functions(gw):
    gw.deploy("fa", "tiny_a")
    gw.deploy("fb", "tiny_b")
    gw.wait_ready("fa")
    gw.wait_ready("fb")
    a, b = instance_pid(gw, "fa"), instance_pid(gw, "fb")
    return a, b, proc_uid(a), proc_uid(b)


# ---- cases ----

def case_layout(gw):
    a, b, ua, ub = two_functions(gw)
    st = os.stat(gw.state)
    check(st.st_uid == 0 and st.st_mode & 0o7777 == 0o711, "state dir root 0711: %o" % st.st_mode)
    for sub in ("functions", "logs", "pids", "run", "run/fa", "run/fb"):
        st = os.lstat(os.path.join(gw.state, sub))
        check(st.st_uid == 0 and st.st_mode & 0o7777 == 0o700,
              "%s is root 0700: uid %d mode %o" % (sub, st.st_uid, st.st_mode & 0o7777))
    paths = walk(gw.state, gw.store_dir)
    for uid in (ua, ub):
        w = as_uid(uid, WRITABLE, *paths)
        check(not w, "writable by instance uid %d: %s" % (uid, w))
    # the old places, and the new ones, as the function's own uid
    run = os.path.join(gw.state, "run")
    attack(ua, "write=%s/fa-1.pid" % run, "symlink=%s/store.pid" % run,
           "symlink=%s/fa-9.sock" % run, "write=%s/pids/fa-9.pid" % gw.state,
           "symlink=%s/logs/fa.log" % gw.state, "write=%s/functions/x.json" % gw.state,
           "write=%s/evil" % gw.state, "write=%s/evil" % gw.store_dir)
    # the instance itself: listens on an inherited fd 3, a socket
    check(os.readlink("/proc/%d/fd/3" % a).startswith("socket:"), "fd 3 is its socket")
    argv = open("/proc/%d/cmdline" % a).read().split("\0")
    check("fd:3" in argv, "--listen fd:3: %s" % argv)


def case_plant(gw):
    victim = os.path.join(gw.tmp, "victim")
    with open(victim, "w") as f:
        f.write("root's file\n")
    os.chmod(victim, 0o644)
    before = open(victim).read()
    sleeper = subprocess.Popen(["sleep", "300"])
    try:
        plant_and_restart(gw, victim, sleeper)
        check(open(victim).read() == before and not os.path.islink(victim), "victim unchanged")
        check(sleeper.poll() is None, "the unrelated sleep was not killed")
    finally:
        sleeper.kill()
        sleeper.wait()


def plant_and_restart(gw, victim, sleeper):
    # a daemon from before issue 12 left STATE/run to the instance uid: an attacker there plants
    gw.deploy("pa", "tiny_a")
    gw.wait_ready("pa")
    ua = proc_uid(instance_pid(gw, "pa"))
    gw.kill9()
    run = os.path.join(gw.state, "run")
    os.chown(run, ua, ua)
    os.chmod(run, 0o755)
    spid = sleeper.pid
    forged = "%d %s\n" % (spid, starttime(spid))
    script = (
        "import os, sys\n"
        "run, victim, forged = sys.argv[1:4]\n"
        "for n in ('pa-1.pid', 'pa-2.pid', 'pa-3.pid', 'store.pid', 'pa-2.sock', 'pb'):\n"
        "    os.symlink(victim, os.path.join(run, n))\n"
        "os.symlink(victim, os.path.join(run, '.pa-2.pid.tmp'))\n"
        "open(os.path.join(run, 'evil.pid'), 'w').write(forged)\n"
        "print('[]')\n")
    as_uid(ua, script, run, victim, forged)
    # worst case: a pidfile naming the sleep forged in the root-only pid dir itself
    pids = os.path.join(gw.state, "pids")
    for n in ("pa-7.pid", "store.pid.forged", "evil.pid"):
        with open(os.path.join(pids, n), "w") as f:
            f.write(forged)
    gw.start()
    log = log_text(gw)
    check("taking it back and emptying it" in log, "the old run dir was taken back")
    st = os.lstat(run)
    check(st.st_uid == 0 and st.st_mode & 0o7777 == 0o700, "run is root 0700 again")
    check(not [n for n in os.listdir(run) if n != "pa"], "planted entries gone: %s" % os.listdir(run))
    check(not os.path.islink(os.path.join(run, "pa")), "run/pa is a real directory")
    check("which is not our" in log, "forged pidfiles named: left alone")
    gw.wait_ready("pa")
    check(gw.invoke("pa").status == 200, "pa serves after the restart")
    # a kill -9 and a restart more: pidfiles of ours are reaped, the sleep still is not
    old = instance_pid(gw, "pa")
    gw.kill9()
    gw.start()
    check(not tg.alive(old), "orphan instance %d reaped" % old)
    gw.wait_ready("pa")
    check(gw.req("DELETE", "/system/functions", {"functionName": "pa"}).status in (200, 202),
          "delete pa")


def case_sockets(gw):
    a, b, ua, ub = two_functions(gw)
    check(ua != ub, "two uids")
    d = os.path.join(gw.state, "run", "fa")
    socks = [os.path.join(d, n) for n in os.listdir(d) if n.endswith(".sock")]
    check(socks, "fa has a socket in %s" % d)
    s = socks[0]
    before = gw.invoke("fa").body
    for uid in (ub, ua):  # another function's uid; fa's own uid from outside the instance
        attack(uid, "unlink=" + s, "connect=" + s, "bind=%s/evil.sock" % d, "listdir=" + d,
               "rename=" + d, "rmdir=" + d, "symlink=%s/x.sock" % d,
               "bind=%s/run/fa.sock" % gw.state)
    check(os.path.exists(s), "the socket is still there")
    r = gw.invoke("fa")
    check(r.status == 200 and r.body == before, "fa still answered by fa")
    check(gw.invoke("fb").body != before, "fb answers differently (another model)")


def case_uids(gw):
    a, b, ua, ub = two_functions(gw)
    print("fa pid %d uid %d, fb pid %d uid %d" % (a, ua, b, ub))
    check(ua != ub and ua != 0 and ub != 0 and ua != 65534, "own uids: %d %d" % (ua, ub))
    check(all(200000 <= u <= 265535 for u in (ua, ub)), "uids in the default range")
    res = attack(ub, "kill0=%d" % a, "kill=%d" % a, "environ=%d" % a, "ptrace=%d" % a)
    check(res["kill0=%d" % a] == "EPERM", "kill(pid, 0) as the other uid: EPERM")
    check(tg.alive(a), "fa's instance survived")
    # the uid is persisted with the spec and kept across a restart
    spec = json.load(open(os.path.join(gw.state, "functions", "fa.json")))
    check(spec.get("uid") == ua, "uid %d persisted: %s" % (ua, spec.get("uid")))
    gw.stop()
    gw.start()
    gw.wait_ready("fa")
    check(proc_uid(instance_pid(gw, "fa")) == ua, "same uid after a restart")


def cgroup_of(pid):
    cg, _ = tg.proc_cgroup_dir(pid)
    return cg


def wait_gone(paths, what, timeout=15):
    deadline = time.time() + timeout
    while time.time() < deadline and any(os.path.exists(p) for p in paths):
        time.sleep(0.1)
    check(not any(os.path.exists(p) for p in paths), "%s gone: %s" % (what, paths))


def case_cleanup(gw):
    if "no writable cgroup" in log_text(gw):
        print("no cgroups on this host: cgroup part skipped")
    gw.deploy("ca", "tiny_a", labels={"com.openfaas.scale.min": "2"})
    gw.wait_ready("ca", 2)
    pids = [p for k, p in pidfiles(gw).items() if k.startswith("ca-")]
    cgs = [c for c in map(cgroup_of, pids) if c]
    print("instances %s in cgroups %s" % (pids, cgs))
    # reaped after a kill -9 of the daemon: their cgroups go too (the function is gone meanwhile,
    # so that no new instance takes the same cgroup name)
    gw.kill9()
    os.unlink(os.path.join(gw.state, "functions", "ca.json"))
    gw.start()
    wait_gone(cgs, "cgroups of reaped instances")
    gw.deploy("ca", "tiny_a", labels={"com.openfaas.scale.min": "2"})
    gw.wait_ready("ca", 2)
    pids = [p for k, p in pidfiles(gw).items() if k.startswith("ca-")]
    cgs = [c for c in map(cgroup_of, pids) if c]
    check(gw.req("DELETE", "/system/functions", {"functionName": "ca"}).status in (200, 202),
          "delete ca")
    wait_gone(cgs, "cgroups of stopped instances")
    gw.deploy("cb", "tiny_b")
    gw.wait_ready("cb")
    check(gw.invoke("cb").status == 200, "cb serves")
    cgs = [c for c in map(cgroup_of, pidfiles(gw).values()) if c]
    root = os.path.dirname(cgs[0]) if cgs else None
    check(gw.stop() == 0, "clean stop")
    left = [f for f in os.listdir(gw.store_dir)] if os.path.isdir(gw.store_dir) else []
    check(not left, "a clean stop leaves no image in %s: %s" % (gw.store_dir, left))
    if root:
        check(not os.path.exists(root), "the daemon's cgroup %s is gone" % root)


def big_model(path):
    """A Gemm with 4 MiB of weights: more than a 1 MiB budget can ever hold."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    w = numpy_helper.from_array(np.random.default_rng(1).standard_normal((1024, 1024),
                                                                       dtype=np.float32), "W")
    node = helper.make_node("Gemm", ["x", "W"], ["y"])
    graph = helper.make_graph([node], "big", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, [1, 1024])], [helper.make_tensor_value_info(
            "y", TensorProto.FLOAT, [1, 1024])], [w])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)


def case_refusal(gw):
    gw.stop()
    gw.extra += ["--budget", "1Mi"]
    big_model(os.path.join(gw.models, "big.onnx"))
    gw.start()
    gw.deploy("big", "big", env={"input": "json", "output": "json"})
    t0 = time.time()
    reason = None
    while time.time() - t0 < 30:
        f = gw.functions().get("big") or {}
        reason = f.get("refusal")
        if reason and "refused the model" not in reason:  # the store's own words arrived
            break
        time.sleep(0.2)
    check(reason, "list shows a refusal: %s" % gw.functions().get("big"))
    print("refusal:", reason)
    d = gw.req("GET", "/system/function/big").json()
    check(d.get("refusal") == reason, "describe shows it too: %s" % d)
    r = gw.invoke("big", timeout=10)
    check(r.status == 503, "invoke of a refused function: %d %s" % (r.status, r.body))
    check(reason in r.json()["error"], "503 carries the reason: %s" % r.body)
    check(int(r.headers.get("Retry-After", "0")) >= 1, "Retry-After: %s" % r.headers)
    check(time.time() - t0 < 40, "answered at once, not after --hold")
    time.sleep(10)
    starts = len(re.findall(r"instance big-\d+: started", log_text(gw)))
    print("instance starts of big in %.0f s: %d" % (time.time() - t0, starts))
    check(starts <= 2, "no crash loop: %d instance starts" % starts)


CASES = {"layout": case_layout, "plant": case_plant, "sockets": case_sockets, "uids": case_uids,
         "cleanup": case_cleanup, "refusal": case_refusal}


if __name__ == "__main__":
    check(os.geteuid() == 0, "these tests attack a root shmfaasd: run them as root")
    tg.run_main(CASES, "shmfaas-privsep-", lambda case: ["--no-auth"], tail=8000)
