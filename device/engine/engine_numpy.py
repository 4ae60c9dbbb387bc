"""The numpy backend: the reference engine's integers, planned for speed.

:class:`NumpyEngine` is the :class:`~lanthorn.device.engine.engine_ref.ReferenceEngine` with the
faster planners of :mod:`lanthorn.device.engine.kernels_numpy` (which says where the time went
and what they do instead), computing exactly the same int8 outputs (tested element for
element against the reference under hypothesis). What is the engine's own: passing a
dense layer's output to the next dense layer as floats (:meth:`NumpyEngine._float_handoffs`)
and :meth:`NumpyEngine.run_in_place`, the runtime's copy-free float call.
"""
from __future__ import annotations

import numpy as np

from lanthorn.device.engine import kernels_numpy
from lanthorn.device.engine.engine_ref import ReferenceEngine
from lanthorn.device.engine.graph import raw_outputs
from lanthorn.device.engine.kernels_numpy import F32, fold_input_zero_point


class NumpyEngine(ReferenceEngine):
    """The ``numpy`` backend. Same protocol and results as ReferenceEngine, faster."""

    backend = "numpy"
    planners = kernels_numpy.PLANNERS

    def __init__(self, graph):
        #: {tensor name: the consuming dense layer's [x | 1] float32 input buffer}
        self.handoff = self._float_handoffs(graph)
        super().__init__(graph)

    @staticmethod
    def _float_handoffs(graph) -> dict[str, np.ndarray]:
        """Vectors passed from one dense layer to the next as floats.

        A dense layer's first and last calls are converting its int8 input to floats and
        its requantized floats to int8. Between two dense layers, when the tensor has no
        other reader and is not an output, the producer writes its (integer-valued)
        floats straight into the consumer's input buffer instead: two calls fewer, same
        values. Only where the consumer accumulates in float32 (see acc_dtype).
        Returns {tensor name: the consumer's [x | 1] float32 buffer}."""
        readers: dict[str, int] = {}
        for layer in graph.layers:
            for name in layer.inputs:
                readers[name] = readers.get(name, 0) + 1
        producer = {o: layer for layer in graph.layers for o in layer.outputs}
        keep = set(raw_outputs(graph)) | set(graph.outputs) | set(graph.inputs)
        out: dict[str, np.ndarray] = {}
        for layer in graph.layers:
            if not layer.inputs:
                continue
            name = layer.inputs[0]
            src = producer.get(name)
            t = graph.tensors.get(name)
            if (layer.op != "dense" or src is None or src.op != "dense" or name in keep
                    or readers.get(name) != 1 or t is None or len(t.shape) != 1):
                continue
            w, _, dt = fold_input_zero_point(layer.arrays["weight"], layer.arrays["bias"],
                                             t.zero_point)
            if dt == F32:
                out[name] = np.ones(w.shape[1] + 1, F32)
        return out

    @property
    def input_buffers(self) -> list[np.ndarray]:
        """The int8 (or index) arrays :meth:`run_in_place` reads: write inputs here."""
        return [self.buf[name] for name in self.graph.inputs]

    def run_in_place(self) -> list[np.ndarray]:
        """Run on what is in :attr:`input_buffers`; the raw outputs are returned as the
        engine's own arrays (no copy: valid until the next run). The runtime's float call
        uses this; ``run_quantized`` is the copying protocol every engine has."""
        for step in self.steps:
            step()
        return [self.buf[name] for name in self.raw_outputs]

    def run_quantized(self, inputs) -> list[np.ndarray]:
        buf = self.buf
        for name, x in zip(self.graph.inputs, inputs, strict=True):
            np.copyto(buf[name], x, casting="unsafe")
        for step in self.steps:
            step()
        return [buf[name].copy() for name in self.raw_outputs]
