"""ARM cost model of the C kernel, checkable on an x86 machine without a Pi (`make arm-cost-model`).

Two kinds of evidence, both from the real sources as a Pi builds them:

1. Static: the aarch64 kernel files (lk_simd.c, the driver; lk_neon.c and lk_sdot.c, the
   per-ISA kernels) are cross-compiled exactly as setup.py builds them on a Pi
   (gcc -O3, baseline armv8-a; the SDOT code carries its own target attribute), and every
   innermost loop that multiplies (sdot / smull) is cut out of the assembly and given to
   llvm-mca with -mcpu=cortex-a72 (Pi 4), cortex-a76 (Pi 5), cortex-a78 (Jetson Orin) and
   neoverse-n1. That gives cycles per loop iteration in steady state, hence MACs per cycle
   (sdot .4s = 16 MACs, smull/smull2 .8h = 8), against the core's peak: llvm-mca on a
   stream of independent sdot (or smull) instructions, the same machine model's ceiling.
2. Dynamic: guest instructions per inference under qemu-aarch64, counted by a TCG plugin
   (tools/qemu_insn_count.c; qemu's timing means nothing, its instruction count is exact):
   tools/lk_run_blob.c (static aarch64 binary) on the zoo models, once with 1 input set and
   once with 3, (3 - 1) / 2 per inference; and, given a Debian bookworm arm64 root with
   python3.11, onnxruntime's own aarch64 wheel on the same QDQ models (20 session.run calls
   between two marker system calls the plugin records, / 20), with a /proc/cpuinfo of the
   emulated core so it picks its kernels for that core.

Prints the tables; with --readme FILE rewrites the part of FILE between the
``<!-- arm-cost-model:begin -->`` / ``end`` markers. Needs aarch64-linux-gnu-gcc, llvm-mca
(llvm-mca-19 preferred: LLVM 14 has fewer models) and, for the dynamic part, qemu-aarch64
gcc, plus lanthorn's dev install (the zoo models are built with onnxruntime's quantizer).
"""
from __future__ import annotations

import argparse
import functools
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

KERNEL = Path(__file__).resolve().parents[1]
CC = "aarch64-linux-gnu-gcc"
CFLAGS = ["-O3", "-std=c11", "-ffp-contract=off", "-fno-fast-math", "-march=armv8-a"]  # setup.py's
#: (llvm-mca -mcpu, the board it stands for)
CORES = [("cortex-a72", "Pi 4"), ("cortex-a76", "Pi 5"), ("cortex-a78", "Jetson Orin"),
         ("neoverse-n1", "A76 design, LLVM's own model")]
#: multiply instructions and the products per destination lane (sdot: 4 per int32 lane)
MUL_OPS = {"sdot": 4, "smull": 1, "smull2": 1, "smlal": 1, "smlal2": 1, "mla": 1, "mul": 1}
LANES = {"16b": 16, "8h": 8, "4s": 4, "2d": 2, "8b": 8, "4h": 4, "2s": 2}
#: the functions lk_run spends its MACs in (packing and sizing run once, at prepare)
HOT = ("lk_sdot_pixels", "lk_neon_pixels", "lk_neon_dot_i8", "lk_simd_conv", "lk_simd_dense",
       "depthwise", "lk_neon_depthwise")
#: the files those functions live in
SOURCES = ("lk_simd.c", "lk_neon.c", "lk_sdot.c")
MODELS = ["mlp_25k", "mlp_700k", "cnn1d_14x50", "cnn2d_32", "char_lm"]
BEGIN, END = "<!-- arm-cost-model:begin -->", "<!-- arm-cost-model:end -->"
ORT_VERSION, NUMPY_VERSION = "1.32.0", "2.4.6"


def aarch64_wheels(folder: Path | None) -> Path | None:
    """onnxruntime's and numpy's cp311 manylinux aarch64 wheels (pip download, cached)."""
    folder = folder or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "lanthorn-arm-wheels"
    if len(list(folder.glob("*.whl"))) >= 2:
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    r = subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
                        "--platform", "manylinux_2_28_aarch64", "--platform", "manylinux_2_27_aarch64",
                        "--platform", "manylinux2014_aarch64", "--python-version", "3.11",
                        "--implementation", "cp", "-d", str(folder),
                        f"onnxruntime=={ORT_VERSION}", f"numpy=={NUMPY_VERSION}"],
                       capture_output=True, text=True)
    return folder if r.returncode == 0 and len(list(folder.glob("*.whl"))) >= 2 else None


