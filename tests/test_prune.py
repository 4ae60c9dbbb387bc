"""Pruning: channels physically removed (fewer MACs), bias compensation, magnitude sparsity
paying off after compression, sensitivity-driven allocation, fine-tuning from a checkpoint."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

onnx = pytest.importorskip("onnx")  # host extras: without them the module skips, not errors
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("torch")  # quantize_helpers trains a tiny net

from quantize_helpers import make_data, make_model, quiet

from lanthorn.cli import main
from lanthorn.device.engine.bundle import read_bundle
from lanthorn.device.engine.runtime import load
from lanthorn.quantize import prune, tiny_models
from lanthorn.quantize.calibrate import ModelData, load_model_data
from lanthorn.quantize.ort_oracle import assert_exact
from lanthorn.quantize.quantizer import preprocess, quantize_model


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    root = tmp_path_factory.mktemp("prune")
    data = make_data(root / "data")
    model = make_model(data, root / "m.onnx", widths=(8, 12, 16))
    return root, data, model


def _run(model, x, name="x"):
    s = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return np.stack([s.run(None, {name: xi[None]})[0][0] for xi in x])


def _weights(model):
    return {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}


def test_prunable_layers_follow_the_graph():
    m = tiny_models.cnn1d()
    ok, why = prune.prunable_layers(m)
    convs = [n.name for n in m.graph.node if n.op_type == "Conv"]
    gemms = [n.name for n in m.graph.node if n.op_type == "Gemm"]
    # conv1 (→ maxpool → conv2) and conv2 (→ depthwise → GAP → flatten → dense) and the
    # hidden dense; the depthwise conv moves with conv2; the last dense feeds the softmax
    assert ok == [convs[0], convs[1], gemms[0]]
    assert "Softmax" in why[gemms[1]]


def test_cutting_channels_shrinks_every_layer_on_the_way_and_the_engine_runs_it(tmp_path):
    m = tiny_models.cnn1d()
    plan = {n: prune.keep_channels(prune.filter_importance(m, n), 0.5)
            for n in prune.prunable_layers(m)[0]}
    cut = prune.cut_channels(m, plan)
    before, after = _weights(m), _weights(cut)
    shapes = {n.name: after[n.input[1]].shape for n in cut.graph.node if len(n.input) > 1
              and n.input[1] in after}
    conv = [n.name for n in m.graph.node if n.op_type == "Conv"]
    gemm = [n.name for n in m.graph.node if n.op_type == "Gemm"]
    assert shapes[conv[0]] == (16, 14, 5)           # 32 → 16 filters
    assert shapes[conv[1]] == (24, 16, 3)           # reads 16, 48 → 24 filters
    assert shapes[conv[2]] == (24, 1, 3)            # depthwise follows conv2
    assert shapes[gemm[0]] == (16, 24)              # dense 48→32 becomes 24→16
    assert shapes[gemm[1]] == (9, 16)               # the output layer keeps its 9 classes
    assert sum(a.size for a in after.values()) < 0.4 * sum(a.size for a in before.values())
    x = np.random.default_rng(0).normal(size=(64, 14, 50)).astype(np.float32)
    assert _run(cut, x).shape == (64, 9)
    # quantize the cut model: fewer MACs, exact against onnxruntime on its twin
    onnx.save(m, str(tmp_path / "full.onnx"))
    onnx.save(cut, str(tmp_path / "cut.onnx"))
    np.savez(tmp_path / "x.npz", x=x)
    full = quantize_model(tmp_path / "full.onnx", tmp_path / "x.npz", tmp_path / "f.lanthorn",
                          log=quiet)
    small = quantize_model(tmp_path / "cut.onnx", tmp_path / "x.npz", tmp_path / "c.lanthorn",
                           log=quiet)
    assert full.final.macs / small.final.macs >= 2.5
    b = read_bundle(tmp_path / "c.lanthorn")
    assert_exact(load(b, backend="numpy"), b, [{"x": xi[None]} for xi in x[:8]])


def test_bias_compensation_keeps_the_mean_output_of_a_dense_layer():
    """Without fine-tuning, each removed neuron's mean activation moves into the next bias,
    so the next layer's average output is unchanged (exactly, for dense layers)."""
    m = tiny_models.mlp([20, 32, 6], "mlp")
    m.graph.node.pop()                                  # drop the softmax: compare logits
    m.graph.output[0].name = m.graph.node[-1].output[0]
    x = np.random.default_rng(1).normal(0.3, 1.0, size=(200, 20)).astype(np.float32)
    layer = m.graph.node[0].name
    keep = prune.keep_channels(prune.filter_importance(m, layer), 0.5)
    from lanthorn.quantize.quantizer import _intermediates
    data = ModelData("x", x, x, None)
    means = _intermediates(m, [m.graph.node[1].output[0]], data.feeds(x))
    plain = prune.cut_channels(m, {layer: keep})
    comp = prune.cut_channels(m, {layer: keep}, means)
    ref = _run(m, x).mean(axis=0)
    assert np.abs(_run(plain, x).mean(axis=0) - ref).max() > 0.05
    np.testing.assert_allclose(_run(comp, x).mean(axis=0), ref, atol=1e-4)


