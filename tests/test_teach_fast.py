"""Teaching a gesture from a few takes: held out honestly, fine-tuned, no old gesture lost.

* three takes of a new gesture cannot each sit on a side of the split by take: each take is
  then held out in time (train, gap, validation, gap, test), and the blocks share no frame;
* the recall gate: a class that falls against the model it replaces fails, named;
* adding a gesture without the old data loses old gestures: ``train`` exits non-zero naming
  them; with the old data (the default) it passes.
The takes are the simulator's visitor waving (``gestures=['wave']``), written as ``record``
writes a take: every frame labelled with the gesture being taught.
"""
import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("onnx")

from lanthorn.cli import main
from lanthorn.device.storage import dataset as dsf
from lanthorn.host import finetune
from lanthorn.host.curate import synthesize, trace_frames
from lanthorn.quantize import quality
from lanthorn.quantize.dataspec import BLOCK_MARK, DataSpec, prepare, shares_frames

needs_shipped = pytest.mark.skipif(not finetune.SHIPPED_CHECKPOINT.is_file()
                                   or not finetune.SHIPPED_DATA.is_dir(),
                                   reason="the shipped checkpoint and its data are not here")


def add_takes(root, n=3, seconds=12.0, label="wave"):
    """``n`` takes of the simulated visitor demonstrating ``label`` over and over (what
    ``lanthorn run --sim --sim-gestures wave`` shows ``record``), each recorded once the
    visitor is there: the first 5 s of its world are left out."""
    from lanthorn.device.piece.frames import SAMPLE_HZ
    from lanthorn.hardware.sim import World
    from lanthorn.hardware.sim.visitor import _trace

    if label not in dsf.read_manifest(root)[0]["labels"]:
        dsf.add_label(root, label)
    dsf.add_source(root, dsf.Source("me", author="the simulator", consent="synthetic"))
    for k in range(1, n + 1):
        world = World(seed=100 + k, gestures=[label])
        world.segment_at(5.0 + seconds)            # the demonstration planned that far
        tr = _trace(world.segments, 5.0 + seconds, SAMPLE_HZ, world.sensors)
        frames, _ = trace_frames(tr)
        dsf.write_recording(root, "me", f"{label}-{k}", frames[-int(seconds * 25):], label,
                            rate_hz=25.0)


@pytest.fixture(scope="module")
def few_takes(tmp_path_factory):
    root = tmp_path_factory.mktemp("teach") / "mydata"
    synthesize(root, minutes=2.0, session_seconds=30, seed=2, log=lambda *_: None)
    add_takes(root)
    return root


def test_three_takes_are_held_out_in_time_and_share_no_frame(few_takes):
    sides = {k: v["split"] for k, v in dsf.read_manifest(few_takes)[0]["sessions"].items()
             if k.startswith("me/")}
    assert set(sides.values()) != {"train", "val", "test"}   # by take, one side is missing
    s = prepare(few_takes, DataSpec())
    assert s.held_in_time == {"wave": 3}
    wave = s.spec.labels.index("wave")
    for part in (s.train, s.val, s.test):
        assert (part.y == wave).sum() > 0          # the new gesture on every side
    blocks = {side: {k for k in s.sessions[side] if k.startswith("me/")} for side in s.sessions}
    for side, keys in blocks.items():
        assert keys == {f"me/wave-{i}{BLOCK_MARK}{side}" for i in (1, 2, 3)}
    # the blocks of one take never overlap, and a gap of half a window lies between them
    ds = dsf.load_dataset(few_takes)
    take = next(r for r in ds.recordings if r.key == "me/wave-1")
    ranges = dict(_time_blocks_of(len(take.frames), s.spec.window))
    assert ranges["train"][1] + s.spec.window // 2 <= ranges["val"][0]
    assert ranges["val"][1] + s.spec.window // 2 <= ranges["test"][0]
    assert ranges["test"][1] == len(take.frames)
    # the synthetic visits (many gestures a take) are still dealt whole, by take
    assert all(BLOCK_MARK not in k for side in s.sessions for k in s.sessions[side]
               if not k.startswith("me/"))


def _time_blocks_of(n, window):
    from lanthorn.quantize.dataspec import _time_blocks
    return _time_blocks(n, window).items()


