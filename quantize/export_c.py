"""Write a bundle as C for a microcontroller: weights in flash, a static arena, no malloc.

The C code generator behind ``lanthorn export-c BUNDLE --out DIR`` (the thin command is
``lanthorn.commands.export_c``). :func:`export_c` writes

- ``model.h`` / ``model.c``: the bundle's graph as the kernel's LKB1 blob (the same bytes the
  CPython extension runs, from :func:`lanthorn.device.engine.engine_c.to_blob`) in a ``const``
  array (so it stays in flash), the model and layer structs and the activation arena as
  static arrays sized here, at export, and a small API (``model_init``, ``model_input``,
  ``model_run``, ``model_output``, ``model_quantize_input``). Nothing is allocated at run time;
  the portable scalar kernel (firmware/kernel/lk_model.c, lk_ops.c) does the work.
- ``test_vectors.h`` / ``test_vectors.c``: N input sets and the numpy reference engine's
  outputs for them, for the firmware/mcu test driver, and the same as raw bytes
  (``vectors_in.bin``, ``vectors_out.bin``) plus ``export.json`` (sizes, shapes, sha256) so a
  test can check a device's output against its own reference run.

With ``--with-kernel`` the portable kernel sources are copied beside them, so the folder
builds on its own (drop it into an Arduino sketch or a PlatformIO ``lib/``).

Why a blob rather than C initialisers for every layer struct: one serializer and one checked
parser (``lk_model_init``) serve every target, so the microcontroller cannot run a different
layer description than the laptop did. The parse costs a few hundred bytes of RAM per layer
(the structs, 248 bytes per layer on a 32-bit core), shown by the firmware/mcu build.

Test inputs: seeded random int8 windows (uniform, and the two extremes), plus, when the
bundle's input is a sensor window and ``--dataset`` names a dataset, real windows from it.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from lanthorn.device.engine import int8
from lanthorn.errors import UserError

IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
#: where the kernel sources live in a lanthorn checkout (they are not installed as package data)
KERNEL_DIR = Path(__file__).resolve().parents[1] / "firmware" / "kernel"
#: the files the scalar (microcontroller) kernel needs; lk_simd.c compiles to stubs on
#: targets without AVX2/NEON, but lk_run links against it, and on an x86 or aarch64 host it
#: calls the per-ISA files (lk_avx2.c, lk_vnni.c / lk_neon.c, lk_sdot.c; empty elsewhere)
KERNEL_FILES = ("lk.h", "lk_internal.h", "lk_pack.h", "lk_x86.h", "lk_arm.h", "lk_model.c",
                "lk_ops.c", "lk_simd.c", "lk_avx2.c", "lk_vnni.c", "lk_neon.c", "lk_sdot.c")


class ExportError(UserError):
    """The bundle cannot be written as C for the scalar kernel."""


# --------------------------------------------------------------------------- C text

def _c_bytes(data: bytes, indent: str = "    ", per_line: int = 16) -> str:
    lines = []
    for i in range(0, len(data), per_line):
        lines.append(indent + ", ".join(f"0x{b:02x}" for b in data[i:i + per_line]) + ",")
    return "\n".join(lines) if lines else indent + "0"


def _c_string(s: str) -> str:
    """A C string literal of ``s``'s UTF-8 bytes (octal escapes: never greedy like \\x)."""
    out = []
    for b in s.encode("utf-8"):
        c = chr(b)
        out.append(c if 32 <= b < 127 and c not in '"\\?' else f"\\{b:03o}")
    return '"' + "".join(out) + '"'


def _c_comment(s: str) -> str:
    return s.replace("*/", "* /")


def _c_float(x: float) -> str:
    """A float32 literal that parses back to exactly the same float32 (hex float)."""
    return f"{float(np.float32(x)).hex()}f"


def _tensor_bytes(t) -> int:
    return t.size * (4 if t.dtype == "int32" else 1)


