"""Benchmark the int8 engine against onnxruntime: latency, ratios, exactness, device memory.

Every path (onnxruntime float and QDQ, our numpy and C paths, each C kernel level) is timed
interleaved in one run, its int8 outputs checked against onnxruntime's, and a device-only
child process reports its memory; see :mod:`lanthorn.host.bench` for how and why. Exit 1
when outputs differ or a path failed.

The thread variables are set first: numpy's BLAS would otherwise use every core, and the
bench is defined as single-thread; they only take effect before numpy is imported.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

from lanthorn.errors import UserError  # noqa: E402
from lanthorn.host import bench  # noqa: E402


def add_arguments(parser):
    parser.add_argument("--variants", default="simd", help="C kernel variants to time beside "
                        "the one this CPU picks: 'simd' (every SIMD level it runs, default), "
                        "'all' (also c-scalar), 'best' (only the pick) or a comma list such as "
                        "avx2,avx512-vnni")
    parser.add_argument("--json", metavar="FILE", help="also write every figure and the machine "
                        "info as JSON to FILE")
    parser.add_argument("--quick", action="store_true", help="shorter timing (~15 s for the suite)")
    parser.add_argument("--models", help="comma-separated zoo models (default: all of "
                        "mlp_25k,mlp_700k,cnn1d_14x50,cnn2d_32,char_lm) and 'voice' (the shipped "
                        "voice: per character and per phrase); 'mlperf-tiny' for the four MLPerf "
                        "Tiny architectures and a TCN, or any model of lanthorn.quantize.mlperf_tiny")
    parser.add_argument("--bundle", action="append", default=[], metavar="X.lanthorn",
                        help="bench this bundle (against onnxruntime on its QDQ twin); "
                        "repeatable; with --bundle the zoo runs only if --models is given")
    parser.add_argument("--reps", type=int, help="exactly this many timed calls per path "
                        "(overrides the time budget; for tests and quick looks)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the zoo models and inputs")
    parser.add_argument("--layers", action="store_true", help="also time each layer of the "
                        "numpy path (where its time goes)")
    parser.add_argument("--kernels", action="store_true", help="instead of whole models, time "
                        "single layers of cnn2d_32 (its 3-channel first conv, depthwise conv, "
                        "max-pool): the bare C kernel per variant against onnxruntime int8")
    parser.add_argument("--peer", choices=["tflite"], help="with --kernels: also LiteRT with "
                        "XNNPACK (needs `pip install ai-edge-litert`)")


def run_kernels(args) -> int:
    """``--kernels``: the single-layer table of :mod:`lanthorn.host.bench_kernels`."""
    import tempfile

    from lanthorn.device import engine_c
    from lanthorn.host import bench_kernels, tflite_peer
    if args.peer == "tflite" and tflite_peer.available():
        raise UserError(f"--peer tflite: {tflite_peer.available()}")
    best = engine_c.CEngine(bench_kernels.null_graph()).backend
    variants = [best] + [v for v in bench.c_variants(args.variants) if v != best]
    with tempfile.TemporaryDirectory() as d:
        case = next(bench._zoo_cases(["cnn2d_32"], Path(d), args.seed))
    rounds = args.reps or (60 if args.quick else 400)
    report = bench_kernels.bench_kernels(case.bundle.graph, variants, args.peer, rounds, args.seed)
    report["machine"] = bench.machine_info()
    print(bench_kernels.format_kernels(report))
    if args.json:
        import json
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
        print(f"\nwrote {args.json}")
    return 0


def run(args) -> int:
    if args.peer and not args.kernels:
        raise UserError("--peer goes with --kernels (the single-layer table)")
    if args.json and not Path(args.json).parent.is_dir():
        raise UserError(f"cannot write {args.json}: folder {Path(args.json).parent} does not exist")
    if args.kernels:
        return run_kernels(args)
    settings = bench.settings_for(args.quick, args.reps, args.layers, args.variants)
    names, with_voice = bench.zoo_names(args.models, bool(args.bundle))
    if args.json:   # fail before the long part if the report cannot be written
        jp = Path(args.json)
        if not jp.parent.is_dir():
            raise UserError(f"cannot write {jp}: folder {jp.parent} does not exist")
    cases = bench.bundle_cases(args.bundle, with_voice)
    report = bench.run_bench(names, cases, settings, args.seed,
                             progress=lambda name: print(f"  {name} ...", file=sys.stderr,
                                                         flush=True))
    print(bench.format_report(report))
    if args.json:
        import json
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
        print(f"\nwrote {args.json}")
    bad, failed = bench.failures(report)
    if bad or failed:
        print(f"lanthorn bench: outputs differ from onnxruntime: {', '.join(bad)}" if bad else
              f"lanthorn bench: failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0
