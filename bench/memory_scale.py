"""bench/memory --scale (issue 15): what one more idle instance costs, N = 1, 16, 64, 256, with and
without templates, measured two ways:

  cgroup  shmfaasd is started in a fresh memory cgroup (benchlib.MemCgroup); its store, any template
          and every instance cgroup it makes below its own are in that cgroup's subtree, so the
          kernel's own count covers the whole deployment: anon + shmem + kernel memory (page
          tables, slab, stacks: memory.kmem.usage_in_bytes on v1, memory.stat "kernel" on v2).
          Page cache of files (libraries, the ONNX, the disk tier) is listed apart, not counted.
  PSS     /proc/PID/smaps_rollup summed over every process in that cgroup + image bytes in the
          store's tmpfs dir nobody maps, + VmPTE (page tables, which PSS does not show).

A function has at most 64 instances (GW_MAX_REPLICAS), so N > 64 runs ceil(N / 64) functions of the
same model, all deployed (with no instance) before N = 1 so that every N pays the same per-function
state. Each N step scales the functions up, waits until every instance is ready, sends one request
to each new instance on its own socket, waits --settle seconds (shmfaas-fn gives its arena back
after 1 s idle) and samples. The marginal cost of an instance is the slope between two N points.
"""
import os
import re
import time

import benchlib as bl

MAX_N = 1024
PER_FN = 64
RESERVE = 2 << 30
GOAL_MIB = 1.0
ENV = {"threads": "1", "input": "raw", "output": "topk", "topk": "5"}


def have_templates(build):
    """Whether this build's shmfaasd knows --no-templates (templates on by default)."""
    import subprocess
    exe = os.path.join(build, "src", "gateway", "shmfaasd")
    out = subprocess.run([exe, "--help"], capture_output=True, text=True)
    return "--no-templates" in out.stdout + out.stderr


def plan(n):
    """Instances per function for N in all: [64, 64, ..., rest]."""
    out = []
    while n > 0:
        out.append(min(PER_FN, n))
        n -= out[-1]
    return out


def pidfiles(gw, pattern):
    """The pids of shmfaasd's pidfiles STATE/pids/NAME whose name matches pattern."""
    d = os.path.join(gw.state, "pids")
    out = set()
    for f in os.listdir(d) if os.path.isdir(d) else []:
        if re.fullmatch(pattern, f):
            try:
                with open(os.path.join(d, f)) as fh:
                    out.add(int(fh.read().split()[0]))
            except (OSError, ValueError, IndexError):
                pass
    return out


def instance_pids(gw):
    """The instances' pids (pidfiles FUNCTION-ID.pid)."""
    return pidfiles(gw, r"[^.].*-\d+\.pid")


def template_pids(gw):
    """The templates' pids (pidfiles FUNCTION.tID.pid)."""
    return pidfiles(gw, r"[^.].*\.t\d+\.pid")


def role(pid, gw, inst, tmpl):
    """'instance', 'template', 'shmfaasd', 'store' or 'other'."""
    if pid == gw.proc.pid:
        return "shmfaasd"
    if pid in inst:
        return "instance"
    if pid in tmpl:
        return "template"
    return "store" if bl.comm(pid) == "shmfaas-store" else "other"


def sample(gw, cg):
    pids = cg.pids()
    parts = {"shmfaasd": 0, "store": 0, "template": 0, "other": 0, "instance": 0}
    count = {k: 0 for k in parts}
    pte = 0
    inst, tmpl = instance_pids(gw), template_pids(gw)
    for p in pids:
        r = role(p, gw, inst, tmpl)
        parts[r] += bl.pss_bytes(p)
        count[r] += 1
        pte += bl.vm_pte(p)
    unmapped = bl.tmpfs_unmapped(pids, gw.store_dir)
    return {"cgroup": cg.read(), "pss": sum(parts.values()), "unmapped": unmapped, "pte": pte,
            "parts": parts, "count": count, "procs": len(pids)}


def log_lines(gw, pattern):
    """shmfaasd's log lines that match pattern (a compiled regex): [match]."""
    try:
        with open(os.path.join(gw.tmp, "shmfaasd.log")) as f:
            return [m for m in (pattern.search(line) for line in f) if m]
    except OSError:
        return []


STARTED_RE = re.compile(r"instance \S+: (forked|started) pid ")


def started(gw):
    """How many instances shmfaasd has forked from a template and started by exec so far."""
    kinds = [m.group(1) for m in log_lines(gw, STARTED_RE)]
    return {"forked": kinds.count("forked"), "exec": kinds.count("started")}


