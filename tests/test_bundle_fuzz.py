"""Hostile bundles (checksums recomputed): the regression files replayed, the findings of
issue 10 refused with one line each, and a bounded run of the bundle fuzzer
(tests/bundle_fuzz.py; the full run is ``make fuzz-bundles``)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

import bundle_fuzz as bf
import numpy as np
import pytest

from lanthorn.device.engine.kernel_ext import _lk
from lanthorn.device.storage.storage import DataDir

FILES = sorted(p for p in bf.REGRESSIONS.iterdir() if p.is_file()) if bf.REGRESSIONS.exists() else []
BUNDLES = [p for p in FILES if p.suffix == ".lanthorn"]
BLOBS = [p for p in FILES if p.suffix == ".lkb"]

#: what each issue-10 finding's one-line refusal must mention
REASONS = {
    "conv-negative-dilation": "dilation", "conv-kernel-2147483648": "kernel",
    "conv-kernel-ignored": "kernel", "maxpool-20001": "window elements",
    "avgpool-empty-window": "entirely in the padding", "conv-stride-0": "stride",
    "dense-no-outputs": "one output", "groups-2-33": "groups", "act-min-outside-int8": "act_min",
    "zero-point-300": "zero point", "scale-0": "scale", "scale-nan": "scale", "scale-inf": "scale",
    "card-null": "card", "card-temperament-list": "temperament", "rate-negative": "rate_hz",
    "rate-1e12": "rate_hz", "rate-fast": "rate_hz", "rate-1e-6": "rate_hz",
    "window-text": "window", "labels-not-text": "labels", "empty": "empty",
    "magic-and-junk": "truncated or damaged", "multiplier-nan": "multiplier",
    "bias-int32-max": "int32 accumulator",
}


def test_the_known_findings_are_all_kept_as_regression_files():
    names = {p.stem.removeprefix("issue10-") for p in FILES if p.name.startswith("issue10-")}
    assert set(REASONS) | {"blob-conv-size-wrap", "blob-concat-overlap",
                           "blob-misaligned-tensor"} <= names


@pytest.mark.parametrize("path", BUNDLES, ids=lambda p: p.name)
def test_regression_bundle_is_refused_in_one_line_or_runs_identically(path):
    kind, detail = bf.judge(str(path))
    assert kind in ("refused", "identical"), detail
    reason = REASONS.get(path.stem.removeprefix("issue10-"))
    if reason is not None:
        assert kind == "refused" and reason in detail, detail


@pytest.mark.parametrize("path", [p for p in BLOBS if p.name.startswith("issue10-")],
                         ids=lambda p: p.name)
def test_hand_edited_blob_is_refused_by_the_c_loader(path):
    with pytest.raises(ValueError, match="lanthorn C kernel"):
        _lk.Model(path.read_bytes(), 0)


@pytest.fixture(scope="module")
def sanitized(tmp_path_factory):
    exe = bf.build_sanitized_driver(tmp_path_factory.mktemp("asan"))
    if exe is None:
        pytest.skip("needs clang for the ASan+UBSan build (Debian: clang; scripts/system-deps.sh)")
    return exe


@pytest.mark.parametrize("path", BLOBS, ids=lambda p: p.name)
def test_hand_edited_blob_is_refused_or_runs_clean_under_asan_and_ubsan(sanitized, path, tmp_path):
    """issue-10 blobs must be refused; fuzzer findings refused or run without a sanitizer
    report (e.g. a conv window entirely in the padding once formed an out-of-range pointer)."""
    rng = np.random.default_rng(0)
    (tmp_path / "in").write_bytes(bf.blob_inputs(rng, path.read_bytes()))
    kind, detail, _ = bf.run_sanitized(sanitized, path, tmp_path / "in", tmp_path / "out", 30)
    assert kind == "refused" if path.name.startswith("issue10-") else kind in ("refused", "ran"), detail


def test_bounded_fuzz_run_finds_nothing(sanitized):
    """A few hundred cases every run, new ones each CI day (seed from the date), with the
    sanitized C driver: every case refused in one line or identical on both engines."""
    import datetime
    seed = int(os.environ.get("LANTHORN_FUZZ_SEED", datetime.date.today().toordinal()))
    c = bf.campaign(250, seed=seed, timeout=30, sanitize_every=3, save=False, log=lambda m: None,
                    driver=sanitized)
    assert c["sanitizer"]
    assert [f[:2] for f in c["findings"]] == [], f"seed {seed}: {bf.summary(c)}"
    assert c["refused"] > 40 and c["identical"] > 30 and c["sanitized_identical"] > 5
    assert c["blob_refused"] > 5 and c["blob_ran"] > 0


def test_bounded_fuzz_run_of_signed_bundles_as_a_locked_object_judges_them(sanitized):
    """Mutated, re-signed (sometimes with a damaged trailer), judged with the signer as the
    one trusted key: still refused in one line or identical, never anything else."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    c = bf.campaign(100, seed=7, timeout=30, sanitize_every=1000, blob_share=0.0, save=False,
                    key=Ed25519PrivateKey.generate(), log=lambda m: None, driver=sanitized)
    assert [f[:2] for f in c["findings"]] == [], bf.summary(c)
    assert c["refused"] > 15 and c["identical"] > 15


def test_inspect_refuses_hostile_bundles_in_one_line():
    for name in ("conv-stride-0", "card-null"):
        path = bf.REGRESSIONS / f"issue10-{name}.lanthorn"
        p = subprocess.run([sys.executable, "-m", "lanthorn", "inspect", str(path)],
                           capture_output=True, text=True, timeout=60)
        assert p.returncode != 0 and "Traceback" not in p.stderr
        assert len(p.stderr.strip().splitlines()) == 1, p.stderr


def test_a_pushed_hostile_bundle_is_not_installed_and_the_old_model_stays(tmp_path):
    store = DataDir(tmp_path / "data")
    good = tmp_path / "good.lanthorn"
    shutil.copyfile(bf.REGRESSIONS.parent.parent.parent / "device" / "models" /
                    "temperament.lanthorn", good)
    store.install_model(good)
    before = store.current_path.read_bytes()
    for name in ("conv-negative-dilation", "maxpool-20001", "rate-1e12", "card-temperament-list"):
        with pytest.raises(Exception, match="does not load") as err:
            store.install_model(bf.REGRESSIONS / f"issue10-{name}.lanthorn")
        assert "\n" not in str(err.value)
        assert store.current_path.read_bytes() == before
    model, source, _ = store.load_model()
    assert source == "current" and model.sha256 == DataDir(tmp_path / "x").loader(str(good)).sha256
