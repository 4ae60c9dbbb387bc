"""The MLPerf Tiny reference architectures and the common tiny building blocks, in the repo.

Built from their published descriptions with :class:`~lanthorn.quantize.tiny_models.Net`
(``onnx.helper``, opset 17, batch 1, seeded random weights: the architecture is what the
engine has to run exactly; accuracy is not the point). Test and benchmark material only.

MLPerf Tiny v1.x:
  kws_ds_cnn    keyword spotting DS-CNN: 49x10 MFCC, conv 10x4/2 + 4 depthwise-separable
                blocks of 64 channels, average pool, 12 classes (~2.7M MACs)
  vww_mbv1      visual wake words MobileNetV1 alpha 0.25 on 96x96x3, 2 classes (~7.5M MACs)
  ic_resnet8    image classification ResNet-8 on 32x32x3: 3 residual stacks (16/32/64,
                1x1 projections on the strided shortcuts), 10 classes (~12.5M MACs)
  ad_autoencoder anomaly detection FC autoencoder 640-128x4-8-128x4-640, BatchNorm after
                every hidden Dense (~270k MACs)
Common tiny blocks:
  tcn           temporal conv net over a 14-channel, 64-step window: dilated residual blocks
  mbv2_blocks   MobileNetV2 inverted residuals (expand 1x1, ReLU6, depthwise, project, add)
  inception     Concat of 1x1, 3x3, 1x1->3x3 and pool->1x1 branches
  hardswish_net conv / depthwise with HardSwish (MobileNetV3 style)
  se_net        squeeze-and-excitation: GAP -> 1x1 -> ReLU -> 1x1 -> HardSigmoid, times x

``size`` shrinks the input where the architecture allows (tests)
the default is the
published size (``lanthorn bench --models mlperf-tiny``).
"""
from __future__ import annotations

from lanthorn.quantize.tiny_models import Net


def _cbr(n, cin, cout, k, stride=1, pad=0, groups=1, relu=True, x=None):
    """Conv + BatchNorm (+ ReLU): the block every exporter writes."""
    n.conv(cin, cout, k, stride=stride, pad=pad, groups=groups, bias=False, x=x)
    n.bn(cout)
    return n.relu() if relu else n.cur


def _head(n, c, classes, softmax=True):
    n.op("GlobalAveragePool", [n.cur])
    n.op("Flatten", [n.cur])
    n.dense(c, classes)
    if softmax:
        n.op("Softmax", [n.cur], axis=-1)
    return n.model([1, classes])


def kws_ds_cnn(seed=0, size=None):
    h, w = size or (49, 10)
    n = Net("kws_ds_cnn", [1, 1, h, w], seed)
    _cbr(n, 1, 64, (10, 4), stride=2, pad=[4, 1, 5, 2])
    for _ in range(4):
        _cbr(n, 64, 64, 3, pad=1, groups=64)
        _cbr(n, 64, 64, 1)
    return _head(n, 64, 12)


def vww_mbv1(seed=0, size=None):
    s = size or 96
    n = Net("vww_mbv1", [1, 3, s, s], seed)
    _cbr(n, 3, 8, 3, stride=2, pad=1)
    c = 8
    for cout, stride in ((16, 1), (32, 2), (32, 1), (64, 2), (64, 1), (128, 2), (128, 1),
                         (128, 1), (128, 1), (128, 1), (128, 1), (256, 2), (256, 1)):
        _cbr(n, c, c, 3, stride=stride, pad=1, groups=c)
        _cbr(n, c, cout, 1)
        c = cout
    return _head(n, c, 2)


def ic_resnet8(seed=0, size=None):
    s = size or 32
    n = Net("ic_resnet8", [1, 3, s, s], seed)
    x = _cbr(n, 3, 16, 3, pad=1)
    c = 16
    for cout, stride in ((16, 1), (32, 2), (64, 2)):
        _cbr(n, c, cout, 3, stride=stride, pad=1, x=x)
        y = _cbr(n, cout, cout, 3, pad=1, relu=False)
        short = x if stride == 1 and c == cout else n.conv(c, cout, 1, stride=stride, x=x)
        n.op("Add", [short, y])
        x = n.relu()
        c = cout
    return _head(n, c, 10)


def ad_autoencoder(seed=0, size=None):
    d = size or 640
    n = Net("ad_autoencoder", [1, d], seed)
    k = d
    for width in (128, 128, 128, 128, 8, 128, 128, 128, 128):
        n.dense(k, width)
        n.bn(width)
        n.relu()
        k = width
    n.dense(k, d)
    return n.model([1, d])


def tcn(seed=0, size=None, channels=14):
    t = size or 64
    n = Net("tcn", [1, channels, t], seed)
    x = n.conv(channels, 24, 1, dims=1)
    for dil in (1, 2, 4, 8):
        n.conv(24, 24, 3, pad=dil, dilation=dil, dims=1, x=x)
        n.relu()
        n.conv(24, 24, 3, pad=dil, dilation=dil, dims=1)
        n.op("Add", [x, n.cur])
        x = n.relu()
    return _head(n, 24, 9)


