"""The .lanthorn format: round trip, determinism, and one clear error per way it can break."""
import json
import struct
import subprocess
import sys

import numpy as np
import pytest

from lanthorn.device.engine import bundle as B
from lanthorn.device.engine import int8
from lanthorn.device.engine.graph import Graph, Layer, Tensor
from lanthorn.device.engine.runtime import load


def tiny_bundle(op="dense"):
    rng = np.random.default_rng(0)
    w = rng.integers(-127, 128, (4, 6)).astype(np.int8)
    g = Graph({"x": Tensor("x", (6,), scale=0.05, zero_point=3),
               "y": Tensor("y", (4,), scale=0.2, zero_point=-5)},
              [Layer(op, "fc", ("x",), ("y",), {"act_min": -128, "act_max": 127},
                     {"weight": w, "bias": rng.integers(-500, 500, 4).astype(np.int32),
                      "multiplier": int8.requant_multiplier(0.05, np.full(4, 0.01), 0.2)})],
              ("x",), ("y",))
    return B.Bundle(g, B.InputSpec((6,), channels=tuple("abcdef"), rate_hz=25.0), ("a", "b", "c", "d"),
                    {"name": "tiny", "author": "test"}, {"dataset": "none"}, b"\x08\x07twin")


def test_round_trip_and_determinism(tmp_path):
    b = tiny_bundle()
    p1, p2 = tmp_path / "a.lanthorn", tmp_path / "b.lanthorn"
    sha = B.write_bundle(b, p1)
    B.write_bundle(tiny_bundle(), p2)
    assert p1.read_bytes() == p2.read_bytes()                  # same content, same bytes
    r = B.read_bundle(p1)
    assert r.sha256 == sha and r.labels == b.labels and r.card == b.card and r.twin == b.twin
    assert r.input_spec == b.input_spec
    for k, v in b.graph.layers[0].arrays.items():
        np.testing.assert_array_equal(r.graph.layers[0].arrays[k], v)
    m = load(p1, backend="numpy")
    x = np.linspace(-1, 1, 6).astype(np.float32)
    np.testing.assert_array_equal(m(x), load(b, backend="numpy")(x))
    assert m.sha256 == sha and m.backend == "numpy" and m.labels == b.labels


def test_arrays_are_aligned(tmp_path):
    data = tiny_bundle().to_bytes()
    _, _, _, hlen, _, _ = B.PREFIX.unpack_from(data)
    header = json.loads(data[64:64 + hlen])
    assert hlen % 64 == 0 and all(a["offset"] % 64 == 0 for a in header["arrays"])


def corrupt(tmp_path, mutate):
    data = bytearray(tiny_bundle().to_bytes())
    data = mutate(data)
    p = tmp_path / "bad.lanthorn"
    p.write_bytes(bytes(data))
    return p


def rehash(data):
    """Recompute the checksum so a deliberately inconsistent header reaches validation."""
    import hashlib
    _, _, _, hlen, dlen, _ = B.PREFIX.unpack_from(data)
    digest = hashlib.sha256(bytes(data[:32]) + bytes(data[64:64 + hlen + dlen])).digest()
    data[32:64] = digest
    return data


def edit_header(data, fn):
    _, v, r, hlen, dlen, _ = B.PREFIX.unpack_from(data)
    h = json.loads(data[64:64 + hlen])
    fn(h)
    hj = json.dumps(h, sort_keys=True, separators=(",", ":")).encode()
    hj += b" " * ((-len(hj)) % 64)
    out = bytearray(struct.pack("<8sIIQQ", B.BUNDLE_MAGIC, v, r, len(hj), dlen)) + bytes(32) + hj \
        + data[64 + hlen:]
    return rehash(out)


CASES = {
    "not a bundle": (lambda d: bytearray(b"PK\x03\x04") + d[4:], B.NotABundleError, "not a lanthorn bundle"),
    "newer version": (lambda d: rehash(d[:8] + struct.pack("<I", 99) + d[12:]), B.NewerFormatError, "format 99"),
    "checksum": (lambda d: d[:-3] + bytes([d[-3] ^ 0xFF]) + d[-2:], B.ChecksumError, "SHA-256"),
    "truncated": (lambda d: d[: len(d) // 2], B.TruncatedError, "truncated"),
    "tiny file": (lambda d: d[:20], B.TruncatedError, "truncated"),
    "unknown op": (lambda d: edit_header(d, lambda h: h["graph"]["layers"][0].update(op="attention")),
                   B.UnknownOperatorError, "attention"),
    "array shape": (lambda d: edit_header(d, lambda h: h["arrays"][2].update(shape=[5, 6])),
                    B.ShapeMismatchError, "declares shape"),
    "layer shape": (lambda d: edit_header(d, lambda h: h["graph"]["tensors"][1].update(shape=[5])),
                    B.ShapeMismatchError, "shape mismatch"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_each_error_has_its_class_and_message(tmp_path, case):
    mutate, cls, text = CASES[case]
    p = corrupt(tmp_path, mutate)
    with pytest.raises(cls, match=text) as info:
        B.read_bundle(p)
    assert isinstance(info.value, B.BundleError) and "\n" not in str(info.value)


@pytest.mark.parametrize("case", ["not a bundle", "checksum", "truncated", "unknown op", "newer version"])
def test_inspect_cli_one_line_exit_2(tmp_path, case):
    p = corrupt(tmp_path, CASES[case][0])
    r = subprocess.run([sys.executable, "-m", "lanthorn", "inspect", str(p)], capture_output=True, text=True)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and r.stdout == ""


def test_inspect_cli_shows_everything(tmp_path):
    p = tmp_path / "m.lanthorn"
    B.write_bundle(tiny_bundle(), p)
    r = subprocess.run([sys.executable, "-m", "lanthorn", "inspect", str(p)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    for needle in ("tiny", "(6,)", "25 Hz", "a, b, c, d", "dense", "24 MACs", "dataset: none"):
        assert needle in r.stdout
    r = subprocess.run([sys.executable, "-m", "lanthorn", "inspect", "--json", str(p)],
                       capture_output=True, text=True)
    d = json.loads(r.stdout)
    assert d["macs"] == 24 and d["layers"][0]["param_bytes"] == 24 + 16 + 16


def test_write_is_atomic_and_refuses_invalid_graph(tmp_path):
    p = tmp_path / "m.lanthorn"
    B.write_bundle(tiny_bundle(), p)
    before = p.read_bytes()
    bad = tiny_bundle()
    bad.graph.tensors["y"] = Tensor("y", (5,))
    with pytest.raises(B.ShapeMismatchError):
        B.write_bundle(bad, p)
    assert p.read_bytes() == before and [x.name for x in tmp_path.iterdir()] == ["m.lanthorn"]


def test_runtime_input_errors_and_backend_choice(tmp_path, monkeypatch):
    from lanthorn.device.engine.runtime import InputError
    from lanthorn.errors import UserError
    m = load(tiny_bundle(), backend="numpy")
    with pytest.raises(InputError, match="shape"):
        m(np.zeros(5, np.float32))
    with pytest.raises(InputError, match="int8"):
        m.run_quantized(np.zeros(6, np.float32))
    with pytest.raises(InputError, match="NaN"):
        m(np.full(6, np.nan, np.float32))
    with pytest.raises(UserError, match="backend"):
        load(tiny_bundle(), backend="gpu")
    monkeypatch.setenv("LANTHORN_BACKEND", "numpy")
    assert load(tiny_bundle()).backend == "numpy"
