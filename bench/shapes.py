#!/usr/bin/python3
"""What a new request shape costs (issue 17, run-time shapes): one shmfaas-fn instance started
without input_shape serves a dynamic-shape family model (tools/families) at several request
shapes; each request's wall time as the client sees it, first time and after.

  store:    instance A attaches MODEL?SHAPES per new shape (the store compiles the image), then a
            second instance B asks for a shape A made resident (an attach, no compile);
  private:  --private: the engine's specialising model compiles each new shape in the instance.

usage: bench/shapes.py BUILD_DIR [MODEL]... [--reps=N]
  MODEL  a directory name under BUILD_DIR/tests/engine/family-models (default transformer_encoder
         textline_ocr; `ninja -C BUILD_DIR tests/engine/family-models.stamp` writes them)
Prints one table per model and the image bytes per shape the store holds.
"""
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402

args = [a for a in sys.argv[1:] if not a.startswith("--")]
REPS = int(([a.split("=", 1)[1] for a in sys.argv if a.startswith("--reps=")] or ["20"])[0])


def start(cmd, env, log, sock):
    p = subprocess.Popen(cmd, env=env, stdout=log, stderr=log)
    for _ in range(600):
        if p.poll() is not None:
            raise benchlib.BenchError(f"{cmd[0]} exited: {open(log.name).read()[-500:]}")
        if os.path.exists(sock):
            try:
                c = benchlib.UnixHTTPConnection(sock)
                c.request("GET", "/_/ready")
                if c.getresponse().status == 200:
                    return p
            except OSError:
                pass
        time.sleep(0.05)
    raise benchlib.BenchError(f"{cmd[0]} not ready")


def timed(sock, body):
    c = benchlib.UnixHTTPConnection(sock)
    t = time.perf_counter()
    post_json(c, body)
    ms = (time.perf_counter() - t) * 1e3
    c.close()
    return ms


def post_json(conn, body):
    status, data = benchlib.post(conn, "/", body, "application/json")
    if status != 200:
        raise benchlib.BenchError(f"POST: {status} {data[:300]!r}")


def warm_p50(sock, body):
    return statistics.median(timed(sock, body) for _ in range(REPS))


def bench_model(build, name, tmp):
    d = os.path.join(build, "tests", "engine", "family-models", name)
    meta = json.load(open(os.path.join(d, "meta.json")))
    reqs = [open(os.path.join(d, f"req{k}_input.json"), "rb").read()
            for k in range(meta["requests"])]
    shapes = ["x".join(map(str, json.loads(r)["inputs"][meta["dynamic"][0]]["shape"]))
              for r in reqs]
    models, images = os.path.join(tmp, "models"), os.path.join(tmp, "images")
    os.makedirs(models)
    os.makedirs(images)
    shutil.copy(os.path.join(d, "model.onnx"), os.path.join(models, name + ".onnx"))
    store_bin = os.path.join(build, "src", "store", "shmfaas-store")
    fn_bin = os.path.join(build, "src", "fn", "shmfaas-fn")
    ssock = os.path.join(tmp, "store.sock")
    env = dict(os.environ, store_socket=ssock, idle_release="0", OMP_WAIT_POLICY="PASSIVE")
    procs = []
    rows = []
    try:
        slog = open(os.path.join(tmp, "store.log"), "w")
        procs.append(subprocess.Popen([store_bin, "--socket", ssock, "--dir", images, "--models",
                                       models, "--budget", "1Gi"], stdout=slog, stderr=slog))
        for _ in range(100):
            if os.path.exists(ssock):
                break
            time.sleep(0.05)
        for mode in ("store", "private"):
            sock = os.path.join(tmp, f"fn-{mode}.sock")
            cmd = [fn_bin, "--listen", "unix:" + sock]
            e = dict(env, model=name) if mode == "store" else env
            if mode == "private":
                cmd += ["--private", os.path.join(models, name + ".onnx")]
            log = open(os.path.join(tmp, f"{mode}.log"), "w")
            procs.append(start(cmd, e, log, sock))
            for shape, body in zip(shapes, reqs):
                first = timed(sock, body)
                rows.append((mode, shape, first, warm_p50(sock, body)))
            if mode == "store":  # a second instance: the first shape is resident already
                sock_b = os.path.join(tmp, "fn-store-b.sock")
                log_b = open(os.path.join(tmp, "store_b.log"), "w")
                procs.append(start([fn_bin, "--listen", "unix:" + sock_b], dict(env, model=name),
                                   log_b, sock_b))
                rows.append(("store, 2nd instance", shapes[0], timed(sock_b, reqs[0]),
                             warm_p50(sock_b, reqs[0])))
        ls = subprocess.run([store_bin, "ls", "--socket", ssock], capture_output=True,
                            text=True).stdout
    finally:
        for p in reversed(procs):
            p.terminate()
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        subprocess.run([store_bin, "purge", "--dir", images], capture_output=True)
    print(f"\n{name} ({meta['what'][:70]}...)")
    print(f"{'source':22s} {'shape':>12s} {'first request':>14s} {'after (p50)':>12s}")
    for mode, shape, first, after in rows:
        print(f"{mode:22s} {shape:>12s} {first:11.1f} ms {after:9.2f} ms")
    print("store images (one per shape, each with its own weights):")
    for line in ls.splitlines():
        if line.startswith(name) or line.startswith("NAME"):
            print("  " + line)


def main():
    if not args:
        sys.exit(__doc__)
    build = os.path.abspath(args[0])
    names = args[1:] or ["transformer_encoder", "textline_ocr"]
    print(f"bench/shapes.py: {benchlib.machine()}; load {benchlib.loadavg()}; "
          f"{REPS} warm runs per shape")
    print(f"command: {benchlib.command_line()}")
    for name in names:
        with tempfile.TemporaryDirectory(prefix="shmfaas-bench-shapes-") as tmp:
            bench_model(build, name, tmp)
    return 0


if __name__ == "__main__":
    benchlib.run_guarded(main)
