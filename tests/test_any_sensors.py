"""Any sensors, any rate: datasets that are not the default piece go through the CLI.

Must-show: a 6-axis accelerometer + gyroscope dataset at 10 Hz and a 1-channel dataset at
50 Hz go through `data new` / `add-source` → `data import` → `train` → `quantize` with the
CLI defaults: no traceback, no hand edits, and a model that really learnt (small generated
data of those shapes, one take per instance, published-archive style). The bundle runs on
lanthorn's engine and reads the dataset's own channels at its own rate.
"""
import numpy as np

from lanthorn.cli import main
from lanthorn.device.engine.bundle import read_bundle


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def imu_take(kind: int, rng, n=60, rate=10.0):
    """[n, 6]: ax, ay, az in g (gravity on z), gx, gy, gz in deg/s; kind 0..3 = still, walk,
    run, wave (a different rhythm and axis for each)."""
    t = np.arange(n) / rate
    f = np.zeros((n, 6))
    f[:, 2] = 1.0
    phase = rng.uniform(0, 2 * np.pi)
    if kind == 1:
        f[:, 0] += 0.3 * np.sin(2 * np.pi * 1.0 * t + phase)
        f[:, 4] += 40 * np.sin(2 * np.pi * 1.0 * t + phase)
    elif kind == 2:
        f[:, 0] += 1.2 * np.sin(2 * np.pi * 2.5 * t + phase)
        f[:, 2] += 0.8 * np.abs(np.sin(2 * np.pi * 2.5 * t + phase))
        f[:, 4] += 200 * np.sin(2 * np.pi * 2.5 * t + phase)
    elif kind == 3:
        f[:, 1] += 0.8 * np.sin(2 * np.pi * 1.5 * t + phase)
        f[:, 5] += 300 * np.sin(2 * np.pi * 1.5 * t + phase)
    f[:, :3] += rng.normal(0, 0.05, (n, 3))
    f[:, 3:] += rng.normal(0, 5.0, (n, 3))
    return f


def one_channel_take(kind: int, rng, n=75):
    """[n, 1] at 50 Hz, z-normalised like a published archive (GunPoint's shape): a hand
    rises and falls (0), or rises, dips while it points, and falls (1); where in the take
    it happens varies."""
    t = np.linspace(0, 1, n)
    c = 0.5 + rng.normal(0, 0.06)
    x = 1 / (1 + np.exp(-(t - (c - 0.2)) / 0.03)) - 1 / (1 + np.exp(-(t - (c + 0.2)) / 0.03))
    if kind == 1:
        x -= 0.6 * np.exp(-((t - c) / 0.04) ** 2)
    x += rng.normal(0, 0.05, n)
    return ((x - x.mean()) / x.std())[:, None]


def write_split(path, takes, labels, channels, first=0):
    """One CSV with a session column: session,label,channels..."""
    rows = ["session,label," + ",".join(channels)]
    for i, (f, lab) in enumerate(zip(takes, labels, strict=True)):
        rows += [f"i{first + i},{lab}," + ",".join(f"{v:.5g}" for v in r) for r in f]
    path.write_text("\n".join(rows) + "\n")


