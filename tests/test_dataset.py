"""The dataset format: round trip, windows, and every DataError path names file and line."""
import gzip
import json

import numpy as np
import pytest

from lanthorn.device.piece.frames import CHANNELS, LABELS
from lanthorn.device.storage import dataset as ds
from lanthorn.device.storage.dataset import DataError, Source
from lanthorn.errors import UserError


def make(tmp_path, **source_kw):
    root = ds.create_dataset(tmp_path / "data")
    ds.add_source(root, Source("alice", author="Alice", consent="signed form", **source_kw))
    return root


def frames(T, seed=0):
    return np.random.default_rng(seed).random((T, len(CHANNELS))).astype(np.float32)


def test_round_trip_and_manifest_is_readable(tmp_path):
    root = make(tmp_path, weight=2.0)
    f = frames(60)
    labels = ["nobody"] * 30 + ["tap"] * 30
    path = ds.write_recording(root, "alice", "s1", f, labels, rate_hz=25)
    assert path == root / "recordings" / "alice" / "s1.csv"
    text = path.read_text().splitlines()
    assert text[0].split(",")[:3] == ["session", "label", "pad0"] and len(text) == 61
    manifest = json.loads((root / "manifest.json").read_text())
    assert manifest["sources"]["alice"]["consent"] == "signed form"
    assert manifest["sources"]["alice"]["synthetic"] is False
    d = ds.load_dataset(root)
    assert d.rate_hz == 25.0 and d.channels == CHANNELS and d.labels == LABELS
    (rec,) = d.recordings
    assert rec.key == "alice/s1"
    np.testing.assert_allclose(rec.frames, f, rtol=1e-4, atol=1e-5)
    assert [LABELS[i] for i in rec.labels] == labels


def test_gzip_recordings_are_reproducible_bytes(tmp_path):
    root = make(tmp_path)
    p = ds.write_recording(root, "alice", "s1", frames(10), "hold", compress=True)
    assert p.name == "s1.csv.gz"
    assert gzip.decompress(p.read_bytes()).startswith(b"session,label,")
    root2 = make(tmp_path / "b")
    p2 = ds.write_recording(root2, "alice", "s1", frames(10), "hold", compress=True)
    assert p.read_bytes() == p2.read_bytes()
    assert len(ds.load_dataset(root).recordings[0].frames) == 10


def test_windows_shapes_labels_sessions_weights(tmp_path):
    root = make(tmp_path, weight=0.5)
    ds.write_recording(root, "alice", "s1", frames(60), ["nobody"] * 40 + ["tap"] * 20)
    ds.write_recording(root, "alice", "s2", frames(49), "hold")  # shorter than a window
    w = ds.load_dataset(root).windows(window=50, hop=5)
    assert w.X.shape == (3, len(CHANNELS), 50) and w.X.dtype == np.float32
    assert list(w.y) == [LABELS.index("tap")] * 3
    assert set(w.sessions) == {"alice/s1"} and np.all(w.weights == 0.5)
    # the window is the frames, transposed to channels-first
    rec = ds.load_dataset(root).recordings[0]
    np.testing.assert_array_equal(w.X[1], rec.frames[5:55].T)
    majority = ds.load_dataset(root).windows(window=50, hop=5, label_at="majority")
    assert list(majority.y) == [0, 0, 0]


def test_several_sessions_in_one_file(tmp_path):
    root = make(tmp_path)
    lines = ["session,label," + ",".join(CHANNELS)]
    for s in ("a", "b"):
        lines += [f"{s},tap," + ",".join(["0.5"] * 14)] * 3
    (root / "recordings" / "alice").mkdir(parents=True)
    (root / "recordings" / "alice" / "mixed.csv").write_text("\n".join(lines) + "\n")
    d = ds.load_dataset(root)
    assert sorted(r.session for r in d.recordings) == ["a", "b"]


def write_raw(root, body, name="bad.csv", source="alice"):
    folder = root / "recordings" / source
    folder.mkdir(parents=True, exist_ok=True)
    header = "session,label," + ",".join(CHANNELS)
    (folder / name).write_text(header + "\n" + body)


GOOD = "s,tap," + ",".join(["0.1"] * 14) + "\n"


@pytest.mark.parametrize("row,message", [
    ("s,tap," + ",".join(["0.1"] * 13), "ragged row: 15 values"),
    ("s,tap," + ",".join(["0.1"] * 13 + ["high"]), "non-numeric value 'high' in column 'light'"),
    ("s,wave," + ",".join(["0.1"] * 14), "unknown label 'wave'"),
    ("s,tap," + ",".join(["nan"] * 14), "NaN or infinite"),
    ("bad session!,tap," + ",".join(["0.1"] * 14), "bad session id"),
])
def test_bad_rows_name_file_and_line(tmp_path, row, message):
    root = make(tmp_path)
    write_raw(root, GOOD + GOOD + row + "\n")
    with pytest.raises(DataError) as exc:
        ds.load_dataset(root)
    assert isinstance(exc.value, UserError)
    assert exc.value.file == "recordings/alice/bad.csv" and exc.value.line == 4
    assert str(exc.value).startswith("recordings/alice/bad.csv line 4: ")
    assert message in str(exc.value)


