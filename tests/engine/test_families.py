#!/usr/bin/python3
"""The family models of tools/families through the engine, held to families-status.txt (issue 17).

  test_families.py BUILD_DIR MODELS_DIR STATUS_FILE [--only NAME,..] [--print-status]

For every model MODELS_DIR/NAME (written by `tools/families --out MODELS_DIR`), every request
reqK_input.json is compiled and run with `shmfaas-run model.onnx --input reqK_input.json` (the
plan is compiled for that request's shapes: a dynamic-shape model is compiled once per request
shape) and compared with reqK_output.json:
  abs  (default): max|got - ref| <= 1e-4 x max|ref| per output; integer outputs exactly;
  fp16: max|got - ref| <= 1e-2 x max|ref|;
  int8: the same argmax per row and max|got - ref| <= 1 quantum (meta.json's "quantum").
A streaming model (meta.json "state": {output: input}) gets, from its second request on, the
state the engine itself returned for the previous request, so the engine's state is what flows.
Verdicts: pass; refused (shmfaas-run exit 1 with an error: its last line is the reason); WRONG
(ran but differs); CRASH (a signal, a timeout or another exit status).

NAME@fn lines check the function path for a dynamic-shape model: one shmfaas-fn --private
instance, started without input_shape, must serve every request shape of the model correctly;
NAME@gateway lines the same through shmfaasd: one deployed function (tests/gateway's Gateway:
real daemon, store, instances running as the function's uid, auth on), every request shape.

The status file describes the engine with oneDNN capped at AVX2 (ONEDNN_MAX_CPU_ISA=AVX2, the
ISA every x86-64 host here has; what oneDNN offers a jit kernel for differs by ISA). The test
fails when a model gives a WRONG answer or CRASHes (always), when a model the status file marks "pass" does not
pass, when a model marked "refused: ..." passes (update the file: it must stay true), or when a
model has no line (or a line names no model). A refusal whose reason changed is printed, not
failed. Then everything runs again at the host's own ISA: there only a WRONG answer or a CRASH
fails; what passes or is refused differently is printed. --print-status prints the status lines
the AVX2 run saw. Stdlib only.
"""
import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

RUN_TIMEOUT_S = 120
MODES = [("avx2", {"ONEDNN_MAX_CPU_ISA": "AVX2"}), ("native", {})]