def test_enough_takes_are_held_out_by_take_again(tmp_path):
    root = tmp_path / "d"
    synthesize(root, minutes=2.0, session_seconds=30, seed=2, log=lambda *_: None)
    add_takes(root, n=8)
    sides = {v["split"] for k, v in dsf.read_manifest(root)[0]["sessions"].items()
             if k.startswith("me/")}
    assert sides == {"train", "val", "test"}
    s = prepare(root, DataSpec())
    assert s.held_in_time == {}
    assert not any(BLOCK_MARK in k for v in s.sessions.values() for k in v)


def test_a_block_shares_frames_only_with_its_whole_take():
    assert shares_frames("me/wave-1@test", "me/wave-1")
    assert shares_frames("me/wave-1", "me/wave-1@train")
    assert not shares_frames("me/wave-1@test", "me/wave-1@train")
    assert not shares_frames("me/wave-1@test", "me/wave-2@test".replace("@test", ""))


def test_recall_gate_names_the_fallen_class_with_both_figures():
    old = {"tap": 0.91, "hold": 0.98, "palm": 0.6}
    ok = quality.recall_gates(old, {"tap": 0.85, "hold": 0.97, "palm": 0.55}, "here")
    assert [g.ok for g in ok] == [True]
    bad = quality.recall_gates(old, {"tap": 0.70, "hold": 0.97, "palm": 0.45}, "here")
    assert not bad[0].ok
    assert "'tap' 91% -> 70%" in bad[0].message and "'palm' 60% -> 45%" in bad[0].message
    assert "hold" not in bad[0].message
    assert quality.recall_gates(old, {}, "here") == []    # nothing measured, nothing claimed


@needs_shipped
@pytest.mark.slow
def test_a_gesture_added_without_the_old_data_fails_naming_the_lost_ones(tmp_path, capsys):
    """Trained from scratch on a small dataset with the new takes, the old gestures fall
    on the shipped model's held-out sessions: refused by name. Fine-tuned with the old data
    mixed in (the default) they keep their recall."""
    root = tmp_path / "mydata"
    synthesize(root, minutes=1.0, session_seconds=60, seed=2, log=lambda *_: None)
    add_takes(root)
    rc = main(["train", str(root), "--out", str(tmp_path / "a.onnx"), "--quiet", "--full",
               "--no-old-data"])
    err = capsys.readouterr().err
    assert rc != 0 and "the replaced model recognised fell" in err, err
    # each fallen gesture by name, with the shipped model's own figure and the new one
    import re
    fell = re.findall(r"'(\w+)' (\d+)% -> (\d+)%", err)
    assert fell and all(lab in finetune.load_base(finetune.SHIPPED_CHECKPOINT).recall
                        for lab, _, _ in fell), err
    rc = main(["train", str(root), "--out", str(tmp_path / "b.onnx"), "--summary",
               str(tmp_path / "b.json")])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "fine-tuning the shipped model (wave added)" in out
    assert "mixed in 2500 windows of the old model's training data" in out
    assert "take-level accuracy" in out and "3 held-out takes" in out
    import json
    summary = json.loads((tmp_path / "b.json").read_text())
    gates = {g["name"]: g for g in summary["quality"]["gates"]}
    assert gates["recall"]["ok"] and gates["classes"]["ok"], gates
    assert summary["recall"]["wave"] >= 0.5 and summary["fine_tuned"] is True
    assert summary["fit"]["epochs"] == finetune.FINETUNE_FIT["epochs"]


@needs_shipped
def test_from_a_model_whose_labels_do_not_lead_the_dataset_is_refused(tmp_path, capsys):
    root = tmp_path / "d"
    dsf.create_dataset(root, labels=("nobody", "wave"))
    rc = main(["train", str(root), "--out", str(tmp_path / "m.onnx"), "--from",
               str(finetune.SHIPPED_CHECKPOINT.with_suffix(".onnx"))])
    err = capsys.readouterr().err
    assert rc != 0 and "knows nobody, approach" in err and "its labels: nobody, wave" in err


