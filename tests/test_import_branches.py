"""Branching models and refusals that name the real cause (issues 10 and 25).

Where one activation feeds two nodes (a residual Add, a Concat of branches) stock
onnxruntime on x86 keeps the node groups around it in float (its S8->U8 rewrite skips a Q
with two readers). On its int8 QDQ path (``session.qdqisint8allowed=1``, the path it takes
on ARM, and the oracle) every node group fuses, and lanthorn gives its integers. So every
such model quantized by onnxruntime's own quantize_static S8S8 per channel (7-bit and
full-range weights, shared or dedicated Q/DQ pairs) imports and is exact on every element;
U8S8 is refused in one line.
"""
from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")  # a host extra: without it the module skips, not errors
pytest.importorskip("onnxruntime")

from onnx import TensorProto, helper

from lanthorn.device.engine.runtime import Model
from lanthorn.quantize.ort_oracle import assert_exact, float_nodes
from lanthorn.quantize.qdq import quantize_qdq
from lanthorn.quantize.qdq_import import ImportError_, bundle_from_qdq
from lanthorn.quantize.tiny_models import Net, random_inputs

ROOT = Path(__file__).resolve().parents[1]


def residual(seed=0):
    n = Net("residual", [1, 8, 10, 10], seed)
    n.conv(8, 8, 3, pad=1)
    n.relu()
    r = n.cur
    n.conv(8, 8, 3, pad=1, x=r)
    n.relu()
    b = n.cur
    n.op("Add", [r, b])
    n.relu()
    n.op("GlobalAveragePool", [n.cur])
    n.op("Flatten", [n.cur])
    n.dense(8, 5)
    return n.model([1, 5])


def branches(seed=0):
    n = Net("branches", [1, 8, 10, 10], seed)
    n.conv(8, 8, 3, pad=1)
    n.relu()
    r = n.cur
    n.conv(8, 6, 3, pad=1, x=r)
    n.relu()
    b1 = n.cur
    n.conv(8, 4, 1, x=r)
    n.relu()
    b2 = n.cur
    n.op("Concat", [b1, b2], axis=1)
    n.op("GlobalAveragePool", [n.cur])
    n.op("Flatten", [n.cur])
    n.dense(10, 5)
    return n.model([1, 5])


