"""Calibration and evaluation data for quantization, and the calibration methods.

onnxruntime's ``quantize_static`` does the calibration itself (it runs the float model on
our windows and picks each activation's int8 range); this module only decides *which*
windows it sees and *which* of its methods picks the range:

* ``minmax``: the full observed range. Never clips, so a rare spike costs resolution
  everywhere else.
* ``percentile``: clips the top 0.01 % of magnitudes (onnxruntime's default 99.999).
  Good when a few windows are wild (a bumped sensor).
* ``entropy``: the range whose int8 histogram loses the least information (KL
  divergence), as TensorRT does. Usually best for ReLU networks with long tails.

The data are the same held-out split ``lanthorn train`` used (the data spec travels in the
ONNX metadata, :mod:`lanthorn.quantize.dataspec`): calibration windows come from the
*training* sessions, accuracy is measured on the *held-out test* sessions, so quantization
is never tuned on what it is judged by. A foreign model (no data spec) gets the default
spec with its own window length. Instead of a dataset folder, ``data`` may be an ``.npz``
file with ``x`` (inputs, one per row) and optionally ``y``, ``x_test``, ``y_test`` and
``labels``: that is how non-sensor models (images, tokens) are quantized.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lanthorn.errors import UserError
from lanthorn.words import plural

METHODS = ("minmax", "percentile", "entropy")

#: Windows handed to the calibrator. Enough for stable ranges on a tiny model; entropy and
#: percentile keep histograms of every activation, so more mostly costs time.
DEFAULT_CALIBRATION_WINDOWS = 256


class CalibrationError(UserError):
    """The calibration data or method cannot be used with this model."""


def ort_method(name: str):
    """onnxruntime's CalibrationMethod for one of :data:`METHODS`."""
    from onnxruntime.quantization import CalibrationMethod
    table = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
             "entropy": CalibrationMethod.Entropy}
    if name not in table:
        raise CalibrationError(f"unknown calibration method {name!r}; choose "
                               f"{', '.join(METHODS)}")
    return table[name]


@dataclass
class ModelData:
    """Inputs for one model, already in its input layout (one row = one batch-1 input)."""

    input_name: str
    calib_x: np.ndarray             # [N, ...] float32, from training sessions
    test_x: np.ndarray              # [M, ...] float32, held out
    test_y: np.ndarray | None       # [M] int64 or None (no labels: accuracy not measured)
    labels: tuple[str, ...] = ()
    spec: object = None             # DataSpec for dataset folders
    channels: tuple[str, ...] = ()
    rate_hz: float | None = None
    window: int | None = None
    provenance: dict = field(default_factory=dict)
    held_out: str = "test"          # which split accuracy is measured on
    splits: object = None           # dataspec.Splits (for fine-tuning), None for .npz
    description: str = ""
    input_dtype: type = np.float32  # int64 for token models (Gather of an embedding)

    def feeds(self, x: np.ndarray):
        """One {input: batch-1 array} per row, as onnxruntime's calibrator wants them."""
        for row in x:
            yield {self.input_name: row[None].astype(self.input_dtype, copy=False)}


def model_input(model) -> tuple[str, tuple[int, ...]]:
    """The model's single float input and its static shape (checked by quantizer first)."""
    init = {t.name for t in model.graph.initializer}
    ins = [i for i in model.graph.input if i.name not in init]
    if len(ins) != 1:
        raise CalibrationError(f"the model has {len(ins)} inputs; lanthorn quantize calibrates "
                               f"models with exactly one input")
    dims = tuple(d.dim_value for d in ins[0].type.tensor_type.shape.dim)
    return ins[0].name, dims


def _evenly(n_total: int, n: int) -> np.ndarray:
    """``n`` indices spread evenly over ``range(n_total)`` (deterministic, covers every session)."""
    if n_total <= n:
        return np.arange(n_total)
    return np.unique(np.linspace(0, n_total - 1, n).round().astype(np.int64))


