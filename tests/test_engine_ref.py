"""Per operator, over random shapes and parameters (hypothesis): a small float model,
quantized by onnxruntime's quantize_static, imported, run by the numpy reference engine,
equals onnxruntime's int8 output on every element.

Each op is preceded by a 1x1 convolution when needed so that onnxruntime sees the same
context as in a real model (its x86 optimizer picks uint8 kernels after a QLinearConv).
"""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

onnx = pytest.importorskip("onnx")  # a host extra: without it the module skips, not errors
pytest.importorskip("onnxruntime")

from ort_oracle import assert_exact

from lanthorn.device.engine.runtime import load
from lanthorn.quantize import tiny_models as mz
from lanthorn.quantize.qdq import quantize_qdq
from lanthorn.quantize.qdq_import import bundle_from_qdq

SETTINGS = dict(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck),
                derandomize=True)


def check(net, out_shape, tmp_path, scale=1.0, n=4, vocab=None):
    m = net.model(out_shape)
    cal = [{k: (v * scale if v.dtype == np.float32 else v) for k, v in f.items()}
           for f in mz.random_inputs(m, 6, 1, vocab)]
    q = quantize_qdq(m, tmp_path / "q.onnx", cal)
    b = bundle_from_qdq(q)
    feeds = [{k: (v * scale if v.dtype == np.float32 else v) for k, v in f.items()}
             for f in mz.random_inputs(m, n, 2, vocab)]
    assert_exact(load(b, backend="reference"), b, feeds)   # the specification
    assert_exact(load(b, backend="numpy"), b, feeds)       # the fast numpy engine
    return b


conv_cases = st.fixed_dictionaries({
    "cin": st.sampled_from([1, 3, 4, 8]), "mult": st.sampled_from([1, 2]),
    "k": st.integers(1, 3), "stride": st.integers(1, 2), "pad": st.integers(0, 2),
    "dil": st.integers(1, 2), "hw": st.integers(5, 9), "depthwise": st.booleans(),
    "relu": st.booleans(), "scale": st.sampled_from([0.1, 1.0, 20.0])})


@settings(**SETTINGS)
@given(c=conv_cases)
def test_conv2d(tmp_path_factory, c):
    if c["pad"] >= c["k"] * c["dil"]:
        c["pad"] = 0
    groups = c["cin"] if c["depthwise"] else 1
    cout = c["cin"] * c["mult"] if c["depthwise"] else 6
    net = mz.Net("conv", [1, c["cin"], c["hw"], c["hw"] + 1], 0)
    net.conv(c["cin"], cout, c["k"], stride=c["stride"], pad=c["pad"], dilation=c["dil"], groups=groups)
    if c["relu"]:
        net.relu()
    check(net, None, tmp_path_factory.mktemp("c"), c["scale"])


@settings(**SETTINGS)
@given(k=st.integers(1, 5), stride=st.integers(1, 3), pad=st.integers(0, 2), t=st.integers(8, 30),
       cin=st.sampled_from([1, 5, 14]), dw=st.booleans())
def test_conv1d(tmp_path_factory, k, stride, pad, t, cin, dw):
    pad = min(pad, k - 1)
    net = mz.Net("conv1d", [1, cin, t], 0)
    net.conv(cin, cin if dw else 8, k, stride=stride, pad=pad, dims=1, groups=cin if dw else 1)
    net.relu()
    check(net, None, tmp_path_factory.mktemp("c"))


@settings(**SETTINGS)
@given(k=st.integers(1, 200), n=st.integers(1, 64), relu=st.booleans(),
       scale=st.sampled_from([0.01, 1.0, 50.0]))
def test_dense(tmp_path_factory, k, n, relu, scale):
    net = mz.Net("dense", [1, k], 0)
    net.dense(k, n)
    if relu:
        net.relu()
    check(net, None, tmp_path_factory.mktemp("d"), scale)