def load_status(path):
    status = {}
    with open(path) as f:
        for lineno, line in enumerate(f, 1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            name, _, verdict = line.partition(" ")
            verdict = verdict.strip()
            if verdict != "pass" and not verdict.startswith("refused: "):
                sys.exit(f"{path}:{lineno}: expected 'NAME pass' or 'NAME refused: REASON'")
            status[name] = verdict
    return status


def flat(data):
    if isinstance(data, list):
        for x in data:
            yield from flat(x)
    else:
        yield data


def compare(got, ref, meta):
    """None when got matches ref, else what differs."""
    for name, r in ref.items():
        g = got.get(name)
        if g is None:
            return f"output {name} missing"
        if list(g["shape"]) != list(r["shape"]):
            return f"output {name}: shape {g['shape']}, want {r['shape']}"
        a, b = list(flat(g["data"])), list(flat(r["data"]))
        if len(a) != len(b):
            return f"output {name}: {len(a)} elements, want {len(b)}"
        if not b:
            continue
        if r.get("dtype", "float32") not in ("float32", "float64"):
            bad = [i for i in range(len(b)) if a[i] != b[i]]
            if bad:
                return f"output {name} element {bad[0]}: {a[bad[0]]}, want {b[bad[0]]}"
            continue
        diff = max(abs(x - y) for x, y in zip(a, b))
        peak = max(abs(y) for y in b)
        tol = meta.get("tolerance", "abs")
        if tol == "int8":
            row = r["shape"][-1] if r["shape"] else 1
            for i in range(0, len(b), row):
                ga, ra = a[i:i + row], b[i:i + row]
                if ga.index(max(ga)) != ra.index(max(ra)):
                    return f"output {name} row {i // row}: argmax {ga.index(max(ga))}, " \
                           f"want {ra.index(max(ra))}"
            limit = meta["quantum"] * (1 + 1e-3)
        else:
            limit = (1e-2 if tol == "fp16" else 1e-4) * peak
        if not diff <= limit:
            return f"output {name}: max|diff| {diff:.3g} > {limit:.3g} (max|ref| {peak:.3g})"
    return None


def with_state(inp_path, prev_out, meta, tmp):
    """Request K+1's inputs with the state inputs replaced by request K's outputs."""
    doc = json.load(open(inp_path))
    for out_name, in_name in meta["state"].items():
        doc["inputs"][in_name] = prev_out[out_name]
    path = os.path.join(tmp, "state_input.json")
    with open(path, "w") as f:
        json.dump(doc, f)
    return path


def run_model(run_exe, d, meta, tmp, env):
    """(verdict, detail): verdict one of pass, refused, WRONG, CRASH."""
    prev = None
    shapes = []
    for k in range(meta["requests"]):
        inp = os.path.join(d, f"req{k}_input.json")
        if prev is not None and meta.get("state"):
            inp = with_state(inp, prev, meta, tmp)
        out = os.path.join(tmp, "out.json")
        if os.path.exists(out):
            os.unlink(out)
        try:
            p = subprocess.run([run_exe, os.path.join(d, "model.onnx"), "--input", inp,
                                "--output", out], capture_output=True, text=True,
                               timeout=RUN_TIMEOUT_S, env=env)
        except subprocess.TimeoutExpired:
            return "CRASH", f"request {k}: timeout after {RUN_TIMEOUT_S} s"
        last = (p.stderr.strip().splitlines() or [""])[-1]
        if p.returncode == 1 and last:
            return "refused", last.replace("shmfaas-run: ", "").replace("model model.onnx: ", "")
        if p.returncode != 0:
            return "CRASH", f"request {k}: exit status {p.returncode}: {last}"
        got = json.load(open(out))["outputs"]
        why = compare(got, json.load(open(os.path.join(d, f"req{k}_output.json")))["outputs"],
                      meta)
        if why:
            return "WRONG", f"request {k}: {why}"
        prev = got
        shapes.append("x".join(str(x) for x in json.load(open(inp))["inputs"][
            meta["dynamic"][0]]["shape"]) if meta.get("dynamic") else "")
    note = f" ({len(shapes)} shapes: {', '.join(shapes)}; compiled per shape)" \
        if meta.get("dynamic") else ""
    return "pass", f"{meta['requests']} requests{note}"


class UnixHTTP(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("fn", timeout=RUN_TIMEOUT_S)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(RUN_TIMEOUT_S)
        self.sock.connect(self.path)


def http(sock, method, path, body=None):
    c = UnixHTTP(sock)
    try:
        c.request(method, path, body=body, headers={"Content-Type": "application/json"})
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def run_fn(build, d, meta, tmp, env):
    """One shmfaas-fn --private instance, no input_shape, serving every request shape."""
    fn_exe = os.path.join(build, "src", "fn", "shmfaas-fn")
    sock, log = os.path.join(tmp, "fn.sock"), os.path.join(tmp, "fn.log")
    env = dict(env, idle_release="0")
    with open(log, "w") as logf:
        proc = subprocess.Popen([fn_exe, "--private", os.path.join(d, "model.onnx"),
                                 "--listen", "unix:" + sock], stdout=logf, stderr=logf, env=env)
    try:
        for _ in range(600):
            if proc.poll() is not None:
                text = open(log).read().strip().splitlines()
                last = (text[-1] if text else "?").replace(os.path.join(d, ""), "")
                return "refused", f"instance exits at start: {last.replace('error main: ', '')}"
            if os.path.exists(sock):
                try:
                    if http(sock, "GET", "/_/ready")[0] == 200:
                        break
                except OSError:
                    pass
            time.sleep(0.1)
        else:
            return "CRASH", "instance not ready after 60 s"
        for k in range(meta["requests"]):
            body = open(os.path.join(d, f"req{k}_input.json"), "rb").read()
            code, reply = http(sock, "POST", "/", body)
            if code != 200:
                text = reply[:200].decode(errors="replace")
                return "refused", f"request {k}: HTTP {code}: {text}"
            why = compare(json.loads(reply)["outputs"],
                          json.load(open(os.path.join(d, f"req{k}_output.json")))["outputs"],
                          meta)
            if why:
                return "WRONG", f"request {k}: {why}"
        return "pass", f"{meta['requests']} request shapes served by one instance"
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.returncode not in (0, -15, 1, 75):
            return "CRASH", f"instance exit status {proc.returncode}"


def run_gateway(build, d, meta, tmp, env):
    """One function deployed through shmfaasd (tests/gateway/test_gateway.py's Gateway: real
    daemon, store, instances, auth) serving every request shape of the model."""
    # Gateway() copies the gateway tests' tiny models from MODELS and test_gateway reads
    # MODELS/input.json when imported: stand-ins here keep this test free of their build order.
    gw_models = os.path.join(tmp, "gateway-models")
    os.makedirs(gw_models, exist_ok=True)
    for f in ("tiny_a.onnx", "tiny_b.onnx", "wide.onnx"):
        shutil.copy(os.path.join(d, "model.onnx"), os.path.join(gw_models, f))
    shutil.copy(os.path.join(d, "req0_input.json"), os.path.join(gw_models, "input.json"))
    argv, sys.argv = sys.argv, [sys.argv[0], "families", build, gw_models]
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "gateway"))
    try:
        import test_gateway as tg
    finally:
        sys.argv = argv
    gtmp = tempfile.mkdtemp(prefix="shmfaas-families-gw-")
    os.chmod(gtmp, 0o711)  # instances run as their function's uid
    gw = tg.Gateway(gtmp)
    name = os.path.basename(d).replace("_", "-")
    try:
        shutil.copy(os.path.join(d, "model.onnx"), os.path.join(gw.models, name + ".onnx"))
        os.chmod(os.path.join(gw.models, name + ".onnx"), 0o644)
        gw.start()
        gw.deploy(name, name)
        log = os.path.join(gtmp, "shmfaasd.log")
        for _ in range(200):
            f = gw.functions().get(name)
            if f and f["availableReplicas"] >= 1:
                break
            text = open(log, errors="replace").read()
            # the store refusing the model at one fixed shape is how an instance learns that it
            # serves a plan per request shape: only an instance that exited is a refusal
            if "exited with status" in text and ("symbolic dim" in text or "refused" in text):
                time.sleep(0.5)  # the whole line
                lines = [x for x in open(log, errors="replace").read().splitlines()
                         if "symbolic dim" in x or "refused" in x]
                why = lines[0] if lines else "?"
                return "refused", "no instance starts: " + why[why.find("input '"):] \
                    if "input '" in why else why
            time.sleep(0.1)
        else:
            return "refused", "no instance ready after 20 s"
        for k in range(meta["requests"]):
            body = open(os.path.join(d, f"req{k}_input.json"), "rb").read()
            r = gw.req("POST", f"/function/{name}.openfaas-fn", body,
                       {"Content-Type": "application/json"}, auth=False, timeout=RUN_TIMEOUT_S)
            if r.status != 200:
                return "refused", f"request {k}: HTTP {r.status}: " \
                    f"{r.body[:200].decode(errors='replace')}"
            why = compare(json.loads(r.body)["outputs"],
                          json.load(open(os.path.join(d, f"req{k}_output.json")))["outputs"],
                          meta)
            if why:
                return "WRONG", f"request {k}: {why}"
        return "pass", f"{meta['requests']} request shapes served by one function"
    finally:
        rc = gw.cleanup()
        tg.purge_leftovers(gw)
        shutil.rmtree(gtmp, ignore_errors=True)
        if rc not in (0, None):
            print(f"shmfaasd exit status on SIGTERM: {rc}")


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    only = []
    for a in sys.argv[1:]:
        if a.startswith("--only="):
            only = a.split("=", 1)[1].split(",")
    print_status = "--print-status" in sys.argv
    if len(args) != 3:
        sys.exit(__doc__)
    build, models, status_file = args
    run_exe = os.path.join(build, "src", "engine", "shmfaas-run")
    status = load_status(status_file)
    names = sorted(n for n in os.listdir(models) if os.path.isfile(
        os.path.join(models, n, "meta.json")))
    failed, seen = [], {}
    for key in status:
        base = key.split("@")[0]
        if base not in names:
            failed.append(f"{key}: in {status_file} but no such model in {models}")
    with tempfile.TemporaryDirectory(prefix="shmfaas-families-") as tmp:
        for mode, extra in MODES:
            env = dict(os.environ, **extra)
            print(f"-- {mode}: {extra or 'the host ISA'}", flush=True)
            for name in names:
                d = os.path.join(models, name)
                meta = json.load(open(os.path.join(d, "meta.json")))
                checks = [(name, run_model)]
                if meta["dynamic"]:
                    checks.append((name + "@fn", run_fn))
                if meta["dynamic"] and mode == "avx2":  # the slow one: once
                    checks.append((name + "@gateway", run_gateway))
                for key, fn in checks:
                    if only and key not in only and key.split("@")[0] not in only:
                        continue
                    verdict, detail = fn(run_exe if fn is run_model else build, d, meta, tmp,
                                         env)
                    detail = detail.replace(d + "/", "")
                    got = "pass" if verdict == "pass" else f"refused: {detail}"
                    line = f"{key:28s} {verdict:8s} {detail}"
                    if verdict in ("WRONG", "CRASH"):
                        failed.append(f"{key} ({mode}): {verdict}: {detail} (never acceptable)")
                    elif mode != "avx2":
                        if got != seen.get(key):
                            line += f"   (differs from AVX2: '{seen.get(key)}')"
                    else:
                        seen[key] = got
                        want = status.get(key)
                        if want is None:
                            failed.append(f"{key}: no line in {status_file} (it gave: {got})")
                        elif want == "pass" and verdict != "pass":
                            failed.append(f"{key}: marked pass, now {verdict}: {detail}")
                        elif want != "pass" and verdict == "pass":
                            failed.append(f"{key}: marked '{want}' but passes: update "
                                          f"{status_file}")
                        elif want != "pass" and want != got:
                            line += f"   (status file says '{want}')"
                    print(line, flush=True)
    if print_status:
        for key, v in seen.items():
            print(f"{key} {v}")
    for f in failed:
        print("FAIL:", f)
    n_pass = sum(1 for v in seen.values() if v == "pass")
    print(f"families: {n_pass} of {len(seen)} checks pass, {len(failed)} failures")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
