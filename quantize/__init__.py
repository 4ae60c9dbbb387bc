"""lanthorn.quantize: calibration, pruning, int8 quantization, bundle writing and reports."""