def synthetic_inputs(graph, n: int, seed: int) -> list[list[np.ndarray]]:
    """Seeded input sets: the two extremes, then uniform random values. int32 (index)
    inputs get valid row indices of the gather layer that reads them."""
    rng = np.random.default_rng(seed)
    rows = {}
    for layer in graph.layers:
        if layer.op == "gather":
            rows[layer.inputs[0]] = int(layer.arrays["table"].shape[0])
    sets = []
    for k in range(n):
        xs = []
        for name in graph.inputs:
            t = graph.tensors[name]
            if t.dtype == "int32":
                hi = rows.get(name, 1)
                x = (np.full(t.shape, (0, hi - 1)[k], np.int32) if k < 2
                     else rng.integers(0, hi, t.shape, dtype=np.int32))
            elif k == 0:
                x = np.full(t.shape, -128, np.int8)
            elif k == 1:
                x = np.full(t.shape, 127, np.int8)
            else:
                x = rng.integers(-128, 128, t.shape, dtype=np.int8)
            xs.append(x)
        sets.append(xs)
    return sets


def dataset_windows(bundle, dataset_dir, n: int) -> tuple[list[np.ndarray], list[str]]:
    """Up to ``n`` float32 windows (shaped as the input spec) from a dataset, one per label in
    turn (nobody, approach, tap, ...), so the vectors exercise every class the data has."""
    from lanthorn.device.storage.dataset import load_dataset
    spec = bundle.input_spec
    if not spec.window or not spec.channels or len(bundle.graph.inputs) != 1:
        raise ExportError("--dataset needs a bundle whose one input is a sensor window "
                          f"(this one's input spec: {spec.to_json()})")
    data = load_dataset(dataset_dir)
    if tuple(data.channels) != tuple(spec.channels):
        raise ExportError(f"--dataset {dataset_dir}: channels {', '.join(data.channels)} are not "
                          f"the model's ({', '.join(spec.channels)})")
    w = data.windows(spec.window, hop=spec.window)
    by_label = [np.flatnonzero(w.y == k) for k in range(len(w.labels))]
    picked: list[int] = []
    for turn in range(max((len(b) for b in by_label), default=0)):
        for b in by_label:
            if turn < len(b) and len(picked) < n:
                picked.append(int(b[turn]))
    # frames × the input scale training chose, as the device loop feeds the model
    scale = np.asarray(spec.scale, np.float32) if spec.scale else np.float32(1.0)
    xs = [np.ascontiguousarray(w.X[i].T * scale, np.float32).reshape(spec.shape) for i in picked]
    return xs, [w.labels[w.y[i]] for i in picked]


def model_h(p: str, bundle, graph, info: dict) -> str:
    """``{p}.h``: how to call the model, its sizes as macros (so firmware can size its own
    buffers at compile time), and the API's prototypes."""
    P = p.upper()
    lines = _h_banner(p, info)
    lines += [
        f"#ifndef {P}_H",
        f"#define {P}_H",
        "",
        "#include <stddef.h>",
        "#include <stdint.h>",
        "",
        "#ifdef __cplusplus",
        'extern "C" {',
        "#endif",
        "",
    ]
    lines += _h_sizes(P, bundle, info) + _h_tensors(P, info) + _h_api(p, P, bundle)
    lines += [
        "",
        "#ifdef __cplusplus",
        "}",
        "#endif",
        f"#endif /* {P}_H */",
        "",
    ]
    return "\n".join(lines)


def _h_banner(p: str, info: dict) -> list[str]:
    """The opening comment: where the file came from, and the whole API in five calls, for
    someone who opens only the header."""
    return [
        f"/* {p}.h -- generated by `lanthorn export-c` from {_c_comment(info['bundle_name'])}",
        f" * (sha256 {info['sha256']}). Do not edit: re-export instead.",
        " *",
        " * Weights live in flash (a const LKB1 blob); the activation arena and the kernel's",
        " * layer structs are static arrays sized at export. No dynamic allocation.",
        " *",
        f" *   {p}_init();                          once; returns 0 (LK_OK) or an lk_status",
        f" *   {p}_quantize_input(0, x, n);         float sensor values -> int8 input 0, or write",
        f" *   int8_t *in = {p}_input(0);           the int8 input directly",
        f" *   {p}_run();                           the whole graph (scalar kernel)",
        f" *   const int8_t *y = {p}_output(0);     int8 raw outputs (softmax, if the model ends",
        " *                                        with one, is left to the caller: argmax is",
        " *                                        the same on the int8 values)",
        " */",
    ]


