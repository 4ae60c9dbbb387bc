"""``lanthorn bench --kernels``: single layers of the zoo's cnn2d_32 timed alone.

The whole-model table cannot say how fast one operator is, and the operators the engine
was slowest at (depthwise convolution, the 3-channel first conv of an image model,
max-pooling) are a small share of any model. Here each is cut out of the quantized
cnn2d_32 (its real weights and quantization) as a one-layer graph and timed, interleaved
in one run, as:

* ``c-<variant>``: the bare kernel (``lk_run`` timed in C, input copied in each call);
* ``ort_int8``: onnxruntime on a one-node QDQ model of the same layer (int8 in and out),
  ``session.run``; ``ort_null``: the same call on a one-element model, its overhead;
* ``tflite``: LiteRT with XNNPACK (``--peer tflite``, when ``ai-edge-litert`` is installed)
  on a ``.tflite`` of the same layer, ``invoke()``; ``tflite_null``: a one-element model.

A peer's kernel time is taken as its call minus its null call (what the Python binding
costs); the ratio compares that with our bare kernel. MAC/cycle uses the clock
/proc/cpuinfo reports (nominal: turbo and a shared core make it approximate).
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

LAYERS = {"conv1_3ch": ("conv", 0), "depthwise": ("conv", 2), "maxpool": ("maxpool", 0)}


def cut_layers(graph) -> dict:
    """name -> one-layer Graph for each of LAYERS (the n-th layer of that op, with groups
    telling the depthwise conv apart)."""
    from lanthorn.device.graph import Graph
    out = {}
    for name, (op, nth) in LAYERS.items():
        layer = [ly for ly in graph.layers if ly.op == op][nth]
        ts = {n: graph.tensors[n] for n in (*layer.inputs, *layer.outputs)}
        g = Graph(ts, [layer], layer.inputs, layer.outputs)
        g.validate()
        out[name] = g
    return out


def macs(g) -> int:
    layer, y = g.layers[0], g.tensors[g.layers[0].outputs[0]]
    if layer.op == "maxpool":
        return int(y.size * np.prod(layer.params["kernel"]))
    return int(y.size * np.prod(layer.arrays["weight"].shape[1:]))


def qdq_onnx(g) -> bytes:
    """A QDQ ONNX model of ``g``'s layer with int8 input and output (NCHW), which
    onnxruntime fuses into QLinearConv / an int8 MaxPool."""
    from onnx import TensorProto, helper, numpy_helper
    layer = g.layers[0]
    X, Y = g.tensors[layer.inputs[0]], g.tensors[layer.outputs[0]]
    init = [numpy_helper.from_array(np.array(X.scale, np.float32), "sx"),
            numpy_helper.from_array(np.array(X.zero_point, np.int8), "zx"),
            numpy_helper.from_array(np.array(Y.scale, np.float32), "sy"),
            numpy_helper.from_array(np.array(Y.zero_point, np.int8), "zy")]
    nodes = [helper.make_node("DequantizeLinear", ["x", "sx", "zx"], ["xf"])]
    if layer.op == "maxpool":
        p = layer.params
        nodes.append(helper.make_node("MaxPool", ["xf"], ["yf"], kernel_shape=p["kernel"],
                                      strides=p.get("stride", [1, 1]), pads=_onnx_pads(p)))
    else:
        w = np.transpose(layer.arrays["weight"], (0, 3, 1, 2))     # [Cout, Cin/g, KH, KW]
        sw = (layer.arrays["multiplier"].astype(np.float64) * Y.scale / X.scale).astype(np.float32)
        init += [numpy_helper.from_array(w.astype(np.int8), "w"), numpy_helper.from_array(sw, "sw"),
                 numpy_helper.from_array(np.zeros(len(sw), np.int8), "zw"),
                 numpy_helper.from_array(layer.arrays["bias"].astype(np.int32), "b"),
                 numpy_helper.from_array((sw * np.float32(X.scale)).astype(np.float32), "sb"),
                 numpy_helper.from_array(np.zeros(len(sw), np.int32), "zb")]
        nodes += [helper.make_node("DequantizeLinear", ["w", "sw", "zw"], ["wf"], axis=0),
                  helper.make_node("DequantizeLinear", ["b", "sb", "zb"], ["bf"], axis=0)]
        p = layer.params
        nodes.append(helper.make_node("Conv", ["xf", "wf", "bf"], ["cf"], group=p.get("groups", 1),
                                      strides=p.get("stride", [1, 1]), pads=_onnx_pads(p),
                                      dilations=p.get("dilation", [1, 1])))
        relu = p.get("act_min", -128) > -128
        nodes.append(helper.make_node("Relu" if relu else "Identity", ["cf"], ["yf"]))
    nodes.append(helper.make_node("QuantizeLinear", ["yf", "sy", "zy"], ["y"]))
    nchw = lambda t: [1, t.shape[2], t.shape[0], t.shape[1]]   # noqa: E731
    graph = helper.make_graph(nodes, "layer", [helper.make_tensor_value_info("x", TensorProto.INT8, nchw(X))],
                              [helper.make_tensor_value_info("y", TensorProto.INT8, nchw(Y))], init)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    return m.SerializeToString()


def _onnx_pads(p) -> list:
    top, left, bottom, right = p.get("pads", [0, 0, 0, 0])
    return [top, left, bottom, right]


def null_graph():
    from lanthorn.device.graph import Graph, Layer, Tensor
    ts = {"x": Tensor("x", (1, 1, 1), "int8", 0.1, 0), "y": Tensor("y", (1, 1, 1), "int8", 0.1, 0)}
    return Graph(ts, [Layer("maxpool", "p", ["x"], ["y"], {"kernel": [1, 1]})], ["x"], ["y"])


def _paths(g, variants: list[str], peer: str | None, xq) -> tuple[dict, dict]:
    """Zero-argument calls to time, and the reasons of paths that cannot run."""
    from lanthorn.device import engine_c
    from lanthorn.host.bench import _session
    fns, skipped = {}, {}
    for v in variants:
        e = engine_c.CEngine(g, v)
        fns[v] = (lambda e=e: e.time_kernel(xq, 20) * 1e9, True)   # ns per bare lk_run
    for name, model in (("ort_int8", g), ("ort_null", null_graph())):
        s = _session(qdq_onnx(model))
        t = model.tensors[model.inputs[0]]
        feed = {"x": np.zeros((1, t.shape[2], t.shape[0], t.shape[1]), np.int8)}
        fns[name] = (lambda s=s, feed=feed: s.run(None, feed), False)
    if peer == "tflite":
        from lanthorn.host import tflite_peer
        reason = tflite_peer.available()
        if reason:
            skipped["tflite"] = reason
        else:
            for name, model in (("tflite", g), ("tflite_null", null_graph())):
                it = tflite_peer.interpreter(tflite_peer.tflite_model(model))
                t = model.tensors[model.inputs[0]]
                it.set_tensor(it.get_input_details()[0]["index"], np.zeros((1,) + t.shape, np.int8))
                fns[name] = (it.invoke, False)
    return fns, skipped


def _time(fns: dict, rounds: int) -> dict:
    """Interleaved rounds of ~1 ms per path; per path the median and minimum ns per call."""
    per = {n: [] for n in fns}
    for _ in range(rounds):
        for name, (fn, timed_in_c) in fns.items():
            if timed_in_c:
                per[name].append(fn())
                continue
            t0 = time.perf_counter_ns()
            for _ in range(20):
                fn()
            per[name].append((time.perf_counter_ns() - t0) / 20)
    return {n: {"median_us": float(np.median(v)) / 1e3, "min_us": float(np.min(v)) / 1e3}
            for n, v in per.items()}


def _ghz() -> float | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("cpu mhz"):
                return float(line.split(":")[1]) / 1e3
    except (OSError, ValueError):
        pass
    return None


def bench_kernels(graph, variants: list[str], peer: str | None, rounds: int, seed: int) -> dict:
    """Every LAYERS entry of ``graph`` timed on every path; see the module docstring."""
    rng = np.random.default_rng(seed)
    ghz, out = _ghz(), {}
    for name, g in cut_layers(graph).items():
        t = g.tensors[g.inputs[0]]
        xq = rng.integers(-128, 128, t.shape).astype(np.int8)
        fns, skipped = _paths(g, variants, peer, xq)
        res = _time(fns, rounds)
        n = macs(g)
        for v in variants:
            res[v]["mac_per_cycle"] = n / (res[v]["min_us"] * 1e3 * ghz) if ghz else None
        for p in ("ort_int8", "tflite"):
            if p in res:
                net = res[p]["min_us"] - res[f"{p.split('_')[0]}_null" if p == "tflite" else "ort_null"]["min_us"]
                res[p]["net_min_us"] = net
        out[name] = {"shape": list(t.shape), "macs": n, "paths": res, "skipped": skipped}
    return {"ghz": ghz, "layers": out}


def format_kernels(report: dict) -> str:
    """The per-layer table: min µs (median), ratios of peers' net time over our best."""
    lines = [f"single layers of cnn2d_32 (min µs over interleaved rounds, median in brackets; "
             f"MAC/cycle at the nominal {report['ghz']} GHz)"]
    for name, r in report["layers"].items():
        p = r["paths"]
        ours = [k for k in p if k.startswith("c-")]
        best = min(ours, key=lambda k: p[k]["min_us"]) if ours else None
        cells = [f"{k} {p[k]['min_us']:.2f} ({p[k]['median_us']:.2f}), "
                 f"{p[k]['mac_per_cycle']:.1f} MAC/cyc" if p[k].get("mac_per_cycle") else
                 f"{k} {p[k]['min_us']:.2f}" for k in ours]
        for peer in ("ort_int8", "tflite"):
            if peer in p:
                net = p[peer]["net_min_us"]
                ratio = f", {net / p[best]['min_us']:.2f}x ours" if best else ""
                cells.append(f"{peer} {p[peer]['min_us']:.2f} call, {net:.2f} net of its null call{ratio}")
        cells += [f"{k}: {why}" for k, why in r["skipped"].items()]
        lines.append(f"  {name} {tuple(r['shape'])}, {r['macs']:,} MACs: " + "; ".join(cells))
    return "\n".join(lines)
