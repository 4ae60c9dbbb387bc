"""Benchmark the int8 engine against onnxruntime: latency, ratios, exactness, device memory.

The library behind ``lanthorn bench`` (``lanthorn.commands.bench`` parses and prints).

For each model, in ONE run and interleaved (so a busy machine slows every path alike and the
ratios stay meaningful), single-thread batch-1 latency of:

  ort_float  onnxruntime on the float32 ONNX model
  ort_int8   onnxruntime on the QDQ twin (the oracle, and the speed target)
  numpy      lanthorn's numpy path (``load(..., backend="numpy")``)
  c          lanthorn's C kernel (``backend="c"``: the variant this CPU picks), or "n/a"
             when it is not built
  c:VARIANT  the C kernel at each other instruction level this CPU runs (e.g. c:c-avx2 on
             a CPU whose pick is c-avx512-vnni; ``--variants all`` adds c-scalar), so the
             targets are judged per level

The call overhead (printed per model, judged on models <= 100k MACs): the median of
``model(x)`` and of ``run_quantized(x)`` on the C path minus the median of the bare kernel
(``lk_run`` alone on the same input, timed in C), measured interleaved in the same run.

Every path is timed on the call a user makes: float input in, float output out (for our
engine ``model(x)``, which quantizes, runs the int8 graph, dequantizes / applies the final
softmax; for onnxruntime ``session.run``, whose QDQ twin does the same). Before timing, the
int8 outputs of our paths are checked element for element against onnxruntime's on a few
random inputs; a mismatch is reported and makes the command exit 1.

Then a child process that imports only the device runtime loads the bundle and runs it,
and reports its peak RSS and import+load time; it fails if onnxruntime, onnx or torch got
imported (the device never has them). Peak RSS is the kernel's high-water mark of the
child's own address space (``VmHWM`` in /proc/self/status), because Linux carries
``getrusage(RUSAGE_SELF).ru_maxrss`` across fork+exec: spawned from this bench (which has
onnxruntime loaded, ~100 MB) it reports the parent's size, not the device's (measured:
107 MB vs 32 MB). ``ru_maxrss`` is kept in the JSON for reference; elsewhere it is used.

The bench is defined as single-thread: ``lanthorn.commands.bench`` pins the BLAS and OpenMP
thread counts to 1 before numpy is first imported (they only take effect then).
"""
from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from lanthorn.errors import UserError

PATHS = ("ort_float", "ort_int8", "numpy", "c")
PATH_LABELS = {"ort_float": "ORT float32", "ort_int8": "ORT int8 (QDQ)", "numpy": "lanthorn numpy",
               "c": "lanthorn C"}
SCHEMA = "lanthorn-bench/1"

#: name -> (seconds of interleaved timing per model, minimum reps per path, warm-up calls,
#: random inputs checked for exactness). "quick" keeps the whole suite near 15 s.
MODES = {"full": (12.0, 100, 20, 8), "quick": (1.5, 10, 3, 3)}


# ----------------------------------------------------------------------------- timing

def summarize(ns: list[int], cpu_ns: list[float] | None = None) -> dict:
    """Figures in microseconds: wall-clock latency per call (median, p99, mean, min) and,
    given the per-round CPU times, the median CPU time per call."""
    a = np.asarray(ns, dtype=np.float64) / 1e3
    out = {"median_us": float(np.median(a)), "p99_us": float(np.percentile(a, 99)),
           "mean_us": float(a.mean()), "min_us": float(a.min()), "reps": int(a.size)}
    if cpu_ns:
        out["cpu_median_us"] = float(np.median(np.asarray(cpu_ns, dtype=np.float64))) / 1e3
    return out