def test_magnitude_sparsity_zeroes_the_smallest_weights():
    m = tiny_models.cnn1d()
    names = prune.weight_layers(m)
    z = prune.zero_smallest(m, {names[0]: 0.5})
    w0 = _weights(m)[m.graph.node[0].input[1]]
    w1 = _weights(z)[m.graph.node[0].input[1]]
    assert (w1 == 0).mean() == pytest.approx(0.5, abs=1 / w0.size)
    assert np.abs(w0[w1 == 0]).max() <= np.abs(w0[w1 != 0]).min()
    assert 0 < prune.sparsity_of(z) < 0.5


@pytest.mark.parametrize("target", [0.25, 0.5, 0.7])
def test_allocation_hits_the_target_and_spares_sensitive_layers(target):
    sens = {"a": {0.5: 0.40}, "b": {0.5: 0.05}, "c": {0.5: 0.0}}
    sizes = {"a": 10, "b": 40, "c": 30}
    f = prune.allocate(sens, sizes, target)
    got = sum(f[n] * sizes[n] for n in f) / sum(sizes.values())
    assert got == pytest.approx(target)
    assert f["a"] <= f["b"] <= f["c"] <= prune.MAX_LAYER_FRACTION + 1e-9
    with pytest.raises(prune.PruneError, match="at most"):
        prune.allocate(sens, sizes, 0.9)


def test_sparsity_pays_off_in_compressed_bundle_size(work, tmp_path):
    root, data, model = work
    r = quantize_model(model, data, tmp_path / "s.lanthorn", prune_sparsity=0.6, log=quiet)
    base, sparse = r.evaluations
    assert sparse.extra["written"] and sparse.macs == base.macs       # zeros still multiplied
    assert sparse.extra["int8_weight_zeros"] >= 0.55
    assert r.pruning["achieved_sparsity"] == pytest.approx(0.6, abs=0.02)
    assert sparse.extra["bundle_lzma_bytes"] < 0.9 * base.extra["bundle_lzma_bytes"]
    assert sparse.extra["bundle_zlib_bytes"] < 0.9 * base.extra["bundle_zlib_bytes"]


def test_channel_pruning_with_checkpoint_fine_tunes_a_narrower_net(work, tmp_path):
    root, data, model = work
    r = quantize_model(model, data, tmp_path / "p.lanthorn", prune_channels=0.5,
                       checkpoint=model.with_suffix(".pt"), finetune_epochs=1, log=quiet)
    base, pruned = r.evaluations
    assert base.macs / pruned.macs >= 1.8
    assert "fine-tuned" in r.pruning["method"] and r.pruning["finetune"]["epochs_run"] == 1
    b = read_bundle(tmp_path / "p.lanthorn")
    assert b.card["pruning"]["channels"] == 0.5 and b.card["macs"] == pruned.macs
    widths = [r_["channels_after"] for r_ in r.pruning["layers"]]
    assert sum(widths) == pytest.approx(0.5 * (8 + 12 + 16), abs=1.5)
    md = load_model_data(data, onnx.load(str(model)))
    assert_exact(load(b, backend="numpy"), b, list(md.feeds(md.test_x[:6])))


