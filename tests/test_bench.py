"""`lanthorn bench`: one run gives every figure with ratios from the measured medians, checks
exactness against onnxruntime, measures a device process without onnxruntime, and refuses a
corrupt or truncated bundle with one line and exit 2. Speed itself is never asserted."""
import json
import subprocess
import sys

import pytest

pytest.importorskip("onnxruntime")

from lanthorn.device.engine.bundle import write_bundle
from lanthorn.host import bench
from lanthorn.quantize import tiny_models
from lanthorn.quantize.qdq_import import bundle_from_qdq

PATH_FIELDS = {"available", "median_us", "p99_us", "mean_us", "min_us", "reps", "cpu_median_us",
               "ratio_vs_ort_int8", "best_ratio_vs_ort_int8"}


def _lanthorn(*args):
    return subprocess.run([sys.executable, "-m", "lanthorn", *args], capture_output=True,
                          text=True, timeout=300)


@pytest.fixture(scope="module")
def bundle_file(tmp_path_factory):
    d = tmp_path_factory.mktemp("bench")
    _, q = tiny_models.build("mlp_25k", d)
    path = d / "mine.lanthorn"
    write_bundle(bundle_from_qdq(q, card={"name": "mine"}), path)
    return path


@pytest.fixture(scope="module")
def report(bundle_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("bench-out") / "bench.json"
    r = _lanthorn("bench", "--quick", "--models", "mlp_25k", "--bundle", str(bundle_file),
                  "--reps", "7", "--json", str(out))
    assert r.returncode == 0, r.stderr
    return json.loads(out.read_text()), r.stdout


def test_json_has_every_field(report):
    rep, _ = report
    assert rep["schema"] == bench.SCHEMA and rep["mode"] == "quick"
    m = rep["machine"]
    for key in ("cpu_model", "cpu_count", "python", "numpy", "onnxruntime", "onnx", "backends",
                "load_average"):
        assert m[key], key
    assert m["backends"]["numpy"] == "numpy"
    assert [x["name"] for x in rep["models"]] == ["mlp_25k", "mine"]
    zoo, mine = rep["models"]
    assert zoo["macs"] == 128 * 128 + 128 * 64 + 64 * 10
    assert zoo["weight_bytes"] > zoo["macs"] and zoo["float_weight_bytes"] > 3.9 * zoo["macs"]
    for path in ("ort_float", "ort_int8", "numpy"):
        p = zoo["paths"][path]
        assert PATH_FIELDS <= set(p) and p["reps"] == 7 and p["available"] is True
        assert 0 < p["min_us"] <= p["median_us"] <= p["p99_us"]
    # a bundle has no float model; its twin and our paths still run
    assert mine["paths"]["ort_float"] == {"available": False,
                                          "reason": "a bundle carries no float model"}
    assert mine["paths"]["ort_int8"]["available"] and mine["paths"]["numpy"]["available"]


def test_ratios_are_the_measured_medians(report):
    rep, _ = report
    for m in rep["models"]:
        base = m["paths"]["ort_int8"]
        for p in m["paths"].values():
            if p["available"]:
                assert p["ratio_vs_ort_int8"] == pytest.approx(
                    p["median_us"] / base["median_us"], rel=1e-12)
                assert p["best_ratio_vs_ort_int8"] == pytest.approx(
                    p["min_us"] / base["min_us"], rel=1e-12)
                assert p["cpu_median_us"] > 0
        assert m["paths"]["ort_int8"]["ratio_vs_ort_int8"] == pytest.approx(1.0)


def test_outputs_checked_exact_and_c_path_reported(report):
    rep, stdout = report
    for m in rep["models"]:
        ex = m["exact"]["numpy"]
        assert ex["exact"] and ex["mismatches"] == 0 and ex["elements"] == 10 * ex["feeds"] > 0
        c = m["paths"]["c"]
        if c["available"]:
            assert c["backend"].startswith("c-") and m["exact"]["c"]["exact"]
            assert m["exact"]["c_equals_numpy"] is True
        else:
            assert c["reason"] == "C kernel not built"
            assert "n/a (C kernel not built)" in stdout
    assert "mlp_25k" in stdout and "ORT int8" in stdout


def test_device_process_never_imports_onnxruntime(report):
    rep, stdout = report
    for m in rep["models"]:
        d = m["device_process"]["numpy"]
        assert "error" not in d, d
        assert d["onnxruntime_imported"] is False and d["backend"] == "numpy"
        assert d["peak_rss_mb"] > 5 and d["import_load_ms"] > 0 and d["runs"] > 0
        assert d["ru_maxrss_kb"] > 0
    assert "peak RSS" in stdout


@pytest.mark.parametrize("damage", ["garbage", "truncated", "flipped"])
def test_corrupt_bundle_is_one_line_exit_2(bundle_file, tmp_path, damage):
    data = bundle_file.read_bytes()
    bad = tmp_path / "bad.lanthorn"
    if damage == "garbage":
        bad.write_bytes(b"this is not a bundle at all")
    elif damage == "truncated":
        bad.write_bytes(data[: len(data) // 2])
    else:
        mid = len(data) // 2
        bad.write_bytes(data[:mid] + bytes([data[mid] ^ 0xFF]) + data[mid + 1:])
    r = _lanthorn("bench", "--quick", "--bundle", str(bad), "--reps", "1")
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "bad.lanthorn" in lines[0] and "Traceback" not in r.stderr
    assert r.stdout == ""


def test_bad_arguments_are_one_line_exit_2(tmp_path):
    r = _lanthorn("bench", "--models", "mlp_25k,nosuch")
    assert r.returncode == 2 and "nosuch" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    r = _lanthorn("bench", "--models", "mlp_25k", "--json", str(tmp_path / "no" / "x.json"))
    assert r.returncode == 2 and "does not exist" in r.stderr


def test_measure_takes_exact_reps_and_interleaves():
    calls = []
    fns = {"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}
    samples = bench.measure(fns, budget_s=10.0, min_reps=1, warmup=2, exact_reps=5)
    assert {k: len(wall) for k, (wall, cpu) in samples.items()} == {"a": 5, "b": 5}
    assert all(len(cpu) >= 1 and min(cpu) >= 0 for wall, cpu in samples.values())
    assert calls.count("a") == 7 and calls.count("b") == 7      # 2 warm-up + 5 timed


def test_summarize_figures():
    s = bench.summarize([1000 * i for i in range(1, 102)], [3000.0, 1000.0, 2000.0])
    assert s["median_us"] == 51 and s["min_us"] == 1 and s["reps"] == 101
    assert s["cpu_median_us"] == 2
    assert s["p99_us"] == pytest.approx(100) and s["mean_us"] == pytest.approx(51)


def test_c_path_is_na_when_the_kernel_is_not_built(report, bundle_file, monkeypatch):
    from lanthorn.device.engine import runtime
    from lanthorn.device.engine.bundle import read_bundle

    def not_built(graph):
        raise ImportError("No module named 'lanthorn.device.engine.kernel_ext._lk'")
    monkeypatch.setattr(runtime, "_c_engine", not_built)
    model, why = bench._load_ours(read_bundle(bundle_file), "c")
    assert model is None and why == "C kernel not built"
    rep = json.loads(json.dumps(report[0]))
    for m in rep["models"]:
        m["paths"]["c"] = {"available": False, "reason": why}
        m["exact"].pop("c", None)
    table = bench.format_table(rep)
    assert table.count("n/a (C kernel not built)") == 2 and "lanthorn numpy" in table


def test_layers_profile_names_every_engine_step(bundle_file, tmp_path):
    out = tmp_path / "layers.json"
    r = _lanthorn("bench", "--quick", "--bundle", str(bundle_file), "--reps", "3", "--layers",
                  "--json", str(out))
    assert r.returncode == 0, r.stderr
    prof = json.loads(out.read_text())["models"][0]["numpy_layers"]
    assert [s["op"] for s in prof["steps"]] == ["dense", "dense", "dense"]
    assert [s["macs"] for s in prof["steps"]] == [128 * 128, 128 * 64, 64 * 10]
    assert prof["runtime_median_us"] == pytest.approx(prof["call_median_us"] - prof["engine_median_us"])
    assert sum(s["share_of_steps"] for s in prof["steps"]) == pytest.approx(1.0)
    assert "engine steps, each timed on its own" in r.stdout


def test_targets_are_judged_from_the_measured_figures(report):
    rep, stdout = report
    by_name = {t["target"].split(" (")[0]: t for t in rep["targets"]}
    numpy_t = by_name["numpy path within 2x of onnxruntime int8"]
    assert numpy_t["measured"] == {m["name"]: round(m["paths"]["numpy"]["ratio_vs_ort_int8"], 3)
                                   for m in rep["models"]}
    assert numpy_t["met"] == all(v <= 2 for v in numpy_t["measured"].values())
    exact_t = by_name["identical integers to onnxruntime"]
    assert exact_t["met"] is True and {"mlp_25k (numpy)", "mine (numpy)"} <= set(exact_t["measured"])
    rss_t = by_name["device process RSS <= 60 MB"]
    assert rss_t["measured"]["mlp_25k (numpy)"] == round(
        rep["models"][0]["device_process"]["numpy"]["peak_rss_mb"], 3)
    assert "targets (DESIGN.md), this run:" in stdout


def test_c_levels_and_call_overhead_are_reported(report):
    """Every C variant this CPU runs is timed and judged on its own ("per instruction level
    it ran"), and the thin call's overhead over the bare kernel is printed and judged."""
    from lanthorn.device.engine import engine_c
    rep, stdout = report
    zoo = rep["models"][0]
    if not zoo["paths"]["c"].get("available"):
        pytest.skip("C kernel not built")
    have = engine_c.available_variants()
    levels = {p["backend"] for k, p in zoo["paths"].items() if k == "c" or k.startswith("c:")}
    assert levels == set(have) - {"c-scalar"} or levels == {"c-scalar"} == set(have)
    for k, p in zoo["paths"].items():
        if k.startswith("c:"):
            assert p["backend"] == k[2:] and zoo["exact"][k]["exact"], k
    co = zoo["call_overhead"]
    assert co["input"] == "float32" and co["backend"] == zoo["paths"]["c"]["backend"]
    assert 0 < co["kernel_us"] < co["call_us"] and co["run_quantized_us"] > 0
    assert co["call_overhead_us"] == pytest.approx(co["call_us"] - co["kernel_us"])
    assert "call overhead (" in stdout and "bare kernel" in stdout
    names = [t["target"] for t in rep["targets"]]
    for level in levels:
        assert sum(n.endswith(f"[{level}]") for n in names) == 2, (level, names)
    over = next(t for t in rep["targets"] if t["target"].startswith("C call overhead"))
    assert set(over["measured"]) == {"mlp_25k (model(x))", "mlp_25k (run_quantized)",
                                     "mine (model(x))", "mine (run_quantized)"}


def test_variants_option_is_checked():
    r = _lanthorn("bench", "--models", "mlp_25k", "--variants", "sse9")
    assert r.returncode == 2 and "--variants" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_numpy_miss_gets_its_measured_reason():
    m = {"name": "big", "weight_bytes": 3 * 2 ** 20,
         "paths": {"numpy": {"ratio_vs_ort_int8": 4.5}},
         "numpy_layers": {"engine_median_us": 90.0, "runtime_median_us": 5.0, "steps": [
             {"layer": "gemm1", "op": "dense", "macs": 400_000, "median_us": 40.0},
             {"layer": "gemm2", "op": "dense", "macs": 300_000, "median_us": 20.0},
             {"layer": "gemm3", "op": "dense", "macs": 4_000, "median_us": 2.0}]}}
    note = bench.numpy_note(m)
    assert "big numpy path 4.5x onnxruntime" in note and "engine 90.0 µs" in note
    assert "gemm1 (dense, 400.00k MACs) 40.0 µs" in note and "gemm3" not in note
    assert "~12.00 MiB" in note and "int8: 3.00 MiB" in note
    m["paths"]["numpy"]["ratio_vs_ort_int8"] = 1.5
    assert bench.numpy_note(m) is None


def test_mlperf_tiny_group_is_benched_exact_against_both_onnxruntime_paths(tmp_path):
    """``--models mlperf-tiny`` names the four MLPerf Tiny architectures and the TCN; one
    of them run end to end here (the others take the same code path) is timed against
    onnxruntime float and int8 in the same run and checked exact."""
    names, voice = bench.zoo_names("mlperf-tiny", False)
    assert names == ["kws_ds_cnn", "vww_mbv1", "ic_resnet8", "ad_autoencoder", "tcn"] and not voice
    out = tmp_path / "b.json"
    r = _lanthorn("bench", "--quick", "--models", "ad_autoencoder", "--reps", "3",
                  "--json", str(out))
    assert r.returncode == 0, r.stderr
    m = json.loads(out.read_text())["models"][0]
    assert m["name"] == "ad_autoencoder"
    assert m["paths"]["ort_float"]["available"] and m["paths"]["ort_int8"]["available"]
    assert m["exact"]["numpy"]["exact"] and m["exact"]["numpy"]["elements"] > 0
    with pytest.raises(Exception, match="mlperf-tiny"):
        bench.zoo_names("no_such_model", False)
