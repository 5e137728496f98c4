#!/usr/bin/python3
"""Compile ahead and the store's disk tier through shmfaasd (issue 18). Each case starts its own
daemon (as root, auth on by default) and cleans up.

usage: test_tiers.py CASE BUILD_DIR MODELS_DIR
CASE:
  ahead  deploying a function has the store compile its image at once (a PREPARE): the store
         counts the compile before any request; describe shows imageStatus "compiling" while it
         runs (seen with the zoo's resnet50, whose compile outlasts a GET; skipped without the
         zoo), then "ready"; the first request attaches a resident image (no second compile).
  disk   the disk tier is on by default (STATE/images): after a clean restart of shmfaasd (the
         store's RAM tier is removed) the function's image comes back from disk, not compiled.
"""
import os
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_gateway as tg  # noqa: E402  (the Gateway class; same argv layout)

check, fail = tg.check, tg.fail
ZOO = os.environ.get("SHMFAAS_ZOO", "zoo")


def totals(gw):
    return tg.store_models(gw).get("totals", {})


def wait_image(gw, name, timeout=60):
    """Polls describe until imageStatus is "ready"; returns the statuses seen, in order."""
    seen = []
    deadline = time.time() + timeout
    while time.time() < deadline:
        r = gw.req("GET", "/system/function/" + name)
        check(r.status == 200, "describe %s: %d" % (name, r.status))
        status = r.json().get("imageStatus")
        if not seen or seen[-1] != status:
            seen.append(status)
        if status == "ready":
            return seen
        time.sleep(0.02)
    fail("%s: imageStatus still %s after %ds" % (name, seen, timeout))


def case_ahead(gw):
    # scale.min 0: no instance starts, so only the compile ahead can have compiled the image
    gw.deploy("fa", "tiny_a", labels={"com.openfaas.scale.min": "0"})
    seen = wait_image(gw, "fa")
    t = totals(gw)
    print("after deploy of tiny_a (no request yet): imageStatus %s, store %s" % (
        seen, {k: t.get(k) for k in ("prepares", "compiles", "hits", "misses", "leases")}))
    check(t.get("prepares", 0) >= 1 and t.get("compiles") == 1 and t.get("leases") == 0,
          "the image was compiled ahead of any request: %s" % t)
    check(gw.invoke("fa").status == 200, "invoke")
    t = totals(gw)
    check(t.get("compiles") == 1 and t.get("hits", 0) >= 1,
          "the first request attached the resident image: %s" % t)
    src = os.path.join(ZOO, "resnet50", "model.onnx")
    if not os.path.exists(src):
        print("resnet50: %s not found; the \"compiling\" state is not observed" % src)
        return
    shutil.copy(src, os.path.join(gw.models, "resnet50.onnx"))
    gw.deploy("rn", "resnet50", labels={"com.openfaas.scale.min": "0"},
              env={"input": "image", "output": "topk"})
    t0 = time.time()
    seen = wait_image(gw, "rn")
    print("resnet50: imageStatus %s, ready %.2f s after the deploy" % (seen, time.time() - t0))
    check(seen[0] == "compiling" and seen[-1] == "ready", "describe shows compiling: %s" % seen)
    rc, out, _ = tg.cli(gw, "describe", "rn")
    check(rc == 0 and "Image:       ready" in out, "shmfaas describe: %s" % out)
    check(totals(gw).get("compiles") == 2, "one compile for resnet50")


def case_disk(gw):
    gw.deploy("da", "tiny_a")
    gw.wait_ready("da")
    check(gw.invoke("da").status == 200, "invoke")
    disk = os.path.join(gw.state, "images")
    deadline = time.time() + 20
    while time.time() < deadline and totals(gw).get("disk_writes", 0) < 1:
        time.sleep(0.05)
    plans = [f for f in os.listdir(disk) if f.endswith(".plan")]
    check(len(plans) == 1, "the disk tier holds the image: %s" % plans)
    check(gw.stop() == 0, "clean stop")
    gw.start()
    gw.wait_ready("da")
    check(gw.invoke("da").status == 200, "invoke after the restart")
    t = totals(gw)
    print("after a clean restart: %s" % {k: t.get(k) for k in (
        "compiles", "disk_hits", "disk_adopted", "adopted", "disk_tier", "policy")})
    check(t.get("disk_tier") is True and t.get("policy") == "gdsf", "defaults: %s" % t)
    check(t.get("compiles") == 0 and t.get("disk_hits", 0) >= 1 and t.get("adopted") == 0,
          "the image came back from the disk tier, not compiled: %s" % t)


CASES = {"ahead": case_ahead, "disk": case_disk}
FLAGS = {"ahead": ["--budget", "512Mi"], "disk": []}


if __name__ == "__main__":
    tg.run_main(CASES, "shmfaas-tiers-", lambda case: FLAGS[case])
