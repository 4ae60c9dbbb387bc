"""``lanthorn bench --kernels``: the single layers it times are cnn2d_32's own, and the
peers it times them against compute the same layers (onnxruntime: identical integers;
LiteRT, which requantizes in fixed point: within one step), so the ratios compare like
with like. Timing figures are printed, never asserted."""
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

from lanthorn.host import bench, bench_kernels, tflite_peer

pytest.importorskip("lanthorn.device.kernel_ext._lk", reason="C kernel extension not built")


@pytest.fixture(scope="module")
def layers():
    with tempfile.TemporaryDirectory() as d:
        case = next(bench._zoo_cases(["cnn2d_32"], Path(d), 0))
    return bench_kernels.cut_layers(case.bundle.graph)


def _ours(g, x):
    from lanthorn.device import engine_c
    return engine_c.CEngine(g).run_quantized([x])[0]


def _nchw(a):
    return np.transpose(a, (2, 0, 1))[None]


def test_the_cut_layers_are_the_ones_named(layers):
    assert set(layers) == {"conv1_3ch", "depthwise", "maxpool"}
    c1, dw = layers["conv1_3ch"].layers[0], layers["depthwise"].layers[0]
    assert c1.arrays["weight"].shape[-1] == 3 and c1.params.get("groups", 1) == 1
    assert dw.params["groups"] == dw.arrays["weight"].shape[0] == 32
    assert bench_kernels.macs(layers["depthwise"]) == 16 * 16 * 32 * 9


def test_onnxruntime_twin_of_each_layer_gives_our_integers(layers):
    rng = np.random.default_rng(3)
    for name, g in layers.items():
        s = bench._session(bench_kernels.qdq_onnx(g))
        for _ in range(5):
            x = rng.integers(-128, 128, g.tensors[g.inputs[0]].shape).astype(np.int8)
            got = s.run(None, {"x": _nchw(x)})[0]
            assert np.array_equal(got, _nchw(_ours(g, x))), name


def test_tflite_twin_of_each_layer_is_the_same_layer(layers):
    reason = tflite_peer.available()
    if reason:
        pytest.skip(reason)
    rng = np.random.default_rng(4)
    for name, g in layers.items():
        it = tflite_peer.interpreter(tflite_peer.tflite_model(g))
        x = rng.integers(-128, 128, g.tensors[g.inputs[0]].shape).astype(np.int8)
        it.set_tensor(it.get_input_details()[0]["index"], x[None])
        it.invoke()
        got = it.get_tensor(it.get_output_details()[0]["index"])[0].astype(int)
        diff = np.abs(got - _ours(g, x).astype(int))
        assert diff.max() <= 1 and diff.mean() < 0.05, (name, diff.max(), diff.mean())


def test_bench_kernels_command_prints_every_layer_and_refuses_peer_alone(tmp_path):
    exe = [sys.executable, "-m", "lanthorn", "bench"]
    r = subprocess.run(exe + ["--kernels", "--reps", "3", "--variants", "best",
                              "--json", str(tmp_path / "k.json")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    for name in ("conv1_3ch", "depthwise", "maxpool", "ort_int8"):
        assert name in r.stdout
    assert (tmp_path / "k.json").exists()
    r = subprocess.run(exe + ["--peer", "tflite"], capture_output=True, text=True)
    assert r.returncode == 2 and "--peer goes with --kernels" in r.stderr