def quantize_u8s8_per_tensor(model, out, feeds):
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter(feeds)

        def get_next(self):
            return next(self.it, None)
    src = out.with_suffix(".float.onnx")
    onnx.save(model, str(src))
    logging.getLogger().setLevel(logging.ERROR)
    quantize_static(str(src), str(out), Reader(), quant_format=QuantFormat.QDQ, per_channel=False,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    return out


VARIANTS = {
    "s8s8-per-channel": lambda m, out, feeds: quantize_qdq(m, out, feeds),
    "s8s8-per-channel-full-range": lambda m, out, feeds: quantize_qdq(m, out, feeds,
                                                                      reduce_range=False),
    "s8s8-per-channel-shared-qdq": lambda m, out, feeds: quantize_qdq(m, out, feeds,
                                                                      dedicated_pairs=False),
    "u8s8-per-tensor": quantize_u8s8_per_tensor,
}


@pytest.mark.parametrize("build", [residual, branches], ids=["residual-add", "branch-concat"])
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_branching_model_imports_exactly_or_is_refused_in_one_line(build, variant, tmp_path):
    model = build()
    feeds = random_inputs(model, 200, seed=1)
    q = VARIANTS[variant](model, tmp_path / "q.onnx", feeds[:20])
    if variant.startswith("u8"):
        with pytest.raises(ImportError_) as exc:
            bundle_from_qdq(q)
        msg = str(exc.value)
        assert "\n" not in msg and "uint8" in msg and "QInt8" in msg
        return
    bundle = bundle_from_qdq(q)
    assert not float_nodes(bundle.twin)     # the oracle's graph is all integer kernels
    assert {"add", "concat"} & {layer.op for layer in bundle.graph.layers}
    for backend in ("numpy", "c"):
        assert_exact(Model(bundle, backend), bundle, feeds)


def test_stock_x86_onnxruntime_runs_the_branch_in_float(tmp_path):
    """Why the oracle needs the option: without it onnxruntime on this CPU keeps the node
    groups around a tensor with two readers in float (a different graph, not a bug of ours)."""
    import platform
    if platform.machine() not in ("x86_64", "AMD64"):
        pytest.skip("the S8->U8 rewrite is x86-only")
    import os

    import onnxruntime as ort
    model = residual()
    q = quantize_qdq(model, tmp_path / "q.onnx", random_inputs(model, 20, seed=1))
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    so.optimized_model_filepath = os.path.join(tmp_path, "opt.onnx")
    ort.InferenceSession(str(q), so, providers=["CPUExecutionProvider"])
    stock = {n.op_type for n in onnx.load(so.optimized_model_filepath).graph.node}
    assert stock & {"Add", "Conv", "FusedConv"}, stock
    assert not float_nodes(q.read_bytes())


def test_straight_models_still_import_exactly(tmp_path):
    """The refusal above is narrow: the same blocks without the second reader import."""
    n = Net("chain", [1, 8, 10, 10], 0)
    n.conv(8, 8, 3, pad=1)
    n.relu()
    n.conv(8, 8, 3, pad=1)
    n.relu()
    n.op("GlobalAveragePool", [n.cur])
    n.op("Flatten", [n.cur])
    n.dense(8, 5)
    model = n.model([1, 5])
    feeds = random_inputs(model, 20, seed=2)
    bundle = bundle_from_qdq(quantize_qdq(model, tmp_path / "q.onnx", feeds))
    assert_exact(Model(bundle, "c"), bundle, feeds)


def _lanthorn_import(path, tmp_path):
    return subprocess.run([sys.executable, "-m", "lanthorn", "import", str(path), "--out",
                           str(tmp_path / "out.lanthorn")], capture_output=True, text=True,
                          timeout=120, cwd=ROOT)


def _one_line_refusal(p, *words):
    assert p.returncode != 0 and "Traceback" not in p.stderr, p.stderr
    assert len(p.stderr.strip().splitlines()) == 1, p.stderr
    for w in words:
        assert w in p.stderr, p.stderr


def test_refusals_name_the_real_cause(tmp_path):
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    _one_line_refusal(_lanthorn_import(empty, tmp_path), "is empty")
    bundle = ROOT / "device" / "models" / "temperament.lanthorn"
    _one_line_refusal(_lanthorn_import(bundle, tmp_path), "already a lanthorn bundle",
                      "lanthorn push")

    from onnxruntime.quantization import QuantType, quantize_dynamic
    n = Net("mlp", [1, 16], 0)
    n.dense(16, 8)
    f = tmp_path / "mlp.onnx"
    onnx.save(n.model([1, 8]), str(f))
    quantize_dynamic(str(f), str(tmp_path / "dyn.onnx"), weight_type=QuantType.QInt8)
    _one_line_refusal(_lanthorn_import(tmp_path / "dyn.onnx", tmp_path),
                      "dynamic quantization is not supported",
                      "use quantize_static (QDQ) or 'lanthorn quantize'")

    for op in ("LSTM", "GRU"):
        gates = 4 if op == "LSTM" else 3
        rng = np.random.default_rng(0)
        inits = [helper.make_tensor("W", TensorProto.FLOAT, [1, gates * 8, 14],
                                    rng.normal(size=gates * 8 * 14).tolist()),
                 helper.make_tensor("R", TensorProto.FLOAT, [1, gates * 8, 8],
                                    rng.normal(size=gates * 64).tolist())]
        g = helper.make_graph(
            [helper.make_node("Transpose", ["x"], ["xt"], perm=[1, 0, 2], name="to_time_major"),
             helper.make_node(op, ["xt", "W", "R"], ["y"], hidden_size=8, name=f"my_{op.lower()}")],
            "rnn", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 50, 14])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
        path = tmp_path / f"{op}.onnx"
        onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), str(path))
        _one_line_refusal(_lanthorn_import(path, tmp_path), f"recurrent layer ({op})",
                          f"my_{op.lower()}")