def _h_sizes(P: str, bundle, info: dict) -> list[str]:
    """The sizes fixed at export: flash, RAM, counts and I/O bytes (model.c and the test
    vectors dimension their arrays with these)."""
    ins, outs = info["inputs"], info["outputs"]
    return [
        f"#define {P}_SHA256 {_c_string(info['sha256'])}",
        f"#define {P}_BLOB_BYTES {info['blob_bytes']}u      /* flash: graph + weights */",
        f"#define {P}_ARENA_BYTES {info['arena_bytes']}u    /* RAM: activations */",
        f"#define {P}_N_TENSORS {info['n_tensors']}",
        f"#define {P}_N_LAYERS {info['n_layers']}",
        f"#define {P}_N_INPUTS {len(ins)}",
        f"#define {P}_N_OUTPUTS {len(outs)}",
        f"#define {P}_INPUT_BYTES {sum(i['bytes'] for i in ins)}u   /* all inputs, in order */",
        f"#define {P}_OUTPUT_BYTES {sum(o['bytes'] for o in outs)}u  /* all outputs, in order */",
        f"#define {P}_N_LABELS {len(bundle.labels)}",
        "",
    ]


def _h_tensors(P: str, info: dict) -> list[str]:
    """Each input's and output's size and quantization, so firmware can quantize a sensor
    value or read a logit without the runtime."""
    lines = []
    for kind, items in (("INPUT", info["inputs"]), ("OUTPUT", info["outputs"])):
        for i, t in enumerate(items):
            lines.append(f"/* {kind.lower()} {i}: {t['name']}, {t['dtype']} {tuple(t['shape'])} */")
            lines.append(f"#define {P}_{kind}{i}_BYTES {t['bytes']}u")
            lines.append(f"#define {P}_{kind}{i}_SCALE {_c_float(t['scale'])}")
            lines.append(f"#define {P}_{kind}{i}_ZERO_POINT {t['zero_point']}")
    return lines


def _h_api(p: str, P: str, bundle) -> list[str]:
    """The prototypes of what model.c defines (``_c_api``), each with its contract."""
    return [
        "",
        "/* Labels of the output classes (empty when the bundle has none). */",
        f"extern const char *const {p}_labels[{max(len(bundle.labels), 1)}];",
        "/* Bytes of each input / output (int8: elements; int32 index inputs: 4 per element). */",
        f"extern const uint32_t {p}_input_bytes[{P}_N_INPUTS];",
        f"extern const uint32_t {p}_output_bytes[{P}_N_OUTPUTS];",
        "",
        f"int {p}_init(void);",
        f"int8_t *{p}_input(int i);",
        f"const int8_t *{p}_output(int i);",
        f"int {p}_run(void);",
        "/* int8.quantize as the laptop runtime does it: x / scale in float32, clamp, round half",
        " * to even, + zero point. Returns 0, or -1 (input untouched) if a value is NaN. */",
        f"int {p}_quantize_input(int i, const float *x, size_t n);",
        "/* Index of the largest int8 value of output i (the recognised class). */",
        f"int {p}_argmax(int i);",
    ]


def model_c(p: str, bundle, graph, blob: bytes, info: dict) -> str:
    """``{p}.c``: the model's data (sized and filled here, at export) and the API over the
    kernel (the same text for every model but its prefix)."""
    return f"""/* {p}.c -- generated by `lanthorn export-c`; see {p}.h. */
#include "{p}.h"

#include <string.h>

#include "lk.h"
#include "lk_internal.h"   /* lk_round_even, lk_clampf: the kernel's int8.quantize */

{_c_storage(p, bundle, blob, info)}
{_c_api(p)}"""


