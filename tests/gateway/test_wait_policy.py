#!/usr/bin/python3
"""The engine sets its own OpenMP wait policy (issue 15, src/engine/omp.c): a program that links
the engine starts with GOMP_SPINCOUNT=<ENGINE_SPINCOUNT> unless its environment already says
OMP_WAIT_POLICY or GOMP_SPINCOUNT (the operator's override); a deployer can set neither.

usage: test_wait_policy.py CASE BUILD_DIR MODELS_DIR
CASE: run       shmfaas-run as libgomp itself reports it (OMP_DISPLAY_ENV=VERBOSE): the engine's
                spin count by default, the environment's when it sets one
      instance  a running shmfaas-fn under shmfaasd (/proc/PID/environ): the engine's setting;
                envVars OMP_WAIT_POLICY / GOMP_SPINCOUNT refused at deploy; shmfaasd's own
                OMP_WAIT_POLICY passed on and honoured (the documented override)
"""
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_gateway as tg  # noqa: E402

SOURCE = os.environ.get("SHMFAAS_SOURCE") or os.path.dirname(os.path.dirname(
    os.path.dirname(os.path.abspath(__file__))))
RUN = os.path.join(tg.BUILD, "src/engine/shmfaas-run")
OMP_VARS = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")


def engine_spincount():
    text = open(os.path.join(SOURCE, "src/engine/omp.c")).read()
    m = re.search(r'#define ENGINE_SPINCOUNT "([0-9]+)"', text)
    tg.check(m, "ENGINE_SPINCOUNT not found in src/engine/omp.c")
    return m.group(1)


def clean_env(**extra):
    env = {k: v for k, v in os.environ.items() if k not in OMP_VARS}
    env.update(extra)
    return env


def libgomp_says(**extra):
    """(OMP_WAIT_POLICY, GOMP_SPINCOUNT) as libgomp read them in shmfaas-run's constructor."""
    p = subprocess.run([RUN, "--help"], capture_output=True, text=True, timeout=60,
                       env=clean_env(OMP_DISPLAY_ENV="VERBOSE", **extra))
    out = p.stdout + p.stderr
    pol = re.search(r"OMP_WAIT_POLICY = '(\w+)'", out)
    spin = re.search(r"GOMP_SPINCOUNT = '(\d+)'", out)
    tg.check(pol and spin, "no OMP_DISPLAY_ENV output from shmfaas-run: %r" % out[-600:])
    tg.check("cannot re-execute" not in out, "re-exec failed: %r" % out[-600:])
    return pol.group(1), spin.group(1)


def case_run():
    spin = engine_spincount()
    tg.check(int(spin) < 300000, "ENGINE_SPINCOUNT %s is not below libgomp's default" % spin)
    got = libgomp_says()
    tg.check(got[1] == spin, "default: libgomp spins %s times, want the engine's %s" % (got[1], spin))
    got = libgomp_says(OMP_WAIT_POLICY="ACTIVE")
    tg.check(got == ("ACTIVE", "30000000000"), "OMP_WAIT_POLICY=ACTIVE not honoured: %s" % (got,))
    got = libgomp_says(OMP_WAIT_POLICY="PASSIVE")
    tg.check(got[1] == "0", "OMP_WAIT_POLICY=PASSIVE not honoured: %s" % (got,))
    got = libgomp_says(GOMP_SPINCOUNT="7")
    tg.check(got[1] == "7", "GOMP_SPINCOUNT=7 not honoured: %s" % (got,))
    print("ok: run")


def environ_of(pid):
    with open("/proc/%d/environ" % pid, "rb") as f:
        return dict(e.decode(errors="replace").split("=", 1)
                    for e in f.read().split(b"\0") if b"=" in e)


def instance_env(gw, name):
    gw.deploy(name, "tiny_a")
    gw.wait_ready(name)
    pids = [p for n, p in gw.instance_pids().items() if n.startswith(name)]
    tg.check(pids, "%s: no instance pid" % name)
    env = environ_of(pids[0])
    tg.check(gw.invoke(name).status == 200, "%s: invoke failed" % name)
    return env


def case_instance(gw):
    spin = engine_spincount()
    env = instance_env(gw, "plain")
    tg.check(env.get("GOMP_SPINCOUNT") == spin and "OMP_WAIT_POLICY" not in env,
             "instance environment: %s" % {k: env.get(k) for k in OMP_VARS})
    for k, v in (("OMP_WAIT_POLICY", "ACTIVE"), ("GOMP_SPINCOUNT", "300000")):
        dep = {"service": "spin", "image": "tiny_a", "envVars": {k: v}}
        r = gw.req("POST", "/system/functions", dep)
        tg.check(r.status == 400 and k.encode() in r.body,
                 "deploy with envVars %s: %d %r" % (k, r.status, r.body[:200]))
    # The operator's override: shmfaasd's own OMP_WAIT_POLICY reaches its instances as is.
    tg.check(gw.stop() == 0, "shmfaasd stop")
    os.environ["OMP_WAIT_POLICY"] = "ACTIVE"
    try:
        gw.start()
    finally:
        del os.environ["OMP_WAIT_POLICY"]
    env = instance_env(gw, "active")
    tg.check(env.get("OMP_WAIT_POLICY") == "ACTIVE" and "GOMP_SPINCOUNT" not in env,
             "override: instance environment %s" % {k: env.get(k) for k in OMP_VARS})
    print("ok: instance")


if __name__ == "__main__":
    for k in OMP_VARS:  # the test environment sets OMP_WAIT_POLICY=PASSIVE for every suite
        os.environ.pop(k, None)
    if sys.argv[1] == "run":
        case_run()
    else:
        tg.run_main({"instance": case_instance}, "shmfaas-wait-")
