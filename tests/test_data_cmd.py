"""`lanthorn data`: synth from the simulator, CSV import of makers' streams, sources, info."""
import json

import numpy as np
import pytest

from lanthorn.cli import main
from lanthorn.device.piece.frames import CHANNELS, LABELS, PAD_MAX
from lanthorn.device.storage import dataset as ds
from lanthorn.host.curate import synthesize


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def data(tmp_path, capsys):
    root = tmp_path / "data"
    code, out, _ = run(capsys, "data", "add-source", str(root), "alice", "--author", "Alice",
                       "--consent", "signed form 2026-05-02", "--licence", "CC-BY-4.0")
    assert code == 0 and "declared source 'alice'" in out
    return root


def row(values, label=None, sep=","):
    vals = [f"{v:g}" for v in values]
    return sep.join(vals + ([label] if label else []))


def test_synth_is_seeded_labelled_honestly_and_marked_synthetic(tmp_path):
    a = synthesize(tmp_path / "a", minutes=1.0, session_seconds=20, seed=3, log=lambda *_: None)
    b = synthesize(tmp_path / "b", minutes=1.0, session_seconds=20, seed=3, log=lambda *_: None)
    assert len(a) == 3 and [p.read_bytes() for p in a] == [p.read_bytes() for p in b]
    c = synthesize(tmp_path / "c", minutes=1.0, session_seconds=20, seed=4, log=lambda *_: None)
    assert c[0].read_bytes() != a[0].read_bytes()
    d = ds.load_dataset(tmp_path / "a")
    src = d.sources["synthetic"]
    assert src.synthetic and "synthetic" in src.consent and src.licence
    assert sum(len(r.frames) for r in d.recordings) == 3 * 20 * 25
    # frames are the device's encoding (lanthorn.device.piece.frames): pads in [0, PAD_MAX],
    # distance in [0, 1]
    X = np.concatenate([r.frames for r in d.recordings])
    assert X.shape[1] == len(CHANNELS) and X.min() >= 0
    assert X[:, :12].max() <= PAD_MAX and X[:, 12].max() <= 1.0 and X[:, :12].max() > 0.1
    assert len({int(v) for r in d.recordings for v in np.unique(r.labels)}) >= 4


def test_synth_refuses_to_overwrite_and_bad_arguments(tmp_path, capsys):
    out = str(tmp_path / "s")
    assert run(capsys, "data", "synth", "--out", out, "--minutes", "0.2",
               "--session-seconds", "6")[0] == 0
    code, _, err = run(capsys, "data", "synth", "--out", out, "--minutes", "0.2")
    assert code == 2 and "already has recordings" in err
    code, _, err = run(capsys, "data", "synth", "--out", str(tmp_path / "t"), "--minutes", "-1")
    assert code == 2 and "must be positive" in err


def test_import_comma_tab_space_with_label_column_or_flag(tmp_path, capsys, data):
    rng = np.random.default_rng(0)
    vals = rng.random((30, len(CHANNELS)))
    (tmp_path / "a.csv").write_text("\n".join(row(v, "tap") for v in vals) + "\n")
    (tmp_path / "b.tsv").write_text("\n".join(row(v, sep="\t") for v in vals) + "\n")
    (tmp_path / "c.txt").write_text("# from my serial monitor\n" +
                                    "\n".join("hold " + row(v, sep=" ") for v in vals) + "\n")
    assert run(capsys, "data", "import", str(tmp_path / "a.csv"), "--data", str(data),
               "--source", "alice")[0] == 0
    assert run(capsys, "data", "import", str(tmp_path / "b.tsv"), "--data", str(data),
               "--source", "alice", "--label", "palm")[0] == 0
    code, out, _ = run(capsys, "data", "import", str(tmp_path / "c.txt"), "--data", str(data),
                       "--source", "alice")
    assert code == 0 and "30 frames" in out
    d = ds.load_dataset(data)
    got = {r.session: r for r in d.recordings}
    assert set(got) == {"a", "b", "c"}
    for name, lab in (("a", "tap"), ("b", "palm"), ("c", "hold")):
        assert set(got[name].labels.tolist()) == {LABELS.index(lab)}
        np.testing.assert_allclose(got[name].frames, vals, atol=1e-5)
    # the same file again is refused (an identical session could land on both sides of
    # the split); another file of the same name becomes a new session, never overwrites
    code, _, err = run(capsys, "data", "import", str(tmp_path / "a.csv"), "--data", str(data),
                       "--source", "alice")
    assert code == 2 and "identical to session 'alice/a'" in err and len(err.splitlines()) == 1
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "a.csv").write_text("\n".join(row(v, "tap") for v in vals[::-1]) + "\n")
    assert run(capsys, "data", "import", str(tmp_path / "other" / "a.csv"), "--data", str(data),
               "--source", "alice")[0] == 0
    assert {r.session for r in ds.load_dataset(data).recordings} == {"a", "a-2", "b", "c"}


