#!/usr/bin/python3
"""Instances forked from a warm template (issue 15): real root shmfaasd + shmfaas-store +
shmfaas-fn --template, real fork requests, real uids, cgroups and network namespaces.

usage: test_template.py CASE BUILD_DIR MODELS_DIR
CASE: same | identity | threads2 | killtemplate | lease | evict | fallback | off
  same          forked instances answer exactly what the exec'd (fresh) one answers, and say
                they are ready over their pipe (no probe)
  identity      a forked instance runs with its function's uid, its own cgroup (limits.memory),
                its own netns, no_new_privs, as shmfaasd's child, without the template's control
                socket; the template (root, not dumpable) resists the instance's uid
  threads2      threads=2 through a template (libgomp and fork): forked instances answer
  killtemplate  SIGKILL of the template leaves its instances serving; scaling up still works;
                removing the function retires its template
  lease         the template holds no lease; a killed forked instance's lease is released
  evict         evicting the model (function scaled to zero) retires the template; the next
                scale-up makes a new one
  fallback      a template that refuses to start (test-only env SHMFAAS_TEST_TEMPLATE_FAIL):
                the reason is logged and instances start by exec
  off           --no-templates: no template, every instance exec'd
"""
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_gateway as tg  # noqa: E402  (same argv: CASE BUILD_DIR MODELS_DIR)
import test_privsep as tp  # noqa: E402

check, fail = tg.check, tg.fail
STORE_BIN = os.path.join(tg.BUILD, "src/store/shmfaas-store")

if sys.argv[1] == "fallback":  # ours, passed by shmfaasd to templates alone (spawn.c)
    os.environ["SHMFAAS_TEST_TEMPLATE_FAIL"] = "1"


class UnixHTTP(http.client.HTTPConnection):
    def __init__(self, path, timeout=30):
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.path)


def ask_instance(gw, name, iid, timeout=30):
    """POST the test input straight to instance NAME-IID over its socket: (status, body)."""
    c = UnixHTTP(os.path.join(gw.state, "run", name, "%d.sock" % iid), timeout)
    c.request("POST", "/", tg.INPUT, {"Content-Type": "application/json"})
    r = c.getresponse()
    out = r.status, r.read()
    c.close()
    return out


def log(gw):
    return open(os.path.join(gw.tmp, "shmfaasd.log"), errors="replace").read()


