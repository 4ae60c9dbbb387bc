"""`lanthorn import` of onnxruntime-quantized models, then load(...).run_quantized equals
onnxruntime's int8 output on every element (issue 3's "must show"), for the whole zoo."""
import copy
import subprocess
import sys

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")  # a host extra: without it the module skips, not errors
pytest.importorskip("onnxruntime")

from ort_oracle import assert_exact

from lanthorn.device.engine.bundle import read_bundle
from lanthorn.device.engine.runtime import load
from lanthorn.quantize import tiny_models
from lanthorn.quantize.qdq import quantize_qdq
from lanthorn.quantize.qdq_import import ImportError_, bundle_from_qdq


@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
    d = tmp_path_factory.mktemp("zoo")
    return {name: tiny_models.build(name, d) for name in tiny_models.ZOO}


@pytest.mark.parametrize("name", list(tiny_models.ZOO))
def test_zoo_model_matches_onnxruntime_exactly(zoo, name, tmp_path):
    fpath, qpath = zoo[name]
    out = tmp_path / f"{name}.lanthorn"
    r = subprocess.run([sys.executable, "-m", "lanthorn", "import", str(qpath), "--out", str(out)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    model = load(out, backend="numpy")
    vocab = tiny_models.ZOO[name]()[1]
    feeds = tiny_models.random_inputs(onnx.load(str(fpath)), 12, seed=11, vocab=vocab)
    assert_exact(model, model.bundle, feeds)


def test_float_call_gives_probabilities(zoo):
    fpath, qpath = zoo["cnn1d_14x50"]
    model = load(bundle_from_qdq(qpath, labels=[f"g{i}" for i in range(9)]), backend="numpy")
    assert model.input_spec.shape == (50, 14) and model.input_spec.window == 50
    p = model(np.random.default_rng(0).normal(size=(50, 14)).astype(np.float32))
    assert p.shape == (9,) and abs(float(p.sum()) - 1) < 1e-5 and model.labels[0] == "g0"


def test_import_refuses_unsupported_operator(tmp_path):
    net = tiny_models.Net("bad", [1, 8], 0)
    net.dense(8, 8)
    net.op("LpNormalization", [net.cur])
    q = quantize_qdq(net.model(None), tmp_path / "q.onnx",
                     tiny_models.random_inputs(net.model(None), 4))
    with pytest.raises(ImportError_, match="LpNormalization"):
        bundle_from_qdq(q)


def test_import_refuses_float_model_and_garbage(zoo, tmp_path):
    with pytest.raises(ImportError_):
        bundle_from_qdq(zoo["mlp_25k"][0])
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not an onnx model")
    r = subprocess.run([sys.executable, "-m", "lanthorn", "import", str(junk), "--out",
                        str(tmp_path / "x.lanthorn")], capture_output=True, text=True)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1


def test_import_cli_labels_and_rate(zoo, tmp_path):
    out = tmp_path / "m.lanthorn"
    labels = ",".join(f"c{i}" for i in range(9))
    r = subprocess.run([sys.executable, "-m", "lanthorn", "import", str(zoo["cnn1d_14x50"][1]),
                        "--out", str(out), "--labels", labels, "--rate", "25"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    b = read_bundle(out)
    assert b.labels == tuple(labels.split(",")) and b.input_spec.rate_hz == 25.0
    r = subprocess.run([sys.executable, "-m", "lanthorn", "import", str(zoo["cnn1d_14x50"][1]),
                        "--out", str(out), "--labels", "a,b"], capture_output=True, text=True)
    assert r.returncode == 2 and "labels" in r.stderr


@pytest.mark.parametrize("op", ["Erf", "Gelu", "Tanh", "Softsign", "HardSwish"])
def test_activation_outside_onnxruntimes_registry_is_quantized_and_exact(tmp_path, op):
    """onnxruntime's quantizer leaves Erf, Gelu, ... in float unless asked for them;
    quantize_qdq asks, so a model with them imports and its lookup table gives
    onnxruntime's integers on every element."""
    from onnx import TensorProto, helper
    rng = np.random.default_rng(3)
    w = helper.make_tensor("w", TensorProto.FLOAT, [32, 32],
                           (rng.normal(size=32 * 32) * 0.3).astype(np.float32))
    nodes = [helper.make_node("MatMul", ["x", "w"], ["h"], name="mm1"),
             helper.make_node(op, ["h"], ["a"], name="act"),
             helper.make_node("MatMul", ["a", "w"], ["y"], name="mm2")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 32])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 32])], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)])
    feeds = [{"x": (rng.normal(size=(1, 32)) * 2).astype(np.float32)} for _ in range(24)]
    qpath = quantize_qdq(model, tmp_path / "q.onnx", feeds[:12])
    bundle = bundle_from_qdq(qpath)
    assert any(layer.op == "lut" for layer in bundle.graph.layers)
    for backend in ("numpy", "auto"):
        assert_exact(load(bundle, backend=backend), bundle, feeds)


@pytest.mark.parametrize("name", ["mlp_25k", "cnn1d_14x50"])
def test_import_refuses_per_channel_activation_scales(zoo, name):
    """A hand-edited model whose activation carries a scale per channel: one line naming the
    tensor, not a TypeError from deep inside the importer, whichever Q it is (the input's,
    one after a layer, one a Flatten or pool requantizes to)."""
    from onnx import numpy_helper
    base = onnx.load(str(zoo[name][1]))
    softmax_out = {n.output[0] for n in base.graph.node if n.op_type == "Softmax"}
    read = [k for k, n in enumerate(base.graph.node)   # the final softmax's Q is skipped: float
            if n.op_type == "QuantizeLinear" and n.input[0] not in softmax_out]
    assert len(read) > 2
    for k in read:
        m = copy.deepcopy(base)
        q = m.graph.node[k]
        q.input[1] = "vector_scale"   # this Q alone (Qs may share a scale initializer)
        m.graph.initializer.append(numpy_helper.from_array(np.array([0.1, 0.2], np.float32),
                                                           "vector_scale"))
        with pytest.raises(ImportError_, match=r"activation '[^']+' has a scale or zero point "
                                               "per channel"):
            bundle_from_qdq(m)