def _c_storage(p: str, bundle, blob: bytes, info: dict) -> str:
    """Everything the model occupies, as static arrays: the blob in flash, the labels, the
    kernel's structs and the arena in RAM (nothing is allocated at run time)."""
    P = p.upper()
    ins, outs = info["inputs"], info["outputs"]
    labels = ", ".join(_c_string(s) for s in bundle.labels) or '""'
    return f"""/* The LKB1 blob (firmware/kernel/lk.h): graph, quantization and weights. const, so the
 * linker keeps it in flash; the kernel reads it in place (zero copy). */
static const uint8_t {p}_blob[{P}_BLOB_BYTES] __attribute__((aligned(16))) = {{
{_c_bytes(blob)}
}};

const char *const {p}_labels[{max(len(bundle.labels), 1)}] = {{{labels}}};

static lk_tensor {p}_tensors[{P}_N_TENSORS];
static lk_layer {p}_layers[{P}_N_LAYERS];
static lk_model {p}_m;
static uint8_t {p}_arena[{P}_ARENA_BYTES] __attribute__((aligned(16)));
static int {p}_ready;

const uint32_t {p}_input_bytes[{P}_N_INPUTS] = {{{", ".join(str(t["bytes"]) for t in ins)}}};
const uint32_t {p}_output_bytes[{P}_N_OUTPUTS] = {{{", ".join(str(t["bytes"]) for t in outs)}}};
"""


def _c_api(p: str) -> str:
    """The functions model.h declares, over the static storage: init parses the blob and
    checks the arena fits; the rest refuse to run before a successful init."""
    P = p.upper()
    return f"""int {p}_init(void)
{{
    int rc = lk_model_init(&{p}_m, {p}_blob, sizeof {p}_blob, {p}_tensors, {P}_N_TENSORS,
                           {p}_layers, {P}_N_LAYERS);
    if (rc == LK_OK) rc = lk_prepare(&{p}_m, LK_VARIANT_SCALAR, NULL, 0);
    if (rc == LK_OK && {p}_m.arena_size > sizeof {p}_arena) rc = LK_ERR_CAPACITY;
    {p}_ready = rc == LK_OK;
    return rc;
}}

int8_t *{p}_input(int i)
{{
    if (!{p}_ready || i < 0 || i >= {P}_N_INPUTS) return NULL;
    return (int8_t *)({p}_arena + {p}_tensors[{p}_m.inputs[i]].offset);
}}

const int8_t *{p}_output(int i)
{{
    if (!{p}_ready || i < 0 || i >= {P}_N_OUTPUTS) return NULL;
    return (const int8_t *)({p}_arena + {p}_tensors[{p}_m.outputs[i]].offset);
}}

int {p}_run(void)
{{
    if (!{p}_ready) return LK_ERR_BLOB;
    return lk_run(&{p}_m, {p}_arena, NULL);
}}

int {p}_quantize_input(int i, const float *x, size_t n)
{{
    int8_t *q = {p}_input(i);
    if (!q || {p}_tensors[{p}_m.inputs[i]].dtype != LK_INT8 || n != (size_t){p}_input_bytes[i])
        return -1;
    for (size_t k = 0; k < n; k++)
        if (x[k] != x[k]) return -1;
    const lk_tensor *t = &{p}_tensors[{p}_m.inputs[i]];
    const float s = t->scale, lo = (float)(-128 - t->zero_point), hi = (float)(127 - t->zero_point);
    for (size_t k = 0; k < n; k++)
        q[k] = (int8_t)((int32_t)lk_round_even(lk_clampf(x[k] / s, lo, hi)) + t->zero_point);
    return 0;
}}

int {p}_argmax(int i)
{{
    const int8_t *y = {p}_output(i);
    if (!y) return -1;
    uint32_t best = 0;
    for (uint32_t k = 1; k < {p}_output_bytes[i]; k++)
        if (y[k] > y[best]) best = k;
    return (int)best;
}}
"""


