"""The numpy reference engine: runs a Graph with the reference kernels.

The arithmetic lives in :mod:`lanthorn.device.engine.int8` and the per-operator planning in
:mod:`lanthorn.device.engine.kernels_ref`; this class is what strings them together: it plans
every layer once at load (so an inference is a short, fixed list of numpy calls writing
into preallocated arrays) and runs the steps.

Engine protocol (shared with the C kernel's ``engine_c.CEngine``): construct with a
:class:`~lanthorn.device.engine.graph.Graph`; ``backend`` names it; ``run_quantized(inputs)``
takes a list of arrays shaped like the graph inputs (int8, or int32 indices) and returns a
list of int8 arrays for :func:`~lanthorn.device.engine.graph.raw_outputs` (the final float
softmax, if any, is the runtime's job).
"""
from __future__ import annotations

import numpy as np

from lanthorn.device.engine import kernels_ref
from lanthorn.device.engine.graph import Graph, Layer, raw_outputs


class ReferenceEngine:
    """Runs a Graph with numpy. Not thread-safe (buffers are shared between calls)."""

    backend = "reference"
    #: op -> planner (see kernels_ref); a faster engine overrides some of them
    planners = kernels_ref.PLANNERS

    def __init__(self, graph: Graph):
        graph.validate()
        self.graph = graph
        self.raw_outputs = raw_outputs(graph)
        self.buf: dict[str, np.ndarray] = {}
        for name in graph.inputs:
            t = graph.tensors[name]
            self.buf[name] = np.zeros(t.shape, dtype=t.dtype)
        self.steps = []
        self.step_layers: list[str] = []   # the layer each step runs (for profiling)
        for layer in graph.layers:
            if layer.op == "softmax" and layer.outputs[0] in graph.outputs:
                continue  # final float softmax: applied by the runtime
            self.steps.append(self.planners[layer.op](self, layer))
            self.step_layers.append(layer.name)

    def run_quantized(self, inputs) -> list[np.ndarray]:
        for name, x in zip(self.graph.inputs, inputs, strict=True):
            np.copyto(self.buf[name], x, casting="unsafe")
        for step in self.steps:
            step()
        return [self.buf[name].copy() for name in self.raw_outputs]

    # what a planner asks of the engine (kernels_ref's module docstring)
    def output_buffer(self, layer: Layer) -> np.ndarray:
        """The zeroed array of ``layer``'s output, registered under its tensor name."""
        t = self.graph.tensors[layer.outputs[0]]
        a = np.zeros(t.shape, dtype=t.dtype)
        self.buf[t.name] = a
        return a

    def quant(self, name: str) -> tuple[float, int]:
        """``(scale, zero_point)`` of tensor ``name``."""
        t = self.graph.tensors[name]
        return t.scale, t.zero_point