def mca_tool() -> str:
    for name in ("llvm-mca-19", "llvm-mca-18", "llvm-mca-17", "llvm-mca-16", "llvm-mca"):
        if shutil.which(name):
            return name
    sys.exit("arm-cost-model: llvm-mca not found (Debian: apt-get install llvm-19 or llvm)")


def need(tool: str, package: str):
    if not shutil.which(tool):
        sys.exit(f"arm-cost-model: {tool} not found (Debian: apt-get install {package})")


# ----------------------------------------------------------------------------- static part

def assembly(tmp: Path) -> list[str]:
    lines = []
    for name in SOURCES:
        out = tmp / (Path(name).stem + ".s")
        subprocess.run([CC, *CFLAGS, f"-I{KERNEL}", "-S", "-o", str(out), str(KERNEL / name)],
                       check=True)
        # local labels (.L8) repeat from file to file: make them unique per file
        lines += re.sub(r"\.L(\w+)", rf".L{Path(name).stem}_\1", out.read_text()).splitlines()
    return lines


def macs_of(instr: str) -> int:
    """Products one vector instruction computes (0 for anything that does not multiply)."""
    parts = instr.replace(",", " ").split()
    if parts[0] not in MUL_OPS or len(parts) < 2 or "." not in parts[1]:
        return 0
    return MUL_OPS[parts[0]] * LANES.get(parts[1].split(".")[1], 0)


def mac_loops(lines: list[str]) -> list[dict]:
    """Innermost loops that multiply: a label, the lines up to a branch back to it, no call.
    Loops that contain another such loop are dropped."""
    label_at = {}
    func = None
    funcs = {}
    for i, line in enumerate(lines):
        m = re.match(r"^([.\w$]+):", line)
        if m:
            label_at[m.group(1)] = i
            if not m.group(1).startswith("."):
                func = m.group(1)
        funcs[i] = func
    loops = []
    for i, line in enumerate(lines):
        m = re.match(r"^\s+(b\.?(?:eq|ne|cs|hs|cc|lo|mi|pl|vs|vc|hi|ls|ge|lt|gt|le|al)|b|cbnz|cbz|"
                     r"tbnz|tbz)\s+(?:\w+,\s*)*(?:#\d+,\s*)?(\.L\w+)\s*$", line)
        if not m or m.group(2) not in label_at or label_at[m.group(2)] >= i:
            continue
        body = [ln.strip() for ln in lines[label_at[m.group(2)] + 1:i + 1]
                if ln.strip() and not ln.strip().startswith((".", "//")) and not re.match(r"^[.\w$]+:", ln.strip())]
        if any(b.split()[0] == "bl" for b in body):
            continue
        macs = sum(macs_of(b) for b in body)
        if macs and funcs[label_at[m.group(2)]] and funcs[label_at[m.group(2)]].startswith(HOT):
            loops.append({"start": label_at[m.group(2)], "end": i, "body": body, "macs": macs,
                          "func": funcs[label_at[m.group(2)]],
                          "ops": {op: sum(b.split()[0] == op for b in body) for op in MUL_OPS
                                  if any(b.split()[0] == op for b in body)}})
    inner = [lp for lp in loops if not any(o is not lp and lp["start"] <= o["start"] and
                                           o["end"] <= lp["end"] for o in loops)]
    seen, out = set(), []
    for lp in inner:                       # identical bodies (inlined copies) once
        key = tuple(lp["body"])
        if key not in seen:
            seen.add(key)
            out.append(lp)
    return out


def mca_cycles(tool: str, body: list[str], cpu: str, dotprod: bool) -> float:
    """Steady-state cycles per iteration of `body` on `cpu` (llvm-mca's simulated total
    cycles / iterations, which includes dependency chains, not only resource pressure)."""
    attrs = ["-mattr=+dotprod"] if dotprod else []
    r = subprocess.run([tool, "-mtriple=aarch64", f"-mcpu={cpu}", *attrs, "-iterations=200"],
                       input="\n".join(body) + "\n", capture_output=True, text=True, check=True)
    cycles = int(re.search(r"Total Cycles:\s+(\d+)", r.stdout).group(1))
    iters = int(re.search(r"Iterations:\s+(\d+)", r.stdout).group(1))
    return cycles / iters


