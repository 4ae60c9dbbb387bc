"""The ``.lanthorn`` bundle: one self-describing, versioned, checksummed model file.

A bundle carries everything a device needs to run a model and everything a person needs
to trust it: the int8 graph (:mod:`lanthorn.device.engine.graph`), its weights and tables, the
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
                  build, arrays [{name, dtype, shape, offset, nbytes}], twin {offset, nbytes}
    64+H    D     data: raw little-endian arrays, each starting on a 64-byte boundary
                  (offsets relative to the start of data), then the twin's bytes, then
                  the lexicon's bytes (a voice's words, optional)

The optional ``lexicon`` section (voices; :mod:`lanthorn.device.engine.lexicon`):
the header's ``"lexicon": {"format": "lanthorn-trie", "version": 1, "offset", "nbytes",
"words", "sha256"}`` points at the trie of the corpus's words in the data, with its own
SHA-256 and word count (checked on reading, beside the file's checksum). A bundle without
it (every bundle written before it existed) loads as before, with ``lexicon`` None; a
lanthorn that predates it ignores the key, so the file format version stays 1.

Writing is deterministic: the same content gives the same bytes (sorted JSON keys, fixed
padding, no timestamps unless the caller puts them in the card), which the quantizer
relies on for reproducible builds.

The header's ``build`` section (:mod:`lanthorn.device.engine.build_record`) says what wrote the
file: lanthorn's version and commit, Python, torch, numpy, onnx, onnxruntime, the CPU and
its features. Two machines that rebuild one model write the same bytes everywhere else, so a
rebuild is compared on :func:`reproducible_content` -- every byte but that record (and
``written_by``, which repeats its version) -- and ``make model`` keeps a committed file
whose content the rebuild reproduces.

Two digests name a bundle: the *internal digest* in the prefix (bytes 32-64, the SHA-256 of
the rest: what ``Bundle.sha256`` holds, what signing signs and the push protocol checks) and
the *file's sha256* (``Bundle.file_sha256``, what ``sha256sum`` prints for the file).
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeGuard

import numpy as np

from lanthorn import __version__
from lanthorn.device.engine.build_record import build_record
from lanthorn.device.engine.graph import OPS, Graph, GraphError, Layer, Tensor, is_int, is_number
from lanthorn.device.storage.atomic import atomic_write_bytes
from lanthorn.errors import UserError

BUNDLE_MAGIC = b"LANTHRN\x00"
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
    #: per channel, the factor frames are multiplied by before ``model(x)`` (what training
    #: did: every channel at a similar magnitude for the one int8 input scale). Empty: none.
    #: The device loop applies it; ``model(x)`` itself takes the scaled window.
    scale: tuple[float, ...] = ()

    def __post_init__(self):
        self.shape = tuple(int(d) for d in self.shape)
        self.channels = tuple(str(c) for c in self.channels)
        self.scale = tuple(float(v) for v in self.scale)

    def to_json(self) -> dict:
        d: dict[str, Any] = {"shape": list(self.shape), "dtype": self.dtype,
                             "channels": list(self.channels), "rate_hz": self.rate_hz,
                             "window": self.window}
        if self.scale:
            d["scale"] = list(self.scale)
        return d

    @classmethod
    def from_json(cls, d: dict) -> "InputSpec":
        return cls(tuple(d["shape"]), d.get("dtype", "float32"), tuple(d.get("channels", ())),
                   d.get("rate_hz"), d.get("window"), tuple(d.get("scale") or ()))

    @classmethod
    def coerce(cls, spec) -> "InputSpec | None":
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
    #: a voice's words as trie bytes (:func:`lanthorn.device.engine.lexicon.encode`), or None
    lexicon: bytes | None = None
    #: (Ed25519 public key, signature) from the trailer, unverified (see device/engine/signing.py)
    signature: tuple[bytes, bytes] | None = None
    #: an imported model's public contract, its ONNX inputs and outputs:
    #: {"inputs": [{"name", "tensor", "shape", "layout"}], "outputs": [...]} where ``name``
    #: and ``shape`` are ONNX's (batch and layout included), ``tensor`` the graph tensor and
    #: ``layout`` how the two relate ("nchw", "nct" or "plain"); see :func:`from_onnx_layout`
    io: dict = field(default_factory=dict)
    #: what wrote the file (lanthorn.device.engine.build_record); None: filled in when written,
    #: {}: none (a bundle read from a file written before there were build records)
    build: dict | None = None
    #: the sha256 of the whole file (what ``sha256sum`` prints), set by reading or writing
    file_sha256: str | None = None

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
    _check_io(_jsonable(bundle.io), g, "refusing to write a bundle with an")
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
    twin_meta, lexicon_meta = _tail_sections(bundle, offset, blobs)
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
    if bundle.io:
        header["onnx_io"] = _jsonable(bundle.io)
    if lexicon_meta:
        header["lexicon"] = lexicon_meta
    if bundle.build is None:
        bundle.build = build_record()
    if bundle.build:
        header["build"] = _sized_build(_jsonable(bundle.build))
    try:
        check_header(_jsonable(header))
    except BundleError as exc:
        raise CorruptBundleError(f"refusing to write a bundle with an {exc}") from None
    hjson = json.dumps(header, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                       allow_nan=False).encode("utf-8")
    hjson += b" " * _pad(len(hjson))
    data = b"".join(blobs)
    head = PREFIX.pack(BUNDLE_MAGIC, FORMAT_VERSION, 0, len(hjson), len(data), b"\0" * 32)[:32]
    digest = hashlib.sha256(head + hjson + data).digest()
    bundle.sha256 = digest.hex()
    return head + digest + hjson + data, header


def _tail_sections(bundle: Bundle, offset: int, blobs: list) -> tuple[dict | None, dict | None]:
    """After the arrays (ending at ``offset``): the twin's bytes, then the lexicon's on a
    64-byte boundary, appended to ``blobs``; their header entries (None when absent)."""
    twin_meta = lexicon_meta = None
    if bundle.twin:
        twin_meta = {"offset": offset, "nbytes": len(bundle.twin)}
        blobs.append(bytes(bundle.twin))
        offset += len(bundle.twin)
    if bundle.lexicon:
        lexicon_meta = _lexicon_meta(bundle.lexicon, offset + _pad(offset))
        blobs.append(b"\0" * _pad(offset) + bytes(bundle.lexicon))
    return twin_meta, lexicon_meta


def _lexicon_meta(data: bytes, offset: int) -> dict:
    """The header entry of a lexicon section at ``offset`` (refusing trie bytes that do not
    decode: a writer's bug must not reach a device)."""
    from lanthorn.device.engine import lexicon
    try:
        words = len(lexicon.decode(data))
    except lexicon.LexiconError as exc:
        raise CorruptBundleError(f"refusing to write a bundle with a bad lexicon: {exc}") from None
    return {"format": lexicon.FORMAT, "version": lexicon.VERSION, "offset": offset,
            "nbytes": len(data), "words": words, "sha256": hashlib.sha256(data).hexdigest()}


def _read_lexicon(meta, buf, data_start: int, dlen: int, source: str) -> bytes | None:
    """The lexicon section's bytes, checked: its format and version known, inside the
    data, its own SHA-256 and word count right. None when the bundle has none."""
    if meta is None:
        return None
    from lanthorn.device.engine import lexicon
    bad = f"{source}: the lexicon section (the voice's words)"
    if meta.get("format") != lexicon.FORMAT or meta.get("version", 0) > lexicon.VERSION:
        raise NewerFormatError(f"{bad} is {meta.get('format')!r} version {meta.get('version')}; "
                               f"this lanthorn {__version__} reads {lexicon.FORMAT!r} up to "
                               f"version {lexicon.VERSION}: upgrade lanthorn on this device")
    if meta["offset"] + meta["nbytes"] > dlen:
        raise CorruptBundleError(f"{bad} lies outside the data")
    data = bytes(buf[data_start + meta["offset"]:data_start + meta["offset"] + meta["nbytes"]])
    if hashlib.sha256(data).hexdigest() != meta.get("sha256"):
        raise ChecksumError(f"{bad} failed its SHA-256 check: push or copy a good copy again")
    try:
        words = len(lexicon.decode(data))
    except lexicon.LexiconError as exc:
        raise CorruptBundleError(f"{bad} does not decode: {exc}") from None
    if words != meta.get("words"):
        raise CorruptBundleError(f"{bad} holds {words} words, its header says {meta.get('words')}")
    return data


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


def write_bundle(bundle: Bundle, path: str | os.PathLike, signing_key=None) -> str:
    """Write ``bundle`` to ``path`` atomically (tmp file, fsync, rename); return its SHA-256.
    With ``signing_key`` (see :mod:`lanthorn.device.engine.signing`) the file carries a signature."""
    data, _ = _serialize(bundle)
    if signing_key is not None:
        from lanthorn.device.engine import signing  # lazily: needs cryptography
        data = signing.sign_bundle_bytes(data, signing_key)
        bundle.signature = split_signature(data)[1]
    atomic_write_bytes(path, data)
    bundle.file_sha256 = hashlib.sha256(data).hexdigest()
    assert bundle.sha256 is not None  # _serialize set it
    return bundle.sha256


def split_signature(buf: bytes) -> tuple[bytes, tuple[bytes, bytes] | None]:
    """(the bundle's bytes, (public key, signature) or None): strips a signature trailer
    (device/engine/signing.py) when the bytes after the declared end are exactly one."""
    from lanthorn.device.engine.signing import TRAILER, TRAILER_MAGIC
    if len(buf) >= PREFIX.size and bytes(buf[:8]) == BUNDLE_MAGIC:
        _, _, _, hlen, dlen, _ = PREFIX.unpack_from(buf, 0)
        end = PREFIX.size + hlen + dlen
        if len(buf) == end + TRAILER.size and bytes(buf[end:end + 8]) == TRAILER_MAGIC:
            _, pub, sig = TRAILER.unpack_from(buf, end)
            return bytes(buf[:end]), (pub, sig)
    return bytes(buf), None


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
    """Checks in the order that names the real cause: magic, length, checksum (so junk
    after a valid magic is "damaged", not "a newer format"), then version, then the header
    and graph, strictly (:func:`check_header`, :meth:`Graph.validate`)."""
    buf = memoryview(buf).toreadonly() if not isinstance(buf, bytes) else buf
    if len(buf) == 0:
        raise TruncatedError(f"{source} is empty (0 bytes): the copy or push did not happen "
                             f"or was cut off; copy or push the .lanthorn file again")
    if len(buf) < 8 or bytes(buf[:8]) != BUNDLE_MAGIC:
        hint = ""
        if bytes(buf[:4]) == b"\x08\x07\x12\x04" or source.endswith(".onnx"):
            hint = (" (it looks like an ONNX model: quantize a float model with 'lanthorn "
                    "quantize MODEL.onnx --data DATA --out MODEL.lanthorn'; an already "
                    "quantized QDQ model converts with 'lanthorn import')")
        raise NotABundleError(f"{source} is not a lanthorn bundle{hint}")
    if len(buf) < PREFIX.size:
        raise TruncatedError(f"{source} is truncated: {len(buf)} bytes, shorter than the "
                             f"{PREFIX.size}-byte bundle prefix; copy or push it again")
    _, version, _, hlen, dlen, digest = PREFIX.unpack_from(buf, 0)
    expected = PREFIX.size + hlen + dlen
    if len(buf) < expected:
        raise TruncatedError(f"{source} is truncated or damaged: {len(buf)} of the {expected} "
                             f"bytes its prefix declares are present; copy or push it again")
    body, signature = split_signature(buf)
    if len(body) > expected:
        raise CorruptBundleError(f"{source} has {len(body) - expected} unexpected bytes after "
                                 f"the end of the bundle")
    actual = hashlib.sha256(bytes(buf[:32]) + bytes(buf[PREFIX.size:expected])).digest()
    if actual != digest:
        raise ChecksumError(f"{source} failed its SHA-256 check (expected {digest.hex()[:16]}…, "
                            f"got {actual.hex()[:16]}…): the file is damaged; push or copy a good "
                            f"copy again")
    if version > FORMAT_VERSION:
        raise NewerFormatError(f"{source} uses bundle format {version}{_written_by(buf, hlen)}; "
                               f"this lanthorn {__version__} reads format {FORMAT_VERSION} and "
                               f"older: upgrade lanthorn on this device (pip install -U lanthorn)")
    if version < 1:
        raise CorruptBundleError(f"{source} has invalid bundle format version {version}")
    try:
        header = json.loads(bytes(buf[PREFIX.size:PREFIX.size + hlen]).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise CorruptBundleError(f"{source}: unreadable bundle header ({type(exc).__name__})") from None
    data_start = PREFIX.size + hlen
    try:
        check_header(header)
        bundle = _build(header, buf, data_start, dlen, source, digest.hex())
    except BundleError:
        raise
    except GraphError as exc:
        raise _graph_error(exc, source) from None
    except (KeyError, TypeError, ValueError, OverflowError, IndexError, MemoryError) as exc:
        raise CorruptBundleError(f"{source}: inconsistent bundle header ({type(exc).__name__}: "
                                 f"{str(exc)[:200]})") from None
    bundle.signature = signature
    bundle.build = header.get("build") or {}
    bundle.file_sha256 = hashlib.sha256(buf).hexdigest()
    return bundle


#: the bytes a build record takes in the header (padded with spaces to this, when it fits):
#: the file's size must not depend on the name of the CPU that built it
BUILD_RECORD_BYTES = 1024


def _sized_build(build: dict) -> dict:
    """``build`` with a ``pad`` of spaces that makes its JSON exactly BUILD_RECORD_BYTES."""
    rec = {k: v for k, v in build.items() if k != "pad"}
    size = len(json.dumps(rec, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                          allow_nan=False).encode("utf-8"))
    room = BUILD_RECORD_BYTES - size - len(',"pad":""')
    if room >= 0:
        rec["pad"] = " " * room
    return rec


#: the header fields a rebuild may change without changing the model (see the docstring)
BUILD_FIELDS = ("build", "written_by")


def reproducible_content(buf: bytes) -> bytes:
    """Exactly what a rebuild must reproduce: the prefix's magic and format version, the
    header with :data:`BUILD_FIELDS` removed (as canonical JSON), and the whole data
    section (arrays and twin). Not compared: the build record, ``written_by``, the internal
    digest (it covers the record) and a signature trailer (it signs that digest).
    Raises a BundleError for bytes that are not a bundle."""
    bundle_bytes, _ = split_signature(bytes(buf))
    _parse(bundle_bytes, "<rebuilt bundle>")   # a damaged file reproduces nothing
    _, version, _, hlen, dlen, _ = PREFIX.unpack_from(bundle_bytes, 0)
    header = json.loads(bundle_bytes[PREFIX.size:PREFIX.size + hlen].decode("utf-8"))
    for key in BUILD_FIELDS:
        header.pop(key, None)
    canonical = json.dumps(header, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return b"".join([BUNDLE_MAGIC, struct.pack("<I", version), canonical.encode("utf-8"),
                     bundle_bytes[PREFIX.size + hlen:PREFIX.size + hlen + dlen]])


def content_sha256(buf: bytes) -> str:
    """The SHA-256 of :func:`reproducible_content`: one name for a model that every CPU
    rebuilding it gives (what a committed report may quote for a file it does not ship)."""
    return hashlib.sha256(reproducible_content(buf)).hexdigest()


def keep_if_reproduced(new: str | os.PathLike, committed: str | os.PathLike) -> str:
    """Put the freshly built bundle ``new`` in place of ``committed``, unless ``committed``
    already holds the same model: then ``new`` is deleted and the file left as it is.
    Returns what happened: "identical" (byte for byte), "reproduced" (every byte but the
    build record, see :func:`reproducible_content`), or "written"."""
    new, committed = Path(new), Path(committed)
    if committed.exists():
        fresh, old = new.read_bytes(), committed.read_bytes()
        try:
            same = fresh == old or reproducible_content(fresh) == reproducible_content(old)
        except BundleError:   # the committed file is damaged or not a bundle: replace it
            same = False
        if same:
            new.unlink()
            return "identical" if fresh == old else "reproduced"
    os.replace(new, committed)
    return "written"


def _written_by(buf, hlen) -> str:
    try:
        h = json.loads(bytes(buf[PREFIX.size:PREFIX.size + hlen]).decode("utf-8"))
        return f", written by {h['written_by']}"
    except Exception:  # a newer format may have changed the header; the version says enough
        return ""


def _build(header: dict, buf, data_start: int, dlen: int, source: str, sha: str) -> Bundle:
    arrays = _read_arrays(header["arrays"], buf, data_start, dlen, source)
    graph = _read_graph(header["graph"], arrays, source)
    try:
        graph.validate()
    except GraphError as exc:
        raise _graph_error(exc, source) from None
    spec = InputSpec.from_json(header["input_spec"])
    first = graph.tensors[graph.inputs[0]]
    if len(graph.inputs) == 1 and math.prod(spec.shape) != first.size:
        raise ShapeMismatchError(f"{source}: input_spec shape {spec.shape} does not hold the "
                                 f"model's input {first.shape}")
    out = graph.tensors[graph.outputs[0]]
    labels = tuple(header["labels"])
    if labels and (len(graph.outputs) != 1 or len(labels) != out.shape[-1]):
        raise ShapeMismatchError(f"{source}: {len(labels)} labels for an output of shape "
                                 f"{out.shape}")
    twin = None
    if header.get("twin"):
        t = header["twin"]
        if t["offset"] + t["nbytes"] > dlen:
            raise CorruptBundleError(f"{source}: the ONNX twin lies outside the data")
        twin = bytes(buf[data_start + t["offset"]:data_start + t["offset"] + t["nbytes"]])
    io = header.get("onnx_io") or {}
    _check_io(io, graph, source)
    lexicon = _read_lexicon(header.get("lexicon"), buf, data_start, dlen, source)
    return Bundle(graph, spec, labels, header.get("card", {}), header.get("provenance", {}),
                  twin, sha, io=io, lexicon=lexicon)


def _read_arrays(metas: list, buf, data_start: int, dlen: int, source: str) -> dict:
    """The header's arrays as numpy views of ``buf`` (native byte order), after checking
    each lies inside the data, aligned, with the bytes its shape needs, none overlapping."""
    arrays = {}
    spans = []
    for meta in metas:
        dtype = _DTYPES[meta["dtype"]]
        shape = tuple(meta["shape"])
        count = math.prod(shape)
        nbytes = count * np.dtype(dtype).itemsize
        if nbytes != meta["nbytes"]:
            raise ShapeMismatchError(f"{source}: array {meta['name']!r} declares shape {shape} "
                                     f"({nbytes} bytes) but stores {meta['nbytes']} bytes")
        if meta["offset"] % ALIGN or meta["offset"] + nbytes > dlen:
            raise CorruptBundleError(f"{source}: array {meta['name']!r} lies outside the data "
                                     f"or off its {ALIGN}-byte alignment")
        if meta["name"] in arrays:
            raise CorruptBundleError(f"{source}: two arrays are named {meta['name']!r}")
        spans.append((meta["offset"], meta["offset"] + nbytes, meta["name"]))
        a = np.frombuffer(buf, dtype=dtype, count=count, offset=data_start + meta["offset"])
        arrays[meta["name"]] = a.reshape(shape).astype(np.dtype(dtype).newbyteorder("="),
                                                       copy=False)
    spans.sort()
    for (_, end, first), (start, _, second) in zip(spans, spans[1:], strict=False):  # neighbours
        if start < end:
            raise CorruptBundleError(f"{source}: arrays {first!r} and {second!r} overlap")
    return arrays


def _read_graph(gj: dict, arrays: dict, source: str) -> Graph:
    """The header's graph (not yet validated), its layers pointing at ``arrays``."""
    tensors = {}
    for tj in gj["tensors"]:
        t = Tensor.from_json(tj)
        if t.name in tensors:
            raise CorruptBundleError(f"{source}: two tensors are named {t.name!r}")
        tensors[t.name] = t
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
    return Graph(tensors, layers, tuple(gj["inputs"]), tuple(gj["outputs"]))


LAYOUTS = ("nchw", "nct", "plain")


def from_onnx_layout(x: np.ndarray, layout: str, shape) -> np.ndarray:
    """An array in ONNX's shape and layout -> the graph tensor's (``shape``) layout:
    ``[1, C, H, W]`` -> ``(H, W, C)``, ``[1, C, T]`` -> ``(1, T, C)``, ``[1, ...]`` -> ``(...)``.
    A view where it can be (the engines copy their input anyway)."""
    if layout == "nchw":
        x = x[0].transpose(1, 2, 0)
    elif layout == "nct":
        x = x[0].T[None]
    return x.reshape(shape)


def to_onnx_layout(y: np.ndarray, layout: str, onnx_shape) -> np.ndarray:
    """The inverse of :func:`from_onnx_layout`: a graph tensor in ONNX's shape and layout."""
    if layout == "nchw":
        y = y.transpose(2, 0, 1)[None]
    elif layout == "nct":
        y = y[0].T[None]
    return np.ascontiguousarray(y).reshape(onnx_shape)


def _check_io(io: dict, graph: Graph, source: str) -> None:
    if not io:
        return
    bad = CorruptBundleError(f"{source}: invalid onnx_io (the imported model's ONNX inputs and "
                             f"outputs)")
    if not isinstance(io, dict) or set(io) != {"inputs", "outputs"}:
        raise bad
    for key, names in (("inputs", graph.inputs), ("outputs", graph.outputs)):
        entries = io[key]
        if not isinstance(entries, list) or [e.get("tensor") if isinstance(e, dict) else None
                                             for e in entries] != list(names):
            raise bad
        for e in entries:
            t = graph.tensors[e["tensor"]]
            shape = e.get("shape")
            if not (isinstance(e.get("name"), str) and e["name"] and e.get("layout") in LAYOUTS
                    and isinstance(shape, list) and all(is_int(d) and d >= 1 for d in shape)
                    and math.prod(shape) == t.size):
                raise bad
            if e["layout"] == "nchw" and not (len(shape) == 4 and shape[0] == 1 and len(t.shape) == 3
                                              and tuple(shape[2:]) + (shape[1],) == t.shape):
                raise bad
            if e["layout"] == "nct" and not (len(shape) == 3 and shape[0] == 1
                                             and t.shape == (1, shape[2], shape[1])):
                raise bad


# --------------------------------------------------------------------------- header check

MAX_RATE_HZ = 10_000.0
MIN_RATE_HZ = 0.1
MAX_WINDOW = 100_000
MAX_NAMES = 4096
MAX_TEXT = 4096


class _Bad(CorruptBundleError):
    pass


def _need(cond, what: str) -> None:
    if not cond:
        raise _Bad(f"invalid bundle header: {what}")


def _is_text_list(v, max_len: int = MAX_NAMES) -> bool:
    return isinstance(v, list) and len(v) <= max_len and all(
        isinstance(x, str) and 0 < len(x) <= 256 for x in v)


def _is_index_list(v) -> TypeGuard[list[int]]:
    return isinstance(v, list) and all(is_int(x) and x >= 1 for x in v)


def check_header(h) -> None:
    """Every field of a bundle header typed and sane, before anything reads it: the
    device loop sizes buffers from the input spec and the behaviour reads the card, so a
    poisoned header (a negative or 1e12 Hz rate, a rate written as text, a card whose
    ``temperament`` is a list) must be refused here, not crash the piece later."""
    _need(isinstance(h, dict), "not a JSON object")
    for key, kind in (("graph", dict), ("input_spec", dict), ("labels", list), ("arrays", list)):
        _need(isinstance(h.get(key), kind), f"{key} must be a JSON {kind.__name__}")
    for key in ("card", "provenance"):
        _need(isinstance(h.get(key, {}), dict), f"{key} must be a JSON object")
    _need(h.get("format", FORMAT_VERSION) == FORMAT_VERSION, "format field differs from the prefix")
    _need(isinstance(h.get("written_by", ""), str), "written_by must be text")
    _need(isinstance(h.get("onnx_io", {}), dict), "onnx_io must be an object")
    _need(isinstance(h.get("build", {}), dict), "build must be an object")
    g = h["graph"]
    for key in ("tensors", "layers", "inputs", "outputs"):
        _need(isinstance(g.get(key), list), f"graph.{key} must be a list")
    _need(_is_text_list(g["inputs"], 16) and _is_text_list(g["outputs"], 16),
          "graph inputs/outputs must be lists of tensor names")
    _need(all(isinstance(t, dict) for t in g["tensors"]), "graph.tensors must hold objects")
    for lj in g["layers"]:
        _need(isinstance(lj, dict) and isinstance(lj.get("op"), str)
              and isinstance(lj.get("name"), str) and lj["name"], "a layer needs an op and a name")
        where = f"layer {lj['name'][:40]!r}"
        _need(_is_text_list(lj.get("inputs"), 16) and _is_text_list(lj.get("outputs"), 1),
              f"{where}: inputs must be up to 16 tensor names and outputs exactly one")
        _need(len(lj["outputs"]) == 1, f"{where} must have exactly one output")
        _need(isinstance(lj.get("params", {}), dict), f"{where}: params must be an object")
        arrays = lj.get("arrays", {})
        _need(isinstance(arrays, dict) and all(isinstance(v, str) for v in arrays.values()),
              f"{where}: arrays must map names to array names")
    for meta in h["arrays"]:
        _need(isinstance(meta, dict) and isinstance(meta.get("name"), str)
              and meta.get("dtype") in _DTYPES and _is_index_list(meta.get("shape"))
              and len(meta["shape"]) <= 6 and is_int(meta.get("offset")) and meta["offset"] >= 0
              and is_int(meta.get("nbytes")) and meta["nbytes"] >= 0,
              f"array entry {str(meta)[:60]} must have a name, a known dtype, a shape of "
              f"positive integers, and non-negative offset and nbytes")
    twin = h.get("twin")
    _need(twin is None or (isinstance(twin, dict) and is_int(twin.get("offset"))
                           and is_int(twin.get("nbytes")) and twin["offset"] >= 0
                           and twin["nbytes"] >= 0), "twin must be null or {offset, nbytes}")
    lex = h.get("lexicon")
    _need(lex is None or (isinstance(lex, dict) and is_int(lex.get("offset"))
                          and is_int(lex.get("nbytes")) and lex["offset"] >= 0
                          and lex["nbytes"] > 0 and is_int(lex.get("version"))
                          and is_int(lex.get("words")) and isinstance(lex.get("sha256"), str)),
          "lexicon must be null or {format, version, offset, nbytes, words, sha256}")
    check_input_spec(h["input_spec"])
    _need(_is_text_list(h["labels"]), "labels must be a list of non-empty names")
    check_card(h.get("card", {}))


def check_input_spec(s: dict) -> None:
    shape = s.get("shape")
    _need(_is_index_list(shape) and 1 <= len(shape) <= 6 and math.prod(shape) <= 1 << 24,
          f"input_spec.shape must be 1-6 positive integers, got {str(shape)[:40]}")
    assert isinstance(shape, list)  # _need raised otherwise
    _need(s.get("dtype", "float32") in ("float32", "int32"),
          "input_spec.dtype must be float32 or int32")
    ch = s.get("channels", [])
    _need(_is_text_list(ch, 1024), "input_spec.channels must be a list of channel names")
    rate = s.get("rate_hz")
    _need(rate is None or (is_number(rate) and math.isfinite(rate)
                           and MIN_RATE_HZ <= rate <= MAX_RATE_HZ),
          f"input_spec.rate_hz must be a number of Hz in [{MIN_RATE_HZ:g}, {MAX_RATE_HZ:g}], "
          f"got {str(rate)[:40]}")
    window = s.get("window")
    _need(window is None or (is_int(window) and 1 <= window <= MAX_WINDOW),
          f"input_spec.window must be an integer in [1, {MAX_WINDOW}], got {str(window)[:40]}")
    _need(window is None or window == shape[0],
          f"input_spec.window {window} differs from the first axis of its shape {shape}")
    _need(not ch or len(ch) == shape[-1],
          f"input_spec has {len(ch)} channel names for {shape[-1]} channels")


def check_card(card: dict) -> None:
    """Typed model card: known text fields are text, known numbers numbers, and the
    behaviour's ``temperament`` section has the shape behaviour.temperament_for reads."""
    for key in ("name", "description", "task", "architecture", "intended_use", "limitations"):
        _need(key not in card or (isinstance(card[key], str) and len(card[key]) <= MAX_TEXT),
              f"card.{key} must be text")
    for key in ("macs", "accuracy_float", "accuracy_int8"):
        _need(key not in card or card[key] is None or
              (is_number(card[key]) and math.isfinite(card[key])), f"card.{key} must be a number")
    temp = card.get("temperament")
    if temp is None:
        return
    _need(isinstance(temp, dict), "card.temperament must be an object")
    moods = temp.get("gesture_moods", {})
    _need(isinstance(moods, dict) and all(
        isinstance(v, dict) and all(isinstance(m, str) and is_number(w) and math.isfinite(w)
                                    for m, w in v.items())
        for v in moods.values()), "card.temperament.gesture_moods must map each label to "
          "{mood: weight}")
    touch = temp.get("touch_gestures", [])
    _need(_is_text_list(touch), "card.temperament.touch_gestures must be a list of labels")


def _graph_error(exc: GraphError, source: str) -> BundleError:
    msg = f"{source}: {exc}"
    text = str(exc)
    if "unknown operator" in text:
        return UnknownOperatorError(msg)
    if "shape mismatch" in text or "cannot" in text:
        return ShapeMismatchError(msg)
    return CorruptBundleError(msg)