def through_the_cli(capsys, tmp_path, name, rate, labels, channel_arg, make, per_class):
    root = tmp_path / name
    code, _, err = run(capsys, "data", "new", root, "--rate", rate, "--labels", ",".join(labels),
                       "--channels", channel_arg)
    assert code == 0, err
    assert run(capsys, "data", "add-source", root, "archive", "--consent",
               "public archive, CC-BY", "--licence", "CC-BY-4.0")[0] == 0
    channels = [c.split(":")[0] for c in channel_arg.split(",")]
    rng = np.random.default_rng(0)
    # the archive's own TRAIN/TEST split, reproduced with --split test
    for part, n in (("train", per_class), ("test", max(3, per_class // 2))):
        takes, labs = [], []
        for k, lab in enumerate(labels):
            for _ in range(n):
                takes.append(make(k, rng))
                labs.append(lab)
        f = tmp_path / f"{name}_{part}.csv"
        write_split(f, takes, labs, channels, first=0 if part == "train" else 10000)
        extra = ["--split", part]
        code, _, err = run(capsys, "data", "import", f, "--data", root, "--source", "archive",
                           "--session", part, *extra)
        assert code == 0, err
    code, out, err = run(capsys, "train", root, "--out", tmp_path / f"{name}.onnx", "--quiet")
    assert code == 0, err + out
    assert "Traceback" not in err and "no ring declared" in out
    code, out, err = run(capsys, "quantize", tmp_path / f"{name}.onnx", "--data", root, "--out",
                         tmp_path / f"{name}.lanthorn")
    assert code == 0, err + out
    b = read_bundle(tmp_path / f"{name}.lanthorn")
    assert b.input_spec.channels == tuple(channels) and b.input_spec.rate_hz == float(rate)
    assert b.labels == tuple(labels)
    assert b.card["held_out"] == "test"
    return b


def test_six_axis_imu_at_10_hz_through_the_cli_with_defaults(tmp_path, capsys):
    b = through_the_cli(capsys, tmp_path, "imu", 10, ["still", "walk", "run", "wave"],
                        "ax:g:-8..8,ay:g:-8..8,az:g:-8..8,gx:dps:-2000..2000,"
                        "gy:dps:-2000..2000,gz:dps:-2000..2000", imu_take, per_class=8)
    print("imu int8", b.card["accuracy_int8"], "float", b.card["accuracy_float"])
    assert b.card["accuracy_int8"] >= 0.9


def test_one_channel_at_50_hz_through_the_cli_with_defaults(tmp_path, capsys):
    b = through_the_cli(capsys, tmp_path, "one", 50, ["gun", "point"], "x",
                        one_channel_take, per_class=10)
    print("1ch int8", b.card["accuracy_int8"], "float", b.card["accuracy_float"])
    assert b.card["accuracy_int8"] >= 0.9
    assert b.input_spec.window >= 8


def test_ring_rotation_only_turns_the_declared_ring():
    import torch

    from lanthorn.quantize.net import rotate_ring
    x = torch.arange(2 * 5 * 3, dtype=torch.float32).reshape(2, 5, 3)
    gen = torch.Generator().manual_seed(1)
    y = rotate_ring(x, gen, [1, 2, 3])
    assert torch.equal(y[:, 0], x[:, 0]) and torch.equal(y[:, 4], x[:, 4])
    for b in range(2):
        rows = [tuple(y[b, c].tolist()) for c in (1, 2, 3)]
        src = [tuple(x[b, c].tolist()) for c in (1, 2, 3)]
        k = src.index(rows[0])
        assert rows == src[k:] + src[:k]        # a rotation, order kept
    assert torch.equal(rotate_ring(x, gen, []), x)


def test_takes_of_varying_length_are_padded_not_dropped(tmp_path, capsys):
    """One spoken vowel per take, 7 to 20 frames of 12 cepstral channels: the window is
    chosen from the takes' lengths and the shorter takes are front-padded with their first
    frame (as the device's window starts), so no take -- and no test instance -- is lost."""

    def vowel(kind, rng):
        n = int(rng.integers(7, 21))
        base = np.zeros(12)
        base[kind * 4:(kind + 1) * 4] = 1.0
        return base[None, :] + rng.normal(0, 0.3, (n, 12))

    b = through_the_cli(capsys, tmp_path, "vowels", 100, ["a", "i", "u"],
                        ",".join(f"cc{i}" for i in range(12)), vowel, per_class=10)
    assert "from 15 sessions" in b.card["data"] or "from 15 session" in b.card["data"]
    assert b.card["accuracy_int8"] >= 0.9


def test_pad_short_repeats_the_first_frame():
    from lanthorn.device.storage.dataset import Dataset, Recording
    rec = Recording("s", "t", None, np.arange(10, dtype=np.float32).reshape(5, 2),
                    np.ones(5, np.int16))
    ds = Dataset(None, 10.0, ("a", "b"), ("rest", "go"), {"s": type("S", (), {"weight": 1.0})()},
                 [rec])
    assert len(ds.windows(8, 1)) == 0
    w = ds.windows(8, 1, pad_short=True)
    assert w.X.shape == (1, 2, 8) and w.y.tolist() == [1]
    np.testing.assert_array_equal(w.X[0, 0], [0, 0, 0, 0, 2, 4, 6, 8])