pool_cases = st.fixed_dictionaries({
    "op": st.sampled_from(["MaxPool", "AveragePool"]), "k": st.integers(1, 3),
    "stride": st.integers(1, 3), "pad": st.integers(0, 1), "hw": st.integers(4, 9),
    "incl": st.integers(0, 1)})


@settings(**SETTINGS)
@given(c=pool_cases)
def test_pool(tmp_path_factory, c):
    pad = min(c["pad"], c["k"] - 1)
    net = mz.Net("pool", [1, 4, c["hw"], c["hw"]], 0)
    net.conv(4, 6, 1)
    attrs = dict(kernel_shape=[c["k"], c["k"]], strides=[c["stride"]] * 2, pads=[pad] * 4)
    if c["op"] == "AveragePool":
        attrs["count_include_pad"] = c["incl"]
    net.op(c["op"], [net.cur], **attrs)
    check(net, None, tmp_path_factory.mktemp("p"))


@settings(**SETTINGS)
@given(hw=st.integers(1, 9), c=st.integers(1, 20))
def test_global_avgpool(tmp_path_factory, hw, c):
    net = mz.Net("gap", [1, 3, hw, hw + 2], 0)
    net.conv(3, c, 1)
    net.op("GlobalAveragePool", [net.cur])
    check(net, None, tmp_path_factory.mktemp("g"))


def two_input_net(op, shape, **attrs):
    from onnx import TensorProto, helper
    net = mz.Net(op, shape, 0)
    net.inputs.append(helper.make_tensor_value_info("y", TensorProto.FLOAT, shape))
    net.op(op, ["x", "y"], **attrs)
    return net


@settings(**SETTINGS)
@given(c=st.integers(1, 8), hw=st.integers(1, 7), scale=st.sampled_from([0.2, 1.0, 9.0]))
def test_add(tmp_path_factory, c, hw, scale):
    check(two_input_net("Add", [1, c, hw, hw]), None, tmp_path_factory.mktemp("a"), scale)


@settings(**SETTINGS)
@given(c=st.integers(1, 8), hw=st.integers(1, 6), axis=st.sampled_from([1, 2, 3]))
def test_concat(tmp_path_factory, c, hw, axis):
    check(two_input_net("Concat", [1, c, hw, hw], axis=axis), None, tmp_path_factory.mktemp("c"))


@pytest.mark.parametrize("op", ["Sigmoid", "Tanh", "LeakyRelu", "HardSigmoid"])
def test_lut_activations(tmp_path, op):
    net = mz.Net(op, [1, 6, 5, 5], 0)
    net.conv(6, 8, 3, pad=1)
    net.op(op, [net.cur])
    net.conv(8, 4, 1)   # onnxruntime quantizes Tanh/HardSigmoid outputs only when consumed
    b = check(net, None, tmp_path, scale=3.0, n=6)
    assert any(layer.op == "lut" for layer in b.graph.layers)


@settings(**SETTINGS)
@given(vocab=st.integers(2, 50), dim=st.integers(1, 16), ctx=st.integers(1, 12))
def test_gather_embedding(tmp_path_factory, vocab, dim, ctx):
    net = mz.Net("emb", [1, ctx], 0, input_dtype="int64")
    emb = net.const(net.rng.normal(0, 1, (vocab, dim)).astype(np.float32), "emb")
    net.op("Gather", [emb, "x"], axis=0)
    net.op("Flatten", [net.cur])
    net.dense(ctx * dim, 7)
    check(net, None, tmp_path_factory.mktemp("e"), vocab=vocab)


def test_flatten_of_feature_map_keeps_onnx_order(tmp_path):
    net = mz.Net("flat", [1, 3, 6, 5], 0)
    net.conv(3, 4, 3, pad=1)
    net.op("Flatten", [net.cur])
    net.dense(4 * 6 * 5, 9)
    b = check(net, None, tmp_path, n=6)
    assert [layer.op for layer in b.graph.layers] == ["conv", "transpose", "reshape", "dense"]