def provenance_summary(dataset, windows) -> dict:
    """What went into the model, per source: who, consent, licence, share of windows."""
    counts: dict[str, int] = {}
    for key in windows.sessions.tolist():
        src = key.split("/", 1)[0]
        counts[src] = counts.get(src, 0) + 1
    weighted = {s: counts.get(s, 0) * dataset.sources[s].weight for s in dataset.sources}
    total = sum(weighted.values()) or 1.0
    sources = [{"source": name, "author": s.author, "consent": s.consent, "licence": s.licence,
                "date": s.date, "device": s.device, "notes": s.notes,
                "synthetic": bool(s.synthetic), "weight": float(s.weight),
                "windows": counts.get(name, 0), "share": round(weighted[name] / total, 4)}
               for name, s in sorted(dataset.sources.items())]
    return {"dataset": Path(dataset.path).name, "rate_hz": dataset.rate_hz,
            "labels": list(dataset.labels), "sources": sources,
            "synthetic_share": round(sum(v["share"] for v in sources if v["synthetic"]), 4)}


def load_model_data(data, model, *, n_calib: int = DEFAULT_CALIBRATION_WINDOWS,
                    spec=None) -> ModelData:
    """Calibration and held-out inputs for ``model`` from a dataset folder or an .npz file."""
    path = Path(data)
    name, shape = model_input(model)
    if path.is_file() and path.suffix == ".npz":
        return _from_npz(path, model, name, shape, n_calib)
    if not path.is_dir():
        raise CalibrationError(f"{path}: no such dataset folder (or .npz file of inputs)")
    return _from_dataset(path, model, name, shape, n_calib, spec)


def _from_dataset(path, model, name, shape, n_calib, spec) -> ModelData:
    from lanthorn.quantize.dataspec import DataSpec, prepare, spec_from_onnx
    if len(shape) != 3:
        raise CalibrationError(f"the model's input has shape {list(shape)}; a sensor dataset "
                               f"feeds windows [1, channels, time]. Export the model with that "
                               f"input, or pass the inputs as an .npz file")
    spec = spec or spec_from_onnx(model) or DataSpec(window=shape[2])
    if spec.window != shape[2]:
        raise CalibrationError(f"the model's data spec says window {spec.window} but its input "
                               f"is {shape[2]} frames long")
    splits = prepare(path, spec)
    C = len(splits.spec.channels)
    if shape[1] != C:
        raise CalibrationError(f"the model reads {shape[1]} channels but the dataset {path} has "
                               f"{C} ({', '.join(splits.spec.channels)})")
    held, which = (splits.test, "test") if len(splits.test) else (splits.val, "validation")
    calib = splits.train.X[_evenly(len(splits.train), n_calib)]
    return ModelData(name, calib, held.X, held.y, tuple(splits.spec.labels), splits.spec,
                     tuple(splits.spec.channels), splits.spec.rate_hz, splits.spec.window,
                     provenance_summary(splits.dataset, splits.train), which, splits,
                     f"{path.name} ({len(splits.train)} training windows from "
                     f"{plural(len(splits.sessions['train']), 'session')}, {len(held)} held-out "
                     f"{which} windows from "
                     f"{plural(len(splits.sessions['test' if which == 'test' else 'val']), 'session')})")


