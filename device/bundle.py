"""The ``.lanthorn`` bundle: one self-describing, versioned, checksummed model file.

A bundle carries everything a device needs to run a model and everything a person needs
to trust it: the int8 graph (:mod:`lanthorn.device.graph`), its weights and tables, the
input spec (which sensor channels, at what rate, how long a window), the class labels,
the model card, a provenance summary, and the QDQ ONNX "twin" that onnxruntime can run
to cross-check our integers. It loads with numpy alone (no pickle, ever) so a Raspberry
Pi without onnxruntime can read it, and it is written atomically so a power cut while
pushing a model never leaves half a file.

Layout (all integers little-endian)::

    offset  size  field
    0       8     magic  b"LANTHRN\\x00"
    8       4     format version (uint32)
    12      4     reserved, 0
    16      8     header length H (uint64): UTF-8 JSON, space-padded to a multiple of 64
    24      8     data length D (uint64)
    32      32    SHA-256 of bytes [0, 32) + header + data
    64      H     JSON header: graph, input_spec, labels, card, provenance, written_by,
                  arrays [{name, dtype, shape, offset, nbytes}], twin {offset, nbytes}
    64+H    D     data: raw little-endian arrays, each starting on a 64-byte boundary
                  (offsets relative to the start of data), then the twin's bytes

Writing is deterministic: the same content gives the same bytes (sorted JSON keys, fixed
padding, no timestamps unless the caller puts them in the card), which the quantizer
relies on for reproducible builds.
"""
from __future__ import annotations

import hashlib
import json
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lanthorn import __version__
from lanthorn.device.atomic import atomic_write_bytes
from lanthorn.device.graph import OPS, Graph, GraphError, Layer, Tensor
from lanthorn.errors import UserError

MAGIC = b"LANTHRN\x00"
FORMAT_VERSION = 1
PREFIX = struct.Struct("<8sIIQQ32s")  # 64 bytes
ALIGN = 64
_DTYPES = {"int8": "<i1", "uint8": "<u1", "int32": "<i4", "int64": "<i8", "float32": "<f4"}


class BundleError(UserError):
    """A bundle file cannot be used; the message says what is wrong and what to do."""


class NotABundleError(BundleError):
    """The file does not start with the lanthorn magic."""


class NewerFormatError(BundleError):
    """The bundle was written by a newer lanthorn in a format this one cannot read."""


class ChecksumError(BundleError):
    """The content does not match its SHA-256: the file was damaged or edited."""


class TruncatedError(BundleError):
    """The file is shorter than its header says (an interrupted copy or transfer)."""


class UnknownOperatorError(BundleError):
    """The graph uses an operator this lanthorn does not implement."""


class ShapeMismatchError(BundleError):
    """An array or a connection between layers has the wrong shape."""


class CorruptBundleError(BundleError):
    """The checksum matched but the content is inconsistent (a bug in the writer)."""


@dataclass
class InputSpec:
    """What the model reads. ``shape`` is what ``model(x)`` accepts (float32).

    For a sensor window ``shape`` is ``(window, len(channels))`` and ``rate_hz`` the frame
    rate; for an image ``(H, W, C)``; for token models the index shape (dtype int32).
    """

    shape: tuple[int, ...]
    dtype: str = "float32"
    channels: tuple[str, ...] = ()
    rate_hz: float | None = None
    window: int | None = None

    def __post_init__(self):
        self.shape = tuple(int(d) for d in self.shape)
        self.channels = tuple(str(c) for c in self.channels)

    def to_json(self) -> dict:
        return {"shape": list(self.shape), "dtype": self.dtype, "channels": list(self.channels),
                "rate_hz": self.rate_hz, "window": self.window}

    @classmethod
    def from_json(cls, d: dict) -> "InputSpec":
        return cls(tuple(d["shape"]), d.get("dtype", "float32"), tuple(d.get("channels", ())),
                   d.get("rate_hz"), d.get("window"))

    @classmethod
    def coerce(cls, spec) -> "InputSpec":
        if spec is None or isinstance(spec, InputSpec):
            return spec
        return cls.from_json(dict(spec))


@dataclass
class Bundle:
    """An in-memory bundle. ``sha256`` is filled in by :func:`read_bundle` / :func:`write_bundle`."""

    graph: Graph
    input_spec: InputSpec
    labels: tuple[str, ...] = ()
    card: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    twin: bytes | None = None
    sha256: str | None = None

    def __post_init__(self):
        self.labels = tuple(str(x) for x in self.labels)
        self.input_spec = InputSpec.coerce(self.input_spec)

    def to_bytes(self) -> bytes:
        data, header = _serialize(self)
        return data

    @classmethod
    def from_bytes(cls, buf: bytes, source: str = "<bytes>") -> "Bundle":
        return _parse(buf, source)