@pytest.mark.parametrize("shape", [(1, 9, 48), (1, 3, 8, 8), (1, 20)], ids=["conv1d", "conv2d", "mlp"])
def test_imported_model_keeps_the_onnx_names_and_shapes(shape, tmp_path):
    """What a user fed onnxruntime works unchanged: ONNX input/output names, shapes with
    batch and layout; the integers (hence the dequantized floats) are onnxruntime's."""
    import onnxruntime as ort

    from lanthorn.device.engine.bundle import read_bundle
    n = Net("contract", list(shape), 0)
    if len(shape) == 3:
        n.conv(shape[1], 8, 3, pad=1, dims=1)
        n.relu()
        n.op("GlobalAveragePool", [n.cur])
        n.op("Flatten", [n.cur])
        n.dense(8, 4)
    elif len(shape) == 4:
        n.conv(shape[1], 6, 3, pad=1)
        n.relu()
        n.op("GlobalAveragePool", [n.cur])
        n.op("Flatten", [n.cur])
        n.dense(6, 4)
    else:
        n.dense(shape[1], 16)
        n.relu()
        n.dense(16, 4)
    model = n.model([1, 4])
    feeds = random_inputs(model, 20, seed=4)
    q = quantize_qdq(model, tmp_path / "q.onnx", feeds)
    p = _lanthorn_import(q, tmp_path)
    assert p.returncode == 0, p.stderr
    bundle = read_bundle(tmp_path / "out.lanthorn")
    sess = ort.InferenceSession(str(q), providers=["CPUExecutionProvider"])
    out_name = sess.get_outputs()[0].name
    for backend in ("numpy", "c"):
        m = Model(bundle, backend)
        assert m.input_names == ("x",) and m.output_names == (out_name,)
        for feed in feeds:
            want = sess.run(None, feed)[0]
            got = m.run_onnx(feed)
            assert list(got) == [out_name] and got[out_name].shape == want.shape == (1, 4)
            np.testing.assert_array_equal(got[out_name], want)
            np.testing.assert_array_equal(m(feed["x"]), want[0])   # model(x) takes ONNX's shape
    with pytest.raises(Exception, match="inputs are x"):
        m.run_onnx({"input": feeds[0]["x"]})


def test_an_output_declared_without_its_shape_imports_with_the_inferred_one(tmp_path):
    """An exporter that declares the graph output with an empty shape (rank 0) used to be
    refused with 'invalid onnx_io'; the importer now infers the outputs' shapes."""
    import onnxruntime as ort
    n = Net("undeclared", [1, 16], 0)
    n.dense(16, 8)
    n.relu()
    n.dense(8, 4)
    model = n.model(None)
    out = model.graph.output[0].name
    model.graph.output[0].CopyFrom(helper.make_tensor_value_info(out, TensorProto.FLOAT, []))
    feeds = random_inputs(model, 20, seed=2)
    q = quantize_qdq(model, tmp_path / "q.onnx", feeds)
    assert len(onnx.load(str(q)).graph.output[0].type.tensor_type.shape.dim) == 0
    p = _lanthorn_import(q, tmp_path)
    assert p.returncode == 0, p.stderr
    from lanthorn.device.engine.bundle import read_bundle
    bundle = read_bundle(tmp_path / "out.lanthorn")
    assert bundle.io["outputs"][0]["shape"] == [1, 4]
    want = ort.InferenceSession(str(q), providers=["CPUExecutionProvider"]).run(None, feeds[0])[0]
    assert want.shape == (1, 4)
    assert_exact(Model(bundle, "c"), bundle, feeds)


def test_quantize_refuses_a_constant_operand_before_any_work(tmp_path):
    """Named by node, before calibration (no dataset is even read)."""
    n = Net("const_add", [1, 8], 0)
    n.dense(8, 8)
    n.op("Add", [n.cur, n.const(np.ones(8, np.float32), "c")])
    onnx.save(n.model([1, 8]), str(tmp_path / "m.onnx"))
    p = subprocess.run([sys.executable, "-m", "lanthorn", "quantize", str(tmp_path / "m.onnx"),
                        "--data", str(tmp_path / "no_such_data.npz"), "--out",
                        str(tmp_path / "o.lanthorn")], capture_output=True, text=True,
                       timeout=120, cwd=ROOT)
    _one_line_refusal(p, "node 'add5' (Add) takes a constant", "fold it")