def test_bad_header_and_empty_file(tmp_path):
    root = make(tmp_path)
    (root / "recordings" / "alice").mkdir(parents=True)
    (root / "recordings" / "alice" / "h.csv").write_text("session,label,pad0\n")
    with pytest.raises(DataError, match=r"h.csv line 1: header lacks columns \['pad1'"):
        ds.load_dataset(root)
    (root / "recordings" / "alice" / "h.csv").write_text("")
    with pytest.raises(DataError, match="h.csv line 1: empty file"):
        ds.load_dataset(root)


def test_source_missing_from_manifest(tmp_path):
    root = make(tmp_path)
    write_raw(root, GOOD, source="bob")
    with pytest.raises(DataError, match=r"recordings/bob: source 'bob' is not declared"):
        ds.load_dataset(root)
    with pytest.raises(DataError, match="not declared"):
        ds.write_recording(root, "carol", "s1", frames(5), "tap")


def test_rate_mismatch(tmp_path):
    root = make(tmp_path)
    with pytest.raises(DataError, match="50 Hz do not match the dataset's 25 Hz"):
        ds.write_recording(root, "alice", "s1", frames(5), "tap", rate_hz=50)
    with pytest.raises(DataError, match="does not match"):
        ds.add_source(root, Source("fast", rate_hz=100.0))
    # a hand-edited manifest: the error points at the source's line
    m = json.loads((root / "manifest.json").read_text())
    m["sources"]["alice"]["rate_hz"] = 50
    (root / "manifest.json").write_text(json.dumps(m, indent=2))
    with pytest.raises(DataError) as exc:
        ds.load_dataset(root)
    assert exc.value.file.endswith("manifest.json") and exc.value.line is not None
    assert "recorded at 50 Hz but the dataset is 25 Hz" in str(exc.value)


def test_unknown_label_on_write_and_manifest_errors(tmp_path):
    root = make(tmp_path)
    with pytest.raises(DataError, match=r"unknown labels \['wave'\]"):
        ds.write_recording(root, "alice", "s1", frames(3), ["tap", "wave", "tap"])
    (root / "manifest.json").write_text('{"format": "lanthorn-dataset",\n "version": 1,\n oops}')
    with pytest.raises(DataError, match=r"manifest.json line 3: not valid JSON"):
        ds.load_dataset(root)
    with pytest.raises(DataError, match="no manifest.json"):
        ds.load_dataset(tmp_path)
    with pytest.raises(DataError, match="no such dataset folder"):
        ds.load_dataset(tmp_path / "nope")


def test_refuses_to_overwrite_a_session_and_bad_names(tmp_path):
    root = make(tmp_path)
    ds.write_recording(root, "alice", "s1", frames(3), "tap")
    before = (root / "recordings/alice/s1.csv").read_bytes()
    with pytest.raises(DataError, match="already exists"):
        ds.write_recording(root, "alice", "s1", frames(4), "hold")
    assert (root / "recordings/alice/s1.csv").read_bytes() == before  # nothing lost
    with pytest.raises(DataError, match="session name"):
        ds.write_recording(root, "alice", "../evil", frames(3), "tap")
    with pytest.raises(DataError, match="source name"):
        ds.add_source(root, Source("a b"))
    with pytest.raises(DataError, match="already exists"):
        ds.add_source(root, Source("alice"))
    ds.add_source(root, Source("alice", weight=3), replace=True)
    assert ds.load_dataset(root).sources["alice"].weight == 3.0


def test_event_labels_a_short_gesture_and_ignores_a_sliver(tmp_path):
    """A 0.3 s tap is what a window containing it is about; 3 stray frames are not."""
    root = make(tmp_path)
    labels = ["nobody"] * 20 + ["tap"] * 8 + ["nobody"] * 30 + ["hold"] * 3 + ["nobody"] * 19
    ds.write_recording(root, "alice", "s1", frames(80), labels)
    w = ds.load_dataset(root).windows(window=50, hop=10, label_at="event", min_frames=6)
    tap, hold = LABELS.index("tap"), LABELS.index("hold")
    assert list(w.y) == [tap, tap, tap, 0]
    last = ds.load_dataset(root).windows(window=50, hop=10, label_at="last")
    assert list(last.y) == [0, hold, 0, 0]
    with pytest.raises(DataError, match="label_at must be"):
        ds.load_dataset(root).windows(label_at="first")


def test_split_by_session_never_splits_a_session_and_is_seeded(tmp_path):
    root = make(tmp_path)
    for i in range(10):
        ds.write_recording(root, "alice", f"t{i}", frames(60, i), "tap")
        ds.write_recording(root, "alice", f"h{i}", frames(60, 100 + i), "hold")
    w = ds.load_dataset(root).windows(window=50, hop=5)
    parts = ds.split_by_session(w, val=0.2, test=0.2, seed=1)
    assert sum(m.astype(int) for m in parts.values()).tolist() == [1] * len(w)
    owner = {}
    for name, m in parts.items():
        for s in set(w.sessions[m].tolist()):
            assert owner.setdefault(s, name) == name
    for name in ("val", "test"):  # both gestures held out
        assert set(w.y[parts[name]].tolist()) == {LABELS.index("tap"), LABELS.index("hold")}
    again = ds.split_by_session(w, val=0.2, test=0.2, seed=1)
    assert all((again[k] == parts[k]).all() for k in parts)
    other = ds.split_by_session(w, val=0.2, test=0.2, seed=2)
    assert any((other[k] != parts[k]).any() for k in parts)