def prewarm(gw, name, template, timeout=120):
    """One instance of name, ready (and with templates, its template ready), then none: the
    template stays while its model is resident, and the first instance of N = 1 is forked."""
    gw.scale(name, 1)
    gw.wait_ready(name, 1, timeout=timeout)
    pat = re.compile(rf"function {re.escape(name)}: template pid \d+ (ready|failed)")
    deadline = time.time() + timeout
    while template and time.time() < deadline:
        got = log_lines(gw, pat)
        if got:
            if got[-1].group(1) == "failed":
                raise bl.BenchError(f"{name}: its template failed: {gw.log_tail(600)}")
            break
        time.sleep(0.1)
    else:
        if template:
            raise bl.BenchError(f"{name}: no template ready after {timeout} s")
    gw.scale(name, 0)
    deadline = time.time() + timeout
    while gw.ready(name) or len(gw.sockets(name)):
        if time.time() > deadline:
            raise bl.BenchError(f"{name}: instances left {timeout} s after scaling to 0")
        time.sleep(0.1)


def wait_all_ready(gw, names, want, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if all(gw.ready(f) >= w for f, w in zip(names, want)):
            return
        if gw.proc.poll() is not None:
            raise bl.BenchError(f"shmfaasd exited: {gw.log_tail()}")
        time.sleep(0.2)
    got = [gw.ready(f) for f in names]
    raise bl.BenchError(f"not ready within {timeout:.0f} s: {got} of {want}; "
                        f"log: {gw.log_tail(600)}")


def serve_once(socks, body):
    for s in socks:
        c = bl.UnixHTTPConnection(s, timeout=60)
        try:
            bl.post_ok(c, "/", body)
        finally:
            c.close()


def measure(args, model, largest, templates, body, build, flag):
    """[{n, ...sample}] for one model, templates on or off; one cgroup, one shmfaasd."""
    ns = [n for n in args.scale_n if n <= largest]
    cg = bl.MemCgroup(tag=f"memscale-{templates}")
    gw = None
    rows, note = [], None
    try:
        gw = bl.Gateway(build, [model], tag=f"memscale-{templates}", log_level="info",
                        args=[] if templates == "on" or not flag else ["--no-templates"], cgroup=cg)
        names = [f"m{i}" for i in range(len(plan(ns[-1])))]
        for f in names:
            gw.deploy(f, model, ENV, max_replicas=PER_FN, labels={"com.openfaas.scale.min": "0"})
        for f in names:  # a template starts at a function's first scale-up: let it get ready
            prewarm(gw, f, templates == "on" and flag)
        time.sleep(args.settle)
        base = sample(gw, cg)
        served, cur = set(), [0] * len(names)
        print(f"  {model:13s} templates {templates:3s} N=0   cgroup "
              f"{base['cgroup']['deployment'] / bl.MIB:7.1f} MiB", flush=True)
        for n in ns:
            want = plan(n) + [0] * (len(names) - len(plan(n)))
            if rows:
                last = rows[-1]
                per = (last["cgroup"]["deployment"] - base["cgroup"]["deployment"]) / last["n"]
                need = per * (n - last["n"]) * 1.5
                if need > bl.mem_available() - RESERVE:
                    note = (f"stopped before N={n}: about {need / bl.MIB:.0f} MiB more needed, "
                            f"{bl.mem_available() / bl.MIB:.0f} MiB available")
                    break
            t0 = time.time()
            for f, w, c in zip(names, want, cur):
                if w != c:
                    gw.scale(f, w)
            wait_all_ready(gw, names, want, args.scale_timeout)
            ready_s = time.time() - t0
            cur = want
            socks = [s for f in names for s in gw.sockets(f)]
            if len(socks) != n:
                raise bl.BenchError(f"{model}: {len(socks)} instance sockets, wanted {n}")
            serve_once([s for s in socks if s not in served], body)
            served.update(socks)
            time.sleep(args.settle)
            row = dict(sample(gw, cg), n=n, ready_s=ready_s, started=started(gw))
            rows.append(row)
            print(f"  {model:13s} templates {templates:3s} N={n:<3d} cgroup "
                  f"{row['cgroup']['deployment'] / bl.MIB:7.1f} MiB  PSS+unmapped "
                  f"{(row['pss'] + row['unmapped']) / bl.MIB:7.1f} MiB  VmPTE "
                  f"{row['pte'] / bl.MIB:6.1f} MiB  ({row['procs']} processes, ready in "
                  f"{ready_s:.1f} s; forked/exec so far {row['started']['forked']}/"
                  f"{row['started']['exec']})", flush=True)
    finally:
        if gw is not None:
            gw.stop()
        cg.remove()
    return {"base": base if rows or note else None, "rows": rows, "note": note,
            "cgroup_kind": cg.kind}


def run(args, body):
    meta = {"command": bl.command_line(), "machine": bl.machine(), "load_before": bl.loadavg(),
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    print(f"bench/memory --scale on {meta['machine']}\nrerun: {meta['command']}", flush=True)
    tmpl = have_templates(args.build)
    res, t0 = {}, time.time()
    for model, largest in args.scale_models:
        bl.zoo_model(model)
        for t in args.templates:
            if t == "on" and not tmpl:
                res.setdefault(model, {})[t] = {"rows": [], "note": "this shmfaasd has no "
                                                "templates (no --no-templates option)"}
                continue
            res.setdefault(model, {})[t] = measure(args, model, largest, t, body, args.build, tmpl)
    meta.update(load_after=bl.loadavg(), wall_s=time.time() - t0, templates_built=tmpl)
    return {"meta": meta, "results": res}


# ---- the report ----


def mib(v):
    return "—" if v is None else f"{v / bl.MIB:.1f}"


def figures(row):
    """The two totals of one sample: cgroup deployment; PSS + unmapped + VmPTE."""
    return row["cgroup"]["deployment"], row["pss"] + row["unmapped"] + row["pte"]


def slopes(rows, parts=False):
    """[(n0, n1, cgroup MiB per instance, PSS+PTE MiB per instance, VmPTE MiB per instance)],
    with parts: + the cgroup's anon, shmem and kernel MiB per instance."""
    out = []
    for a, b in zip(rows, rows[1:]):
        dn = b["n"] - a["n"]
        (ca, pa), (cb, pb) = figures(a), figures(b)
        s = (a["n"], b["n"], (cb - ca) / dn / bl.MIB, (pb - pa) / dn / bl.MIB,
             (b["pte"] - a["pte"]) / dn / bl.MIB)
        if parts:
            s += tuple((b["cgroup"][k] - a["cgroup"][k]) / dn / bl.MIB
                       for k in ("anon", "shmem", "kernel"))
        out.append(s)
    return out


def table(data):
    lines = ["| model | templates | N | cgroup: anon + shmem + kernel | of it kernel | file cache "
             "(not counted) | PSS | image nobody maps | VmPTE | PSS + unmapped + VmPTE | "
             "PSS per instance | forked / exec'd so far (with each function's first) | "
             "ready (s) |", "|" + "---|" * 13]
    for model, by_t in data["results"].items():
        for t, r in by_t.items():
            for row in r["rows"]:
                c = row["cgroup"]
                each = row["parts"]["instance"] / max(1, row["count"]["instance"])
                lines.append(f"| {model} | {t} | {row['n']} | {mib(c['deployment'])} | "
                             f"{mib(c['kernel'])} | {mib(c['file'])} | {mib(row['pss'])} | "
                             f"{mib(row['unmapped'])} | {mib(row['pte'])} | "
                             f"{mib(figures(row)[1])} | {mib(each)} | "
                             f"{row.get('started', {}).get('forked', '?')} / "
                             f"{row.get('started', {}).get('exec', '?')} | {row['ready_s']:.1f} |")
    return "\n".join(lines)


def slope_table(data):
    lines = ["| model | templates | N | one more idle instance, cgroup (MiB) | of it anon / shmem "
             "/ kernel | PSS + unmapped + VmPTE (MiB) | of it VmPTE (MiB) | goal ≤ 1 MiB (both "
             "figures) |", "|---|---|---|---|---|---|---|---|"]
    for model, by_t in data["results"].items():
        for t, r in by_t.items():
            for n0, n1, c, p, pte, an, sh, ke in slopes(r["rows"], parts=True):
                goal = "—"
                if n1 in (64, 256):
                    goal = "met" if max(c, p) <= GOAL_MIB else "**not met**"
                lines.append(f"| {model} | {t} | {n0} → {n1} | {c:.2f} | {an:.2f} / {sh:.2f} / "
                             f"{ke:.2f} | {p:.2f} | {pte:.2f} | {goal} |")
    return "\n".join(lines)


def parts_table(data):
    lines = ["| model | templates | N | shmfaasd | store | templates | other (spares) | instances "
             "(each) | processes |", "|---|---|---|---|---|---|---|---|---|"]
    for model, by_t in data["results"].items():
        for t, r in by_t.items():
            if not r["rows"]:
                continue
            row = r["rows"][-1]
            p, c = row["parts"], row["count"]
            lines.append(f"| {model} | {t} | {row['n']} | {mib(p['shmfaasd'])} | {mib(p['store'])} "
                         f"| {mib(p.get('template', 0))} ({c.get('template', 0)}) | "
                         f"{mib(p['other'])} ({c['other']}) | {mib(p['instance'])} "
                         f"({mib(p['instance'] / max(1, c['instance']))}) | {row['procs']} |")
    return "\n".join(lines)


def breakdown(data):
    """Where one more instance's memory goes, per model and setting, at the last slope."""
    out = []
    for model, by_t in data["results"].items():
        for t, r in by_t.items():
            s = slopes(r["rows"], parts=True)
            if not s:
                continue
            n0, n1, c, _, pte, an, sh, ke = s[-1]
            out.append(f"- {model}, templates {t} (N = {n0} → {n1}): of {c:.2f} MiB, {an:.2f} "
                       f"anon "
                       f"(the instance's own pages: copy-on-write copies, heap, stacks), "
                       f"{sh:.2f} shmem and {ke:.2f} kernel memory, of which {pte:.2f} page tables "
                       f"(VmPTE); the rest of the kernel share is the instance's process, "
                       f"cgroup, network namespace and sockets.")
    return "\n".join(out)


def headline(data):
    """One line per model and templates setting: the slope into the largest N."""
    out = []
    for model, by_t in data["results"].items():
        for t, r in by_t.items():
            s = slopes(r["rows"])
            if s:
                n0, n1, c, p, _ = s[-1]
                out.append(f"{model}, templates {t}: {c:.2f} MiB (cgroup) / {p:.2f} MiB "
                           f"(PSS + page tables) per more idle instance from N = {n0} to {n1}")
    return out


def plot(data, png):
    """Deployment memory vs N (both figures) per model; matplotlib, skipped without it."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    models = list(data["results"])
    fig, axes = plt.subplots(1, len(models), figsize=(6 * len(models), 4.5), squeeze=False)
    for ax, model in zip(axes[0], models):
        for t, r in data["results"][model].items():
            rows = r["rows"]
            if not rows:
                continue
            xs = [row["n"] for row in rows]
            ax.plot(xs, [figures(row)[0] / bl.MIB for row in rows], "o-",
                    label=f"templates {t}: cgroup")
            ax.plot(xs, [figures(row)[1] / bl.MIB for row in rows], "s--",
                    label=f"templates {t}: PSS + unmapped + VmPTE")
        ax.set_xscale("log", base=2)
        ax.set_xlabel("idle instances N")
        ax.set_ylabel("deployment memory (MiB)")
        ax.set_title(model)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(png, dpi=90)
    plt.close(fig)
    return True


def section(data, png):
    m = data["meta"]
    notes = [f"- {model} / templates {t}: {r['note']}" for model, by_t in data["results"].items()
             for t, r in by_t.items() if r.get("note")]
    kinds = {r.get("cgroup_kind") for by_t in data["results"].values() for r in by_t.values()}
    kinds.discard(None)
    lines = "\n".join(f"- {h}" for h in headline(data))
    img = f"![deployment memory vs N]({os.path.basename(png)})\n\n" if png else ""
    return f"""## Idle instances at scale, one cgroup for the whole deployment (issue 15)

- command: `{m['command']}`
- measured {m['date']} on {m['machine']}; load average (1/5/15 min) before: {m['load_before']},
  after: {m['load_after']}; {m['wall_s']:.0f} s
- the deployment runs in one fresh memory cgroup ({", ".join(sorted(kinds)) or "?"}): shmfaasd, its
  store, the templates and every instance (each in its own cgroup, nested below). **cgroup** =
  anon + shmem + kernel memory (page tables, slab, stacks) as the kernel charges them; page cache
  of files (libraries, the ONNX, the store's disk tier) is shown but not counted, and libraries
  another process read first are charged to that process's cgroup, not here. **PSS** =
  `/proc/PID/smaps_rollup` summed over every process in the cgroup + image bytes in the store's
  tmpfs that nobody maps; **VmPTE** = page tables of those processes, which PSS leaves out.
- **templates on**: instances are forks of their function's warm template process, which keeps
  one spare (its next instance, forked ahead into its own cgroup and network namespace: listed
  under "other (spares)" below, and in every N's figures alike); **off**: `shmfaasd
  --no-templates`, every instance is exec'ed and loads, attaches and warms up by itself.
- idle = every instance is ready, has answered one request on its own socket, then
  {m.get('settle', 2):.0f} s without requests (the arena is given back after 1 s idle). MobileNetV2
  and ResNet-50 at threads=1, `input=raw`, `output=topk`. A function holds at most 64 instances,
  so N > 64 is 64 instances each of ceil(N / 64) functions of the same model (all deployed before
  N = 1).
{chr(10).join(notes)}

One more idle instance, the slope between two N (goal: ≤ {GOAL_MIB:.0f} MiB including page
tables at N = 64 and 256):

{lines}

{slope_table(data)}

{breakdown(data)}

{img}{table(data)}

Where the memory is at the largest N (MiB of PSS):

{parts_table(data)}
"""