def vectors_h(p: str, n: int, n_float: int) -> str:
    P = p.upper()
    return f"""/* test_vectors.h -- generated by `lanthorn export-c`: inputs and the numpy reference
 * engine's int8 outputs for them (each set: every input / output, in order, as bytes).
 * The first {P}_N_FLOAT_VECTORS sets also come as float sensor windows, whose int8 form
 * ({p}_test_inputs) is the laptop runtime's quantization of them. */
#ifndef {P}_TEST_VECTORS_H
#define {P}_TEST_VECTORS_H
#include <stdint.h>
#include "{p}.h"
#define {P}_N_VECTORS {n}
#define {P}_N_FLOAT_VECTORS {n_float}
extern const uint8_t {p}_test_inputs[{P}_N_VECTORS][{P}_INPUT_BYTES];
extern const int8_t {p}_test_expected[{P}_N_VECTORS][{P}_OUTPUT_BYTES];
extern const float {p}_test_float_inputs[{max(n_float, 1)}][{P}_INPUT0_BYTES];
extern const char *const {p}_test_names[{P}_N_VECTORS];
#endif
"""


def vectors_c(p: str, ins: list[bytes], outs: list[bytes], floats: list[np.ndarray],
              names: list[str]) -> str:
    P = p.upper()
    def rows(x):
        flat = np.asarray(x, np.float32).ravel()
        return "\n".join("        " + ", ".join(_c_float(v) for v in flat[i:i + 8]) + ","
                         for i in range(0, flat.size, 8))
    body_f = ",\n".join("    {\n" + rows(x) + "\n    }" for x in floats) or "    {0}"
    body_n = ", ".join(_c_string(nm) for nm in names)
    body_in = ",\n".join("    {\n" + _c_bytes(b, "        ") + "\n    }" for b in ins)
    body_out = ",\n".join("    {" + ", ".join(str(v) for v in np.frombuffer(b, np.int8)) + "}"
                          for b in outs)
    return f"""/* test_vectors.c -- generated by `lanthorn export-c`; see test_vectors.h. */
#include "test_vectors.h"

const uint8_t {p}_test_inputs[{P}_N_VECTORS][{P}_INPUT_BYTES] = {{
{body_in}
}};

const int8_t {p}_test_expected[{P}_N_VECTORS][{P}_OUTPUT_BYTES] = {{
{body_out}
}};

const float {p}_test_float_inputs[{max(len(floats), 1)}][{P}_INPUT0_BYTES] = {{
{body_f}
}};

const char *const {p}_test_names[{P}_N_VECTORS] = {{{body_n}}};
"""


# --------------------------------------------------------------------------- export

def _check_options(prefix: str, n_vectors: int, with_kernel: bool) -> None:
    if not IDENT.match(prefix):
        raise ExportError(f"--prefix {prefix!r} is not a C identifier (letters, digits, _)")
    if not 1 <= n_vectors <= 10000:
        raise ExportError(f"--vectors {n_vectors}: choose between 1 and 10000")
    if with_kernel:
        missing = [f for f in KERNEL_FILES if not (KERNEL_DIR / f).is_file()]
        if missing:
            raise ExportError(f"--with-kernel: {', '.join(missing)} not found in {KERNEL_DIR} "
                              "(the kernel sources come with a lanthorn source checkout, not "
                              "with an installed package)")


def describe_model(bundle, bundle_path, blob: bytes, prefix: str) -> dict:
    """The export summary (export.json): sizes from the blob header, each input and output."""
    from lanthorn.device.engine.graph import raw_outputs
    graph = bundle.graph
    header = np.frombuffer(blob[:28], "<u4")

    def describe(name):
        t = graph.tensors[name]
        return {"name": name, "dtype": t.dtype, "shape": list(t.shape), "bytes": _tensor_bytes(t),
                "scale": float(t.scale), "zero_point": int(t.zero_point)}

    return {"bundle_name": Path(bundle_path).name, "sha256": bundle.sha256 or "",
            "prefix": prefix, "blob_bytes": len(blob), "arena_bytes": int(header[6]),
            "n_tensors": int(header[2]), "n_layers": int(header[3]),
            "inputs": [describe(n) for n in graph.inputs],
            "outputs": [describe(n) for n in raw_outputs(graph)], "labels": list(bundle.labels)}


