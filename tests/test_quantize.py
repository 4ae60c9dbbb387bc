"""`lanthorn quantize`: refusal before work, calibration methods, bias correction, the bundle
it writes (exact against onnxruntime on its twin), foreign models and .npz inputs."""
import json

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")  # host extras: without them the module skips, not errors
pytest.importorskip("onnxruntime")
pytest.importorskip("torch")  # quantize_helpers trains a tiny net

from onnx import TensorProto, helper
from quantize_helpers import make_data, make_model, quiet

from lanthorn.cli import main
from lanthorn.device.engine.bundle import read_bundle
from lanthorn.device.engine.runtime import load
from lanthorn.device.piece.frames import CHANNELS, LABELS
from lanthorn.quantize import tiny_models
from lanthorn.quantize.calibrate import ModelData
from lanthorn.quantize.ort_oracle import assert_exact
from lanthorn.quantize.qdq import quantize_qdq
from lanthorn.quantize.quantizer import (
    UnsupportedModelError,
    bias_correct,
    dequantized_weights,
    quantize_model,
    refuse_unsupported_model,
)


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    root = tmp_path_factory.mktemp("quantize")
    data = make_data(root / "data")
    model = make_model(data, root / "m.onnx")
    return root, data, model


@pytest.fixture(scope="module")
def minmax(work):
    root, data, model = work
    return quantize_model(model, data, root / "m.lanthorn", log=quiet)


# --------------------------------------------------------------------------- the bundle