def test_channel_pruning_without_checkpoint_prunes_the_onnx(work, tmp_path):
    root, data, model = work
    r = quantize_model(model, data, tmp_path / "p.lanthorn", prune_channels=0.5, log=quiet)
    assert "no fine-tuning" in r.pruning["method"]
    assert r.evaluations[0].macs / r.final.macs >= 1.8


def test_pruning_errors_exit_2(work, tmp_path, capsys):
    root, data, model = work
    out = str(tmp_path / "x.lanthorn")
    assert main(["quantize", str(model), "--data", str(data), "--out", out,
                 "--prune-channels", "0.9", "--checkpoint", str(model.with_suffix(".pt"))]) == 2
    assert "at most 0.75" in capsys.readouterr().err
    assert main(["quantize", str(model), "--data", str(data), "--out", out, "--prune-channels",
                 "0.5", "--no-finetune", "--checkpoint", str(model.with_suffix(".pt"))]) == 2
    assert "contradict" in capsys.readouterr().err
    other = make_model(data, tmp_path / "other.onnx", widths=(4, 4, 4), epochs=1)
    assert main(["quantize", str(model), "--data", str(data), "--out", out,
                 "--prune-channels", "0.5", "--checkpoint", str(other.with_suffix(".pt"))]) == 2
    assert "do not match" in capsys.readouterr().err
    onnx.save(tiny_models.mlp([16, 4], "one"), str(tmp_path / "one.onnx"))
    np.savez(tmp_path / "x.npz", x=np.ones((4, 16), np.float32))
    assert main(["quantize", str(tmp_path / "one.onnx"), "--data", str(tmp_path / "x.npz"),
                 "--out", out, "--prune-channels", "0.5"]) == 2
    assert "no layer of this model can lose channels" in capsys.readouterr().err
    assert not (tmp_path / "x.lanthorn").exists()


def test_preprocessed_model_keeps_names_for_pruning(work):
    _, _, model = work
    m = preprocess(onnx.load(str(model)))
    assert prune.prunable_layers(m)[0] == [n.name for n in m.graph.node if n.op_type == "Conv"]


def _zeroed(model, plan):
    """The same model with the dropped channels silenced instead of removed: their filters,
    biases and any depthwise filters they pass through set to zero."""
    g = prune._G(model)
    by_key = {g.key(n): n for n in g.nodes}
    for name, keep in plan.items():
        node = by_key[name]
        consumer, dws, _ = prune._chain(g, node)
        C = prune._out_channels(g, node)
        drop = np.setdiff1d(np.arange(C), keep)
        transposed = node.op_type == "Gemm" and not prune._attrs(node).get("transB", 0)
        w = g.w[node.input[1]]
        if transposed:
            w[:, drop] = 0
        else:
            w[drop] = 0
        for t in [node] + dws:
            if len(t.input) > 2 and t.input[2] in g.w:
                g.w[t.input[2]][drop] = 0
        for d in dws:
            g.w[d.input[1]][drop] = 0
    return g.save()


@settings(max_examples=12, deadline=None)
@given(st.data())
def test_removing_channels_equals_silencing_them(draw):
    """For any choice of kept channels, the cut model computes exactly what the full model
    computes with those channels silenced (no compensation): nothing else is disturbed."""
    model = draw.draw(st.sampled_from(["cnn1d", "mlp"]))
    m = tiny_models.cnn1d(seed=2) if model == "cnn1d" else tiny_models.mlp([24, 20, 16, 5], "m")
    plan = {}
    for name in prune.prunable_layers(m)[0]:
        n_out = len(prune.filter_importance(m, name))
        mask = draw.draw(st.lists(st.booleans(), min_size=n_out, max_size=n_out))
        keep = np.flatnonzero(mask)
        plan[name] = keep if len(keep) else np.array([0])
    shape = [d.dim_value for d in m.graph.input[0].type.tensor_type.shape.dim][1:]
    x = np.random.default_rng(0).normal(size=[6] + shape).astype(np.float32)
    np.testing.assert_allclose(_run(prune.cut_channels(m, plan), x), _run(_zeroed(m, plan), x),
                               rtol=1e-5, atol=1e-6)