def reference_vectors(bundle, n_vectors: int, seed: int, dataset=None):
    """Input sets (real dataset windows first, then synthetic ones) and the numpy reference
    engine's outputs for them, as little-endian bytes; plus the float windows and names."""
    from lanthorn.device.engine.engine_ref import ReferenceEngine
    graph = bundle.graph
    floats, names = [], []
    if dataset is not None:
        floats, names = dataset_windows(bundle, dataset, max(0, n_vectors - 2))
    t_in = graph.tensors[graph.inputs[0]]
    sets = [[int8.quantize(x.reshape(t_in.shape), t_in.scale, t_in.zero_point)] for x in floats]
    synthetic = synthetic_inputs(graph, n_vectors - len(sets), seed)
    names += (["all -128", "all 127"] + ["random"] * n_vectors)[:len(synthetic)]
    sets += synthetic
    engine = ReferenceEngine(graph)
    in_sets, out_sets = [], []
    for xs in sets:
        ys = engine.run_quantized(xs)
        in_sets.append(b"".join(np.ascontiguousarray(x).astype(x.dtype.newbyteorder("<")).tobytes()
                                for x in xs))
        out_sets.append(b"".join(np.ascontiguousarray(y, np.int8).tobytes() for y in ys))
    return in_sets, out_sets, floats, names


def export_c(bundle_path, out_dir, n_vectors: int = 16, seed: int = 0, prefix: str = "model",
             dataset=None, with_kernel: bool = False) -> dict:
    """Write the C files for ``bundle_path`` into ``out_dir``; returns the export summary."""
    from lanthorn.device.engine.bundle import read_bundle
    from lanthorn.device.engine.engine_c import CKernelUnsupported, to_blob

    _check_options(prefix, n_vectors, with_kernel)
    bundle = read_bundle(bundle_path)
    try:
        blob = to_blob(bundle.graph)
    except CKernelUnsupported as exc:
        raise ExportError(f"{bundle_path}: the microcontroller kernel cannot run this model: "
                          f"{exc}") from None
    info = describe_model(bundle, bundle_path, blob, prefix)
    info.update(vectors=n_vectors, seed=seed)
    in_sets, out_sets, floats, names = reference_vectors(bundle, n_vectors, seed, dataset)
    info["vectors_from_dataset"] = len(floats)
    info["vector_names"] = names
    files = {f"{prefix}.h": model_h(prefix, bundle, bundle.graph, info),
             f"{prefix}.c": model_c(prefix, bundle, bundle.graph, blob, info),
             "test_vectors.h": vectors_h(prefix, n_vectors, len(floats)),
             "test_vectors.c": vectors_c(prefix, in_sets, out_sets, floats, names)}
    _write(Path(out_dir), files, in_sets, out_sets, floats, with_kernel, info)
    return info


def _write(out: Path, files: dict, in_sets, out_sets, floats, with_kernel: bool, info: dict):
    try:
        out.mkdir(parents=True, exist_ok=True)
        for name, text in files.items():
            (out / name).write_text(text)
        (out / "vectors_in.bin").write_bytes(b"".join(in_sets))
        (out / "vectors_out.bin").write_bytes(b"".join(out_sets))
        np.asarray(floats, np.float32).tofile(out / "vectors_float.bin")
        if with_kernel:
            for name in KERNEL_FILES:
                (out / name).write_bytes((KERNEL_DIR / name).read_bytes())
        info["kernel_files"] = list(KERNEL_FILES) if with_kernel else []
        (out / "export.json").write_text(json.dumps(info, indent=2) + "\n")
    except OSError as exc:
        raise ExportError(f"cannot write to {out}: {exc.strerror or exc}") from None