def wait_for(what, cond, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(0.05)
    fail("not reached in %ds: %s" % (timeout, what))


def template(gw, name):
    return gw.functions().get(name, {}).get("template")


def wait_template(gw, name):
    return wait_for("template of %s ready" % name,
                    lambda: (template(gw, name) or {}).get("state") == "ready" and
                    template(gw, name))


def instances(gw, name):
    """{id: pid} of NAME's instances, from their pidfiles (a template's is NAME.tID.pid)."""
    out = {}
    for k, pid in gw.instance_pids().items():
        m = re.fullmatch(re.escape(name) + r"-(\d+)", k)
        if m and tg.alive(pid):
            out[int(m.group(1))] = pid
    return out


def forked_ids(gw, name):
    return {int(i) for i in re.findall(r"instance %s-(\d+): forked pid" % re.escape(name), log(gw))}


def spare_ids(gw, name):
    """Instances handed to the template's spare (forked ahead into their cgroup and netns)."""
    return {int(i) for i in re.findall(r"instance %s-(\d+): forked pid \d+ from template pid \d+, "
                                       r"its spare" % re.escape(name), log(gw))}


def cgroups_on(gw):
    return "no writable cgroup" not in log(gw)


def scale(gw, name, n):
    r = gw.req("POST", "/system/scale-function/" + name, {"serviceName": name, "replicas": n})
    check(r.status in (200, 202), "scale %s to %d: %d %s" % (name, n, r.status, r.body))


def deploy_with_template(gw, name, n, env=None, **kw):
    """Deploys NAME (first instance by exec), waits for its template, scales to n: the rest are
    forked. Returns ({id: pid}, forked ids)."""
    gw.deploy(name, "tiny_a", env=env, **kw)
    gw.wait_ready(name)
    wait_template(gw, name)
    scale(gw, name, n)
    gw.wait_ready(name, n)
    ids = wait_for("%d instances of %s" % (n, name), lambda: len(instances(gw, name)) >= n and
                   instances(gw, name))
    forked = forked_ids(gw, name) & set(ids)
    check(forked, "some instances of %s forked from its template: %s" % (name, log(gw)[-3000:]))
    return ids, forked


def tp_proc_of(pid, name):
    """Is pid a shmfaas-fn in one of NAME's instance cgroups (not a pidfile's)?"""
    try:
        cg = open("/proc/%d/cgroup" % pid).read()
        exe = os.readlink("/proc/%d/exe" % pid)
    except OSError:
        return False
    return exe.endswith("shmfaas-fn") and re.search(r"/shmfaas/[0-9a-f]+/%s-\d+$" % re.escape(name),
                                                    cg, re.M) is not None


def status_field(pid, field):
    m = re.search(r"^%s:[ \t]*(.*)$" % field, open("/proc/%d/status" % pid).read(), re.M)
    return m.group(1).split()


def store_leases(gw, model="tiny_a"):
    st = tg.store_models(gw)
    return sum(m["leases"] for m in st["models"]
               if m["state"] == "resident" and model in m.get("names", ""))


# ---------------------------------------------------------------- cases


def case_same(gw):
    ids, forked = deploy_with_template(gw, "ts", 3)
    answers = {i: ask_instance(gw, "ts", i) for i in ids}
    for i, (st, body) in answers.items():
        check(st == 200, "instance ts-%d: %d %s" % (i, st, body))
    fresh = [answers[i][1] for i in ids if i not in forked]
    check(fresh, "an exec'd instance to compare with")
    for i in forked:
        check(answers[i][1] == fresh[0], "forked ts-%d answers %s, fresh %s" %
              (i, answers[i][1], fresh[0]))
    for i in forked:
        check(re.search(r"instance ts-%d: ready after [\d.]+ ms \(forked, pushed\)" % i, log(gw)),
              "ts-%d said it was ready itself" % i)
    if cgroups_on(gw):
        check(spare_ids(gw, "ts") & forked, "forked instances handed to spares: %s" % log(gw)[-2000:])
    r = gw.invoke("ts")
    check(r.status == 200 and r.body == fresh[0], "through the gateway: %d" % r.status)
    usage = gw.req("GET", "/system/function/ts?usage=1").json().get("usage", {})
    print("usage:", usage)
    m = gw.req("GET", "/metrics").body.decode()
    check(re.search(r'shmfaas_function_template_pss_bytes\{function_name="ts[^}]*\} [1-9]', m),
          "/metrics has the template's PSS")


def case_identity(gw):
    ids, forked = deploy_with_template(gw, "ti", 2, limits={"memory": "256Mi"})
    spares = spare_ids(gw, "ti") & forked
    check(spares or not cgroups_on(gw), "a spare took the request")
    i = sorted(spares or forked)[0]  # a spare's identity: joined ahead, dropped at hand-over
    pid = ids[i]
    sibling = [p for k, p in ids.items() if k != i][0]
    tpid = template(gw, "ti")["pid"]
    check(status_field(pid, "NoNewPrivs")[0] == "1", "no_new_privs")
    uid = int(status_field(pid, "Uid")[0])
    check(200000 <= uid <= 265535, "the function's uid, not root: %d" % uid)
    check(status_field(pid, "Uid") == [str(uid)] * 4 and status_field(pid, "Gid") == [str(uid)] * 4,
          "uid = gid, all four: %s %s" % (status_field(pid, "Uid"), status_field(pid, "Gid")))
    check(status_field(pid, "Groups") == [], "no supplementary groups")
    check(status_field(sibling, "Uid")[0] == str(uid), "the exec'd sibling has the same uid")
    check(int(status_field(pid, "PPid")[0]) == gw.proc.pid, "shmfaasd is its parent")
    check(status_field(tpid, "Uid")[0] == "0", "the template is root")
    nets = {p: os.readlink("/proc/%d/ns/net" % p) for p in (pid, sibling, tpid)}
    check(nets[pid] != os.readlink("/proc/self/ns/net") and nets[pid] != nets[tpid] and
          nets[pid] != nets[sibling], "its own network namespace: %s" % nets)
    cg, limit_file = tg.proc_cgroup_dir(pid)
    if "no writable cgroup" not in log(gw):
        check(cg and cg.endswith("/ti-%d" % i), "its own cgroup: %s" % cg)
        check(int(open(os.path.join(cg, limit_file)).read()) == 256 << 20, "limits.memory")
        tcg, _ = tg.proc_cgroup_dir(tpid)
        check(tcg != cg, "not the template's cgroup %s" % tcg)
        mem = "memory.current" if limit_file == "memory.max" else "memory.usage_in_bytes"
        print("forked instance cgroup %s: %s bytes" % (cg, open(os.path.join(cg, mem)).read().strip()))
    # fds: 0-2, the listener (3) and nothing of the template's (its control socket, image fd)
    tfds = {os.readlink("/proc/%d/fd/%s" % (tpid, f)) for f in os.listdir("/proc/%d/fd" % tpid)}
    ctl = os.readlink("/proc/%d/fd/3" % tpid)
    fds = {f: os.readlink("/proc/%d/fd/%s" % (pid, f)) for f in os.listdir("/proc/%d/fd" % pid)}
    print("template fds", sorted(tfds), "instance fds", fds)
    check(ctl.startswith("socket:") and ctl not in fds.values(),
          "the instance does not hold the template's control socket")
    check(fds["3"].startswith("socket:"), "fd 3 is its listener")
    # the function's own uid cannot signal, ptrace or look into the template
    tp.attack(uid, "kill0=%d" % tpid, "kill=%d" % tpid, "ptrace=%d" % tpid,
              "environ=%d" % tpid, "listdir=/proc/%d/fd" % tpid)
    check(tg.alive(tpid), "the template survived")
    check(ask_instance(gw, "ti", i)[0] == 200, "and the instance serves")


def case_threads2(gw):
    ids, forked = deploy_with_template(gw, "t2", 3, env={"threads": "2"})
    answers = {i: ask_instance(gw, "t2", i, timeout=30) for i in ids}
    bodies = {b for _, b in answers.values()}
    check(all(s == 200 for s, _ in answers.values()), "threads=2 instances answer: %s" % answers)
    check(len(bodies) == 1, "forked and exec'd threads=2 instances agree: %s" % bodies)
    for _ in range(5):  # more than one run through the 2-thread team of a forked instance
        check(ask_instance(gw, "t2", sorted(forked)[0])[0] == 200, "again")


def case_killtemplate(gw):
    ids, forked = deploy_with_template(gw, "tk", 2)
    tpid = template(gw, "tk")["pid"]
    # the next spare (a grandchild of the template, in the next instance's cgroup) waits
    spare = wait_for("a spare forked ahead", lambda: [
        p for p in (int(d) for d in os.listdir("/proc") if d.isdigit()) if p not in ids.values() and p != tpid and
        tg.alive(p) and tp_proc_of(p, "tk")] if cgroups_on(gw) else [0])
    os.kill(tpid, signal.SIGKILL)
    wait_for("the killed template reaped", lambda: not tg.alive(tpid))
    for p in spare:
        if p:
            wait_for("its spare (pid %d) died with it" % p, lambda: not tg.alive(p))
    for i in ids:
        check(tg.alive(ids[i]), "tk-%d (pid %d) survived its template" % (i, ids[i]))
        check(ask_instance(gw, "tk", i)[0] == 200, "tk-%d still serves" % i)
    wait_for("shmfaasd reaped the dead template", lambda: (template(gw, "tk") or {}).get("pid")
             != tpid)
    scale(gw, "tk", 3)
    gw.wait_ready("tk", 3)
    check(gw.invoke("tk").status == 200, "scaled up after the template died")
    t = wait_template(gw, "tk")  # a new one, made at the scale-up
    check(t["pid"] != tpid, "a new template")
    r = gw.req("DELETE", "/system/functions", {"functionName": "tk"})
    check(r.status in (200, 202), "remove: %d" % r.status)
    wait_for("template retired with its function", lambda: not tg.alive(t["pid"]))


def case_lease(gw):
    ids, forked = deploy_with_template(gw, "tl", 3)
    wait_for("one lease per instance, none for the template",
             lambda: store_leases(gw) == 3, timeout=10)
    victim = ids[sorted(forked)[0]]
    os.kill(victim, signal.SIGKILL)
    wait_for("a replacement", lambda: victim not in instances(gw, "tl").values() and
             len(instances(gw, "tl")) == 3)
    gw.wait_ready("tl", 3)
    # a leaked lease would show as 4 here: the store saw the killed instance's connection close
    wait_for("the killed instance's lease released (leases %d)" % store_leases(gw),
             lambda: store_leases(gw) == 3, timeout=10)


def case_evict(gw):
    gw.deploy("te", "tiny_a")
    gw.wait_ready("te")
    tpid = wait_template(gw, "te")["pid"]
    scale(gw, "te", 0)
    wait_for("scaled to zero", lambda: not instances(gw, "te"))
    check(tg.alive(tpid), "the template outlives the instances while the model is resident")
    wait_for("no lease", lambda: store_leases(gw) == 0, timeout=10)
    sock = os.path.join(gw.state, "store.sock")
    r = subprocess.run([STORE_BIN, "evict", "tiny_a", "--socket", sock], capture_output=True,
                       text=True, timeout=30)
    check(r.returncode == 0, "evict: %s %s" % (r.stdout, r.stderr))
    wait_for("the template retires with its model", lambda: not tg.alive(tpid), timeout=15)
    wait_for("describe shows no template", lambda: template(gw, "te") is None)
    scale(gw, "te", 1)
    gw.wait_ready("te")
    check(gw.invoke("te").status == 200, "scale-up after the eviction")
    check(wait_template(gw, "te")["pid"] != tpid, "a new template for the re-made image")


def case_fallback(gw):
    gw.deploy("tf", "tiny_a")
    gw.wait_ready("tf")
    wait_for("the template's refusal logged",
             lambda: re.search(r"function tf: template pid \d+ failed: .*SHMFAAS_TEST_TEMPLATE_FAIL"
                               r" is set.*start by exec", log(gw)))
    check(template(gw, "tf") is None, "no template")
    scale(gw, "tf", 2)
    gw.wait_ready("tf", 2)
    check(not forked_ids(gw, "tf"), "no instance forked")
    for i in instances(gw, "tf"):
        check(ask_instance(gw, "tf", i)[0] == 200, "exec'd tf-%d serves" % i)


def case_off(gw):
    gw.deploy("to", "tiny_a")
    gw.wait_ready("to")
    scale(gw, "to", 2)
    gw.wait_ready("to", 2)
    time.sleep(0.5)
    check(template(gw, "to") is None and "template pid" not in log(gw), "--no-templates: none")
    check(not forked_ids(gw, "to"), "no instance forked")
    check(gw.invoke("to").status == 200, "invoke")


CASES = {"same": case_same, "identity": case_identity, "threads2": case_threads2,
         "killtemplate": case_killtemplate, "lease": case_lease, "evict": case_evict,
         "fallback": case_fallback, "off": case_off}

if __name__ == "__main__":
    tg.run_main(CASES, "shmfaas-tmpl-",
                lambda case: ["--log-level", "info"] + (["--no-templates"] if case == "off" else []))