def test_import_with_header_and_raw_readings(tmp_path, capsys, data):
    head = "t,label," + ",".join(CHANNELS)
    body = [f"{i * 0.04:.2f},nobody," + ",".join(["0.2"] * 14) for i in range(10)]
    (tmp_path / "h.csv").write_text("\n".join([head] + body) + "\n")
    assert run(capsys, "data", "import", str(tmp_path / "h.csv"), "--data", str(data),
               "--source", "alice")[0] == 0
    raw = [",".join(["40"] * 12 + ["300", "150"]) for _ in range(5)]
    (tmp_path / "r.csv").write_text("\n".join(raw) + "\n")
    assert run(capsys, "data", "import", str(tmp_path / "r.csv"), "--data", str(data),
               "--source", "alice", "--label", "palm", "--raw")[0] == 0
    rec = [r for r in ds.load_dataset(data).recordings if r.session == "r"][0]
    assert rec.frames.max() <= 1.0 and rec.frames[:, :12].min() > 0  # encoded, not counts


def test_import_ragged_csv_exits_2_naming_the_line(tmp_path, capsys, data):
    good = row(np.full(14, 0.5), "tap")
    (tmp_path / "bad.csv").write_text("\n".join([good, good, row(np.full(13, 0.5), "tap")]) + "\n")
    code, out, err = run(capsys, "data", "import", str(tmp_path / "bad.csv"), "--data",
                          str(data), "--source", "alice")
    assert code == 2 and "Traceback" not in err
    assert err.strip().count("\n") == 0 and "bad.csv line 3: ragged row: 14 values, expected 15" in err
    assert not (data / "recordings" / "alice").exists() or not list((data / "recordings" / "alice").iterdir())


@pytest.mark.parametrize("content,extra,message", [
    (row(np.full(14, 0.5)) + "\n" + ",".join(["0.5"] * 13 + ["x"]) + "\n", ["--label", "tap"],
     "line 2: non-numeric value 'x'"),
    (row(np.full(14, 0.5), "wave") + "\n", [], "line 1: unknown label 'wave'"),
    (row(np.full(14, 0.5)) + "\n", [], "no label column: give every row's label with --label"),
    (row(np.full(14, 0.5)) + "\n", ["--label", "wave"], "unknown --label 'wave'"),
    (row(np.full(10, 0.5)) + "\n", ["--label", "tap"], "line 1: 10 values, expected 14 channels"),
    ("t,label,pad0,volume\n", [], "line 1: header lacks columns"),
    ("", ["--label", "tap"], "no data rows"),
    (row(np.full(14, 0.5)) + "\n", ["--label", "tap", "--rate", "50"],
     "the file is at 50 Hz but the dataset is 25 Hz; add --resample"),
    (row(np.full(14, 0.5)) + "\n", ["--label", "tap", "--rate", "0"], "--rate must be positive"),
])
def test_import_errors_are_one_line_exit_2(tmp_path, capsys, data, content, extra, message):
    (tmp_path / "f.csv").write_text(content)
    code, _, err = run(capsys, "data", "import", str(tmp_path / "f.csv"), "--data", str(data),
                       "--source", "alice", *extra)
    assert code == 2 and message in err and "Traceback" not in err, err


def test_import_needs_a_declared_source_and_an_existing_file(tmp_path, capsys, data):
    (tmp_path / "f.csv").write_text(row(np.full(14, 0.5), "tap") + "\n")
    code, _, err = run(capsys, "data", "import", str(tmp_path / "f.csv"), "--data", str(data),
                       "--source", "bob")
    assert code == 2 and "source 'bob' is not declared" in err and "add-source" in err
    code, _, err = run(capsys, "data", "import", str(tmp_path / "nope.csv"), "--data", str(data),
                       "--source", "alice")
    assert code == 2 and "no such file" in err


def test_import_resamples_when_asked(tmp_path, capsys, data):
    vals = np.linspace(0, 1, 100)[:, None] * np.ones((1, 14))
    (tmp_path / "fast.csv").write_text("\n".join(row(v, "stroke_cw") for v in vals) + "\n")
    assert run(capsys, "data", "import", str(tmp_path / "fast.csv"), "--data", str(data),
               "--source", "alice", "--rate", "50", "--resample")[0] == 0
    (rec,) = ds.load_dataset(data).recordings
    assert len(rec.frames) == 50
    np.testing.assert_allclose(rec.frames[:, 0], vals[::2, 0], atol=1e-5)