def test_bundle_carries_spec_labels_card_provenance_and_is_exact(work, minmax):
    root, data, _ = work
    b = read_bundle(root / "m.lanthorn")
    assert b.sha256 == minmax.sha256
    assert b.labels == LABELS
    spec = b.input_spec
    assert spec.channels == CHANNELS and spec.rate_hz == 25 and spec.window == 50
    assert tuple(spec.shape) == (50, len(CHANNELS))
    ev = minmax.final
    assert b.card["accuracy_int8"] == round(ev.int8_accuracy, 4)
    assert b.card["accuracy_float"] == round(ev.float_accuracy, 4)
    assert b.card["calibration"] == "minmax" and b.card["bias_correction"] is True
    assert b.card["macs"] == ev.macs > 0
    assert [s["synthetic"] for s in b.provenance["sources"]] == [True]
    assert b.provenance["sources"][0]["consent"]
    # the held-out windows: float and int8 mostly agree (a 2-epoch net, so no accuracy bar)
    assert ev.agreement >= 0.85
    assert ev.bundle_bytes == (root / "m.lanthorn").stat().st_size
    # the engine's integers are onnxruntime's on the twin, on real held-out windows
    from lanthorn.quantize.calibrate import load_model_data
    md = load_model_data(data, onnx.load(str(root / "m.onnx")))
    feeds = list(md.feeds(md.test_x[::max(1, len(md.test_x) // 16)]))
    assert_exact(load(b, backend="numpy"), b, feeds)


def test_quantizing_twice_gives_the_same_bytes(work, minmax, tmp_path):
    root, data, model = work
    again = quantize_model(model, data, tmp_path / "again.lanthorn", name="m", log=quiet)
    assert again.sha256 == minmax.sha256
    assert (tmp_path / "again.lanthorn").read_bytes() == (root / "m.lanthorn").read_bytes()


def test_layer_errors_name_the_layers(minmax):
    ops = [row["op"] for row in minmax.layers]
    assert "Conv" in ops and "Gemm" in ops
    for row in minmax.layers:
        assert np.isfinite(row["sqnr_db"]) and row["sqnr_db"] > 5  # int8 is ~20-40 dB here


# --------------------------------------------------------------------------- calibration

def test_calibration_methods_differ_and_only_clip(work, minmax, tmp_path):
    """percentile and entropy choose ranges inside minmax's (they clip outliers), and not
    all equal to it (onnxruntime's Entropy defaults would silently equal minmax)."""
    root, data, model = work
    base = {t.name: t.scale for t in minmax.bundle.graph.tensors.values() if t.dtype == "int8"}
    for method in ("percentile", "entropy"):
        r = quantize_model(model, data, tmp_path / f"{method}.lanthorn", calibration=method,
                           log=quiet)
        assert r.bundle.card["calibration"] == method
        scales = {t.name: t.scale for t in r.bundle.graph.tensors.values() if t.dtype == "int8"}
        inner = [n for n in base if n in scales and n != r.bundle.graph.inputs[0]]
        assert inner
        assert all(scales[n] <= base[n] * (1 + 1e-5) for n in inner), method
        if method == "entropy":  # percentile clips only the top 0.001 %: ~nothing on 2 min
            assert any(scales[n] < base[n] * 0.99 for n in inner), method


def test_unknown_calibration_method_exits_2(work, tmp_path, capsys):
    root, data, model = work
    with pytest.raises(SystemExit) as exc:
        main(["quantize", str(model), "--data", str(data), "--out",
              str(tmp_path / "x.lanthorn"), "--calibration", "best"])
    assert exc.value.code == 2 and "invalid choice: 'best'" in capsys.readouterr().err
    assert not (tmp_path / "x.lanthorn").exists()


# --------------------------------------------------------------------------- bias correction

def _one_conv(seed=0):
    n = tiny_models.Net("oneconv", [1, 14, 50], seed)
    n.conv(14, 6, 5, pad=2, dims=1)
    return n.model([1, 6, 50])


def test_bias_correction_removes_the_mean_weight_rounding_error():
    """E[(Wq x + b')] == E[W x + b] over the calibration windows; uncorrected it is not."""
    import onnxruntime as ort
    from onnx import numpy_helper
    model = _one_conv()
    rng = np.random.default_rng(0)
    x = (rng.normal(0.5, 1.0, (40, 14, 50))).astype(np.float32)  # non-zero mean input
    data = ModelData("x", x, x[:4], None)
    fixed, shifts = bias_correct(model, data)
    assert set(shifts) == {model.graph.node[0].name} and shifts[model.graph.node[0].name] > 0

    def mean_out(m, weights=None):
        m2 = onnx.ModelProto()
        m2.CopyFrom(m)
        if weights is not None:
            w = m2.graph.initializer[0]
            w.CopyFrom(numpy_helper.from_array(weights.astype(np.float32), w.name))
        s = ort.InferenceSession(m2.SerializeToString(), providers=["CPUExecutionProvider"])
        return np.mean([s.run(None, {"x": xi[None]})[0][0].mean(axis=-1) for xi in x], axis=0)

    with __import__("tempfile").TemporaryDirectory() as tmp:
        q = quantize_qdq(model, f"{tmp}/q.onnx", list(data.feeds(x[:1])))
        wq = dequantized_weights(onnx.load(str(q)))[model.graph.node[0].name]
    want = mean_out(model)
    before = np.abs(mean_out(model, wq) - want).max()
    after = np.abs(mean_out(fixed, wq) - want).max()
    assert before > 1e-4
    assert after < before / 20


# --------------------------------------------------------------------------- refusal

def _with_op(op_type, **attrs):
    """conv1d → OP → output: a float model with one unsupported node."""
    n = tiny_models.Net("bad", [1, 14, 50], 0)
    n.conv(14, 4, 3, pad=1, dims=1)
    out = n.op(op_type, [n.cur], **attrs)
    return n.model([1, 4, 50] if op_type != "ReduceMean" else None), out


def test_unsupported_operator_exits_2_naming_node_and_operator_before_any_work(tmp_path, capsys):
    m, node_name = _with_op("Sin")
    onnx.save(m, str(tmp_path / "bad.onnx"))
    # the data folder does not exist: the refusal must come before anything reads it
    rc = main(["quantize", str(tmp_path / "bad.onnx"), "--data", str(tmp_path / "nodata"),
               "--out", str(tmp_path / "x.lanthorn")])
    err = capsys.readouterr().err
    assert rc == 2
    assert node_name in err and "Sin" in err and "Supported:" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x.lanthorn").exists()


def test_recurrent_layer_is_refused_with_what_to_do_instead():
    g = helper.make_graph([helper.make_node("LSTM", ["x", "W", "R"], ["y"], name="rnn1",
                                            hidden_size=4)], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [50, 1, 14])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                          [onnx.numpy_helper.from_array(np.zeros((1, 16, 14), np.float32), "W"),
                           onnx.numpy_helper.from_array(np.zeros((1, 16, 4), np.float32), "R")])
    with pytest.raises(UnsupportedModelError, match=r"'rnn1' is a recurrent layer \(LSTM\).*1-D convolutions"):
        refuse_unsupported_model(helper.make_model(g), "m.onnx")


def test_dynamic_shape_exits_2_naming_the_input(tmp_path, capsys):
    m = _one_conv()
    m.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "batch"
    onnx.save(m, str(tmp_path / "dyn.onnx"))
    rc = main(["quantize", str(tmp_path / "dyn.onnx"), "--data", str(tmp_path),
               "--out", str(tmp_path / "x.lanthorn")])
    err = capsys.readouterr().err
    assert rc == 2 and "'x'" in err and "dynamic shape" in err and "batch" in err


def test_softmax_in_the_middle_and_quantized_models_are_refused(tmp_path):
    n = tiny_models.Net("mid", [1, 16], 0)
    n.dense(16, 8)
    n.op("Softmax", [n.cur], axis=-1)
    n.dense(8, 4)
    with pytest.raises(UnsupportedModelError, match="Softmax.*last layer"):
        refuse_unsupported_model(n.model([1, 4]))
    f, q = tiny_models.build("mlp_25k", tmp_path)
    with pytest.raises(UnsupportedModelError, match="already quantized.*lanthorn import"):
        refuse_unsupported_model(onnx.load(str(q)))


def test_bad_arguments_exit_2(work, tmp_path, capsys):
    root, data, model = work
    out = str(tmp_path / "x.lanthorn")
    assert main(["quantize", str(tmp_path / "none.onnx"), "--data", str(data), "--out", out]) == 2
    assert "no such ONNX model" in capsys.readouterr().err
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    assert main(["quantize", str(tmp_path / "junk.onnx"), "--data", str(data), "--out", out]) == 2
    assert "not a readable ONNX model" in capsys.readouterr().err
    assert main(["quantize", str(model), "--data", str(tmp_path / "nodata"), "--out", out]) == 2
    assert "no such dataset folder" in capsys.readouterr().err
    assert not (tmp_path / "x.lanthorn").exists()


# --------------------------------------------------------------------------- any model

def test_foreign_model_without_data_spec_gets_the_dataset_labels(work, tmp_path, capsys):
    root, data, _ = work
    onnx.save(tiny_models.cnn1d(seed=3), str(tmp_path / "zoo.onnx"))
    # an untrained network: the quality gates refuse it (bundle written, exit 2) ...
    rc = main(["quantize", str(tmp_path / "zoo.onnx"), "--data", str(data), "--out",
               str(tmp_path / "zoo.lanthorn")])
    err = capsys.readouterr().err
    assert rc == 2 and "near chance" in err and len(err.strip().splitlines()) == 1
    # ... and --force writes it with the failures in its card
    rc = main(["quantize", str(tmp_path / "zoo.onnx"), "--data", str(data), "--out",
               str(tmp_path / "zoo.lanthorn"), "--force"])
    out = capsys.readouterr().out
    assert rc == 0 and "wrote" in out and "int8" in out and "WARNING (--force)" in out
    b = read_bundle(tmp_path / "zoo.lanthorn")
    assert b.labels == LABELS and b.input_spec.channels == CHANNELS
    assert b.card["quality"]["forced"] and not all(g["ok"] for g in b.card["quality"]["gates"])


def test_channel_mismatch_exits_2(work, tmp_path, capsys):
    root, data, _ = work
    onnx.save(tiny_models.cnn1d(channels=10), str(tmp_path / "c10.onnx"))
    rc = main(["quantize", str(tmp_path / "c10.onnx"), "--data", str(data), "--out",
               str(tmp_path / "x.lanthorn")])
    assert rc == 2 and "reads 10 channels" in capsys.readouterr().err


def test_npz_inputs_quantize_a_non_sensor_model(tmp_path):
    m = tiny_models.mlp([32, 24, 5], "mlp_small")
    onnx.save(m, str(tmp_path / "mlp.onnx"))
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 32)).astype(np.float32)
    np.savez(tmp_path / "inputs.npz", x=x, x_test=x[:16], y_test=np.arange(16) % 5,
             labels=np.array(list("abcde")))
    r = quantize_model(tmp_path / "mlp.onnx", tmp_path / "inputs.npz", tmp_path / "mlp.lanthorn",
                       log=quiet)
    assert r.bundle.labels == tuple("abcde") and r.final.int8_accuracy is not None
    b = read_bundle(tmp_path / "mlp.lanthorn")
    assert_exact(load(b, backend="numpy"), b, [{"x": xi[None]} for xi in x[:8]])
    np.savez(tmp_path / "bad.npz", y=np.zeros(3))
    with pytest.raises(Exception, match="needs an array 'x'"):
        quantize_model(tmp_path / "mlp.onnx", tmp_path / "bad.npz", tmp_path / "b.lanthorn",
                       log=quiet)


def test_result_json_is_plain_json(minmax):
    doc = json.loads(json.dumps(minmax.to_json()))
    assert doc["models"][0]["name"] == "unpruned" and doc["calibration"] == "minmax"


def test_batchnorm_after_conv_is_folded_by_preprocessing(tmp_path):
    """A model exported without BatchNorm folding still quantizes (onnxruntime's
    pre-processing folds it), and a BatchNorm that follows no Conv becomes a layer."""
    n = tiny_models.Net("bn", [1, 14, 50], 0)
    n.conv(14, 6, 3, pad=1, dims=1)
    rng = np.random.default_rng(0)
    params = [n.const(rng.uniform(0.5, 1.5, 6).astype(np.float32), "g"),
              n.const(rng.normal(0, 0.1, 6).astype(np.float32), "b"),
              n.const(rng.normal(0, 0.1, 6).astype(np.float32), "m"),
              n.const(rng.uniform(0.5, 1.5, 6).astype(np.float32), "v")]
    n.op("BatchNormalization", [n.cur] + params)
    n.relu()
    n.op("GlobalAveragePool", [n.cur])
    n.op("Flatten", [n.cur])
    n.dense(6, 3)
    m = n.model([1, 3])
    onnx.save(m, str(tmp_path / "bn.onnx"))
    x = rng.normal(size=(32, 14, 50)).astype(np.float32)
    np.savez(tmp_path / "x.npz", x=x)
    r = quantize_model(tmp_path / "bn.onnx", tmp_path / "x.npz", tmp_path / "bn.lanthorn", log=quiet)
    assert [layer.op for layer in r.bundle.graph.layers][0] == "conv"
    assert r.final.agreement >= 0.9
    # a BatchNorm that follows no Conv is no longer refused (issue 25): on a vector it
    # becomes a diagonal Gemm, a per-channel affine the engine runs exactly
    from lanthorn.quantize import quantizer as qz
    alone = tiny_models.Net("bn2", [1, 16], 0)
    alone.op("BatchNormalization", ["x"] + [alone.const(np.full(16, 2.0, np.float32), k)
                                             for k in "gbmv"])
    refuse_unsupported_model(alone.model([1, 16]))
    folded = qz.preprocess(alone.model([1, 16]))       # folds as it pre-processes
    assert [nd.op_type for nd in folded.graph.node] == ["Gemm"]


def test_token_model_quantizes_from_integer_npz_inputs(tmp_path):
    """A character language model (Gather of an embedding) reads int64 indices: the .npz
    path keeps them integers, and the bundle's integers are onnxruntime's."""
    onnx.save(tiny_models.char_lm(), str(tmp_path / "lm.onnx"))
    rng = np.random.default_rng(0)
    x = rng.integers(0, 96, size=(48, 16)).astype(np.int64)
    np.savez(tmp_path / "tokens.npz", x=x)
    r = quantize_model(tmp_path / "lm.onnx", tmp_path / "tokens.npz", tmp_path / "sub" / "lm.lanthorn",
                       log=quiet)
    assert r.final.int8_accuracy is None and r.final.agreement > 0.5
    b = read_bundle(tmp_path / "sub" / "lm.lanthorn")
    assert_exact(load(b, backend="numpy"), b, [{"x": xi[None]} for xi in x[:6]])
    np.savez(tmp_path / "floats.npz", x=x.astype(np.float32))
    with pytest.raises(Exception, match="integer indices"):
        quantize_model(tmp_path / "lm.onnx", tmp_path / "floats.npz", tmp_path / "b.lanthorn",
                       log=quiet)


def test_out_must_be_a_file_name(work, tmp_path, capsys):
    root, data, model = work
    assert main(["quantize", str(model), "--data", str(data), "--out", str(tmp_path)]) == 2
    assert "is a folder" in capsys.readouterr().err
