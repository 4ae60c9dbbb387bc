"""Graph builders shared by the C-kernel tests (test_ckernel, test_aarch64_qemu): random
single-operator graphs in the int8 IR and one small CNN that exercises every kind of
buffer sharing. Random but reproducible (numpy Generator seeded by the caller)."""
import numpy as np

from lanthorn.device.engine import int8
from lanthorn.device.engine.graph import Graph, Layer, Tensor


def qparams(rng):
    """A random activation quantization: scale, zero point."""
    return float(np.float32(rng.uniform(0.005, 0.2))), int(rng.integers(-128, 128))


def rand_i8(rng, shape, lo=-128, hi=127):
    return rng.integers(lo, hi + 1, size=shape).astype(np.int8)


def multipliers(rng, n, k, kind):
    """Requant multipliers scaled so outputs span the int8 range (and clamp sometimes).
    ``half`` picks exact powers of two so many products land on .5: ties to even."""
    if kind == "half":
        return np.full(n, 0.5 ** rng.integers(1, 8), np.float32)
    spread = 1.0 / (40.0 * max(1.0, np.sqrt(k)) * 64)
    s_in, s_out = np.float32(rng.uniform(0.01, 0.1)), np.float32(rng.uniform(0.01, 0.1))
    s_w = (rng.uniform(0.2, 3.0, n) * spread * float(s_out) / float(s_in)).astype(np.float32)
    return int8.requant_multiplier(s_in, s_w, s_out)


def act(rng, zy, relu):
    return (max(-128, zy), 127) if relu else (-128, 127)


def one_layer(op, in_tensors, out_shape, zy, sy, params=None, arrays=None):
    ins = [Tensor(f"x{i}", shape, dtype, s, z) for i, (shape, dtype, s, z) in enumerate(in_tensors)]
    tensors = {t.name: t for t in ins}
    tensors["y"] = Tensor("y", out_shape, "int8", sy, zy)
    layer = Layer(op, op, [t.name for t in ins], ["y"], params or {}, arrays or {})
    g = Graph(tensors, [layer], [t.name for t in ins], ["y"])
    g.validate()
    return g


def small_cnn(rng, final_softmax=True):
    """conv -> relu-clamped depthwise -> maxpool -> add (residual) -> concat -> reshape ->
    dense -> softmax: every buffer-sharing situation of the arena planner in one graph."""
    T = {}

    def t(name, shape, dtype="int8"):
        s, z = qparams(rng)
        T[name] = Tensor(name, shape, dtype, s, z)
        return name

    def conv_arrays(cout, kh, kw, cg):
        return {"weight": rand_i8(rng, (cout, kh, kw, cg), -127, 127),
                "bias": rng.integers(-3000, 3000, cout).astype(np.int32),
                "multiplier": multipliers(rng, cout, kh * kw * cg, "rand")}

    t("img", (8, 8, 3)), t("c1", (8, 8, 8)), t("c2", (8, 8, 8)), t("p", (4, 4, 8))
    t("q", (4, 4, 8)), t("s", (4, 4, 8)), t("cat", (4, 4, 16)), t("flat", (256,)), t("logits", (5,))
    T["prob"] = Tensor("prob", (5,), "float32")
    L = [Layer("conv", "c1", ["img"], ["c1"], {"pads": [1, 1, 1, 1]}, conv_arrays(8, 3, 3, 3)),
         Layer("conv", "c2", ["c1"], ["c2"], {"pads": [1, 1, 1, 1], "groups": 8,
                                               "act_min": T["c2"].zero_point},
               conv_arrays(8, 3, 3, 1)),
         Layer("maxpool", "p", ["c2"], ["p"], {"kernel": [2, 2], "stride": [2, 2]}),
         Layer("conv", "q", ["p"], ["q"], {}, conv_arrays(8, 1, 1, 8)),
         Layer("add", "s", ["q", "p"], ["s"]),
         Layer("concat", "cat", ["s", "q"], ["cat"], {"axis": 2},
               {"table0": int8.requant_table(T["s"].scale, T["s"].zero_point,
                                             T["cat"].scale, T["cat"].zero_point),
                "table1": int8.requant_table(T["q"].scale, T["q"].zero_point,
                                             T["cat"].scale, T["cat"].zero_point)}),
         Layer("reshape", "flat", ["cat"], ["flat"], {"shape": [256]}),
         Layer("dense", "fc", ["flat"], ["logits"], {},
               {"weight": rand_i8(rng, (5, 256), -127, 127),
                "bias": rng.integers(-3000, 3000, 5).astype(np.int32),
                "multiplier": multipliers(rng, 5, 256, "rand")})]
    T["p"].scale, T["p"].zero_point = T["c2"].scale, T["c2"].zero_point   # maxpool keeps q
    T["flat"].scale, T["flat"].zero_point = T["cat"].scale, T["cat"].zero_point
    outs = ["logits"]
    if final_softmax:
        L.append(Layer("softmax", "sm", ["logits"], ["prob"]))
        outs = ["prob"]
    g = Graph(T, L, ["img"], outs)
    g.validate()
    return g