def test_info_counts_shares_and_warns(tmp_path, capsys, data):
    rng = np.random.default_rng(1)
    ds.write_recording(data, "alice", "s1", rng.random((100, 14)), ["nobody"] * 90 + ["tap"] * 10)
    code, out, _ = run(capsys, "data", "add-source", str(data), "bob", "--weight", "3")
    assert code == 0 and "warning: no consent recorded" in out
    ds.write_recording(data, "bob", "s1", rng.random((50, 14)), "hold")
    code, out, _ = run(capsys, "data", "info", str(data))
    assert code == 0 and "2 sessions, 150 frames" in out
    assert "source 'bob' has no consent recorded" in out and "class imbalance" in out
    code, out, _ = run(capsys, "data", "info", str(data), "--json")
    info = json.loads(out)
    assert info["per_label"]["nobody"]["frames"] == 90 and info["per_label"]["hold"]["frames"] == 50
    assert info["per_source"]["bob"]["share_after_weights"] == pytest.approx(150 / 250)
    assert info["per_source"]["alice"]["consent"] == "signed form 2026-05-02"
    assert any("'leave' has no examples" in w for w in info["warnings"])
    code, _, err = run(capsys, "data", "info", str(tmp_path / "nowhere"))
    assert code == 2 and "no such dataset folder" in err


def test_add_source_replace_and_bad_name(tmp_path, capsys, data):
    code, _, err = run(capsys, "data", "add-source", str(data), "alice")
    assert code == 2 and "already" in err
    assert run(capsys, "data", "add-source", str(data), "alice", "--replace", "--weight", "0.5",
               "--consent", "verbal, on video")[0] == 0
    assert ds.load_dataset(data).sources["alice"].weight == 0.5
    code, _, err = run(capsys, "data", "add-source", str(data), "bad name!")
    assert code == 2 and "name" in err


def test_a_dataset_of_ones_own_gestures_trains_a_model_with_those_classes(tmp_path, capsys):
    """Not only the default piece: an artist's own label set flows from the dataset into
    the trained model."""
    import onnx

    from lanthorn.host.train import train
    from lanthorn.quantize.dataspec import DataSpec, spec_from_onnx
    from lanthorn.quantize.net import ArchConfig
    root = tmp_path / "mine"
    assert run(capsys, "data", "add-source", str(root), "me", "--consent", "it is me",
               "--labels", "still,knock,sweep")[0] == 0
    rng = np.random.default_rng(0)
    for i in range(9):
        lab = ("still", "knock", "sweep")[i % 3]
        ds.write_recording(root, "me", f"s{i}", rng.random((60, 14)) + (i % 3), lab)
    assert ds.load_dataset(root).labels == ("still", "knock", "sweep")
    train(root, tmp_path / "m.onnx", spec=DataSpec(hop=10), arch=ArchConfig(widths=(4, 4, 4)),
          epochs=1, progress=False, log=lambda *_: None)
    model = onnx.load(str(tmp_path / "m.onnx"))
    assert model.graph.output[0].type.tensor_type.shape.dim[1].dim_value == 3
    assert spec_from_onnx(model).labels == ("still", "knock", "sweep")
    # the label set is fixed once the dataset exists; bad lists are refused
    code, _, err = run(capsys, "data", "add-source", str(root), "you", "--labels", "a,b")
    assert code == 2 and "different rate, channels or labels" in err
    code, _, err = run(capsys, "data", "add-source", str(tmp_path / "x"), "me", "--labels", "a,a")
    assert code == 2 and "repeated" in err
    code, _, err = run(capsys, "data", "add-source", str(tmp_path / "y"), "me", "--labels", "one")
    assert code == 2 and "at least two" in err


def test_import_splits_a_session_column_into_takes(tmp_path, capsys, data):
    """A logger that writes several takes into one file: each becomes its own session, so
    no training window straddles two takes."""
    head = "session,label," + ",".join(CHANNELS)
    rows = [f"{s},{lab}," + ",".join([v] * 14)
            for s, lab, v in [("a", "tap", "0.1")] * 3 + [("b", "hold", "0.9")] * 4
            + [("a", "tap", "0.2")] * 2]
    (tmp_path / "log.csv").write_text("\n".join([head] + rows) + "\n")
    code, out, _ = run(capsys, "data", "import", str(tmp_path / "log.csv"), "--data", str(data),
                       "--source", "alice")
    assert code == 0 and out.count("imported") == 2
    got = {r.session: r for r in ds.load_dataset(data).recordings}
    assert set(got) == {"log-a", "log-b"}
    assert len(got["log-a"].frames) == 5 and len(got["log-b"].frames) == 4
    np.testing.assert_allclose(got["log-a"].frames[:, 0], [0.1, 0.1, 0.1, 0.2, 0.2], atol=1e-6)
    # a session value that cannot be a file name: refused before anything is written
    (tmp_path / "bad.csv").write_text(head + "\n" + "x/y,tap," + ",".join(["0"] * 14) + "\n")
    code, _, err = run(capsys, "data", "import", str(tmp_path / "bad.csv"), "--data", str(data),
                       "--source", "alice")
    assert code == 2 and "session name 'bad-x/y'" in err
    assert {r.session for r in ds.load_dataset(data).recordings} == {"log-a", "log-b"}
