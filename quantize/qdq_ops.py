"""Which ONNX operators lanthorn imports, and the handler that converts each: the one place
that says so.

A handler is a plain function ``handler(imp, node)`` over the importer core
(:class:`lanthorn.quantize.qdq_import._Importer`); ``_Importer.run`` looks every node up
here and refuses the ones that are missing. The handlers live in small modules by kind:
the quantization boundaries (``qdq_ops_quant``), int8 arithmetic (``qdq_ops_compute``),
moving values (``qdq_ops_layout``) and tables or float (``qdq_ops_tables``).
"""
from __future__ import annotations

from lanthorn.quantize import qdq_ops_compute as compute
from lanthorn.quantize import qdq_ops_layout as layout
from lanthorn.quantize import qdq_ops_quant as quant
from lanthorn.quantize import qdq_ops_tables as tables

#: elementwise activations: each becomes a 256-entry table onnxruntime computes itself
UNARY_LUT_OPS = {"Sigmoid", "Tanh", "Relu", "Clip", "LeakyRelu", "HardSigmoid", "HardSwish",
                 "Elu", "Selu", "Softsign", "Softplus", "Abs", "Neg", "Identity", "Exp", "Erf",
                 "Sqrt", "Reciprocal", "Mish", "Gelu"}

OPS = {
    "QuantizeLinear": quant.quantize_linear,
    "DequantizeLinear": quant.dequantize_linear,
    "Conv": compute.conv,
    "Gemm": compute.gemm,
    "MatMul": compute.matmul,
    "MaxPool": compute.maxpool,
    "AveragePool": compute.averagepool,
    "GlobalAveragePool": compute.globalaveragepool,
    "Add": compute.add,
    "Mul": compute.mul,
    "Concat": compute.concat,
    "Flatten": layout.flatten,
    "Reshape": layout.reshape,
    "Transpose": layout.transpose,
    "Gather": layout.gather,
    "Softmax": tables.softmax,
    "BatchNormalization": tables.batchnorm,
    **{op: tables.unary_lut for op in sorted(UNARY_LUT_OPS)},
}
