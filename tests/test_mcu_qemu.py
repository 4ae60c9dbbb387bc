"""The kernel on a microcontroller: `lanthorn export-c` of the shipped default bundle, built
with arm-none-eabi-gcc for Cortex-M0+ (soft float) and Cortex-M4 (hard float), run under
qemu-system-arm with semihosting; every printed output integer must equal the numpy
reference engine's, computed here from the exported input bytes. Most vectors are real
sensor windows from the committed dataset (data/temperament), which the device quantizes
itself; the rest are the two extremes and random windows."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from lanthorn.cli import main as cli
from lanthorn.device.engine import int8
from lanthorn.device.engine.bundle import read_bundle
from lanthorn.device.engine.engine_ref import ReferenceEngine
from lanthorn.device.models import DEFAULT_BUNDLE

ROOT = Path(__file__).resolve().parents[1]
MCU = ROOT / "firmware" / "mcu"
CORES = {"m0plus": ["-M", "microbit"], "m4": ["-M", "mps2-an386"]}
VECTORS = 24
DATASET = ROOT / "data" / "temperament"


def _toolchain_missing() -> str | None:
    for tool in ("arm-none-eabi-gcc", "arm-none-eabi-size", "qemu-system-arm", "make"):
        if shutil.which(tool) is None:
            return f"{tool} not installed (scripts/system-deps.sh installs it)"
    libc = subprocess.run(["arm-none-eabi-gcc", "-mcpu=cortex-m0plus", "-mthumb",
                           "-print-file-name=libc_nano.a"], capture_output=True, text=True)
    if not Path(libc.stdout.strip()).is_file():
        return "libnewlib-arm-none-eabi not installed (scripts/system-deps.sh installs it)"
    return None


needs_arm = pytest.mark.skipif(_toolchain_missing() is not None,
                               reason=_toolchain_missing() or "")


def _build(model: Path, build: Path, *targets: str) -> str:
    r = subprocess.run(["make", "-s", "-j2", "-C", str(MCU), f"MODEL={model}", f"BUILD={build}", *targets],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


def _run(build: Path, core: str) -> subprocess.CompletedProcess:
    """Boot the ELF; qemu 7 writes semihosting output on its stderr, merged into stdout."""
    return subprocess.run(["qemu-system-arm", *CORES[core], "-nographic", "-monitor", "none",
                           "-serial", "none", "-semihosting-config", "enable=on,target=native",
                           "-kernel", str(build / core / "lanthorn-mcu.elf")],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=60)


def _printed(stdout: str) -> dict[int, list[int]]:
    return {int(m[1]): [int(v) for v in m[2].split()]
            for m in re.finditer(r"^vector (\d+):((?: -?\d+)*)  # ", stdout, re.M)}


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    reason = _toolchain_missing()
    if reason:
        pytest.skip(reason)
    tmp = tmp_path_factory.mktemp("mcu")
    model, build = tmp / "model", tmp / "build"
    # a private copy: the reference below must read the very bundle that was exported, even
    # if `make model` rewrites the shipped one meanwhile
    bundle = tmp / "bundle.lanthorn"
    shutil.copyfile(DEFAULT_BUNDLE, bundle)
    assert cli(["export-c", str(bundle), "--out", str(model),
                "--vectors", str(VECTORS), "--seed", "7", "--dataset", str(DATASET)]) == 0
    sizes = _build(model, build, *CORES)
    print(sizes)
    return model, build, sizes


def _reference(model: Path) -> np.ndarray:
    """The numpy reference engine's int8 outputs for the exported inputs; the real windows
    are quantized here from their float values, as the laptop runtime does."""
    info = json.loads((model / "export.json").read_text())
    graph = read_bundle(model.parent / "bundle.lanthorn").graph
    engine = ReferenceEngine(graph)
    (t_in,) = info["inputs"]
    shape = tuple(t_in["shape"])
    raw = np.fromfile(model / "vectors_in.bin", np.int8).reshape(VECTORS, *shape)
    n_float = info["vectors_from_dataset"]
    floats = np.fromfile(model / "vectors_float.bin", np.float32).reshape(n_float, *shape)
    quantized = int8.quantize(floats, t_in["scale"], t_in["zero_point"])
    assert np.array_equal(quantized, raw[:n_float])
    return np.stack([np.concatenate([y.ravel() for y in engine.run_quantized([x])]) for x in raw])


@needs_arm
@pytest.mark.parametrize("core", list(CORES))
def test_exported_default_model_on_cortex_m_equals_numpy(exported, core):
    model, build, _ = exported
    r = _run(build, core)
    assert r.returncode == 0, r.stdout
    got = _printed(r.stdout)
    want = _reference(model)
    assert sorted(got) == list(range(VECTORS))
    for v in range(VECTORS):
        assert got[v] == want[v].tolist(), f"{core} vector {v}"
    assert f"{VECTORS} vectors, 0 mismatches" in r.stdout
    n_float = json.loads((model / "export.json").read_text())["vectors_from_dataset"]
    assert n_float >= 9                                 # at least one window per label
    assert f"{n_float} windows quantized here, 0 differ" in r.stdout


@needs_arm
def test_size_figures_are_printed_for_both_cores(exported):
    """The build prints flash and RAM of the test driver and of the model + kernel alone."""
    _, _, sizes = exported
    for core in CORES:
        for elf in ("lanthorn-model", "lanthorn-mcu"):
            m = re.search(rf"^{core}: {elf} +flash +(\d+) bytes, static RAM +(\d+) bytes",
                          sizes, re.M)
            assert m, sizes
            flash, ram = int(m[1]), int(m[2])
            # at least the blob and the arena; at most the micro:bit's 256 KiB / 16 KiB
            assert 8548 < flash < 256 * 1024 and 1104 < ram < 16 * 1024, (core, elf, flash, ram)


@needs_arm
@pytest.mark.parametrize("core", list(CORES))
def test_no_allocator_is_linked(exported, core):
    """No dynamic allocation: neither image links malloc or the heap (_sbrk) at all."""
    _, build, _ = exported
    for elf in ("lanthorn-model.elf", "lanthorn-mcu.elf"):
        nm = subprocess.run(["arm-none-eabi-nm", str(build / core / elf)], capture_output=True,
                            text=True, check=True).stdout
        symbols = {line.split()[-1] for line in nm.splitlines() if line.strip()}
        assert "model_run" in symbols
        assert not symbols & {"malloc", "_malloc_r", "calloc", "realloc", "free", "_sbrk"}, elf


@needs_arm
@pytest.mark.parametrize("core", list(CORES))
def test_model_only_image_boots_and_runs(exported, core):
    """lanthorn-model.elf (deploy.c), the image the size figures are for, really runs:
    init, quantize a window, inference, argmax, exit 0 (a fault would exit 1)."""
    _, build, _ = exported
    r = subprocess.run(["qemu-system-arm", *CORES[core], "-nographic", "-monitor", "none",
                        "-serial", "none", "-semihosting-config", "enable=on,target=native",
                        "-kernel", str(build / core / "lanthorn-model.elf")],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=60)
    assert r.returncode == 0, r.stdout


@needs_arm
def test_a_wrong_expected_output_fails_the_run(exported, tmp_path):
    """The driver's own check and the qemu exit status can fail: corrupt one expected value."""
    model, build, _ = exported
    bad = tmp_path / "model"
    shutil.copytree(model, bad)
    shutil.copytree(build, tmp_path / "build")   # keeps mtimes: only test_vectors.o rebuilds
    src = (bad / "test_vectors.c").read_text()
    i = src.index("model_test_expected")
    j = src.index("{", src.index("{", i) + 1) + 1          # first value of vector 0
    k = src.index(",", j)
    wrong = int(src[j:k]) ^ 1
    (bad / "test_vectors.c").write_text(src[:j] + str(wrong) + src[k:])
    _build(bad, tmp_path / "build", "m0plus")
    r = _run(tmp_path / "build", "m0plus")
    assert r.returncode == 1
    assert f"{VECTORS} vectors, 1 mismatches" in r.stdout


