"""The quantization report: Markdown + PNG plots + report.json telling the same numbers."""
import json

import pytest
from PIL import Image

pytest.importorskip("onnx")  # host extras: without them the module skips, not errors
pytest.importorskip("onnxruntime")
pytest.importorskip("torch")  # quantize_helpers trains a tiny net
pytest.importorskip("matplotlib")  # the report's plots

from quantize_helpers import make_data, make_model

from lanthorn.cli import main
from lanthorn.device.storage import dataset as dsf
from lanthorn.quantize.report import tasting_notes, warnings_for


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    data = make_data(root / "data")
    # a second, recorded source without consent: the notes and warnings must say so
    import numpy as np

    from lanthorn.device.piece.frames import CHANNELS
    dsf.add_source(data, dsf.Source("visitor-demo", author="A. Maker", consent="",
                                    licence="CC-BY-4.0", weight=2.0))
    rng = np.random.default_rng(0)
    for i in range(3):
        dsf.write_recording(data, "visitor-demo", f"take{i}",
                            rng.normal(0, 0.1, (120, len(CHANNELS))), "nobody")
    model = make_model(data, root / "m.onnx")
    return root, data, model


@pytest.fixture(scope="module")
def report(work):
    root, data, model = work
    rc = main(["quantize", str(model), "--data", str(data), "--out", str(root / "m.lanthorn"),
               "--prune-channels", "0.5", "--sweep", "0.25", "--epochs", "1",
               "--report", str(root / "rep"), "--force"])  # a 2-epoch net: gates would refuse it
    assert rc == 0
    return root / "rep"


def test_report_files_exist_and_plots_are_pngs(report):
    doc = json.loads((report / "report.json").read_text())
    assert set(doc["files"]) >= {"markdown", "confusion", "layers", "pruning", "sensitivity"}
    for name in doc["files"].values():
        assert (report / name).is_file()
        if name.endswith(".png"):
            with Image.open(report / name) as im:
                assert im.format == "PNG" and im.size[0] > 200


def test_report_json_and_markdown_tell_the_same_numbers(work, report):
    root, _, _ = work
    doc = json.loads((report / "report.json").read_text())
    md = (report / "report.md").read_text()
    names = [m["name"] for m in doc["models"]]
    assert names == ["unpruned", "25% channels pruned", "50% channels pruned"]
    written = [m for m in doc["models"] if m.get("written")]
    assert len(written) == 1 and written[0]["name"] == "50% channels pruned"
    assert written[0]["bundle_bytes"] == (root / "m.lanthorn").stat().st_size
    for m in doc["models"]:
        assert f"{100 * m['float_accuracy']:.2f}%" in md
        assert f"{100 * m['int8_accuracy']:.2f}%" in md
        assert f"{m['macs']:,}" in md
        cm = m["int8_confusion"]
        assert sum(map(sum, cm)) > 0
        assert sum(cm[i][i] for i in range(len(cm))) / sum(map(sum, cm)) == \
            pytest.approx(m["int8_accuracy"])
    macs = [m["macs"] for m in doc["models"]]
    assert macs[0] > macs[1] > macs[2]
    for row in doc["layers"]:
        assert row["node"] in md
    # the content digest (the same on any CPU that rebuilds it), computed here afresh
    from lanthorn.device.engine.bundle import content_sha256
    assert doc["content_sha256"] == content_sha256((root / "m.lanthorn").read_bytes())
    assert doc["content_sha256"][:16] in md and "seconds" not in doc
    assert "## Tasting notes" in md and "## Per-layer quantization error" in md
    # the checkpoint next to the model was found and fine-tuned from
    assert doc["pruning"]["method"] == "fine-tuned from m.pt"


def test_tasting_notes_name_sources_consent_and_warn(work, report):
    md = (report / "report.md").read_text()
    doc = json.loads((report / "report.json").read_text())
    assert "**visitor-demo** (recorded" in md and "**no consent recorded**" in md
    assert "A. Maker" in md and "CC-BY-4.0" in md
    assert "source 'visitor-demo' has no consent recorded" in md
    shares = {s["source"]: s["share"] for s in doc["provenance"]["sources"]}
    assert sum(shares.values()) == pytest.approx(1.0, abs=1e-3)
    assert 0 < shares["visitor-demo"] < 1


def test_notes_without_dataset_and_warning_logic():
    assert "no dataset provenance" in tasting_notes({})[0].lower()

    class E:
        def __init__(self, f, q):
            self.float_accuracy, self.int8_accuracy, self.extra = f, q, {"written": True}

    class R:
        evaluations = [E(0.90, 0.88)]
        final = evaluations[0]
        provenance = {"sources": [{"source": "s", "consent": "signed"}], "synthetic_share": 0.0}

    w = warnings_for(R())
    assert len(w) == 1 and "2.00 points" in w[0]


def test_report_leads_with_what_the_model_recognises(report):
    """An artist reads which gestures it knows and mixes up first; SQNR and bias shift come
    under the engineering heading."""
    import numpy as np
    doc = json.loads((report / "report.json").read_text())
    md = (report / "report.md").read_text()
    assert md.index("## What it recognises") < md.index("## Confusion matrices") \
        < md.index("## Engineering figures") < md.index("## Float against int8") \
        < md.index("## Per-layer quantization error")
    written = next(m for m in doc["models"] if m.get("written"))
    cm = np.asarray(written["int8_confusion"])
    table = md.split("## What it recognises")[1].split("\n\n")[1].splitlines()[2:]
    shown = {r.split(" | ")[0].strip("| "): r.split(" | ")[1] for r in table}
    assert len(shown) == int((cm.sum(1) > 0).sum())
    # the figures are the written model's int8 recall, worst-recognised gesture first
    rec = [float(shown[g][:-1]) for g in shown]
    assert rec == sorted(rec)
    rows = cm.sum(1)
    assert sorted(rec) == sorted(round(100 * cm[i, i] / rows[i], 1) for i in range(len(cm)) if rows[i])