def _from_npz(path, model, name, shape, n_calib) -> ModelData:
    try:
        z = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise CalibrationError(f"{path}: not a readable .npz file ({exc})") from None
    if "x" not in z:
        raise CalibrationError(f"{path}: an .npz of inputs needs an array 'x' (one input per "
                               f"row); it has {', '.join(z.files) or 'nothing'}")
    want = tuple(shape[1:])
    from onnx import TensorProto
    init = {t.name for t in model.graph.initializer}
    vi = next(i for i in model.graph.input if i.name not in init)
    dtype = np.int64 if vi.type.tensor_type.elem_type == TensorProto.INT64 else np.float32

    def rows(key):
        a = np.asarray(z[key])
        if dtype is np.int64 and a.dtype.kind not in "iu":
            raise CalibrationError(f"{path}: the model reads integer indices but '{key}' "
                                   f"holds {a.dtype} values")
        a = a.astype(dtype)
        if a.shape[1:] == (1,) + want:
            a = a.reshape((len(a),) + want)
        if a.shape[1:] != want:
            raise CalibrationError(f"{path}: '{key}' has rows of shape {list(a.shape[1:])}, the "
                                   f"model's input is {list(shape)}")
        if dtype is np.float32 and not np.isfinite(a).all():
            raise CalibrationError(f"{path}: '{key}' contains NaN or infinity")
        return a

    x = rows("x")
    if len(x) == 0:
        raise CalibrationError(f"{path}: 'x' is empty")
    if "x_test" in z:
        tx, ty, which = rows("x_test"), (np.asarray(z["y_test"], np.int64) if "y_test" in z else None), "test"
    else:
        tx, ty, which = x, (np.asarray(z["y"], np.int64) if "y" in z else None), "calibration (no x_test given)"
    if ty is not None and len(ty) != len(tx):
        raise CalibrationError(f"{path}: {len(ty)} labels for {len(tx)} inputs")
    labels = tuple(str(s) for s in z["labels"]) if "labels" in z else ()
    return ModelData(name, x[_evenly(len(x), n_calib)], tx, ty, labels, held_out=which,
                     input_dtype=dtype,
                     provenance={"dataset": path.name}, description=f"{path.name} ({len(x)} "
                     f"inputs, {len(tx)} evaluated: {which})")


def reader(data: ModelData, x: np.ndarray | None = None):
    """A fresh onnxruntime CalibrationDataReader over ``x`` (default: the calibration rows)."""
    from onnxruntime.quantization import CalibrationDataReader

    rows = data.calib_x if x is None else x

    class _Reader(CalibrationDataReader):
        def __init__(self):
            self.it = data.feeds(rows)

        def get_next(self):
            return next(self.it, None)

    return _Reader()


#: onnxruntime's calibrator settings per method. Its Entropy defaults (128 histogram bins,
#: 128 quantized bins) leave a single candidate threshold, the full range, so "entropy"
#: would silently equal "minmax" (measured); 2048 bins give the KL search room, as in
#: TensorRT's description of the method.
CALIBRATOR_OPTIONS = {"minmax": {},
                      "percentile": {"num_bins": 2048, "percentile": 99.999},
                      "entropy": {"num_bins": 2048, "num_quantized_bins": 128}}


def compute_ranges(model, data: ModelData, method: str, cache_path) -> Path:
    """Run onnxruntime's calibrator for ``method`` over the calibration windows and save
    its activation ranges (onnxruntime's own cache format) for quantize_static to load.

    Calibrating here rather than inside quantize_static is only so the method's options
    (above) can be set; the calibrator, the ranges and their use are onnxruntime's."""
    import contextlib
    import io
    import tempfile

    import onnx
    from onnxruntime.quantization.calibrate import create_calibrator, save_tensors_data

    from lanthorn.quantize.qdq import op_types_to_quantize

    ops = op_types_to_quantize()  # exactly what quantize_static will quantize
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "float.onnx"
        onnx.save(model, str(src))
        # the histogram calibrators print progress on stdout; keep the CLI's output ours
        with contextlib.redirect_stdout(io.StringIO()):
            cal = create_calibrator(src, ops, augmented_model_path=str(Path(tmp) / "aug.onnx"),
                                    calibrate_method=ort_method(method),
                                    extra_options=dict(CALIBRATOR_OPTIONS[method]))
            cal.collect_data(reader(data))
            ranges = cal.compute_data()
        del cal
    save_tensors_data(ranges, cache_path)
    return Path(cache_path)