# --------------------------------------------------------------------------- writing

def _pad(n: int, align: int = ALIGN) -> int:
    return (-n) % align


def _array_bytes(a: np.ndarray) -> tuple[str, bytes]:
    name = a.dtype.name
    if name not in _DTYPES:
        raise CorruptBundleError(f"cannot store an array of dtype {name} in a bundle")
    return name, np.ascontiguousarray(a, dtype=_DTYPES[name]).tobytes()


def _serialize(bundle: Bundle) -> tuple[bytes, dict]:
    g = bundle.graph
    try:
        g.validate()
    except GraphError as exc:
        raise _graph_error(exc, "refusing to write an invalid graph") from None
    arrays_meta, blobs, offset = [], [], 0
    layers_json = []
    for layer in g.layers:
        refs = {}
        for key in sorted(layer.arrays):
            dtype, raw = _array_bytes(layer.arrays[key])
            name = f"{layer.name}/{key}"
            arrays_meta.append({"name": name, "dtype": dtype, "shape": list(layer.arrays[key].shape),
                                "offset": offset, "nbytes": len(raw)})
            refs[key] = name
            blobs.append(raw + b"\0" * _pad(len(raw)))
            offset += len(raw) + _pad(len(raw))
        layers_json.append({"op": layer.op, "name": layer.name, "inputs": list(layer.inputs),
                            "outputs": list(layer.outputs), "params": _jsonable(layer.params),
                            "arrays": refs})
    twin_meta = None
    if bundle.twin:
        twin_meta = {"offset": offset, "nbytes": len(bundle.twin)}
        blobs.append(bytes(bundle.twin))
        offset += len(bundle.twin)
    header = {
        "format": FORMAT_VERSION,
        "written_by": f"lanthorn {__version__}",
        "graph": {"tensors": [t.to_json() for t in g.tensors.values()],
                  "layers": layers_json, "inputs": list(g.inputs), "outputs": list(g.outputs)},
        "input_spec": bundle.input_spec.to_json(),
        "labels": list(bundle.labels),
        "card": _jsonable(bundle.card),
        "provenance": _jsonable(bundle.provenance),
        "arrays": arrays_meta,
        "twin": twin_meta,
    }
    hjson = json.dumps(header, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                       allow_nan=False).encode("utf-8")
    hjson += b" " * _pad(len(hjson))
    data = b"".join(blobs)
    head = PREFIX.pack(MAGIC, FORMAT_VERSION, 0, len(hjson), len(data), b"\0" * 32)[:32]
    digest = hashlib.sha256(head + hjson + data).digest()
    bundle.sha256 = digest.hex()
    return head + digest + hjson + data, header