def test_quantize_refuses_a_mood_for_a_gesture_the_model_lacks(tmp_path, capsys):
    from quantize_helpers import make_data, make_model

    data = make_data(tmp_path / "d")
    model = make_model(data, tmp_path / "m.onnx", epochs=1)
    rc = main(["quantize", str(model), "--data", str(data), "--out", str(tmp_path / "m.lanthorn"),
               "--mood", "wiggle=shy"])
    err = capsys.readouterr().err
    assert rc != 0 and "--mood names 'wiggle'" in err and "its labels: nobody, approach" in err
    assert not (tmp_path / "m.lanthorn").exists()      # refused before any work


def test_push_to_a_missing_port_is_one_line_with_a_hint_and_no_figures(tmp_path):
    """No object at the port: one line that says so and what to try, before (instead of)
    the quality figures of a bundle that passed its gates."""
    import subprocess
    import sys

    from lanthorn.device.models import DEFAULT_BUNDLE

    r = subprocess.run([sys.executable, "-m", "lanthorn", "push", str(DEFAULT_BUNDLE),
                        "--port", str(tmp_path / "ttyACM0")], capture_output=True, text=True)
    assert r.returncode == 2 and r.stdout == "", r.stdout
    assert len(r.stderr.strip().splitlines()) == 1
    assert "no serial port" in r.stderr and "ls /dev/ttyACM* /dev/ttyUSB*" in r.stderr
    assert "Errno" not in r.stderr


def test_train_on_a_csv_file_says_it_is_a_file_and_how_to_import_it(tmp_path, capsys):
    f = tmp_path / "bad.csv"
    f.write_text("1,2,3\n")
    rc = main(["train", str(f), "--out", str(tmp_path / "m.onnx")])
    err = capsys.readouterr().err
    assert rc == 2 and "this is a file, not a dataset folder" in err
    assert f"lanthorn data import {f} --data DIR" in err and len(err.strip().splitlines()) == 1


def test_inspect_prints_the_quality_checks_as_lines_not_a_dict(tmp_path, capsys):
    from quantize_helpers import make_data, make_model

    data = make_data(tmp_path / "d")
    model = make_model(data, tmp_path / "m.onnx", epochs=1)
    main(["quantize", str(model), "--data", str(data), "--out", str(tmp_path / "m.lanthorn"),
          "--force"])
    capsys.readouterr()
    assert main(["inspect", str(tmp_path / "m.lanthorn")]) == 0
    out = capsys.readouterr().out
    section = out.split("\nquality\n", 1)[1].split("\ninput ", 1)[0].splitlines()
    assert section[0].startswith("  trained on ") and "held-out" in section[0]
    assert any(line.startswith(("  ok    ", "  FAILED ")) for line in section)
    assert "{'" not in out and "[{" not in out      # no Python repr anywhere


def test_help_explains_a_parameter_on_the_console():
    from lanthorn.device.console.console_wire import ProtocolError, help_text
    from lanthorn.device.piece.params import PARAMS

    lines = help_text("brightness")
    p = next(p for p in PARAMS if p.name == "brightness")
    assert lines[0] == f"brightness: {p.description}"
    assert f"default {p.default}" in lines[1] and "0" in lines[1] and "100" in lines[1]
    assert lines[2].startswith("change it: set brightness")
    assert help_text("set")[0].startswith("set NAME")            # commands still first
    with pytest.raises(ProtocolError, match="no command or parameter 'brightnes'"):
        help_text("brightnes")