def _clip6(n):
    return n.op("Clip", [n.cur, n.const(_f(0.0), "lo"), n.const(_f(6.0), "hi")])


def _f(v):
    import numpy as np
    return np.array(v, np.float32)


def mbv2_blocks(seed=0, size=None):
    s = size or 32
    n = Net("mbv2_blocks", [1, 3, s, s], seed)
    n.conv(3, 16, 3, stride=2, pad=1)
    _clip6(n)
    x, c = n.cur, 16
    for cout, stride, expand in ((16, 1, 4), (24, 2, 4), (24, 1, 4), (32, 2, 4), (32, 1, 4)):
        e = c * expand
        n.conv(c, e, 1, x=x)
        _clip6(n)
        n.conv(e, e, 3, stride=stride, pad=1, groups=e)
        _clip6(n)
        y = n.conv(e, cout, 1)
        x = n.op("Add", [x, y]) if stride == 1 and c == cout else y
        c = cout
    return _head(n, c, 10)


def inception(seed=0, size=None):
    s = size or 16
    n = Net("inception", [1, 8, s, s], seed)
    n.conv(8, 16, 3, pad=1)
    x = n.relu()
    for _ in range(2):
        b1 = (n.conv(16, 8, 1, x=x), n.relu())[1]
        b2 = (n.conv(16, 8, 3, pad=1, x=x), n.relu())[1]
        n.conv(16, 4, 1, x=x)
        n.relu()
        b3 = (n.conv(4, 8, 3, pad=1), n.relu())[1]
        n.op("MaxPool", [x], kernel_shape=[3, 3], strides=[1, 1], pads=[1, 1, 1, 1])
        b4 = (n.conv(16, 8, 1), n.relu())[1]
        n.op("Concat", [b1, b2, b3, b4], axis=1)
        n.conv(32, 16, 1)
        x = n.relu()
    return _head(n, 16, 10)


def hardswish_net(seed=0, size=None):
    s = size or 24
    n = Net("hardswish_net", [1, 3, s, s], seed)
    n.conv(3, 16, 3, stride=2, pad=1)
    n.op("HardSwish", [n.cur])
    n.conv(16, 16, 3, pad=1, groups=16)
    n.op("HardSwish", [n.cur])
    n.conv(16, 24, 1)
    n.op("HardSwish", [n.cur])
    return _head(n, 24, 10)


def se_net(seed=0, size=None):
    s = size or 16
    n = Net("se_net", [1, 3, s, s], seed)
    n.conv(3, 16, 3, pad=1)
    x = n.relu()
    for _ in range(2):
        n.op("GlobalAveragePool", [x])
        n.conv(16, 4, 1)
        n.relu()
        n.conv(4, 16, 1)
        n.op("HardSigmoid", [n.cur], alpha=1 / 6, beta=0.5)
        n.op("Mul", [x, n.cur])
        n.conv(16, 16, 3, pad=1)
        x = n.relu()
    return _head(n, 16, 10)


#: name -> builder(seed, size); the first four are MLPerf Tiny's benchmarks
MODELS = {"kws_ds_cnn": kws_ds_cnn, "vww_mbv1": vww_mbv1, "ic_resnet8": ic_resnet8,
          "ad_autoencoder": ad_autoencoder, "tcn": tcn, "mbv2_blocks": mbv2_blocks,
          "inception": inception, "hardswish_net": hardswish_net, "se_net": se_net}
#: what ``lanthorn bench --models mlperf-tiny`` runs
BENCH = ("kws_ds_cnn", "vww_mbv1", "ic_resnet8", "ad_autoencoder", "tcn")
#: small inputs for the exactness tests (architecture unchanged)
TEST_SIZES = {"kws_ds_cnn": None, "vww_mbv1": 32, "ic_resnet8": 16, "ad_autoencoder": None,
              "tcn": 32, "mbv2_blocks": 16, "inception": 8, "hardswish_net": 16, "se_net": 8}


def build(name: str, seed: int = 0, size=None):
    """The float ONNX model ``name`` (ModelProto)."""
    if name not in MODELS:
        raise KeyError(f"unknown model {name!r}; choose from {', '.join(MODELS)}")
    return MODELS[name](seed, size)


def build_files(name: str, directory, seed: int = 0, calib: int = 16):
    """Float ONNX and its QDQ quantization (quantize_static S8S8 per-channel, 7-bit, as
    every lanthorn model) in ``directory``: (float_path, qdq_path), as tiny_models.build."""
    from pathlib import Path

    import onnx

    from lanthorn.quantize.qdq import quantize_qdq
    from lanthorn.quantize.tiny_models import random_inputs
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    model = build(name, seed)
    fpath = directory / f"{name}.float.onnx"
    onnx.save(model, str(fpath))
    return fpath, quantize_qdq(fpath, directory / f"{name}.qdq.onnx",
                               random_inputs(model, calib, seed + 1))