@functools.lru_cache(maxsize=None)
def peak(tool: str, cpu: str, op: str) -> float:
    """MACs per cycle of independent `op` instructions: the machine model's ceiling."""
    if op == "sdot":
        body = [f"sdot v{i}.4s, v{16 + i % 4}.16b, v{20 + i % 4}.4b[{i % 4}]" for i in range(12)]
    elif op == "smlal":   # int16 x int16 -> int32, 4 lanes (depthwise)
        body = [f"smlal v{i}.4s, v{16 + i % 4}.4h, v{20 + i % 4}.4h" for i in range(12)]
    else:
        body = [f"smull v{i}.8h, v{16 + i % 4}.8b, v{20 + i % 4}.8b" for i in range(12)]
    return sum(macs_of(b) for b in body) / mca_cycles(tool, body, cpu, op == "sdot")


def describe(lp: dict) -> str:
    ops = lp["ops"]
    if "sdot" in ops:
        n = ops["sdot"]
        kind = {64: "SDOT tile, 4 px x 16 outputs", 16: "SDOT tile, 1 px x 16 outputs",
                4: "SDOT tile, 1 px x 4 outputs"}.get(n, f"SDOT loop ({n} sdot)")
        return f"{kind} ({lp['func']})"
    if lp["func"].startswith("lk_neon_depthwise"):
        taps = lp["macs"] // 16
        kind = "3x3 unrolled" if taps == 9 else f"{taps} tap(s) per iteration"
        return f"NEON depthwise, 16 channels, {kind} (lk_neon_depthwise, smlal int16 -> int32)"
    if lp["func"].startswith("lk_neon_dot_i8"):
        return f"NEON smull+sadalp dot, {lp['macs'] // 16} output(s) (lk_neon_dot_i8)"
    return f"compiler-vectorized multiply loop ({lp['func']}: depthwise / scalar fallback)"


def static_table(tool: str, loops: list[dict]) -> tuple[list[str], dict]:
    rows = ["| inner loop (`lk_neon.c`, `lk_sdot.c`, `lk_simd.c`; gcc -O3 -march=armv8-a) | MACs/iter | instrs | "
            + " | ".join(f"{cpu} ({board})" for cpu, board in CORES) + " |",
            "| --- | ---: | ---: | " + " | ".join("---:" for _ in CORES) + " |"]
    best = {}
    for lp in sorted(loops, key=lambda lp: -lp["macs"]):
        sdot = "sdot" in lp["ops"]
        cells = []
        for cpu, _ in CORES:
            if sdot and cpu == "cortex-a72":
                cells.append("no SDOT")
                continue
            c = mca_cycles(tool, lp["body"], cpu, sdot)
            mpc = lp["macs"] / c
            pk = peak(tool, cpu, "sdot" if sdot else "smlal" if "smlal" in lp["ops"] else "smull")
            best[(cpu, sdot)] = max(best.get((cpu, sdot), 0.0), mpc)
            cells.append(f"{c:.1f} cyc, {mpc:.1f} MAC/cyc ({100 * mpc / pk:.0f}% of {pk:.0f})")
        rows.append(f"| {describe(lp)} | {lp['macs']} | {len(lp['body'])} | " + " | ".join(cells) + " |")
    return rows, best


# ----------------------------------------------------------------------------- dynamic part

#: /proc/cpuinfo of the emulated core, for onnxruntime's CPU detection (qemu-user shows the
#: host's own, which crashes onnxruntime's aarch64 cpuinfo parser); part numbers from Arm
CPUINFO = {"cortex-a76": ("0xd0b", "asimddp"), "cortex-a72": ("0xd08", "")}
ORT_RUN = r"""
import ctypes, sys, numpy as np, onnxruntime as ort
so = ort.SessionOptions()
so.intra_op_num_threads = 1
so.inter_op_num_threads = 1
so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
so.add_session_config_entry("session.intra_op.allow_spinning", "0")
s = ort.InferenceSession(sys.argv[1], so, providers=["CPUExecutionProvider"])
i = s.get_inputs()[0]
x = np.fromfile(sys.argv[2], np.int64 if "int64" in i.type else np.float32)
feed = {i.name: x.reshape([d if isinstance(d, int) else 1 for d in i.shape])}
mark, n = ctypes.CDLL(None).syscall, int(sys.argv[3])
s.run(None, feed)
mark(0x4C4B)
for _ in range(n):
    s.run(None, feed)
mark(0x4C4B)
"""


