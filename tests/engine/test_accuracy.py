#!/usr/bin/python3
"""The engine's fp32 error on single convolutions against float64, held to bounds (issue 17).

  test_accuracy.py SHMFAAS_RUN CASES_DIR BOUNDS_FILE

CASES_DIR is written by `bench/accuracy --write-cases DIR --test-cases`: per case NAME the model
NAME.onnx, its input NAME_in.json, the float64 reference NAME_ref.json and NAME.meta.json (K, the
length of each output's sum, and whether Winograd applies). Each case runs through shmfaas-run at
one thread, direct (--winograd off) and, where it applies, Winograd (--winograd all), first with
oneDNN capped at AVX2 (ONEDNN_MAX_CPU_ISA=AVX2: the same kernels on every x86-64 host) and then at
the host's ISA. Error: max|got - ref| / max|ref|. Every run must stay within the generic bound
u * sqrt(K) * 4 (u = 2^-24, a random-walk fp32 sum of K terms); the AVX2 runs also within
BOUNDS_FILE's figure for (case, runner): "NAME RUNNER BOUND  # measured, ORT's" lines, each
bound 1.5x (Winograd, ours and deterministic) or 2x (oneDNN's direct kernel) what
bench/accuracy measured (docs/bench/accuracy.md). Stdlib only.
"""
import json
import math
import os
import subprocess
import sys
import tempfile

U = 2.0 ** -24


def load_outputs(path):
    out = json.load(open(path))['outputs']
    return next(iter(out.values()))['data']


def max_rel(got, ref):
    if len(got) != len(ref):
        raise ValueError(f"{len(got)} values, the reference has {len(ref)}")
    m = max(abs(r) for r in ref)
    return max(abs(g - r) for g, r in zip(got, ref)) / m


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    run, cases, bounds_file = sys.argv[1:]
    bounds = {}
    for line in open(bounds_file):
        line = line.split('#', 1)[0].split()
        if line:
            bounds[(line[0], line[1])] = float(line[2])
    names = sorted(f[:-len('.meta.json')] for f in os.listdir(cases) if f.endswith('.meta.json'))
    if not names:
        sys.exit(f"test_accuracy: no cases in {cases}")
    for n in {k[0] for k in bounds} - set(names):
        sys.exit(f"test_accuracy: {bounds_file} names case {n}, which {cases} lacks")
    failures = 0
    seen = set()
    with tempfile.TemporaryDirectory(prefix='shmfaas-accuracy-test-') as tmp:
        out = os.path.join(tmp, 'out.json')
        for n in names:
            meta = json.load(open(os.path.join(cases, f'{n}.meta.json')))
            ref = load_outputs(os.path.join(cases, f'{n}_ref.json'))
            generic = 4 * U * math.sqrt(meta['K'])
            for wino in ['off', 'all'] if meta['winograd'] else ['off']:
                for isa in ['AVX2', None]:
                    runner = ('direct' if wino == 'off' else 'winograd') + \
                        ('_avx2' if isa else '_host')
                    env = dict(os.environ, OMP_NUM_THREADS='1')
                    env.pop('ONEDNN_MAX_CPU_ISA', None)
                    if isa:
                        env['ONEDNN_MAX_CPU_ISA'] = isa
                    p = subprocess.run([run, os.path.join(cases, f'{n}.onnx'), '--input',
                                        os.path.join(cases, f'{n}_in.json'), '--output', out,
                                        '--threads', '1', '--winograd', wino],
                                       capture_output=True, text=True, env=env, timeout=120)
                    if p.returncode != 0:
                        print(f"FAIL {n} {runner}: shmfaas-run exit {p.returncode}: "
                              f"{p.stderr.strip()[-400:]}")
                        failures += 1
                        continue
                    err = max_rel(load_outputs(out), ref)
                    bound = min(generic, bounds.get((n, runner), generic))
                    seen.add((n, runner))
                    verdict = 'ok' if err <= bound else 'FAIL'
                    failures += verdict == 'FAIL'
                    print(f"{verdict} {n} {runner}: max_rel {err:.3e} (bound {bound:.3e}, "
                          f"u*sqrt(K)*4 {generic:.3e})", flush=True)
    for k in set(bounds) - seen:
        print(f"FAIL {bounds_file}: bound for {k[0]} {k[1]}, which did not run")
        failures += 1
    if failures:
        sys.exit(f"test_accuracy: {failures} failure(s)")
    print(f"test_accuracy: {len(seen)} runs within bounds")


if __name__ == '__main__':
    main()