def op_suite(seed=0):
    """One graph per operator and notable geometry, as ``(name, graph)`` pairs: the shared
    vectors for running the kernel elsewhere (qemu-aarch64, microcontrollers)."""
    rng = np.random.default_rng(seed)
    out = []

    def conv(name, h, w, cin, cout, k, groups=1, stride=(1, 1), dil=(1, 1), pads=(0, 0, 0, 0),
             relu=False):
        sx, zx = qparams(rng)
        sy, zy = qparams(rng)
        oh = (h + pads[0] + pads[2] - dil[0] * (k[0] - 1) - 1) // stride[0] + 1
        ow = (w + pads[1] + pads[3] - dil[1] * (k[1] - 1) - 1) // stride[1] + 1
        lo, hi = act(rng, zy, relu)
        kk = k[0] * k[1] * cin // groups
        wmax = 64 if len(out) % 2 else 127     # 7-bit (onnxruntime reduce_range) or full
        out.append((name, one_layer(
            "conv", [((h, w, cin), "int8", sx, zx)], (oh, ow, cout), zy, sy,
            {"stride": list(stride), "dilation": list(dil), "pads": list(pads), "groups": groups,
             "act_min": lo, "act_max": hi},
            {"weight": rand_i8(rng, (cout, k[0], k[1], cin // groups), -wmax, wmax),
             "bias": rng.integers(-5000, 5000, cout).astype(np.int32),
             "multiplier": multipliers(rng, cout, kk, "rand")})))

    conv("conv3x3", 9, 11, 8, 16, (3, 3), pads=(1, 1, 1, 1), relu=True)
    conv("conv_stride_dil", 12, 12, 5, 7, (3, 2), stride=(2, 3), dil=(2, 1), pads=(2, 0, 1, 1))
    conv("conv1d", 1, 50, 14, 24, (1, 5), pads=(0, 2, 0, 2), relu=True)
    conv("conv_big_k", 4, 4, 67, 9, (3, 3), pads=(1, 1, 1, 1))
    conv("depthwise", 8, 8, 16, 16, (3, 3), groups=16, pads=(1, 1, 1, 1), relu=True)
    conv("depthwise_x2", 6, 7, 3, 6, (3, 3), groups=3, stride=(2, 2))
    # the packed depthwise path (padded input, 16-channel blocks, unrolled 3x3, general taps)
    conv("depthwise_odd_c", 11, 10, 35, 35, (3, 3), groups=35, pads=(1, 1, 1, 1))
    conv("depthwise_s2", 16, 16, 32, 32, (3, 3), groups=32, stride=(2, 2), pads=(0, 1, 1, 0), relu=True)
    conv("depthwise_dil5x5", 13, 12, 19, 19, (5, 5), groups=19, dil=(2, 1), pads=(2, 3, 1, 2))
    conv("depthwise_1d", 1, 40, 8, 8, (1, 7), groups=8, stride=(1, 2), pads=(0, 3, 0, 3))
    conv("grouped", 5, 5, 8, 12, (3, 3), groups=4, pads=(1, 1, 1, 1))
    conv("conv_dil_w", 6, 13, 6, 5, (2, 3), dil=(1, 2), pads=(1, 2, 0, 1))
    conv("conv1x1_stride_pad", 7, 9, 19, 13, (1, 1), stride=(2, 2), pads=(1, 0, 0, 1))
    for i in range(12):   # random geometry, 7-bit and full-range weights alternating
        h, w = (int(v) for v in rng.integers(1, 10, 2))
        cin, cout = int(rng.choice([1, 3, 8, 16, 21])), int(rng.choice([1, 4, 8, 17, 32]))
        k = (int(rng.integers(1, min(h, 3) + 1)), int(rng.integers(1, min(w, 4) + 1)))
        pads = tuple(int(v) for v in rng.integers(0, 2, 4))
        conv(f"conv_random{i}", h, w, cin, cout, k, pads=pads,
             stride=(int(rng.integers(1, 3)), int(rng.integers(1, 3))), relu=bool(i % 2))
    for k, n, lead in [(300, 37, ()), (1024, 16, ()), (33, 5, (4,))]:
        sx, zx = qparams(rng)
        sy, zy = qparams(rng)
        out.append((f"dense{k}x{n}", one_layer(
            "dense", [(lead + (k,), "int8", sx, zx)], lead + (n,), zy, sy, {},
            {"weight": rand_i8(rng, (n, k), -127, 127),
             "bias": rng.integers(-20000, 20000, n).astype(np.int32),
             "multiplier": multipliers(rng, n, k, "rand")})))
    for op, incl in [("maxpool", False), ("avgpool", False), ("avgpool", True)]:
        sx, zx = qparams(rng)
        sy, zy = (sx, zx) if op == "maxpool" else qparams(rng)
        out.append((f"{op}{int(incl)}", one_layer(
            op, [((7, 9, 5), "int8", sx, zx)], (4, 5, 5), zy, sy,
            {"kernel": [3, 3], "stride": [2, 2], "pads": [1, 1, 1, 1],
             **({"count_include_pad": incl} if op == "avgpool" else {})})))
    sx, zx = qparams(rng)   # the vector max-pool: 16-channel blocks and a tail
    out.append(("maxpool_c35", one_layer("maxpool", [((9, 8, 35), "int8", sx, zx)], (4, 4, 35), zx,
                                         sx, {"kernel": [2, 2], "stride": [2, 2]})))
    sx, zx = qparams(rng)
    sy, zy = qparams(rng)
    out.append(("global_avgpool", one_layer("global_avgpool", [((6, 7, 20), "int8", sx, zx)],
                                            (1, 1, 20), zy, sy)))
    q = [qparams(rng) for _ in range(3)]
    out.append(("add_broadcast", one_layer(
        "add", [((4, 5, 6), "int8", *q[0]), ((5, 6), "int8", *q[1])], (4, 5, 6), q[2][1], q[2][0])))
    out.append(("concat", one_layer(
        "concat", [((3, 4, 2), "int8", *q[0]), ((3, 4, 5), "int8", *q[2])], (3, 4, 7), q[2][1],
        q[2][0], {"axis": 2}, {"table0": int8.requant_table(*q[0], *q[2])})))
    out.append(("transpose", one_layer("transpose", [((2, 3, 4, 5), "int8", 0.1, 0)], (5, 2, 4, 3),
                                       0, 0.1, {"perm": [3, 0, 2, 1]})))
    out.append(("lut", one_layer("lut", [((17, 3), "int8", 0.1, 0)], (17, 3), 0, 0.1, {},
                                 {"table": rand_i8(rng, (256,))})))
    out.append(("gather", one_layer("gather", [((7,), "int32", 1.0, 0)], (7, 12), 0, 0.1, {},
                                    {"table": rand_i8(rng, (40, 12))})))
    out.append(("small_cnn", small_cnn(rng)))
    q = [qparams(rng) for _ in range(3)]       # drawn last: the graphs above keep their bytes
    out.append(("mul_se", one_layer(
        "mul", [((4, 5, 6), "int8", *q[0]), ((1, 1, 6), "int8", *q[1])], (4, 5, 6), q[2][1],
        q[2][0], {"act_min": -128, "act_max": 127})))
    out.append(("mul_equal_relu", one_layer(
        "mul", [((37,), "int8", *q[1]), ((37,), "int8", *q[2])], (37,), -128,
        q[0][0], {"act_min": -128, "act_max": 100})))
    out.append(("lut_per_channel", one_layer("lut", [((5, 3, 7), "int8", 0.1, 0)], (5, 3, 7), 0,
                                             0.1, {}, {"table": rand_i8(rng, (7, 256))})))
    return out


def random_input_sets(graph, rng, n):
    """``n`` input sets (lists of arrays) for ``graph``; gather indices in range."""
    sets = []
    for _ in range(n):
        xs = []
        for name in graph.inputs:
            t = graph.tensors[name]
            if t.dtype == "int32":
                layer = next(layer for layer in graph.layers if name in layer.inputs)
                v = layer.arrays["table"].shape[0]
                xs.append(rng.integers(-v, v, t.shape).astype(np.int32))
            else:
                xs.append(rand_i8(rng, t.shape))
        sets.append(xs)
    return sets
