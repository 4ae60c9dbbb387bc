"""Honest data: a pinned, leak-proof split; duplicates refused; quality gates in plain words;
datasets that declare their own channels, units, ranges and rate.

The issue's must-shows: adding sessions never moves an earlier one to another side, and
`quantize` refuses to score a model on its own training sessions; a dataset with two empty
classes makes `train` exit non-zero with one line naming them.
"""
import json
import shutil

import numpy as np
import pytest

from lanthorn.cli import main
from lanthorn.device.piece.frames import CHANNELS, LABELS
from lanthorn.device.storage import dataset as ds
from lanthorn.host.curate import synthesize


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def sides(root):
    return {k: v["split"] for k, v in ds.read_manifest(root)[0]["sessions"].items()}


def take(n, seed, label_pad=None):
    """A short take of the default piece: noise, with one pad pressed when asked."""
    rng = np.random.default_rng(seed)
    f = rng.random((n, len(CHANNELS))) * 0.05
    if label_pad is not None:
        f[n // 4: 3 * n // 4, label_pad] = 0.8
    return f


def test_adding_sessions_never_moves_an_earlier_one(tmp_path):
    root = tmp_path / "d"
    ds.create_dataset(root)
    ds.add_source(root, ds.Source("alice", consent="signed form"))
    before = {}
    for round_ in range(4):
        for i in range(5):
            for lab, pad in (("tap", 0), ("hold", 3), ("palm", 6)):
                ds.write_recording(root, "alice", f"{lab}-{round_}-{i}", take(60, 1000 * round_ + 10 * i + pad, pad), lab)
        now = sides(root)
        assert all(now[k] == v for k, v in before.items()), "an earlier session changed side"
        assert set(now) > set(before)
        before = now
    # every gesture is on every side once it has enough takes
    for lab in ("tap", "hold", "palm"):
        got = {v for k, v in before.items() if k.split("/")[1].startswith(lab)}
        assert got == {"train", "val", "test"}
    # the split the trainer uses is exactly the pinned one
    from lanthorn.quantize.dataspec import DataSpec, prepare
    s = prepare(root, DataSpec(window=40, hop=10))
    for side in ("train", "val", "test"):
        assert set(s.sessions[side]) == {k for k, v in before.items() if v == side}


def test_pinned_side_with_split_flag_and_duplicates_refused(tmp_path, capsys):
    root = tmp_path / "d"
    assert run(capsys, "data", "add-source", root, "bob", "--consent", "verbal")[0] == 0
    f = tmp_path / "tap.csv"
    f.write_text("\n".join(",".join(f"{v:.3f}" for v in row) + ",tap" for row in take(40, 1, 2)) + "\n")
    code, _, err = run(capsys, "data", "import", f, "--data", root, "--source", "bob", "--split", "test")
    assert code == 0, err
    assert sides(root) == {"bob/tap": "test"}
    assert ds.read_manifest(root)[0]["sessions"]["bob/tap"]["fixed"] == "test"
    # the same content under another name is still the same recording
    shutil.copy(f, tmp_path / "again.csv")
    code, _, err = run(capsys, "data", "import", tmp_path / "again.csv", "--data", root, "--source", "bob")
    assert code == 2 and "identical to session 'bob/tap'" in err
    assert len(err.strip().splitlines()) == 1 and sides(root) == {"bob/tap": "test"}
    with pytest.raises(ds.DataError, match="identical"):
        ds.write_recording(root, "bob", "copy", take(40, 1, 2).round(3), "tap")


def test_a_legacy_dataset_is_pinned_once_the_way_it_was_always_split(tmp_path):
    root = tmp_path / "d"
    synthesize(root, minutes=2.0, session_seconds=20, seed=1, log=lambda *_: None)
    m = json.loads((root / "manifest.json").read_text())
    del m["sessions"]                      # as written by an older lanthorn
    (root / "manifest.json").write_text(json.dumps(m))
    w = ds.load_dataset(root).windows(50, 3)
    old = ds.split_by_session(w)
    want = {}
    for side, mask in old.items():
        for k in set(w.sessions[mask].tolist()):
            want[k] = side
    assert sides(ds.pin_sessions(root) and root) == want


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A small synthetic dataset and a short-trained model of it (library call: fast)."""
    from lanthorn.host.train import train
    from lanthorn.quantize import net as nets
    from lanthorn.quantize.dataspec import DataSpec
    root = tmp_path_factory.mktemp("leak")
    data = root / "data"
    synthesize(data, minutes=3.0, session_seconds=20, seed=2, log=lambda *_: None)
    train(data, root / "m.onnx", spec=DataSpec(hop=10), arch=nets.ArchConfig(widths=(6, 6, 8)),
          epochs=2, patience=2, progress=False, log=lambda *_: None)
    return root, data


def test_quantize_refuses_to_score_a_model_on_its_own_training_sessions(trained, tmp_path, capsys):
    root, data = trained
    import onnx

    from lanthorn.quantize.quantizer import training_record
    rec = training_record(onnx.load(str(root / "m.onnx")))
    trained_on = set(rec["sessions"]["train"])
    assert trained_on and rec["gates"]            # the card-to-be knows what it saw
    # the same recordings, split another way (what used to happen when sessions were added)
    other = tmp_path / "other"
    shutil.copytree(data, other)
    m = json.loads((other / "manifest.json").read_text())
    victim = sorted(trained_on)[0]
    m["sessions"][victim]["split"] = "test"
    (other / "manifest.json").write_text(json.dumps(m))
    code, _, err = run(capsys, "quantize", root / "m.onnx", "--data", other, "--out",
                       tmp_path / "x.lanthorn")
    assert code == 2 and "used to train this model" in err and victim in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "x.lanthorn").exists()
    # with --force it is scored, loudly
    code, out, err = run(capsys, "quantize", root / "m.onnx", "--data", other, "--out",
                         tmp_path / "x.lanthorn", "--force")
    assert code == 0 and "WARNING (--force)" in out and "used to train this model" in out


def test_train_refuses_a_dataset_with_two_empty_classes_in_one_line(tmp_path, capsys):
    root = tmp_path / "d"
    ds.create_dataset(root)
    ds.add_source(root, ds.Source("alice", consent="signed form"))
    present = [lab for lab in LABELS if lab not in ("stroke_ccw", "palm")]
    for i in range(4):
        for j, lab in enumerate(present):
            frames = take(60, 100 * i + j, j)
            labels = ["nobody"] * 10 + [lab] * 40 + ["nobody"] * 10
            ds.write_recording(root, "alice", f"{lab}-{i}", frames, labels)
    code, out, err = run(capsys, "train", root, "--out", tmp_path / "m.onnx", "--quiet")
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1, err
    assert "'stroke_ccw'" in lines[0] and "'palm'" in lines[0] and "no training examples" in lines[0]
    assert not (tmp_path / "m.onnx").exists()


def test_data_new_declares_channels_units_ranges_and_import_checks_them(tmp_path, capsys):
    root = tmp_path / "imu"
    code, out, err = run(capsys, "data", "new", root, "--rate", "10", "--labels", "still,walk",
                         "--channels", "ax:g:-8..8,ay:g:-8..8,gz:dps:-2000..2000,temp:C")
    assert code == 0, err
    header = ds.read_manifest(root)[0]
    assert header["channels"] == ("ax", "ay", "gz", "temp") and header["rate_hz"] == 10.0
    assert header["units"]["gz"] == "dps" and header["ranges"]["ax"] == (-8.0, 8.0)
    assert header["ring"] == () and "temp" not in header["ranges"]
    assert run(capsys, "data", "add-source", root, "me", "--consent", "my own wrist")[0] == 0
    f = tmp_path / "w.csv"
    f.write_text("ax,ay,gz,temp,label\n0.1,0.2,10,21,walk\n0.1,9.5,10,21,walk\n")
    code, _, err = run(capsys, "data", "import", f, "--data", root, "--source", "me")
    assert code == 2 and "line 3" in err and "ay = 9.5 is outside" in err and "-8..8" in err
    # the default piece: raw millimetres given as encoded values are caught, with a hint
    d2 = tmp_path / "d2"
    assert run(capsys, "data", "add-source", d2, "me", "--consent", "x")[0] == 0
    (tmp_path / "mm.csv").write_text("\n".join(",".join(["0"] * 12 + ["850", "0.5"]) for _ in range(3)) + "\n")
    code, _, err = run(capsys, "data", "import", tmp_path / "mm.csv", "--data", d2, "--source", "me",
                       "--label", "approach")
    assert code == 2 and "line 1" in err and "distance = 850" in err and "--raw" in err
    (tmp_path / "neg.csv").write_text("\n".join(",".join(["5"] * 12 + ["300", "-4"]) for _ in range(3)) + "\n")
    code, _, err = run(capsys, "data", "import", tmp_path / "neg.csv", "--data", d2, "--source", "me",
                       "--label", "approach", "--raw")
    assert code == 2 and "light = -4" in err and "raw range" in err
    # the encoding is written where a person looks for it
    with pytest.raises(SystemExit):
        main(["data", "import", "--help"])
    assert "1 - mm / 1200" in capsys.readouterr().out


def test_add_label_then_record_and_import_a_new_gesture(tmp_path, capsys):
    root = tmp_path / "d"
    assert run(capsys, "data", "add-source", root, "me", "--consent", "x")[0] == 0
    code, out, _ = run(capsys, "data", "add-label", root, "wave")
    assert code == 0 and "wave" in out and ds.read_manifest(root)[0]["labels"][-1] == "wave"
    code, _, err = run(capsys, "data", "add-label", root, "wave")
    assert code == 2 and "already has a label 'wave'" in err
    code, _, err = run(capsys, "data", "add-label", root, "bad name")
    assert code == 2 and "must be up to 32 letters" in err
    ds.write_recording(root, "me", "w1", take(30, 5, 1), "wave")
    # synth still works on a dataset with an extra label
    assert run(capsys, "data", "synth", "--out", root, "--minutes", "0.5",
               "--session-seconds", "15")[0] == 0


def test_delete_and_relabel_keep_the_manifest_consistent(tmp_path):
    root = tmp_path / "d"
    ds.create_dataset(root)
    ds.add_source(root, ds.Source("me"))
    for i in range(4):
        ds.write_recording(root, "me", f"t{i}", take(30, i, 1), "tap")
    before = sides(root)
    ds.relabel_session(root, "me", "t3", "hold")
    d = ds.load_dataset(root)
    assert {LABELS[i] for i in next(r for r in d.recordings if r.session == "t3").labels} == {"hold"}
    assert sides(root) == before and d.sessions["me/t3"]["label"] == "hold"
    ds.delete_session(root, "me", "t0")
    assert "me/t0" not in sides(root) and not (root / "recordings/me/t0.csv").exists()
    assert {k: v for k, v in before.items() if k != "me/t0"} == sides(root)


def test_push_shows_the_quality_figures_and_refuses_a_failed_model(trained, tmp_path, capsys):
    """The card carries the gates; push prints them before installing and will not install
    a model that failed one unless --force (checked before any serial port is opened)."""
    root, data = trained
    code, out, err = run(capsys, "quantize", root / "m.onnx", "--data", data, "--out",
                         tmp_path / "m.lanthorn", "--force")       # a 2-epoch model: fails
    assert code == 0
    from lanthorn.device.engine.bundle import read_bundle
    q = read_bundle(tmp_path / "m.lanthorn").card["quality"]
    assert q["forced"] and q["training"]["sessions"]["train"] and q["gates"]
    code, out, err = run(capsys, "push", tmp_path / "m.lanthorn", "--port", tmp_path / "no-port")
    assert code == 2 and "failed its quality gates" in err and "near chance" in err
    assert "quality: FAILED" in out and "quality: trained on" in out
    assert len(err.strip().splitlines()) == 1
    code, out, err = run(capsys, "push", tmp_path / "m.lanthorn", "--port", tmp_path / "no-port",
                         "--force")
    assert code == 2 and "no serial port" in err and "WARNING (--force)" in out


def test_train_and_quantize_report_the_same_macs_and_bytes(trained, tmp_path, capsys):
    """They used to disagree (88,192 / 25,981 against 88,608 / 26,457): one count now."""
    root, data = trained
    from lanthorn.quantize.net import ArchConfig
    from lanthorn.quantize.quantizer import quantize_model
    arch = ArchConfig(widths=(6, 6, 8))
    arch.in_channels, arch.window, arch.n_classes = 14, 50, 9
    r = quantize_model(root / "m.onnx", data, tmp_path / "m.lanthorn", log=lambda *a: None)
    assert r.final.macs == arch.macs()
    assert r.evaluations[0].float_bytes == (root / "m.onnx").stat().st_size


def test_the_input_scale_travels_in_the_bundle_and_the_loop_applies_it(trained, tmp_path):
    """Training brings every channel to a similar magnitude for the one int8 input scale;
    the factors go in the bundle's input spec and the device loop multiplies its frames by
    them before the model (so the model sees on the object what it saw in training)."""
    root, data = trained
    from lanthorn.device.engine.runtime import load
    from lanthorn.device.piece.piece import Piece
    from lanthorn.hardware.profile import load_profile
    from lanthorn.hardware.sim import open_sim_body
    from lanthorn.quantize.quantizer import quantize_model
    quantize_model(root / "m.onnx", data, tmp_path / "m.lanthorn", log=lambda *a: None)
    model = load(tmp_path / "m.lanthorn")
    scale = np.asarray(model.input_spec.scale, np.float32)
    assert scale.shape == (len(CHANNELS),) and (scale > 0).all() and len(set(scale.tolist())) > 1
    body = open_sim_body(load_profile("sim"), realtime=False)
    try:
        loop = Piece(body, model=model, clock=body.clock, oled_thread=False)
        loop.start()
        for _ in range(30):
            loop.step()
        window = loop.inference.window
        raw = window.raw().copy()
        np.testing.assert_allclose(window.view(), raw * scale, rtol=1e-6)
    finally:
        body.close()


def test_a_file_holding_one_instance_twice_is_kept_flagged_and_on_one_side(tmp_path, capsys):
    """Published archives hold exact duplicates (ArrowHead's test set does): refused unless
    --keep-duplicates; then each duplicate is named and lands on its twin's side."""
    root = tmp_path / "d"
    assert run(capsys, "data", "new", root, "--labels", "a,b", "--channels", "x")[0] == 0
    assert run(capsys, "data", "add-source", root, "arch", "--consent", "public")[0] == 0
    rows = ["session,label,x"]
    rng = np.random.default_rng(0)
    takes = [rng.normal(size=12) for _ in range(6)]
    takes.append(takes[2])                          # instance 6 is instance 2 again
    for k, t in enumerate(takes):
        rows += [f"i{k},{'ab'[k % 2]},{v:.4f}" for v in t]
    rows = [r if not r.startswith("i6,") else "i6,a," + r.split(",", 2)[2] for r in rows]
    (tmp_path / "f.csv").write_text("\n".join(rows) + "\n")
    # refused by default, naming the pair (DATA.md: an identical recording is refused) ...
    code, _, err = run(capsys, "data", "import", tmp_path / "f.csv", "--data", root, "--source", "arch",
                       "--session", "t")
    assert code == 2 and "'t-i6' = 'arch/t-i2'" in err and "--keep-duplicates" in err
    assert sides(root) == {}
    # ... kept, flagged, when the artist says the archive is like that
    code, _, err = run(capsys, "data", "import", tmp_path / "f.csv", "--data", root, "--source", "arch",
                       "--session", "t", "--keep-duplicates")
    assert code == 0 and "'t-i6' is identical to 'arch/t-i2'" in err
    s = sides(root)
    assert s["arch/t-i6"] == s["arch/t-i2"] and len(s) == 7
    code, out, _ = run(capsys, "data", "info", root)
    assert "'arch/t-i2' and 'arch/t-i6' are identical" in out
    # the whole file again is still "imported twice": refused
    code, _, err = run(capsys, "data", "import", tmp_path / "f.csv", "--data", root, "--source", "arch",
                       "--session", "u")
    assert code == 2 and "imported twice" in err and len(sides(root)) == 7


def test_a_calibration_method_is_measured_against_minmax(trained, tmp_path):
    root, data = trained
    from lanthorn.device.engine.bundle import read_bundle
    from lanthorn.quantize.quantizer import quantize_model
    logs = []
    quantize_model(root / "m.onnx", data, tmp_path / "p.lanthorn", calibration="percentile",
                   enforce=True, force=True, log=logs.append)
    gates = {g["name"]: g for g in read_bundle(tmp_path / "p.lanthorn").card["quality"]["gates"]}
    assert "calibration" in gates and "against minmax" in gates["calibration"]["message"]
    assert any("against minmax" in str(m) for m in logs)


def test_add_source_can_declare_the_channels_of_a_new_dataset(tmp_path, capsys):
    root = tmp_path / "grip"
    code, _, err = run(capsys, "data", "add-source", root, "me", "--consent", "mine", "--rate", "50",
                       "--labels", "rest,squeeze", "--channels", "force:N:0..500,temp:C")
    assert code == 0, err
    h = ds.read_manifest(root)[0]
    assert h["channels"] == ("force", "temp") and h["rate_hz"] == 50.0
    assert h["units"] == {"force": "N", "temp": "C"} and h["ranges"] == {"force": (0.0, 500.0)}
    with pytest.raises(SystemExit) as exc:            # argparse's own usage error
        main(["data", "new", str(tmp_path / "bad"), "--channels", "a:x:5..1"])
    assert exc.value.code == 2 and "LOW < HIGH" in capsys.readouterr().err