def _ties_graphs(rng):
    """conv and dense whose multipliers are powers of two, so many requantized values land
    exactly on .5: round half to even must hold in soft float as on the FPU."""
    from kernel_graphs import multipliers, one_layer, qparams, rand_i8
    out = []
    for i in range(3):
        (sx, zx), (sy, zy) = qparams(rng), qparams(rng)
        out.append((f"conv_ties{i}", one_layer(
            "conv", [((6, 7, 5), "int8", sx, zx)], (6, 7, 8), zy, sy,
            {"pads": [1, 1, 1, 1], "act_min": -128, "act_max": 127},
            {"weight": rand_i8(rng, (8, 3, 3, 5), -127, 127),
             "bias": rng.integers(-500, 500, 8).astype(np.int32),
             "multiplier": multipliers(rng, 8, 45, "half")})))
        (sx, zx), (sy, zy) = qparams(rng), qparams(rng)
        out.append((f"dense_ties{i}", one_layer(
            "dense", [((3, 40), "int8", sx, zx)], (3, 10), zy, sy, {},
            {"weight": rand_i8(rng, (10, 40), -127, 127),
             "bias": rng.integers(-500, 500, 10).astype(np.int32),
             "multiplier": multipliers(rng, 10, 40, "half")})))
    return out


@needs_arm
@pytest.mark.parametrize("core", list(CORES))
def test_every_operator_on_cortex_m_equals_numpy(exported, core, tmp_path):
    """The shared kernel vectors (tests/kernel_graphs.op_suite: every operator and notable
    geometry, as under qemu-aarch64) plus rounding-tie graphs, through blobrun.c on each
    core's build: soft float on the M0+ build, the FPU on the M4 must give numpy's integers
    on every element."""
    from kernel_graphs import op_suite, random_input_sets

    from lanthorn.device.engine import engine_c
    _, build, _ = exported
    _build(exported[0], build, "blobrun")
    elf = build / core / "lanthorn-blobrun.elf"
    machine = {"m0plus": "mps2-an385", "m4": "mps2-an386"}[core]
    rng = np.random.default_rng(2026)
    cases = []
    for name, g in op_suite(7) + _ties_graphs(np.random.default_rng(11)):
        sets = random_input_sets(g, rng, 3)
        ref = ReferenceEngine(g)
        expected = b"".join(o.tobytes() for xs in sets for o in ref.run_quantized(xs))
        blob, inputs, out = tmp_path / f"{name}.lkb", tmp_path / f"{name}.in", tmp_path / f"{name}.out"
        blob.write_bytes(engine_c.to_blob(g))
        inputs.write_bytes(b"".join(np.ascontiguousarray(x).tobytes() for xs in sets for x in xs))
        cases.append((name, blob, inputs, out, expected))
    listing = tmp_path / "list.txt"
    listing.write_text("".join(f"{b} {i} {o}\n" for _, b, i, o, _ in cases))
    r = subprocess.run(["qemu-system-arm", "-M", machine, "-nographic", "-monitor", "none",
                        "-serial", "none", "-semihosting-config",
                        f"enable=on,target=native,arg=blobrun,arg=@{listing}",
                        "-kernel", str(elf)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stdout
    assert r.stdout.count("c-scalar 3") == len(cases), r.stdout
    for name, _, _, out, expected in cases:
        got = np.frombuffer(out.read_bytes(), np.int8)
        want = np.frombuffer(expected, np.int8)
        assert got.shape == want.shape, name
        diff = np.flatnonzero(got != want)
        assert diff.size == 0, f"{name} on {core}: {diff.size} bytes differ, first at {diff[0]}"


@needs_arm
@pytest.mark.parametrize("core", list(CORES))
def test_hand_edited_blobs_are_refused_on_a_32_bit_core(exported, core, tmp_path):
    """lk_model.c computes every size in 64-bit arithmetic, so the hand-edited blobs of the
    bundle fuzzer (tests/fuzz_bundles/regressions/issue10-*.lkb: a conv whose weight count
    32768 x 65535 x 65535 x C wraps a 32-bit size_t, overlapping and misaligned tensors)
    are refused by the loader on a Cortex-M, where size_t is 32 bits, as on the host."""
    blobs = sorted((ROOT / "tests" / "fuzz_bundles" / "regressions").glob("issue10-blob-*.lkb"))
    assert len(blobs) >= 3
    _, build, _ = exported
    _build(exported[0], build, "blobrun")
    elf = build / core / "lanthorn-blobrun.elf"
    machine = {"m0plus": "mps2-an385", "m4": "mps2-an386"}[core]
    inputs, out = tmp_path / "x.in", tmp_path / "y.out"
    inputs.write_bytes(bytes(64))
    for blob in blobs:
        r = subprocess.run(["qemu-system-arm", "-M", machine, "-nographic", "-monitor", "none",
                            "-serial", "none", "-semihosting-config",
                            f"enable=on,target=native,arg=blobrun,arg={blob},arg={inputs},"
                            f"arg={out}", "-kernel", str(elf)], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, timeout=60)
        assert r.returncode != 0 and "blobrun: model: " in r.stdout, (blob.name, r.stdout)


@needs_arm
def test_export_c_of_another_model_runs_on_cortex_m0plus(exported, tmp_path):
    """export-c is not tied to the default model: an image CNN with depthwise conv, pooling,
    a residual add, concat and dense (tests/kernel_graphs.small_cnn) as a bundle."""
    from kernel_graphs import small_cnn

    from lanthorn.device.engine.bundle import Bundle, write_bundle
    g = small_cnn(np.random.default_rng(5))
    path = tmp_path / "cnn.lanthorn"
    write_bundle(Bundle(g, {"shape": list(g.tensors[g.inputs[0]].shape)},
                        labels=[f"class{i}" for i in range(5)]), path)
    model, build = tmp_path / "model", tmp_path / "build"
    assert cli(["export-c", str(path), "--out", str(model), "--vectors", "6"]) == 0
    shutil.copytree(exported[1] / "m0plus", build / "m0plus")  # the kernel objects are reused
    _build(model, build, "m0plus")
    r = _run(build, "m0plus")
    assert r.returncode == 0, r.stdout
    info = json.loads((model / "export.json").read_text())
    (t_in,) = info["inputs"]
    raw = np.fromfile(model / "vectors_in.bin", np.int8).reshape(6, *t_in["shape"])
    engine = ReferenceEngine(g)
    got = _printed(r.stdout)
    for v, x in enumerate(raw):
        assert got[v] == engine.run_quantized([x])[0].ravel().tolist(), f"vector {v}"


# ------------------------------------------------------------- export-c mistakes (no toolchain)

def test_export_c_writes_the_files(tmp_path, capsys):
    assert cli(["export-c", str(DEFAULT_BUNDLE), "--out", str(tmp_path / "x"), "--vectors", "2"]) == 0
    names = {p.name for p in (tmp_path / "x").iterdir()}
    assert {"model.c", "model.h", "test_vectors.c", "test_vectors.h", "export.json",
            "vectors_in.bin", "vectors_out.bin"} <= names
    info = json.loads((tmp_path / "x" / "export.json").read_text())
    assert info["arena_bytes"] > 0 and info["blob_bytes"] > 0
    assert "model_init" in (tmp_path / "x" / "model.h").read_text()
    assert "flash:" in capsys.readouterr().out


def test_export_c_rounds_with_the_kernels_rounding(tmp_path):
    """The generated model_quantize_input rounds with the kernel's lk_round_even (the C twin
    of int8.quantize, tested against it) instead of spelling the 1.5*2**23 trick again."""
    from lanthorn.quantize.export_c import export_c
    export_c(DEFAULT_BUNDLE, tmp_path / "x", n_vectors=1)
    text = (tmp_path / "x" / "model.c").read_text()
    assert "lk_round_even(lk_clampf(x[k] / s, lo, hi))" in text
    assert "12582912" not in text and "0x1.8p+23" not in text


@pytest.mark.parametrize("args, message", [
    (["--prefix", "9lives"], "not a C identifier"),
    (["--vectors", "0"], "between 1 and 10000"),
])
def test_export_c_bad_options_are_one_line_errors(tmp_path, capsys, args, message):
    assert cli(["export-c", str(DEFAULT_BUNDLE), "--out", str(tmp_path / "x"), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "x").exists()


def test_export_c_missing_or_bad_bundle(tmp_path, capsys):
    assert cli(["export-c", str(tmp_path / "none.lanthorn"), "--out", str(tmp_path / "x")]) == 2
    junk = tmp_path / "junk.lanthorn"
    junk.write_bytes(b"not a bundle at all")
    assert cli(["export-c", str(junk), "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 2


def test_export_c_unwritable_out(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("a file, not a directory")
    assert cli(["export-c", str(DEFAULT_BUNDLE), "--out", str(blocker)]) == 2
    assert "cannot write" in capsys.readouterr().err


def test_export_c_dataset_with_other_channels_is_refused(tmp_path, capsys):
    from lanthorn.device.storage.dataset import create_dataset
    create_dataset(tmp_path / "d", channels=("a", "b"), labels=("nobody", "tap"))
    assert cli(["export-c", str(DEFAULT_BUNDLE), "--out", str(tmp_path / "x"),
                "--dataset", str(tmp_path / "d")]) == 2
    assert "are not the model's" in capsys.readouterr().err


HOST_MAIN = r"""
#include <math.h>
#include <stdio.h>
#include <string.h>
#include "lantern.h"
#include "test_vectors.h"
int main(void) {
    if (lantern_init() != 0) return 2;
    int bad = 0;
    for (int v = 0; v < LANTERN_N_VECTORS; v++) {
        if (v < LANTERN_N_FLOAT_VECTORS) {
            if (lantern_quantize_input(0, lantern_test_float_inputs[v], LANTERN_INPUT0_BYTES) ||
                memcmp(lantern_input(0), lantern_test_inputs[v], LANTERN_INPUT0_BYTES)) bad++;
        } else {
            memcpy(lantern_input(0), lantern_test_inputs[v], LANTERN_INPUT0_BYTES);
        }
        if (lantern_run() != 0) return 3;
        bad += memcmp(lantern_output(0), lantern_test_expected[v], LANTERN_OUTPUT_BYTES) != 0;
        printf("%s\n", lantern_labels[lantern_argmax(0)]);
    }
    /* a NaN (a dead sensor) is refused and leaves the input as it was */
    static float x[LANTERN_INPUT0_BYTES];
    memcpy(x, lantern_test_float_inputs[0], sizeof x);
    x[7] = NAN;
    int8_t before[LANTERN_INPUT0_BYTES];
    memcpy(before, lantern_input(0), sizeof before);
    if (lantern_quantize_input(0, x, LANTERN_INPUT0_BYTES) != -1) bad++;
    if (memcmp(before, lantern_input(0), sizeof before)) bad++;
    if (lantern_quantize_input(0, x, 3) != -1 || lantern_quantize_input(1, x, 3) != -1) bad++;
    if (lantern_argmax(5) != -1 || lantern_input(-1) != NULL) bad++;
    return bad ? 1 : 0;
}
"""


@pytest.mark.skipif(shutil.which("cc") is None, reason="no host C compiler (cc)")
def test_export_c_with_kernel_is_a_self_contained_folder(tmp_path, capsys):
    """--with-kernel copies the portable kernel beside the model: the folder alone builds
    warning-free (-Wall -Wextra -Werror) and, here on the host, gives the reference's
    outputs and quantization. --prefix renames the API (two models in one firmware)."""
    out = tmp_path / "x"
    assert cli(["export-c", str(DEFAULT_BUNDLE), "--out", str(out), "--vectors", "5",
                "--prefix", "lantern", "--dataset", str(DATASET), "--with-kernel"]) == 0
    assert "kernel sources copied" in capsys.readouterr().out
    assert "int lantern_run(void);" in (out / "lantern.h").read_text()
    (tmp_path / "main.c").write_text(HOST_MAIN)
    exe = tmp_path / "run"
    r = subprocess.run(["cc", "-std=c11", "-O1", "-Wall", "-Wextra", "-Werror", "-ffp-contract=off",
                        f"-I{out}", "-o", str(exe), str(tmp_path / "main.c"),
                        *sorted(str(p) for p in out.glob("*.c")), "-lm"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([str(exe)], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stdout
    labels = read_bundle(DEFAULT_BUNDLE).labels
    assert len(r.stdout.split()) == 5 and set(r.stdout.split()) <= set(labels)


def test_export_c_refuses_a_model_the_kernel_cannot_run(tmp_path, capsys):
    """A softmax in the middle of a graph: the C kernel cannot run it, so the one validator
    (as strict as the kernel) refuses it everywhere: writing such a bundle, and loading a
    hand-made one (checksum valid) in export-c, one line naming the layer, no files."""
    import bundle_fuzz as bf

    from lanthorn.device.engine.bundle import Bundle, BundleError, write_bundle
    from lanthorn.device.engine.graph import Graph, Layer, Tensor
    T = {"x": Tensor("x", (4,), "int8", 0.1, 0), "s": Tensor("s", (4,), "int8", 1 / 256, -128),
         "y": Tensor("y", (4,), "int8", 0.1, 0)}
    g = Graph(T, [Layer("softmax", "sm", ["x"], ["s"], {}, {}),
                  Layer("lut", "l", ["s"], ["y"], {}, {"table": np.zeros(256, np.int8)})],
              ["x"], ["y"])
    path = tmp_path / "mid_softmax.lanthorn"
    with pytest.raises(BundleError, match="'sm'.*final"):
        write_bundle(Bundle(g, {"shape": [4]}), path)
    g.layers[0] = Layer("lut", "sm", ["x"], ["s"], {}, {"table": np.zeros(256, np.int8)})
    version, header, body = bf.split(Bundle(g, {"shape": [4]}).to_bytes())
    header["graph"]["layers"][0].update(op="softmax", arrays={})
    path.write_bytes(bf.join(header, body, version))
    assert cli(["export-c", str(path), "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "'sm'" in err and "final" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x").exists()