def build_plugin(tmp: Path) -> Path:
    so = tmp / "libinsn_count.so"
    subprocess.run(["gcc", "-shared", "-fPIC", "-O2", "-o", str(so),
                    str(KERNEL / "tools" / "qemu_insn_count.c")], check=True)
    return so


def build_runner(tmp: Path) -> Path:
    exe = tmp / "lk_run_blob"
    sources = [str(KERNEL / "tools" / "lk_run_blob.c")] + sorted(str(p) for p in KERNEL.glob("*.c"))
    subprocess.run([CC, *CFLAGS, "-static", f"-I{KERNEL}", "-o", str(exe), *sources], check=True)
    return exe


def qemu_count(plugin: Path, cpu: str, argv: list[str], tmp: Path, prefix=None, env=None) -> list[int]:
    """Guest instructions one qemu-aarch64 run executes: [total, count at each marker]."""
    out = tmp / "count"
    cmd = ["qemu-aarch64", "-cpu", cpu, "-plugin", f"{plugin},out={out}"]
    if prefix:
        cmd += ["-L", str(prefix)]
    subprocess.run(cmd + argv, check=True, capture_output=True, env=env, timeout=1800)
    return [int(v) for v in out.read_text().split()]


def ort_prefix(tmp: Path, root: Path, wheels: Path, cpu: str) -> tuple[Path, dict]:
    """A qemu -L prefix: the arm64 root (read only, through symlinks), a /proc/cpuinfo of
    `cpu`, and PYTHONPATH at onnxruntime's and numpy's aarch64 wheels, unpacked."""
    import zipfile
    pre = tmp / f"prefix-{cpu}"
    for d in ("usr", "lib", "etc", "bin"):
        (pre / d).parent.mkdir(parents=True, exist_ok=True)
        if not (pre / d).exists():
            (pre / d).symlink_to(root / d)
    part, extra = CPUINFO[cpu]
    (pre / "proc").mkdir(exist_ok=True)
    (pre / "proc" / "cpuinfo").write_text(
        f"processor\t: 0\nFeatures\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 cpuid {extra}\n"
        f"CPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x0\n"
        f"CPU part\t: {part}\nCPU revision\t: 0\n\n")
    cpus = pre / "sys" / "devices" / "system" / "cpu"
    cpus.mkdir(parents=True, exist_ok=True)
    for f in ("possible", "present", "online"):
        (cpus / f).write_text("0\n")
    site = tmp / "site"
    if not site.exists():
        for whl in sorted(wheels.glob("*.whl")):
            zipfile.ZipFile(whl).extractall(site)
    return pre, {"PYTHONPATH": str(site), "PATH": os.environ.get("PATH", "")}