def test_run_sim_serial_auto_makes_the_cable_and_prints_where_to_connect(tmp_path):
    import subprocess
    import sys
    import time

    from lanthorn.host.console_client import ConsoleClient

    p = subprocess.Popen([sys.executable, "-m", "lanthorn", "run", "--sim", "--serial", "auto",
                          "--seconds", "60", "--data-dir", str(tmp_path / "dev")],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        line = p.stdout.readline()
        assert line.startswith("console: connect to /dev/pts/"), line
        port = line.split()[3]
        end = time.monotonic() + 60
        while True:
            try:
                with ConsoleClient(port, timeout=2.0, holder="test") as c:
                    st = c.call("status")
                break
            except Exception:
                assert time.monotonic() < end and p.poll() is None
                time.sleep(0.5)
        assert "fps" in st
    finally:
        p.terminate()
        p.wait(20)


def test_import_skips_the_columns_named_and_still_refuses_other_unknown_ones(tmp_path, capsys):
    root = tmp_path / "d"
    assert main(["data", "new", str(root), "--labels", "a,b", "--channels", "x,y"]) == 0
    assert main(["data", "add-source", str(root), "me", "--consent", "mine"]) == 0
    rows = ["label,x,gyro,y,temp"] + [f"{'ab'[k % 2]},{k / 10:.2f},9,{k / 20:.2f},21"
                                      for k in range(40)]
    f = tmp_path / "f.csv"
    f.write_text("\n".join(rows) + "\n")
    capsys.readouterr()
    assert main(["data", "import", str(f), "--data", str(root), "--source", "me"]) == 2
    err = capsys.readouterr().err
    assert "unknown columns ['gyro', 'temp']" in err and "--skip-columns gyro,temp" in err
    assert main(["data", "import", str(f), "--data", str(root), "--source", "me",
                 "--skip-columns", "gyro,temp"]) == 0
    (rec,) = dsf.load_dataset(root).recordings
    assert rec.frames.shape == (40, 2)
    assert np.allclose(rec.frames[:, 1], [k / 20 for k in range(40)], atol=1e-6)
    assert main(["data", "import", str(f), "--data", str(root), "--source", "me",
                 "--skip-columns", "nope", "--session", "again"]) == 2
    assert "--skip-columns nope: no such column" in capsys.readouterr().err


def test_take_level_accuracy_reads_each_single_gesture_take_by_its_majority():
    from lanthorn.host.train import take_accuracy

    sessions = np.array(["a"] * 5 + ["b"] * 4 + ["visit"] * 4, dtype=object)
    y = np.array([1] * 5 + [2] * 4 + [0, 0, 3, 3])
    pred = np.array([1, 1, 2, 1, 0] + [2, 1, 1, 0] + [0, 0, 3, 3])
    held = dsf.Windows(np.zeros((13, 1, 4), np.float32), y, sessions, np.ones(13, np.float32), ())
    # take a: 3 of 5 windows say 1 -> right; take b: 1 -> wrong; the visit is not one gesture
    assert take_accuracy(held, pred) == (0.5, 2)
    only_visits = held.subset(sessions == "visit")
    assert take_accuracy(only_visits, pred[sessions == "visit"]) is None


def test_no_validation_trains_on_the_whole_published_training_part(tmp_path, capsys):
    """--split train keeps 15-20 % of a published training part back for validation;
    --no-validation trains on all of it, every epoch, judged on the published test part."""
    import json
    root = tmp_path / "d"
    assert main(["data", "new", str(root), "--labels", "a,b", "--channels", "x,y"]) == 0
    assert main(["data", "add-source", str(root), "pub", "--consent", "public"]) == 0
    rng = np.random.default_rng(0)
    for split, n in (("train", 8), ("test", 4)):
        rows = ["session,label,x,y"]
        for k in range(n):
            lab = "ab"[k % 2]
            sig = (1.0 if lab == "a" else -1.0) * np.linspace(0, 1, 16)
            rows += [f"{split}{k},{lab},{v:.4f},{rng.normal():.4f}" for v in sig + rng.normal(0, .1, 16)]
        (tmp_path / f"{split}.csv").write_text("\n".join(rows) + "\n")
        assert main(["data", "import", str(tmp_path / f"{split}.csv"), "--data", str(root),
                     "--source", "pub", "--split", split]) == 0
    sides = {v["split"] for k, v in dsf.read_manifest(root)[0]["sessions"].items()
             if v.get("fixed") == "train"}
    assert sides == {"train", "val"}              # validation is taken from the training part
    capsys.readouterr()
    rc = main(["train", str(root), "--out", str(tmp_path / "m.onnx"), "--window", "16",
               "--epochs", "60", "--quiet", "--no-validation", "--summary", str(tmp_path / "s.json")])
    out = capsys.readouterr().out
    assert rc == 0, out
    s = json.loads((tmp_path / "s.json").read_text())
    assert len(s["sessions"]["train"]) == 8 and s["sessions"]["val"] == []
    assert s["epochs_run"] == 60 and s["best_epoch"] == 60 and len(s["sessions"]["test"]) == 4
    assert "no validation (--no-validation): all 60 epochs, the last kept" in out
