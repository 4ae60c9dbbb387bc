"""The two small facts about ONNX nodes and shapes that the QDQ importer and its operator
handlers both need.

They live here, below both, so the dependencies run one way: ``qdq_import`` (the core)
imports the operator registry ``qdq_ops``, the handler modules ``qdq_ops_*`` import only
this module, and nothing here imports back up.
"""
from __future__ import annotations


def node_attrs(node) -> dict:
    """A node's attributes as plain Python values, keyed by name."""
    from onnx import helper
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def our_shape(shape, layout):
    """The lanthorn (channels-last, batch dropped) shape of an ONNX ``shape`` in ``layout``:
    ``[1, C, H, W]`` -> ``(H, W, C)``, ``[1, C, T]`` -> ``(1, T, C)``, ``[1, K]`` -> ``(K,)``."""
    shape = tuple(int(d) for d in shape)
    if layout == "nchw":
        return (shape[2], shape[3], shape[1])
    if layout == "nct":
        return (1, shape[2], shape[1])
    return shape[1:] if len(shape) >= 2 else shape
