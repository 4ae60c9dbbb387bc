"""Load a bundle and run it: the one entry point the device loop, the tools and the tests use.

``load(path_or_bundle, backend="auto")`` picks the engine. "auto" prefers the C kernel
(``lanthorn.device.engine_c``, built as an optional extension) and falls back to the numpy
reference with ONE warning when the extension is not built; ``LANTHORN_BACKEND=numpy``
(or ``=c``) in the environment overrides "auto"; asking for "c" when it is unavailable is a
:class:`~lanthorn.errors.UserError` that says how to build it.

The C engine must provide ``engine_c.CEngine(graph)`` following the engine protocol
described in :mod:`lanthorn.device.engine_ref` (``backend``, ``run_quantized(inputs)``).
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

from lanthorn.device import int8
from lanthorn.device.bundle import Bundle, InputSpec, read_bundle
from lanthorn.device.engine_ref import ReferenceEngine
from lanthorn.device.graph import raw_outputs, softmax_f32
from lanthorn.errors import UserError

BACKENDS = ("auto", "numpy", "c")
_warned_fallback = False


class InputError(UserError):
    """The input given to a model has the wrong shape, dtype or values."""


def _c_engine(graph):
    """The C engine for ``graph``, or raise ImportError when the extension is not built."""
    from lanthorn.device import engine_c  # noqa: PLC0415 (optional, built from firmware/)
    return engine_c.CEngine(graph)


def _make_engine(graph, backend: str):
    global _warned_fallback
    if backend not in BACKENDS:
        raise UserError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if backend == "auto":
        env = os.environ.get("LANTHORN_BACKEND", "").strip().lower()
        if env and env not in BACKENDS:
            raise UserError(f"LANTHORN_BACKEND={env!r} is not one of {', '.join(BACKENDS)}")
        backend = env or "auto"
    if backend == "numpy":
        return ReferenceEngine(graph)
    try:
        return _c_engine(graph)
    except ImportError as exc:
        if backend == "c":
            raise UserError(f"the C kernel is not available ({exc}); build it with "
                            f"'pip install -e .' on a machine with a C compiler, or use "
                            f"backend='numpy'") from None
        if not _warned_fallback:
            _warned_fallback = True
            warnings.warn("lanthorn: C kernel extension not built; using the numpy reference "
                          "engine (slower, same results)", RuntimeWarning, stacklevel=3)
        return ReferenceEngine(graph)


class Model:
    """A loaded bundle bound to an engine. Call it with float input, or use run_quantized."""

    def __init__(self, bundle: Bundle, backend: str = "auto"):
        self.bundle = bundle
        g = bundle.graph
        self.graph = g
        self._engine = _make_engine(g, backend)
        self.backend: str = self._engine.backend
        self._inputs = [g.tensors[n] for n in g.inputs]
        self._raw = [g.tensors[n] for n in raw_outputs(g)]
        self._softmax = [raw != out for raw, out in zip(raw_outputs(g), g.outputs)]
        self._qbuf = [np.zeros(t.shape, dtype=t.dtype) for t in self._inputs]

    # metadata
    @property
    def input_spec(self) -> InputSpec:
        return self.bundle.input_spec

    @property
    def labels(self) -> tuple[str, ...]:
        return self.bundle.labels

    @property
    def card(self) -> dict:
        return self.bundle.card

    @property
    def provenance(self) -> dict:
        return self.bundle.provenance

    @property
    def sha256(self) -> str | None:
        return self.bundle.sha256

    def __repr__(self):
        name = self.card.get("name", "model")
        return f"<lanthorn Model {name!r} backend={self.backend} sha256={str(self.sha256)[:12]}>"

    # running
    def _check(self, xs, quantized: bool):
        if len(xs) != len(self._inputs):
            raise InputError(f"model takes {len(self._inputs)} input(s), got {len(xs)}")
        out = []
        for x, t in zip(xs, self._inputs):
            x = np.asarray(x)
            if x.shape != t.shape and x.size == t.size and (
                    x.shape in (self.input_spec.shape, (1,) + tuple(self.input_spec.shape))
                    or x.shape == (1,) + t.shape):
                x = x.reshape(t.shape)
            if x.shape != t.shape:
                want = self.input_spec.shape if not quantized else t.shape
                raise InputError(f"input {t.name!r} must have shape {tuple(want)}, got {x.shape}")
            if t.dtype == "int32":
                if x.dtype.kind not in "iu":
                    raise InputError(f"input {t.name!r} takes integer indices, got {x.dtype}")
            elif quantized and x.dtype != np.int8:
                raise InputError(f"run_quantized takes int8 input, got {x.dtype} "
                                 f"(use model(x) for float input)")
            elif not quantized and x.dtype.kind not in "fiu":
                raise InputError(f"input {t.name!r} must be numeric, got {x.dtype}")
            elif not quantized and x.dtype.kind == "f" and not np.all(np.isfinite(x)):
                raise InputError(f"input {t.name!r} contains NaN or infinity")
            out.append(x)
        return out

    def _run(self, xq):
        try:
            return self._engine.run_quantized(xq)
        except IndexError as exc:
            raise InputError(f"bad input: {exc}") from None

    def run_quantized(self, *xq):
        """int8 (or int32 index) inputs → raw int8 outputs (before any final softmax).
        One output → an array; several → a tuple."""
        outs = self._run(self._check(xq, quantized=True))
        return outs[0] if len(outs) == 1 else tuple(outs)

    def __call__(self, *xs):
        """float32 inputs shaped as ``input_spec`` → dequantized float32 outputs (softmax
        applied if the model ends in one)."""
        xs = self._check(xs, quantized=False)
        for x, t, q in zip(xs, self._inputs, self._qbuf):
            if t.dtype == "int32":
                np.copyto(q, x, casting="unsafe")
            else:
                int8.quantize(x.astype(np.float32, copy=False), t.scale, t.zero_point, out=q)
        outs = []
        for raw, t, sm in zip(self._run(self._qbuf), self._raw, self._softmax):
            outs.append(softmax_f32(raw, t.scale, t.zero_point) if sm
                        else int8.dequantize(raw, t.scale, t.zero_point))
        return outs[0] if len(outs) == 1 else tuple(outs)


def load(source: str | os.PathLike | Bundle, backend: str = "auto") -> Model:
    """Load a ``.lanthorn`` file (or an in-memory Bundle) and bind it to an engine."""
    bundle = source if isinstance(source, Bundle) else read_bundle(Path(source))
    return Model(bundle, backend)