def _jsonable(obj):
    """Plain JSON types (tuples → lists, numpy scalars → Python) so writing is deterministic."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    return obj


def write_bundle(bundle: Bundle, path: str | os.PathLike) -> str:
    """Write ``bundle`` to ``path`` atomically (tmp file, fsync, rename); return its SHA-256."""
    data, _ = _serialize(bundle)
    atomic_write_bytes(path, data)
    return bundle.sha256


# --------------------------------------------------------------------------- reading

def read_bundle(path: str | os.PathLike) -> Bundle:
    """Load and verify a bundle file (numpy only). Raises a :class:`BundleError` subclass."""
    path = Path(path)
    try:
        buf = path.read_bytes()
    except IsADirectoryError:
        raise BundleError(f"{path} is a directory, not a .lanthorn bundle") from None
    except FileNotFoundError:
        raise BundleError(f"{path}: no such bundle file") from None
    return _parse(buf, str(path))


def _parse(buf: bytes, source: str) -> Bundle:
    buf = memoryview(buf).toreadonly() if not isinstance(buf, bytes) else buf
    if len(buf) < 8 or bytes(buf[:8]) != MAGIC:
        hint = ""
        if bytes(buf[:4]) == b"\x08\x07\x12\x04" or source.endswith(".onnx"):
            hint = " (it looks like an ONNX model: convert it with 'lanthorn import')"
        raise NotABundleError(f"{source} is not a lanthorn bundle{hint}")
    if len(buf) < PREFIX.size:
        raise TruncatedError(f"{source} is truncated: {len(buf)} bytes, shorter than the "
                             f"{PREFIX.size}-byte bundle prefix; copy or push it again")
    _, version, _, hlen, dlen, digest = PREFIX.unpack_from(buf, 0)
    if version > FORMAT_VERSION:
        raise NewerFormatError(f"{source} uses bundle format {version}{_written_by(buf, hlen)}; "
                               f"this lanthorn {__version__} reads format {FORMAT_VERSION} and "
                               f"older: upgrade lanthorn on this device (pip install -U lanthorn)")
    if version < 1:
        raise CorruptBundleError(f"{source} has invalid bundle format version {version}")
    expected = PREFIX.size + hlen + dlen
    if len(buf) < expected:
        raise TruncatedError(f"{source} is truncated: {len(buf)} of {expected} bytes present; "
                             f"copy or push it again")
    if len(buf) > expected:
        raise CorruptBundleError(f"{source} has {len(buf) - expected} unexpected bytes after "
                                 f"the end of the bundle")
    actual = hashlib.sha256(bytes(buf[:32]) + bytes(buf[PREFIX.size:expected])).digest()
    if actual != digest:
        raise ChecksumError(f"{source} failed its SHA-256 check (expected {digest.hex()[:16]}…, "
                            f"got {actual.hex()[:16]}…): the file is damaged; push or copy a good "
                            f"copy again")
    try:
        header = json.loads(bytes(buf[PREFIX.size:PREFIX.size + hlen]).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CorruptBundleError(f"{source}: unreadable bundle header ({exc})") from None
    data_start = PREFIX.size + hlen
    try:
        return _build(header, buf, data_start, dlen, source, digest.hex())
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, BundleError):
            raise
        raise CorruptBundleError(f"{source}: inconsistent bundle header ({type(exc).__name__}: "
                                 f"{exc})") from None


def _written_by(buf, hlen) -> str:
    try:
        h = json.loads(bytes(buf[PREFIX.size:PREFIX.size + hlen]).decode("utf-8"))
        return f", written by {h['written_by']}"
    except Exception:  # a newer format may have changed the header; the version says enough
        return ""


def _build(header: dict, buf, data_start: int, dlen: int, source: str, sha: str) -> Bundle:
    arrays = {}
    for meta in header["arrays"]:
        dtype = _DTYPES.get(meta["dtype"])
        if dtype is None:
            raise CorruptBundleError(f"{source}: array {meta['name']!r} has unknown dtype "
                                     f"{meta['dtype']!r}")
        shape = tuple(int(d) for d in meta["shape"])
        count = int(np.prod(shape, dtype=np.int64))
        nbytes = count * np.dtype(dtype).itemsize
        if nbytes != meta["nbytes"]:
            raise ShapeMismatchError(f"{source}: array {meta['name']!r} declares shape {shape} "
                                     f"({nbytes} bytes) but stores {meta['nbytes']} bytes")
        if meta["offset"] < 0 or meta["offset"] + nbytes > dlen:
            raise CorruptBundleError(f"{source}: array {meta['name']!r} lies outside the data")
        a = np.frombuffer(buf, dtype=dtype, count=count, offset=data_start + meta["offset"])
        arrays[meta["name"]] = a.reshape(shape).astype(np.dtype(dtype).newbyteorder("="),
                                                       copy=False)
    gj = header["graph"]
    tensors = {t["name"]: Tensor.from_json(t) for t in gj["tensors"]}
    layers = []
    for lj in gj["layers"]:
        if lj["op"] not in OPS:
            raise UnknownOperatorError(
                f"{source}: layer {lj['name']!r} uses operator {lj['op']!r}, which this lanthorn "
                f"{__version__} does not implement (known: {', '.join(OPS)}); upgrade lanthorn or "
                f"re-quantize the model without it")
        refs = {}
        for key, name in lj.get("arrays", {}).items():
            if name not in arrays:
                raise CorruptBundleError(f"{source}: layer {lj['name']!r} refers to missing "
                                         f"array {name!r}")
            refs[key] = arrays[name]
        layers.append(Layer(lj["op"], lj["name"], tuple(lj["inputs"]), tuple(lj["outputs"]),
                            dict(lj.get("params", {})), refs))
    graph = Graph(tensors, layers, tuple(gj["inputs"]), tuple(gj["outputs"]))
    try:
        graph.validate()
    except GraphError as exc:
        raise _graph_error(exc, source) from None
    twin = None
    if header.get("twin"):
        t = header["twin"]
        if t["offset"] + t["nbytes"] > dlen:
            raise CorruptBundleError(f"{source}: the ONNX twin lies outside the data")
        twin = bytes(buf[data_start + t["offset"]:data_start + t["offset"] + t["nbytes"]])
    return Bundle(graph, InputSpec.from_json(header["input_spec"]), tuple(header["labels"]),
                  header.get("card", {}), header.get("provenance", {}), twin, sha)


def _graph_error(exc: GraphError, source: str) -> BundleError:
    msg = f"{source}: {exc}"
    text = str(exc)
    if "unknown operator" in text:
        return UnknownOperatorError(msg)
    if "shape mismatch" in text or "cannot" in text:
        return ShapeMismatchError(msg)
    return CorruptBundleError(msg)
