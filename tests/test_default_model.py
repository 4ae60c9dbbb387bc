"""The shipped default model: it loads, it is the default piece's, its integers are
onnxruntime's, its report tells the truth, and ``make model`` reproduces it."""
import copy
import hashlib
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from lanthorn.device.engine.bundle import read_bundle, reproducible_content
from lanthorn.device.engine.runtime import load
from lanthorn.device.models import DEFAULT_BUNDLE, REPORT, default_bundle
from lanthorn.device.piece.frames import CHANNELS, DEFAULT_RATE_HZ, DEFAULT_WINDOW, LABELS

ROOT = Path(__file__).resolve().parent.parent
FLOAT_ONNX = DEFAULT_BUNDLE.with_name("temperament.onnx")


def make_model():
    spec = importlib.util.spec_from_file_location("make_model", ROOT / "scripts" / "make_model.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def sim_windows():
    """Windows of a fresh simulated visit (another seed than training), device layout (T, C)."""
    from lanthorn.hardware.sim import session
    from lanthorn.host.curate import encode_trace
    frames = encode_trace(session(seed=12345, duration_s=30.0, rate_hz=DEFAULT_RATE_HZ))
    return [frames[i:i + DEFAULT_WINDOW] for i in range(0, len(frames) - DEFAULT_WINDOW, 7)]


def test_shipped_bundle_is_the_default_piece(sim_windows):
    model = load(default_bundle(), backend="auto")
    assert model.labels == LABELS
    spec = model.input_spec
    assert spec.channels == CHANNELS and spec.rate_hz == DEFAULT_RATE_HZ
    assert spec.window == DEFAULT_WINDOW and tuple(spec.shape) == (DEFAULT_WINDOW, len(CHANNELS))
    assert model.card["name"] == "temperament"
    assert all(src["synthetic"] for src in model.provenance["sources"])
    probs = np.stack([model(w) for w in sim_windows])
    assert probs.shape == (len(sim_windows), len(LABELS))
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    # not a constant answer: a visit has several gestures in it
    assert len(set(probs.argmax(axis=1).tolist())) >= 3


def test_shipped_bundle_integers_equal_onnxruntime_on_its_twin(sim_windows):
    from lanthorn.quantize.ort_oracle import assert_exact
    bundle = read_bundle(DEFAULT_BUNDLE)
    feeds = [{"window": w.T[None].astype(np.float32)} for w in sim_windows]
    for backend in ("numpy", "auto"):
        assert_exact(load(bundle, backend=backend), bundle, feeds)


def test_report_describes_the_shipped_files():
    report = json.loads(REPORT.read_text())
    fig = report["unpruned"]
    bundle = read_bundle(DEFAULT_BUNDLE)
    assert fig["internal_digest"] == bundle.sha256
    assert fig["file_sha256"] == hashlib.sha256(DEFAULT_BUNDLE.read_bytes()).hexdigest()
    assert "seconds" not in report and "seconds" not in (report["train"] or {})
    assert fig["bundle_bytes"] == DEFAULT_BUNDLE.stat().st_size
    bare = copy.copy(bundle)
    bare.twin = None
    assert fig["bundle_bytes_without_twin"] == len(bare.to_bytes()) < fig["bundle_bytes"]
    assert fig["float_onnx_bytes"] == FLOAT_ONNX.stat().st_size
    assert bundle.card["accuracy_int8"] == round(fig["int8_accuracy"], 4)
    assert bundle.card["accuracy_float"] == round(fig["float_accuracy"], 4)
    assert bundle.card["macs"] == fig["macs"]
    n = None
    for part in ("float", "int8"):
        cm = np.array(fig[f"{part}_confusion"])
        assert cm.shape == (len(LABELS), len(LABELS)) and (n is None or cm.sum() == n)
        n = cm.sum()
        assert np.trace(cm) / n == pytest.approx(fig[f"{part}_accuracy"])
    assert report["recipe"] == make_model().RECIPE
    # what the shipped model reaches (figures measured by make model, re-checked here)
    t = report["targets"]
    assert t["int8_within_0.5_points_of_float"]["met"]
    assert 100 * (fig["float_accuracy"] - fig["int8_accuracy"]) <= 0.5
    pruned = report["pruned_50pct_channels"]
    assert fig["macs"] / pruned["macs"] >= 1.8 and t["pruned_1.8x_fewer_macs"]["met"]


def assert_same_weights_and_outputs(a, b):
    """Two bundles of one model whose calibration ran on different CPUs: onnxruntime's float
    kernels (AVX2, AVX-512, NEON) sum in different orders, so observed activation ranges, and
    with them scales and the bias-corrected int32 biases, may differ in their last bits. The
    int8 weights (quantized from the float weights alone) and the graph must not."""
    assert (a.labels, a.input_spec, a.graph.inputs, a.graph.outputs) == (
        b.labels, b.input_spec, b.graph.inputs, b.graph.outputs)
    assert len(a.graph.layers) == len(b.graph.layers)
    for la, lb in zip(a.graph.layers, b.graph.layers, strict=True):
        assert (la.op, la.name, la.inputs, la.outputs, la.params.keys()) == (
            lb.op, lb.name, lb.inputs, lb.outputs, lb.params.keys())
        for k, pa in la.params.items():  # strides, pads...; clamp bounds follow zero points
            pb = lb.params[k]
            assert abs(pa - pb) <= 1 if isinstance(pa, int) else pa == pb, (la.name, k)
        for k, va in la.arrays.items():
            vb = lb.arrays[k]
            assert va.dtype == vb.dtype and va.shape == vb.shape, (la.name, k)
            if k == "weight":
                np.testing.assert_array_equal(va, vb, err_msg=la.name)
            elif va.dtype.kind == "f":
                np.testing.assert_allclose(va, vb, rtol=1e-4, err_msg=f"{la.name}.{k}")
            else:
                assert np.abs(va.astype(np.int64) - vb.astype(np.int64)).max() <= 1, (la.name, k)
    for name, ta in a.graph.tensors.items():
        tb = b.graph.tensors[name]
        assert ta.shape == tb.shape and abs(ta.zero_point - tb.zero_point) <= 1
        assert ta.scale == pytest.approx(tb.scale, rel=1e-4)


@pytest.mark.slow
def test_make_model_requantize_reproduces_the_bundle(tmp_path):
    """Cheap half of the reproducibility promise: from the committed float ONNX and the
    committed synthetic data (data/temperament), quantization gives the same bundle bytes
    on the machine that built it (measured: identical, also from a fresh clone). On a CPU
    whose onnxruntime float kernels round differently, the same weights and, up to last-bit
    calibration differences, the same quantization and held-out accuracy.
    (Training's own determinism is tested on a short budget in test_train.py.)"""
    mm = make_model()
    fig = mm.build_bundle(FLOAT_ONNX, mm.DATA, tmp_path / "t.lanthorn", mm.RECIPE,
                          log=lambda *_: None)
    shipped = json.loads(REPORT.read_text())["unpruned"]
    rebuilt = (tmp_path / "t.lanthorn").read_bytes()
    if reproducible_content(rebuilt) == reproducible_content(DEFAULT_BUNDLE.read_bytes()):
        assert fig["int8_accuracy"] == shipped["int8_accuracy"]
        return
    assert_same_weights_and_outputs(read_bundle(tmp_path / "t.lanthorn"), read_bundle(DEFAULT_BUNDLE))
    assert abs(fig["int8_accuracy"] - shipped["int8_accuracy"]) <= 0.003


def test_same_weights_check_tells_a_different_model_apart(tmp_path):
    """The fallback above is not vacuous: one changed weight fails it."""
    a, b = read_bundle(DEFAULT_BUNDLE), read_bundle(DEFAULT_BUNDLE)
    assert_same_weights_and_outputs(a, b)
    # last-bit calibration differences pass
    t = next(iter(b.graph.tensors.values()))
    t.scale = float(np.nextafter(np.float32(t.scale), np.float32(1)))
    layer = next(la for la in b.graph.layers if "bias" in la.arrays)
    layer.arrays["bias"] = layer.arrays["bias"] + 1
    assert_same_weights_and_outputs(a, b)
    layer = next(la for la in b.graph.layers if "weight" in la.arrays)
    w = layer.arrays["weight"].copy()
    w.flat[0] = w.flat[0] + 1 if w.flat[0] < 127 else 126
    layer.arrays["weight"] = w
    with pytest.raises(AssertionError):
        assert_same_weights_and_outputs(a, b)


def test_targets_are_judged_from_the_figures_not_asserted():
    mm = make_model()
    unpruned = {"int8_drop_points": 0.6, "size_ratio": 1.0, "size_ratio_without_twin": 4.0,
                "float_accuracy": 0.90, "macs": 1000}
    pruned = {"float_accuracy": 0.895, "int8_accuracy": 0.885, "macs": 600}
    t = mm.targets(unpruned, pruned)
    assert not t["int8_within_0.5_points_of_float"]["met"]
    assert not t["bundle_3.9x_smaller_than_float_onnx"]["met"]
    assert t["bundle_3.9x_smaller_than_float_onnx"]["met_without_twin"]
    assert t["pruned_50pct_within_1_point_of_float"]["reached_int8"] == pytest.approx(1.5)
    assert not t["pruned_50pct_within_1_point_of_float"]["met"]
    assert not t["pruned_1.8x_fewer_macs"]["met"]  # 1.67x
    report = {"a": [[1, 2], [3, 4]], "b": {"c": [0.5, -1e-05]}, "d": ["x", "y"]}
    text = mm.dumps(report)
    assert json.loads(text) == report and "[1, 2]" in text


#: The float ONNX that make model's training (scripts/make_model.py: train_float, the RECIPE
#: with this many epochs) gives on the shipped data; made by the same code as the shipped
#: model, on a budget that fits in the test suite. Training is CPU-independent
#: (quantize/determinism.py), so this holds on any CPU. If you change training on purpose,
#: put the sha256 the failure prints here, and rebuild the shipped model (make model).
SHORT_TRAINING = {"epochs": 2,
                  "onnx_sha256": "dd1ce00e402f1e0b05beb127a813269a598bc3a03c65d57dd80509e3cce693b3"}


def test_make_models_training_is_reproduced_on_a_short_budget(tmp_path):
    mm = make_model()
    recipe = dict(mm.RECIPE, epochs=SHORT_TRAINING["epochs"])
    mm.train_float(mm.DATA, tmp_path / "t.onnx", recipe, progress=False)
    got = hashlib.sha256((tmp_path / "t.onnx").read_bytes()).hexdigest()
    assert got == SHORT_TRAINING["onnx_sha256"], (
        f"training {SHORT_TRAINING['epochs']} epochs of make model's recipe gave float ONNX "
        f"sha256 {got}")