def measure(fns: dict, budget_s: float, min_reps: int, warmup: int, exact_reps: int | None = None):
    """Time each zero-argument callable in ``fns``, interleaved in rounds of ~1 ms per path,
    until every path has ``min_reps`` calls and ``budget_s`` has passed (or exactly
    ``exact_reps`` calls each). Returns {name: (wall ns per call, CPU ns per call of each
    round)}.

    Wall-clock time is the latency a visitor sees. The thread's CPU time is measured per
    round (reading it is a system call, ~2.6 us here, too slow to wrap every call); it
    leaves out time other processes held the CPU, but in a virtual machine it still counts
    time the hypervisor stole, so it is recorded, not used for the ratios."""
    clock, cpu_clock = time.perf_counter_ns, time.thread_time_ns
    per_call = {}
    for name, fn in fns.items():
        t0 = clock()
        for _ in range(max(1, warmup)):
            fn()
        per_call[name] = max(1, (clock() - t0) // max(1, warmup))
    samples = {name: [] for name in fns}
    cpu = {name: [] for name in fns}
    target = exact_reps if exact_reps is not None else min_reps
    deadline = time.perf_counter() + (0.0 if exact_reps is not None else budget_s)
    while True:
        for name, fn in fns.items():
            s = samples[name]
            chunk = max(1, int(1e6 // per_call[name]))   # short rounds: a burst of load
            # from another process then hits every path alike, and the ratios stay fair
            if exact_reps is not None:
                chunk = min(chunk, exact_reps - len(s))
                if chunk <= 0:
                    continue
            c0 = cpu_clock()
            for _ in range(chunk):
                t0 = clock()
                fn()
                s.append(clock() - t0)
            cpu[name].append((cpu_clock() - c0) / chunk)
        if all(len(s) >= target for s in samples.values()) and time.perf_counter() >= deadline:
            return {name: (samples[name], cpu[name]) for name in fns}


# ----------------------------------------------------------------------------- the models

class Case:
    """One model to bench: a bundle, its QDQ twin, optionally the float model, inputs."""

    def __init__(self, name, source, bundle, bundle_path, float_bytes=None, float_weight_bytes=None):
        self.name, self.source = name, source
        self.bundle, self.bundle_path = bundle, bundle_path
        self.float_bytes, self.float_weight_bytes = float_bytes, float_weight_bytes


def _zoo_cases(names, workdir: Path, seed: int):
    import onnx

    from lanthorn.device.engine.bundle import write_bundle
    from lanthorn.quantize import mlperf_tiny, tiny_models
    from lanthorn.quantize.qdq_import import bundle_from_qdq
    for name in names:
        builder = mlperf_tiny.build_files if name in mlperf_tiny.MODELS else tiny_models.build
        fpath, qpath = builder(name, workdir, seed=seed)
        bundle = bundle_from_qdq(qpath, card={"name": name})
        bpath = workdir / f"{name}.lanthorn"
        write_bundle(bundle, bpath)
        fmodel = onnx.load(str(fpath))
        fw = sum(onnx.numpy_helper.to_array(t).nbytes for t in fmodel.graph.initializer)
        yield Case(name, "zoo", bundle, bpath, fmodel.SerializeToString(), int(fw))


def _bundle_case(path: str):
    from lanthorn.device.engine.bundle import read_bundle
    p = Path(path)
    bundle = read_bundle(p)   # BundleError (a UserError) on a corrupt/truncated file: exit 2
    return Case(bundle.card.get("name", p.stem), str(p), bundle, p)


def _feeds(case: Case, n: int, seed: int) -> list[dict]:
    """Random onnxruntime feeds for the twin's inputs (token models: valid indices)."""
    import onnx

    from lanthorn.quantize import tiny_models
    twin = onnx.load_from_string(case.bundle.twin)
    vocab = next((int(layer.arrays["table"].shape[0]) for layer in case.bundle.graph.layers
                  if layer.op == "gather"), None)
    return tiny_models.random_inputs(twin, n, seed=seed, vocab=vocab)


def _our_input(model, feed, seed: int) -> np.ndarray:
    """The float (or index) input ``model(x)`` takes: the ONNX feed in our layout, or, for
    a bundle without a twin, seeded random values of the input spec."""
    from lanthorn.quantize.ort_oracle import to_ours
    g = model.graph
    t = g.tensors[g.inputs[0]]
    if feed is not None:
        x = to_ours(next(iter(feed.values())), t.shape)
    elif t.dtype == "int32":
        vocab = next(int(layer.arrays["table"].shape[0]) for layer in g.layers if layer.op == "gather")
        x = np.random.default_rng(seed).integers(0, vocab, size=t.shape)
    else:
        x = np.random.default_rng(seed).normal(size=model.input_spec.shape)
    if t.dtype == "int32":
        return np.ascontiguousarray(x, dtype=np.int32)
    return np.ascontiguousarray(x, dtype=np.float32).reshape(model.input_spec.shape)


def _session(model_bytes):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.log_severity_level = 3
    return ort.InferenceSession(model_bytes, so, providers=["CPUExecutionProvider"])


def _load_ours(bundle, backend, variant=None):
    """(model, None) or (None, reason) when the backend is unavailable. ``variant``: a C
    kernel variant name, chosen the documented way (LANTHORN_C_VARIANT) for this load."""
    from lanthorn.device.engine.runtime import KernelNotBuiltError, load
    saved = os.environ.get("LANTHORN_C_VARIANT")
    try:
        if variant:
            os.environ["LANTHORN_C_VARIANT"] = variant
        return load(bundle, backend=backend), None
    except KernelNotBuiltError:
        return None, "C kernel not built"
    except UserError as exc:
        return None, f"failed to load: {exc}"
    except Exception as exc:  # a half-built kernel must not hide the other figures
        return None, f"failed to load: {type(exc).__name__}: {exc}"
    finally:
        if variant:
            if saved is None:
                os.environ.pop("LANTHORN_C_VARIANT", None)
            else:
                os.environ["LANTHORN_C_VARIANT"] = saved


def c_variants(choice: str) -> list[str]:
    """The extra C variants to time (backend names), besides the one the "c" path runs
    (the CPU's pick, or LANTHORN_C_VARIANT's)."""
    try:
        from lanthorn.device.engine import engine_c
        from lanthorn.device.engine.kernel_ext import _lk
        have = engine_c.available_variants()
        forced = engine_c._variant_from_env(_lk)          # LANTHORN_C_VARIANT picks "c"
        best = _lk.variant_name(_lk.best_variant() if forced is None else forced)
    except ImportError:
        return []
    if choice == "best":
        return []
    if choice in ("simd", "all"):
        return [v for v in have if v != best and (choice == "all" or v != "c-scalar")]
    wanted = [f"c-{w.strip().removeprefix('c-')}" for w in choice.split(",") if w.strip()]
    bad = [w for w in wanted if w not in have]
    if bad:
        raise UserError(f"--variants: {', '.join(bad)} not available on this CPU "
                        f"(available: {', '.join(have)})")
    return [w for w in wanted if w != best]


def path_names(m: dict) -> list[str]:
    """The model's paths in table order: the fixed ones, then c:VARIANT ones."""
    return list(PATHS) + [p for p in m["paths"] if p not in PATHS]


def call_overhead(model, x, xq, settings: dict) -> dict:
    """The thin call's cost over the bare kernel, in one interleaved run: the medians of
    ``model(x)``, ``model.run_quantized(xq)`` and ``lk_run`` alone (timed in C on xq)."""
    eng = model._engine
    kernel, call, raw = [], [], []
    clock = time.perf_counter_ns
    for _ in range(max(1, settings["warmup"])):
        model(x), model.run_quantized(xq), eng.time_kernel(xq, 1)
    rounds = 25 if settings["reps"] is None else 1
    per = max(1, settings["reps"] or int(2e4 // max(1.0, 1e6 * eng.time_kernel(xq, 20))))
    per = min(per, 400)
    for _ in range(rounds):
        for _ in range(per):
            kernel.append(eng.time_kernel(xq, 1) * 1e9)
        for _ in range(per):
            t0 = clock()
            model(x)
            call.append(clock() - t0)
        for _ in range(per):
            t0 = clock()
            model.run_quantized(xq)
            raw.append(clock() - t0)
    k, c, r = (float(np.median(a)) / 1e3 for a in (kernel, call, raw))
    t = model.graph.tensors[model.graph.inputs[0]]
    return {"backend": model.backend, "input": "token ids" if t.dtype == "int32" else "float32",
            "kernel_us": k, "call_us": c, "call_overhead_us": c - k,
            "run_quantized_us": r, "run_quantized_overhead_us": r - k, "samples": len(kernel)}


def _check_exact(models: dict, case: Case, feeds) -> dict:
    """Element-for-element comparison of each of our paths with onnxruntime's int8 output."""
    from lanthorn.quantize.ort_oracle import ort_raw_int8, quantize_feed
    refs = ort_raw_int8(case.bundle, feeds)
    out = {}
    for path, model in models.items():
        mism, maxd, n = 0, 0, 0
        for feed, ref in zip(feeds, refs, strict=True):
            ours = np.asarray(model.run_quantized(*quantize_feed(model, feed)))
            d = np.abs(ours.astype(np.int32) - ref.astype(np.int32))
            mism += int(np.count_nonzero(d))
            maxd = max(maxd, int(d.max()) if d.size else 0)
            n += int(d.size)
        out[path] = {"feeds": len(feeds), "elements": n, "mismatches": mism, "max_lsb": maxd,
                     "exact": mism == 0}
    return out


_CHILD = r"""
import json, os, resource, sys, time
t0 = time.perf_counter()
import numpy as np
from lanthorn.device.engine.runtime import load
m = load(sys.argv[1], backend=sys.argv[2])
t1 = time.perf_counter()
spec = m.input_spec
x = np.zeros(spec.shape, dtype=np.int32 if spec.dtype == "int32" else np.float32)
for _ in range(int(sys.argv[3])):
    m(x)
banned = sorted(k for k in ("onnxruntime", "onnx", "torch") if k in sys.modules)
if banned:
    sys.exit("the device runtime imported " + ", ".join(banned))
ru_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
if sys.platform == "darwin":
    ru_kb //= 1024
hwm_kb = None
try:
    with open("/proc/self/status") as f:
        hwm_kb = next(int(l.split()[1]) for l in f if l.startswith("VmHWM:"))
except (OSError, StopIteration):
    pass
print(json.dumps({"backend": m.backend, "peak_rss_kb": hwm_kb or ru_kb, "ru_maxrss_kb": ru_kb,
                  "import_load_ms": (t1 - t0) * 1e3, "runs": int(sys.argv[3]),
                  "onnxruntime_imported": "onnxruntime" in sys.modules}))
"""


def device_process(bundle_path: Path, backend: str, runs: int) -> dict:
    """Peak RSS and import+load time of a fresh process that only loads and runs the bundle."""
    r = subprocess.run([sys.executable, "-c", _CHILD, str(bundle_path), backend, str(runs)],
                       capture_output=True, text=True, env=dict(os.environ), timeout=300)
    if r.returncode != 0:
        lines = (r.stderr.strip() or "no output").splitlines()
        return {"error": lines[-1]}
    d = json.loads(r.stdout.strip().splitlines()[-1])
    d["peak_rss_mb"] = d["peak_rss_kb"] / 1024
    return d


# ----------------------------------------------------------------------------- one model

def bench_case(case: Case, settings: dict, seed: int) -> dict:
    """One model's figures: each path timed on the same input in one interleaved run, its
    ratio to onnxruntime int8, our paths' exactness, and (when they apply) the numpy path's
    per-layer profile, the C call's overhead and a device process's memory."""
    res = _case_header(case)
    paths = res["paths"]
    feeds = _feeds(case, settings["check_feeds"] + 1, seed + 7) if case.bundle.twin else []
    timed_feed = feeds[0] if feeds else None
    fns = _ort_calls(case, timed_feed, paths)
    ours, xs = _load_our_paths(case, timed_feed, settings, seed, paths)
    fns.update({path: (lambda m=model, x=xs[path]: m(x)) for path, model in ours.items()})
    res["exact"] = _exactness(ours, case, feeds)
    _time_paths(fns, ours, paths, settings)
    numpy_ratio = paths.get("numpy", {}).get("ratio_vs_ort_int8")
    if "numpy" in ours and (settings.get("layers") or (numpy_ratio or 0) > 2):
        # a missed "numpy within 2x" gets its measured reason: where the time went
        res["numpy_layers"] = profile_layers(ours["numpy"], xs["numpy"], settings)
    if "c" in ours and getattr(ours["c"], "_thin", None) is not None:
        res["call_overhead"] = _c_call_overhead(ours["c"], case.bundle.graph, timed_feed, seed,
                                                settings)
    res["device_process"] = _device_processes(case, ours, settings)
    return res


def _case_header(case: Case) -> dict:
    """The model's fixed figures (MACs and weight bytes counted as the bundle's graph counts
    them), with an empty ``paths`` for the timings to fill in."""
    from lanthorn.device.engine.graph import graph_macs, layer_param_bytes
    g = case.bundle.graph
    return {"name": case.name, "source": case.source,
            "macs": graph_macs(g),
            "weight_bytes": int(sum(layer_param_bytes(layer) for layer in g.layers)),
            "float_weight_bytes": case.float_weight_bytes, "paths": {}}


def _ort_calls(case: Case, timed_feed, paths: dict) -> dict:
    """onnxruntime's calls to time (the float model, the QDQ twin); one the case cannot run
    goes into ``paths`` as unavailable, with why, so the table still has its row."""
    fns = {}
    if case.float_bytes is not None:
        s = _session(case.float_bytes)
        fns["ort_float"] = lambda s=s: s.run(None, timed_feed)
    else:
        paths["ort_float"] = {"available": False, "reason": "a bundle carries no float model"}
    if case.bundle.twin:
        s = _session(case.bundle.twin)
        fns["ort_int8"] = lambda s=s: s.run(None, timed_feed)
    else:
        paths["ort_int8"] = {"available": False, "reason": "bundle has no ONNX twin"}
    return fns


def _load_our_paths(case: Case, timed_feed, settings: dict, seed: int,
                    paths: dict) -> tuple[dict, dict]:
    """({path: loaded model}, {path: its input}) for numpy, C and each extra C variant; one
    that does not load (a kernel not built, a variant this CPU lacks) goes into ``paths`` as
    unavailable with why, and the other figures are still made."""
    ours, xs = {}, {}
    loads = [("numpy", "numpy", None), ("c", "c", None)]
    loads += [(f"c:{v}", "c", v) for v in settings.get("c_variants", [])]
    for path, backend, variant in loads:
        model, why = _load_ours(case.bundle, backend, variant)
        if model is None:
            paths[path] = {"available": False, "reason": why}
            continue
        ours[path] = model
        xs[path] = _our_input(model, timed_feed, seed)
    return ours, xs


def _exactness(ours: dict, case: Case, feeds) -> dict:
    """Each of our paths against onnxruntime's int8 outputs (on the feeds not timed), and
    whether the C paths equal the numpy one: our backends must agree bit for bit everywhere,
    also on a bundle without a twin to check against."""
    from lanthorn.quantize.ort_oracle import quantize_feed
    exact = _check_exact(ours, case, feeds[1:]) if case.bundle.twin and ours else {}
    c_paths = [p for p in ours if p == "c" or p.startswith("c:")]
    if "numpy" in ours and c_paths:
        same = all(np.array_equal(ours["numpy"].run_quantized(*quantize_feed(ours["numpy"], f)),
                                  ours[p].run_quantized(*quantize_feed(ours[p], f)))
                   for f in feeds for p in c_paths)
        exact["c_equals_numpy"] = bool(same)
    return exact


def _time_paths(fns: dict, ours: dict, paths: dict, settings: dict) -> None:
    """Time every path in one interleaved run and put each one's figures in ``paths``, with
    its ratios to onnxruntime int8; a path that neither ran nor said why is "not run"."""
    samples = measure(fns, settings["budget_s"], settings["min_reps"], settings["warmup"],
                      settings["reps"])
    for path, (ns, cpu_ns) in samples.items():
        paths[path] = {"available": True, **summarize(ns, cpu_ns)}
        if path in ours:
            paths[path]["backend"] = ours[path].backend
    base = paths.get("ort_int8", {})
    for path in PATHS + tuple(p for p in ours if p not in PATHS):
        p = paths.setdefault(path, {"available": False, "reason": "not run"})
        if p.get("available") and base.get("available"):
            # time ratios, < 1 means faster: of the medians (the figure), and of the best
            # calls (least disturbed by other processes on a shared machine)
            p["ratio_vs_ort_int8"] = p["median_us"] / base["median_us"]
            p["best_ratio_vs_ort_int8"] = p["min_us"] / base["min_us"]


def _c_call_overhead(model, g, timed_feed, seed: int, settings: dict) -> dict:
    """:func:`call_overhead` of the C path on the timed input (zeros when the bundle has no
    twin to quantize a feed with), the kernel's own input already quantized."""
    from lanthorn.quantize.ort_oracle import quantize_feed
    t = g.tensors[g.inputs[0]]
    xq = quantize_feed(model, timed_feed)[0] if timed_feed is not None else np.zeros(t.shape, t.dtype)
    return call_overhead(model, _our_input(model, timed_feed, seed),
                         np.ascontiguousarray(xq, t.dtype).reshape(t.shape), settings)


def _device_processes(case: Case, ours: dict, settings: dict) -> dict:
    """:func:`device_process` for each backend kind that loaded (numpy, C): one per kind is
    enough, the C variants are the same runtime at another instruction level."""
    out = {}
    for path in ours:
        if path.startswith("c:"):
            continue
        backend = "numpy" if path == "numpy" else "c"
        out[path] = device_process(case.bundle_path, backend, settings["child_runs"])
    return out


def profile_layers(model, x, settings: dict) -> dict:
    """Where the numpy path's time goes, in CPU time per call (see :func:`measure`): the
    whole ``model(x)`` call, the engine's ``run_quantized`` inside it (the rest is the
    runtime: input quantization, the final softmax, copies), and each planned step of the
    engine repeated on its own. A step repeated on its own runs with its data in cache,
    so the steps can add up to less than the engine call."""
    from lanthorn.device.engine.graph import layer_macs
    engine, g = model._engine, model.graph
    by_name = {layer.name: layer for layer in g.layers}
    xq = [engine.buf[name] for name in g.inputs]          # the input the last call quantized
    xq = [a.copy() for a in xq]
    whole = measure({"call": lambda: model(x), "engine": lambda: engine.run_quantized(xq)},
                    settings["budget_s"] / 3, settings["min_reps"], settings["warmup"],
                    settings["reps"])
    fns = {f"{i}:{name}": step for i, (name, step) in
           enumerate(zip(engine.step_layers, engine.steps, strict=True))}
    samples = measure(fns, settings["budget_s"] / 3, settings["min_reps"], settings["warmup"],
                      settings["reps"])
    steps = []
    for key, (ns, cpu_ns) in samples.items():
        layer = by_name[key.split(":", 1)[1]]
        steps.append({"layer": layer.name, "op": layer.op,
                      "output": list(g.tensors[layer.outputs[0]].shape),
                      "macs": int(layer_macs(layer, g)),
                      "median_us": summarize(ns, cpu_ns)["cpu_median_us"]})
    total = sum(r["median_us"] for r in steps) or 1.0
    for r in steps:
        r["share_of_steps"] = r["median_us"] / total
    call = summarize(*whole["call"])["cpu_median_us"]
    eng = summarize(*whole["engine"])["cpu_median_us"]
    return {"call_median_us": call, "engine_median_us": eng, "runtime_median_us": call - eng,
            "steps": steps}


def _l2_bytes() -> int | None:
    """This core's L2 cache size (Linux sysfs), for the numpy notes."""
    try:
        for idx in sorted(Path("/sys/devices/system/cpu/cpu0/cache").glob("index*")):
            if (idx / "level").read_text().strip() == "2":
                size = (idx / "size").read_text().strip().upper()
                mult = {"K": 1024, "M": 1024 ** 2}.get(size[-1], 1)
                return int(size.rstrip("KM")) * mult
    except (OSError, ValueError):
        pass
    return None


def numpy_note(m: dict) -> str | None:
    """Why the numpy path missed "within 2x of onnxruntime", from this run's own profile:
    the engine/runtime split, the costliest steps, and the float weights BLAS streams
    against this core's L2 (numpy has no int8 matrix product: weights are float32)."""
    prof, ratio = m.get("numpy_layers"), m["paths"].get("numpy", {}).get("ratio_vs_ort_int8")
    if not prof or not ratio or ratio <= 2:
        return None
    top = sorted(prof["steps"], key=lambda r: -r["median_us"])[:2]
    steps = ", ".join(f"{r['layer'][:20]} ({r['op']}, {_fmt_n(r['macs'])} MACs) {r['median_us']:.1f} µs"
                      for r in top)
    l2 = _l2_bytes()
    fw = 4 * m["weight_bytes"] / 2 ** 20
    cache = f" vs {l2 / 2 ** 20:.1f} MiB L2" if l2 else ""
    return (f"  {m['name']} numpy path {ratio:.1f}x onnxruntime: engine {prof['engine_median_us']:.1f} µs "
            f"+ runtime {prof['runtime_median_us']:.1f} µs (CPU time); costliest steps alone: {steps}; "
            f"float32 weights BLAS reads ~{fw:.2f} MiB{cache} (onnxruntime's int8: "
            f"{m['weight_bytes'] / 2 ** 20:.2f} MiB)")


def format_layers(report: dict) -> str:
    lines = []
    for m in report["models"]:
        prof = m.get("numpy_layers")
        if not prof:
            continue
        lines.append(f"{m['name']}: numpy path {_fmt_us(prof['call_median_us'])} per call = "
                     f"engine {_fmt_us(prof['engine_median_us'])} + runtime (input "
                     f"quantization, softmax, copies) {_fmt_us(prof['runtime_median_us'])}; "
                     f"engine steps, each timed on its own:")
        for r in prof["steps"]:
            shape = "x".join(str(d) for d in r["output"])
            lines.append(f"  {r['layer'][:28]:28s} {r['op']:15s} {shape:>10s} "
                         f"{_fmt_n(r['macs']):>8s} MACs {_fmt_us(r['median_us']):>10s} "
                         f"{100 * r['share_of_steps']:5.1f}%")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- report

def machine_info() -> dict:
    import onnxruntime as ort
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "hardware", "cpu model")):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    from lanthorn import __version__
    from lanthorn.device.engine.runtime import load  # noqa: F401  (the runtime must import)
    c_reason = None   # the C backend's name is filled in from the first model it runs
    try:
        from lanthorn.device.engine import engine_c  # noqa: F401
    except ImportError as exc:
        c_reason = f"C kernel not built ({exc})"
    except Exception as exc:
        c_reason = f"C kernel failed to import: {type(exc).__name__}: {exc}"
    return {"cpu_model": cpu, "cpu_count": os.cpu_count(), "machine": platform.machine(),
            "load_average": _loadavg(),
            "system": platform.platform(), "python": platform.python_version(),
            "numpy": np.__version__, "onnxruntime": ort.__version__,
            "onnx": __import__("onnx").__version__, "lanthorn": __version__,
            "blas_threads": {v: os.environ.get(v) for v in
                             ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")},
            "backends": {"numpy": "numpy", "c": None}, "c_unavailable_reason": c_reason}


def _loadavg():
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (OSError, AttributeError):
        return None


def _busy_note(report) -> str | None:
    """A warning when other processes competed for the CPU during the run."""
    n = report["machine"]["cpu_count"] or 1
    loads = [la[0] for la in (report["machine"]["load_average"], report.get("load_average_end"))
             if la]
    if loads and max(loads) > 0.75 * n:
        return (f"note: the machine was busy (1-minute load average up to {max(loads):.1f} on "
                f"{n} CPUs): calls waited for the CPU, longer calls more often, so medians, "
                f"p99 and their ratios are inflated; 'best' (and best_ratio_vs_ort_int8 in "
                f"--json) is closer to an idle machine; re-run on an idle one for the figures")
    return None


def _fmt_us(us):
    return f"{us / 1e3:.2f} ms" if us >= 10000 else f"{us:.1f} µs"


def _fmt_n(n):
    for unit, div in (("M", 1e6), ("k", 1e3)):
        if n >= div:
            return f"{n / div:.2f}{unit}"
    return str(n)


def _fmt_ratio(r):
    return f"{1 / r:.2f}x faster" if r < 1 else f"{r:.2f}x slower"


def targets(report: dict) -> list[dict]:
    """The speed and memory targets of DESIGN.md ("Targets"), judged on this run: each
    with what was measured and whether it was met (None: nothing to judge). A benchmark
    verdict, not a test: on a busy machine the ratios are inflated (see the note)."""
    models = report["models"]

    def ratio(m, path):
        p = m["paths"].get(path, {})
        return p.get("ratio_vs_ort_int8") if p.get("available") else None

    def judge(name, rows, ok):
        """rows: (label, value or None) pairs."""
        rows = [(label, v) for label, v in rows if v is not None]
        return {"target": name, "measured": {n: round(v, 3) for n, v in rows},
                "met": (all(ok(v) for _, v in rows) if rows else None)}
    small = [m for m in models if m["macs"] <= 100_000]
    upto5m = [m for m in models if m["macs"] <= 5_000_000]
    procs = [(f"{m['name']} ({path})", d) for m in models
             for path, d in m.get("device_process", {}).items() if "error" not in d]
    exact = [(f"{m['name']} ({path})", e) for m in models
             for path, e in m.get("exact", {}).items() if isinstance(e, dict)]
    # the C targets per instruction level that ran: the CPU's pick ("c"), then c:VARIANT
    levels = []
    for m in models:
        for path in path_names(m):
            p = m["paths"].get(path, {})
            if (path == "c" or path.startswith("c:")) and p.get("available") and \
                    (path, p.get("backend")) not in levels:
                levels.append((path, p.get("backend")))
    levels = levels or [("c", None)]
    c_targets = []
    for path, backend in levels:
        tag = f" [{backend}]" if backend else ""
        c_targets += [
            judge(f"C kernel >= 3x faster than onnxruntime int8, models <= 100k MACs (time ratio "
                  f"<= 0.333){tag}", [(m["name"], ratio(m, path)) for m in small], lambda v: v <= 1 / 3),
            judge(f"C kernel never slower than onnxruntime int8, models <= 5M MACs (time ratio "
                  f"<= 1){tag}", [(m["name"], ratio(m, path)) for m in upto5m], lambda v: v <= 1)]
    overhead = [(f"{m['name']} ({what})", m["call_overhead"][key]) for m in small
                if "call_overhead" in m
                for what, key in (("model(x)", "call_overhead_us"),
                                  ("run_quantized", "run_quantized_overhead_us"))]
    return c_targets + [
        judge("C call overhead over the bare kernel <= 1 us, models <= 100k MACs (us)",
              overhead, lambda v: v <= 1.0),
        judge("numpy path within 2x of onnxruntime int8 (time ratio <= 2)",
              [(m["name"], ratio(m, "numpy")) for m in models], lambda v: v <= 2),
        judge("identical integers to onnxruntime (elements that differ)",
              [(label, e["mismatches"]) for label, e in exact], lambda v: v == 0),
        judge("device process RSS <= 60 MB (MB)",
              [(label, d["peak_rss_mb"]) for label, d in procs], lambda v: v <= 60),
        judge("device process import + load <= 150 ms (ms)",
              [(label, d["import_load_ms"]) for label, d in procs], lambda v: v <= 150),
    ]


def format_targets(report: dict) -> str:
    lines = ["targets (DESIGN.md), this run:"]
    for t in report.get("targets", []):
        verdict = {True: "met", False: "NOT met", None: "n/a"}[t["met"]]
        worst = ""
        if t["measured"]:
            name, v = max(t["measured"].items(), key=lambda kv: kv[1])
            worst = f" (worst: {name} {v:g})"
        lines.append(f"  {verdict:8s} {t['target']}{worst}")
    return "\n".join(lines)


def format_table(report: dict) -> str:
    rows = [("model", "MACs", "int8 weights", "path", "median", "p99", "best",
             "vs ORT int8", "exact")]
    notes = []
    for m in report["models"]:
        first = True
        for path in path_names(m):
            p = m["paths"][path]
            label = PATH_LABELS.get(path, PATH_LABELS["c"])
            if p.get("backend") and p["backend"] != path:
                label += f" ({p['backend']})"
            head = (m["name"], _fmt_n(m["macs"]), f"{m['weight_bytes'] / 1024:.1f} KiB") if first \
                else ("", "", "")
            first = False
            if not p.get("available"):
                rows.append(head + (label, "", "", "", "", f"n/a ({p.get('reason', '')})"))
                continue
            ex = m.get("exact", {}).get(path)
            exact = "" if ex is None else ("yes" if ex["exact"] else
                                           f"NO: {ex['mismatches']} differ, max {ex['max_lsb']} LSB")
            ratio = p.get("ratio_vs_ort_int8")
            rows.append(head + (label, _fmt_us(p["median_us"]), _fmt_us(p["p99_us"]),
                                _fmt_us(p["min_us"]),
                                "" if ratio is None or path == "ort_int8" else _fmt_ratio(ratio),
                                exact))
        for path, d in m.get("device_process", {}).items():
            if "error" in d:
                notes.append(f"  {m['name']} device process ({path}): FAILED: {d['error']}")
            else:
                notes.append(f"  {m['name']} device process ({d['backend']}): peak RSS "
                             f"{d['peak_rss_mb']:.1f} MB, import+load {d['import_load_ms']:.0f} ms, "
                             f"onnxruntime not imported")
        nn = numpy_note(m)
        if nn:
            notes.append(nn)
        co = m.get("call_overhead")
        if co:
            notes.append(f"  {m['name']} call overhead ({co['backend']}, {co['input']} input, "
                         f"medians): bare kernel {co['kernel_us']:.2f} µs; model(x) "
                         f"{co['call_us']:.2f} µs (+{co['call_overhead_us']:.2f} µs); "
                         f"run_quantized {co['run_quantized_us']:.2f} µs "
                         f"(+{co['run_quantized_overhead_us']:.2f} µs)")
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for i, r in enumerate(rows):
        if i > 0 and r[0]:
            lines.append("-" * (sum(widths) + 2 * len(widths)))
        lines.append("  ".join(c.ljust(w) if j < 4 else c.rjust(w) if j < 8 else c
                               for j, (c, w) in enumerate(zip(r, widths, strict=True))).rstrip())
    mi = report["machine"]
    head = (f"lanthorn bench ({report['mode']}): batch 1, one thread; {mi['cpu_model']}; "
            f"numpy {mi['numpy']}, onnxruntime {mi['onnxruntime']}")
    legend = ("latency per call, wall clock: median, p99 and best (fastest call); "
              "vs ORT int8: ratio of the medians")
    busy = _busy_note(report)
    return "\n".join([head, legend, ""] + lines + ([""] + notes if notes else [])
                     + (["", busy] if busy else []))


# ----------------------------------------------------------------------------- one run

def settings_for(quick: bool, reps: int | None, layers: bool, variants: str) -> dict:
    """The run's settings: the mode's time budget and repetitions, or exactly ``reps`` calls."""
    mode = "quick" if quick else "full"
    budget, min_reps, warmup, check = MODES[mode]
    if reps is not None and reps < 1:
        raise UserError("--reps must be at least 1")
    return {"mode": mode, "budget_s": budget, "min_reps": min_reps, "warmup": warmup,
            "check_feeds": check, "reps": reps, "child_runs": 20 if quick else 100,
            "layers": bool(layers), "c_variants": c_variants(variants)}


#: ``--models mlperf-tiny``: the four MLPerf Tiny architectures and the TCN
MODEL_GROUPS = {"mlperf-tiny": ("kws_ds_cnn", "vww_mbv1", "ic_resnet8", "ad_autoencoder", "tcn")}


def zoo_names(models: str | None, with_bundles: bool) -> tuple[list[str], bool]:
    """(zoo model names, whether the shipped voice is benched) from ``--models``: the
    tiny zoo, :mod:`~lanthorn.quantize.mlperf_tiny`'s models, or a group of them."""
    from lanthorn.quantize import mlperf_tiny, tiny_models
    if models:
        names = [n.strip() for n in models.split(",") if n.strip()]
        names = [m for n in names for m in MODEL_GROUPS.get(n, (n,))]
    else:
        names = [] if with_bundles else list(tiny_models.ZOO) + ["voice"]
    with_voice = "voice" in names
    names = [n for n in names if n != "voice"]
    known = list(tiny_models.ZOO) + list(mlperf_tiny.MODELS)
    unknown = [n for n in names if n not in known]
    if unknown:
        raise UserError(f"unknown model(s) {', '.join(unknown)}; choose from "
                        f"{', '.join(known + list(MODEL_GROUPS))}")
    return names, with_voice


def bundle_cases(paths: list[str], with_voice: bool) -> list[Case]:
    """The ``--bundle`` cases (a corrupt bundle fails here, early) and the shipped voice,
    with its float twin beside it so onnxruntime float is timed too."""
    cases = [_bundle_case(p) for p in paths]
    if with_voice:
        from lanthorn.device.storage.storage import SHIPPED_VOICE
        if not SHIPPED_VOICE.is_file():
            raise UserError(f"the shipped voice {SHIPPED_VOICE.name} is missing (make voice)")
        voice_case = _bundle_case(str(SHIPPED_VOICE))
        float_voice = SHIPPED_VOICE.with_suffix(".onnx")   # shipped beside it: ORT float too
        if float_voice.is_file():
            voice_case.float_bytes = float_voice.read_bytes()
        cases.append(voice_case)
    return cases


def run_bench(names: list[str], cases: list[Case], settings: dict, seed: int,
              progress=lambda name: None) -> dict:
    """Bench every zoo model and case in one run; the report with its targets judged."""
    report = {"schema": SCHEMA, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "mode": settings["mode"], "settings": settings, "machine": machine_info(),
              "models": []}
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="lanthorn-bench-") as tmp:
        for case in list(_zoo_cases(names, Path(tmp), seed)) + cases:
            progress(case.name)
            report["models"].append(bench_case(case, settings, seed))
            if case.bundle.card.get("kind") == "voice":   # and per phrase, the sampler included
                from lanthorn.host.voice_bench import bench_phrases
                report["models"][-1]["phrases"] = bench_phrases(case.bundle, settings, seed)
    report["seconds"] = time.perf_counter() - t0
    report["load_average_end"] = _loadavg()
    report["targets"] = targets(report)
    report["machine"]["backends"]["c"] = next(
        (m["paths"]["c"]["backend"] for m in report["models"] if m["paths"]["c"].get("available")),
        None)
    return report


def format_report(report: dict) -> str:
    """The table, the voice's per-phrase figures, the targets and (if timed) the layers."""
    from lanthorn.host.voice_bench import format_phrases
    parts = [format_table(report)]
    parts += [format_phrases(m["name"], m["phrases"]) for m in report["models"] if "phrases" in m]
    parts.append(format_targets(report))
    if report["settings"].get("layers"):
        parts.append(format_layers(report))
    return "\n\n".join(parts)


def failures(report: dict) -> tuple[list[str], list[str]]:
    """(outputs that differ from onnxruntime or between our paths, paths that failed)."""
    models = report["models"]
    bad = [f"{m['name']} ({path})" for m in models
           for path, e in m.get("exact", {}).items() if isinstance(e, dict) and not e["exact"]]
    bad += [f"{m['name']} (C differs from numpy)" for m in models
            if m.get("exact", {}).get("c_equals_numpy") is False]
    bad += [f"{m['name']} phrases ({path})" for m in models
            for path, v in m.get("phrases", {}).get("paths", {}).items()
            if not v["identical_phrases"]]
    failed = [f"{m['name']} ({p})" for m in models for p, v in m["paths"].items()
              if not v.get("available") and str(v.get("reason", "")).startswith("failed")]
    failed += [f"{m['name']} device process ({p})" for m in models
               for p, d in m.get("device_process", {}).items() if "error" in d]
    return bad, failed