def dynamic_table(tmp: Path, models: list[str], root: Path | None, wheels: Path | None) -> list[str]:
    import numpy as np

    from lanthorn.device.engine import engine_c
    from lanthorn.device.engine.graph import graph_macs
    from lanthorn.quantize import tiny_models
    from lanthorn.quantize.qdq_import import bundle_from_qdq
    exe, plugin = build_runner(tmp), build_plugin(tmp)
    ort = root is not None and wheels is not None
    head = ("| model | MACs | lanthorn c-neon-dotprod (A76) | MACs/instr | lanthorn c-neon (A72) "
            "| MACs/instr | lanthorn c-scalar |")
    if ort:
        head += " onnxruntime, A76 | lanthorn / ORT (A76) | onnxruntime, A72 | lanthorn / ORT (A72) |"
    rows = [head, "|" + " --- |" + " ---: |" * (head.count("|") - 2)]
    rng = np.random.default_rng(0)
    for name in models:
        _, q = tiny_models.build(name, tmp)
        g = bundle_from_qdq(q).graph
        macs = graph_macs(g)
        blob = tmp / f"{name}.lkb"
        blob.write_bytes(engine_c.to_blob(g))
        t = g.tensors[g.inputs[0]]
        vocab = next((int(lay.arrays["table"].shape[0]) for lay in g.layers if lay.op == "gather"), 2)
        inst = {}
        for v, cpu in (("neon-dotprod", "cortex-a76"), ("neon", "cortex-a72"), ("scalar", "cortex-a72")):
            c = []
            for n_sets in (1, 3):
                x = (rng.integers(0, vocab, (n_sets,) + t.shape).astype(np.int32) if t.dtype == "int32"
                     else rng.integers(-128, 128, (n_sets,) + t.shape).astype(np.int8))
                inp = tmp / f"{name}.{n_sets}.in"
                inp.write_bytes(x.tobytes())
                c.append(qemu_count(plugin, cpu, [str(exe), str(blob), str(inp),
                                                  str(tmp / f"{name}.out"), f"c-{v}"], tmp)[0])
            inst[v] = (c[1] - c[0]) / 2
        row = (f"| {name} | {macs:,} | {inst['neon-dotprod']:,.0f} | {macs / inst['neon-dotprod']:.2f} "
               f"| {inst['neon']:,.0f} | {macs / inst['neon']:.2f} | {inst['scalar']:,.0f} |")
        if ort:
            x = (rng.integers(0, vocab, t.shape).astype(np.int64) if t.dtype == "int32"
                 else rng.normal(size=t.shape).astype(np.float32))
            (tmp / "ort.in").write_bytes(x.tobytes())
            for cpu, ours in (("cortex-a76", "neon-dotprod"), ("cortex-a72", "neon")):
                pre, env = ort_prefix(tmp, root, wheels, cpu)
                total, start, end = qemu_count(plugin, cpu, [str(root / "usr/bin/python3.11"), "-c",
                                                             ORT_RUN, str(q), str(tmp / "ort.in"),
                                                             "20"], tmp, pre, env)
                per = (end - start) / 20
                row += f" {per:,.0f} | {inst[ours] / per:.2f} |"
        rows.append(row)
        print(row, file=sys.stderr, flush=True)
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--readme", help="rewrite the cost-model section of this file")
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--static-only", action="store_true", help="skip the qemu part")
    ap.add_argument("--arm64-root", default=os.environ.get("ARM64_ROOT", "out/arm64-root"),
                    help="a Debian bookworm arm64 root with python3.11, to count onnxruntime's "
                    "instructions too (read only; default $ARM64_ROOT)")
    ap.add_argument("--wheels", help="folder with onnxruntime's and numpy's cp311 aarch64 wheels "
                    "(default: pip download them into a cache folder)")
    args = ap.parse_args(argv)
    need(CC, "gcc-aarch64-linux-gnu")
    tool = mca_tool()
    version = subprocess.run([tool, "--version"], capture_output=True, text=True).stdout
    version = re.search(r"LLVM version ([\d.]+)", version).group(1)
    with tempfile.TemporaryDirectory(prefix="lk-arm-cost-") as d:
        tmp = Path(d)
        loops = mac_loops(assembly(tmp))
        static, best = static_table(tool, loops)
        out = [f"Static: `{tool}` (LLVM {version}) cycles per iteration of each multiplying inner "
               "loop in steady state, MACs per cycle, and that as a share of the core's peak "
               "(independent sdot, or smull for the plain NEON loop, in the same machine "
               "model):", ""] + static
        if not args.static_only:
            need("qemu-aarch64", "qemu-user")
            gcc = subprocess.run([CC, "-dumpfullversion"], capture_output=True, text=True).stdout.strip()
            root = Path(args.arm64_root) if args.arm64_root else None
            root = root if root and (root / "usr/bin/python3.11").exists() else None
            wheels = aarch64_wheels(Path(args.wheels) if args.wheels else None) if root else None
            why = ("" if root and wheels else " (onnxruntime not counted: "
                   + ("no arm64 root with python3.11; give --arm64-root" if not root
                      else "its aarch64 wheels could not be fetched; give --wheels") + ")")
            out += ["", f"Dynamic: guest instructions per inference under qemu-aarch64 (TCG "
                    f"plugin tools/qemu_insn_count.c): lanthorn's kernel built by "
                    f"aarch64-linux-gnu-gcc {gcc} as setup.py builds it, in tools/lk_run_blob.c "
                    f"((3 inputs - 1 input) / 2); onnxruntime {ORT_VERSION} (its aarch64 wheel, "
                    f"python3.11 of a bookworm arm64 root, the core's /proc/cpuinfo, one "
                    f"thread) in session.run (20 runs between two markers / 20, Python binding included){why}:",
                    ""] + dynamic_table(tmp, [m for m in args.models.split(",") if m], root, wheels)
    text = "\n".join(out)
    print(text)
    if args.readme:
        p = Path(args.readme)
        src = p.read_text()
        if BEGIN not in src or END not in src:
            sys.exit(f"arm-cost-model: {p} has no {BEGIN} ... {END} section")
        head, rest = src.split(BEGIN, 1)
        p.write_text(head + BEGIN + "\n" + text + "\n" + END + rest.split(END, 1)[1])
        print(f"\nwrote {p}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
