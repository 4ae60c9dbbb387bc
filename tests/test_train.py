"""`lanthorn train`: split by session, deterministic training, float ONNX matching torch."""
import json

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")  # host extras: without them the module skips, not errors
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("torch")

from lanthorn.cli import main
from lanthorn.device.storage import dataset as ds
from lanthorn.host.curate import synthesize
from lanthorn.quantize import net as nets
from lanthorn.quantize.dataspec import DataSpec, prepare, spec_from_onnx


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("train") / "data"
    synthesize(root, minutes=2.0, session_seconds=20, seed=1, log=lambda *_: None)
    return root


def tiny_train(data, out, seed=0):
    from lanthorn.host.train import train
    arch = nets.ArchConfig(widths=(6, 6, 8))
    return train(data, out, spec=DataSpec(hop=10), arch=arch, seed=seed, epochs=2,
                 patience=2, progress=False, log=lambda *_: None)


def test_split_is_by_session_and_spec_travels_with_the_model(data, tmp_path):
    s = prepare(data, DataSpec(hop=10))
    train_s, val_s, test_s = (set(v) for v in (s.sessions["train"], s.sessions["val"],
                                               s.sessions["test"]))
    assert train_s and val_s and test_s
    assert not (train_s & val_s) and not (train_s & test_s) and not (val_s & test_s)
    assert s.train.X.shape[1:] == (14, 50) and s.spec.labels == ds.load_dataset(data).labels

    summary = tiny_train(data, tmp_path / "m.onnx")
    model = onnx.load(str(tmp_path / "m.onnx"))
    spec = spec_from_onnx(model)
    assert spec.labels == s.spec.labels and spec.hop == 10 and spec.rate_hz == 25.0
    assert summary["sessions"] == s.sessions
    assert 0.0 <= summary["test_accuracy"] <= 1.0
    cm = np.array(summary["confusion"])
    assert cm.shape == (9, 9) and cm.sum() == len(s.test)


def test_exported_onnx_equals_torch_and_checkpoint_round_trips(data, tmp_path):
    tiny_train(data, tmp_path / "m.onnx")
    model = onnx.load(str(tmp_path / "m.onnx"))
    onnx.checker.check_model(model)
    ops = [n.op_type for n in model.graph.node]
    assert "BatchNormalization" not in ops and ops[-1] == "Softmax"  # BN folded at export
    dims = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims == [1, 14, 50]  # static shape
    net, ckpt = nets.load_checkpoint(tmp_path / "m.pt")
    assert ckpt["data"]["hop"] == 10 and tuple(ckpt["arch"]["widths"]) == (6, 6, 8)
    X = prepare(data, DataSpec(hop=10)).test.X[:20]
    want = nets.predict(net, X)
    sess = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    got = np.concatenate([sess.run(None, {"window": x[None]})[0] for x in X])
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_training_is_deterministic(data, tmp_path):
    a, b, c = (tmp_path / d / "m.onnx" for d in "abc")  # same names: torch.save records them
    tiny_train(data, a, seed=5)
    tiny_train(data, b, seed=5)
    assert a.read_bytes() == b.read_bytes()
    assert a.with_suffix(".pt").read_bytes() == b.with_suffix(".pt").read_bytes()
    tiny_train(data, c, seed=6)
    assert a.read_bytes() != c.read_bytes()


def test_macs_count_every_conv_and_dense():
    cfg = nets.ArchConfig(widths=(8, 16, 4), kernels=(5, 3, 3), strides=(2, 2, 1))
    assert cfg.time_steps() == [25, 13, 13]
    assert cfg.macs() == 8 * 14 * 5 * 25 + 16 * 8 * 3 * 13 + 4 * 16 * 3 * 13 + 4 * 13 + 4 * 9


def test_train_cli_writes_model_summary_and_rejects_bad_input(data, tmp_path, capsys):
    out = tmp_path / "cli.onnx"
    code = main(["train", str(data), "--out", str(out), "--epochs", "1", "--widths", "4,4,4",
                 "--hop", "25", "--quiet", "--summary", str(tmp_path / "s.json"), "--force"])
    captured = capsys.readouterr()
    assert code == 0 and out.exists() and out.with_suffix(".pt").exists()
    assert "held-out test accuracy" in captured.out and "recall" in captured.out
    assert json.loads((tmp_path / "s.json").read_text())["arch"]["widths"] == [4, 4, 4]

    short = tmp_path / "short.onnx"
    assert main(["train", str(data), "--out", str(short), "--epochs", "1", "--widths", "4,4,4",
                 "--window", "30", "--hop", "25", "--quiet", "--force"]) == 0
    capsys.readouterr()
    dims = onnx.load(str(short)).graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_value for d in dims] == [1, 14, 30]
    assert spec_from_onnx(onnx.load(str(short))).window == 30
    assert main(["train", str(data), "--out", str(short), "--window", "4"]) == 2
    assert "--window must be at least 8" in capsys.readouterr().err

    assert main(["train", str(tmp_path / "none"), "--out", str(out)]) == 2
    assert "no such dataset folder" in capsys.readouterr().err
    assert main(["train", str(data), "--out", str(out), "--widths", "4,4"]) == 2
    assert "--widths needs 3 values" in capsys.readouterr().err
    small = tmp_path / "small"
    synthesize(small, minutes=0.5, session_seconds=15, seed=0, log=lambda *_: None)
    assert main(["train", str(small), "--out", str(out), "--quiet"]) == 2
    assert "too few sessions" in capsys.readouterr().err


def test_export_names_layers_readably_and_unshares_equal_constants():
    """An untrained net's folded biases are all equal, which the exporter shares through
    Identity nodes; the export gives every layer its own, readable, named tensors."""
    import torch
    net = nets.TemperamentNet(nets.ArchConfig(widths=(8, 8, 8))).eval()
    model = onnx.load_from_string(nets.export_onnx(net))
    onnx.checker.check_model(model)
    assert [n.name for n in model.graph.node] == ["conv1", "relu1", "conv2", "relu2", "conv3",
                                                  "relu3", "pool", "flatten", "head", "softmax"]
    assert sorted(t.name for t in model.graph.initializer) == sorted(
        f"{layer}.{p}" for layer in ("conv1", "conv2", "conv3", "head") for p in ("weight", "bias"))
    x = np.random.default_rng(0).random((1, 14, 50)).astype(np.float32)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    want = torch.softmax(net(torch.from_numpy(x)), -1).detach().numpy()
    np.testing.assert_allclose(sess.run(None, {"window": x})[0], want, atol=1e-6)
