"""Bring your model (issue 25): the MLPerf Tiny architectures and the common tiny blocks.

Each model of :mod:`lanthorn.quantize.mlperf_tiny` (small inputs where the architecture
allows) goes through both ways in: ``lanthorn quantize`` (the float ONNX, with the
quantizer's own pre-processing) and ``lanthorn import`` of onnxruntime's quantize_static
S8S8 per-channel output, with 7-bit (reduce_range) and full-range weights. Every int8
element of the C kernel and of the numpy engine equals onnxruntime's int8 QDQ path
(``session.qdqisint8allowed=1``) on 200 inputs.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from lanthorn.device.engine.bundle import read_bundle
from lanthorn.device.engine.runtime import Model
from lanthorn.quantize import mlperf_tiny as mt
from lanthorn.quantize.ort_oracle import assert_exact, float_nodes
from lanthorn.quantize.qdq import quantize_qdq
from lanthorn.quantize.qdq_import import bundle_from_qdq
from lanthorn.quantize.tiny_models import random_inputs

ROOT = Path(__file__).resolve().parents[1]
N_INPUTS = 200

#: the operator each model exists to exercise, so a silent rewrite cannot pass unnoticed
MARKS = {"ic_resnet8": "add", "tcn": "add", "mbv2_blocks": "add", "inception": "concat",
         "se_net": "mul", "hardswish_net": "lut", "ad_autoencoder": "dense",
         "kws_ds_cnn": "conv", "vww_mbv1": "conv"}


def _model(name):
    return mt.build(name, size=mt.TEST_SIZES[name])


def _exact_everywhere(bundle, feeds):
    # no node of the model runs in float (onnxruntime's own split of a HardSwish inside
    # its table's DQ -> HardSwish -> Q is no node of the model)
    twin = {n.name: n.op_type for n in onnx.load_from_string(bundle.twin).graph.node}
    assert not {k: v for k, v in float_nodes(bundle.twin).items() if twin.get(k) == v}
    for backend in ("numpy", "c"):
        assert_exact(Model(bundle, backend), bundle, feeds)


@pytest.mark.parametrize("reduce_range", [True, False], ids=["7-bit", "full-range"])
@pytest.mark.parametrize("name", list(mt.MODELS))
def test_import_of_ort_quantize_static_is_exact(name, reduce_range, tmp_path):
    model = _model(name)
    feeds = random_inputs(model, N_INPUTS, seed=3)
    q = quantize_qdq(model, tmp_path / "q.onnx", feeds[:16], reduce_range=reduce_range)
    bundle = bundle_from_qdq(q)
    assert MARKS[name] in {layer.op for layer in bundle.graph.layers}
    _exact_everywhere(bundle, feeds)


@pytest.mark.parametrize("name", list(mt.MODELS))
def test_quantize_of_the_float_model_is_exact(name, tmp_path):
    from lanthorn.quantize.quantizer import quantize_model
    model = _model(name)
    feeds = random_inputs(model, N_INPUTS, seed=5)
    onnx.save(model, str(tmp_path / "m.onnx"))
    np.savez(tmp_path / "d.npz", x=np.concatenate([f["x"] for f in feeds[:32]]))
    r = quantize_model(tmp_path / "m.onnx", tmp_path / "d.npz", tmp_path / "m.lanthorn",
                       log=lambda *_: None)
    ops = {layer.op for layer in r.bundle.graph.layers}
    assert MARKS[name] in ops
    if name == "hardswish_net":     # one table per HardSwish, no HardSigmoid * x product
        assert "mul" not in ops
    _exact_everywhere(read_bundle(tmp_path / "m.lanthorn"), feeds)


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "lanthorn", *map(str, args)],
                          capture_output=True, text=True, timeout=600, cwd=ROOT)


@pytest.mark.parametrize("name", ["ic_resnet8", "se_net"])
def test_the_commands_run_with_their_release_check(name, tmp_path):
    """``lanthorn quantize`` and ``lanthorn import`` themselves, end to end."""
    model = _model(name)
    feeds = random_inputs(model, 64, seed=7)
    onnx.save(model, str(tmp_path / "m.onnx"))
    np.savez(tmp_path / "d.npz", x=np.concatenate([f["x"] for f in feeds[:32]]))
    p = _cli("quantize", tmp_path / "m.onnx", "--data", tmp_path / "d.npz",
             "--out", tmp_path / "q.lanthorn")
    assert p.returncode == 0, p.stderr
    q = quantize_qdq(model, tmp_path / "q.onnx", feeds[:16], reduce_range=False)
    p = _cli("import", q, "--out", tmp_path / "i.lanthorn")
    assert p.returncode == 0, p.stderr
    for out in ("q.lanthorn", "i.lanthorn"):
        bundle = read_bundle(tmp_path / out)
        assert bundle.card["oracle"]["options"] == {"session.qdqisint8allowed": "1"}
        _exact_everywhere(bundle, feeds)


@pytest.mark.parametrize("op", ["GRU", "LSTM"])
def test_recurrent_layers_are_refused_by_name_on_both_paths(op, tmp_path):
    """torch exports a GRU/LSTM with Shape/Gather plumbing in front: the refusal names
    the recurrent layer, not the plumbing, on the float path as on the QDQ path."""
    from onnx import TensorProto, helper
    gates = 4 if op == "LSTM" else 3
    rng = np.random.default_rng(0)
    inits = [helper.make_tensor("W", TensorProto.FLOAT, [1, gates * 8, 6],
                                rng.normal(size=gates * 8 * 6).tolist()),
             helper.make_tensor("R", TensorProto.FLOAT, [1, gates * 8, 8],
                                rng.normal(size=gates * 64).tolist()),
             helper.make_tensor("zero", TensorProto.INT64, [1], [0])]
    g = helper.make_graph(
        [helper.make_node("Shape", ["x"], ["s"], name="shape_first"),
         helper.make_node("Gather", ["s", "zero"], ["n"], name="batch"),
         helper.make_node("Transpose", ["x"], ["xt"], perm=[1, 0, 2]),
         helper.make_node(op, ["xt", "W", "R"], ["y"], hidden_size=8, name=f"my_{op.lower()}")],
        "rnn", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 20, 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None),
         helper.make_tensor_value_info("n", TensorProto.INT64, None)], inits)
    path = tmp_path / "rnn.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    np.savez(tmp_path / "d.npz", x=rng.normal(size=(8, 20, 6)).astype(np.float32))
    for p in (_cli("quantize", path, "--data", tmp_path / "d.npz", "--out", tmp_path / "o.lanthorn"),
              _cli("import", path, "--out", tmp_path / "o.lanthorn")):
        assert p.returncode != 0 and "Traceback" not in p.stderr, p.stderr
        assert len(p.stderr.strip().splitlines()) == 1, p.stderr
        assert op in p.stderr and f"my_{op.lower()}" in p.stderr and "Shape" not in p.stderr
