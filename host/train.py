"""Training the temperament model on a dataset folder: split by session, fit, evaluate, export.

The network and fit loop live in :mod:`lanthorn.quantize.net` (pruning fine-tunes with them
too); the data spec in :mod:`lanthorn.quantize.dataspec`. This module is the orchestration
behind ``lanthorn train``.
"""
from __future__ import annotations

import time
from pathlib import Path

from lanthorn.device.storage.atomic import atomic_write_bytes
from lanthorn.words import plural
from lanthorn.quantize.dataspec import (TRAINING_KEY, DataSpec, onnx_with_spec, prepare,
                                        scale_windows)




def train(data_dir, out, *, spec: DataSpec | None = None, arch=None, seed: int = 0,
          epochs: int | None = 40, patience: int | None = 8, lr: float = 3e-3,
          batch: int | None = 64, progress: bool = True, log=print,
          splits=None, force: bool = False, on_epoch=None) -> dict:
    """Train, evaluate on held-out sessions, write ``out`` (float ONNX) and ``out``.pt.

    ``epochs``/``patience``/``batch`` None: chosen from the dataset's size
    (:func:`~lanthorn.quantize.dataspec.auto_fit`). ``splits``: already prepared data.
    Returns a summary dict (accuracies, confusion matrix, sessions of each split, quality
    gates). The gates are reported, not enforced (``lanthorn train`` enforces them).
    ``on_epoch``: called after each epoch (see :func:`lanthorn.quantize.net.fit`).
    """
    from lanthorn.quantize import net as nets

    out = Path(out)
    t0 = time.perf_counter()
    s = splits or prepare(data_dir, spec)
    settings, auto = _fit_settings(len(s.train), batch, epochs, patience)
    cfg = _shaped_arch(arch, s.spec)
    _scale_inputs(s)
    log(_data_line(s, cfg, auto))
    nets.set_deterministic(seed)
    model = nets.TemperamentNet(cfg)
    fr = nets.fit(model, s.train.X, s.train.y, s.train.weights, s.val.X, s.val.y, lr=lr,
                  seed=seed, progress=progress, ring=s.spec.ring, on_epoch=on_epoch, **settings)
    held, held_name, cm, acc = _evaluate(model, s, fr, log)
    training = _quality_record(s, held, held_name, acc, force)
    summary = {"model": out.name, "macs": cfg.macs(), "arch": cfg.to_json(),
               "data_spec": s.spec.to_json(), "seed": seed, "best_epoch": fr.best_epoch,
               "epochs_run": fr.epochs_run, "val_accuracy": fr.best_val_accuracy,
               "val_loss": fr.best_val_loss,
               "test_accuracy": acc, "confusion": cm.tolist(), "sessions": s.sessions,
               "fit": {**settings, "lr": lr, "chosen_for_dataset_size": sorted(auto)},
               "quality": training,
               "history": fr.history, "seconds": round(time.perf_counter() - t0, 2)}
    _write_model(out, model, s.spec, training, summary, log)
    return summary


def _fit_settings(n_windows: int, batch: int | None, epochs: int | None,
                  patience: int | None) -> tuple[dict, dict]:
    """(batch, epochs and patience to fit with; those of them chosen for this dataset's size).
    Each one given as None is chosen; the log and the summary name the chosen ones, so a
    run can be repeated with them spelled out."""
    from lanthorn.quantize.dataspec import auto_fit

    given = {"batch": batch, "epochs": epochs, "patience": patience}
    chosen = auto_fit(n_windows)
    auto = {k: v for k, v in chosen.items() if given[k] is None}
    return {k: chosen[k] if v is None else v for k, v in given.items()}, auto


def _shaped_arch(arch, spec: DataSpec):
    """``arch`` (or the default architecture) fitted to the data: its input is the spec's
    channels × window and its output the spec's labels, whatever the caller's config said."""
    from lanthorn.quantize import net as nets

    cfg = arch or nets.ArchConfig()
    cfg.in_channels, cfg.window, cfg.n_classes = len(spec.channels), spec.window, len(spec.labels)
    return cfg


def _scale_inputs(s) -> None:
    """Per-channel input scales from the training windows, applied to every split, so each
    channel uses the int8 input's one range about equally (see DataSpec.input_scale). A
    spec that already carries scales keeps them: its windows were scaled with them."""
    from lanthorn.quantize import net as nets

    if not s.spec.input_scale and len(s.train):
        s.spec.input_scale = nets.channel_scales(s.train.X)
        for part in (s.train, s.val, s.test):
            scale_windows(part.X, s.spec.input_scale)


def _data_line(s, cfg, auto: dict) -> str:
    """The first log line: the split's sizes, the model's cost, the fit settings chosen for
    the dataset's size and whether the ring is rotated -- what to check before waiting."""
    return (f"data: {len(s.train)} training windows from {plural(len(s.sessions['train']), 'session')}, "
            f"{len(s.val)} validation ({plural(len(s.sessions['val']), 'session')}), {len(s.test)} "
            f"test ({plural(len(s.sessions['test']), 'session')}); model: {cfg.macs():,} MACs"
            + (f"; for this dataset's size: {', '.join(f'--{k} {v}' for k, v in auto.items())}"
               if auto else "")
            + ("; ring rotation over " + ", ".join(s.spec.channels[i] for i in s.spec.ring)
               if s.spec.ring else "; no ring declared: no rotation"))


def _evaluate(model, s, fr, log):
    """(held-out split, its name, confusion matrix, accuracy), logged. The test sessions
    judge the model; a dataset too small to have any is judged on its validation ones, and
    says so."""
    from lanthorn.quantize import net as nets
    from lanthorn.quantize.metrics import accuracy, confusion, format_confusion

    held, held_name = (s.test, "test") if len(s.test) else (s.val, "validation")
    pred = nets.predict(model, held.X).argmax(1)
    cm = confusion(held.y, pred, len(s.spec.labels))
    acc = accuracy(held.y, pred)
    log(f"best epoch {fr.best_epoch}/{fr.epochs_run}: validation accuracy "
        f"{100 * fr.best_val_accuracy:.1f}%, held-out {held_name} accuracy {100 * acc:.1f}% "
        f"({len(held)} windows)")
    log(format_confusion(cm, s.spec.labels))
    return held, held_name, cm, acc


def _quality_record(s, held, held_name: str, acc: float, force: bool) -> dict:
    """The quality gates and what they were judged on, for the summary and the ONNX: they
    travel with the model, so ``lanthorn quantize`` and the card can tell a forced model."""
    from lanthorn.quantize import quality

    n_classes = len(s.spec.labels)
    gates = quality.class_gates(s.spec.labels, s.train.y, held.y, held_name)
    gates.append(quality.accuracy_gate(acc, held.y, n_classes, f"held-out {held_name} accuracy"))
    return {"sessions": s.sessions, "held_out": held_name, "accuracy": round(acc, 4),
            "chance": round(quality.chance_level(held.y, n_classes), 4),
            "train_sessions": len(s.sessions["train"]),
            "gates": [g.to_json() for g in gates], "forced": bool(force and quality.failures(gates))}


def _write_model(out: Path, model, spec: DataSpec, training: dict, summary: dict, log) -> None:
    """The float ONNX (with the data spec and the quality record) and the checkpoint
    pruning fine-tunes from."""
    import json

    from lanthorn.quantize import net as nets

    out.parent.mkdir(parents=True, exist_ok=True)
    onnx_bytes = onnx_with_spec(nets.export_onnx(model), spec,
                                {TRAINING_KEY: json.dumps(training, sort_keys=True)})
    atomic_write_bytes(out, onnx_bytes)
    ckpt = out.with_suffix(".pt")
    # no timings in the checkpoint: same data and seed, same bytes
    nets.save_checkpoint(ckpt, model, spec.to_json(), {"train": {
        k: v for k, v in summary.items() if k not in ("history", "seconds")}})
    log(f"wrote {out} ({len(onnx_bytes):,} bytes) and checkpoint {ckpt}")


def _spec_for(window: int | None, hop: int | None, split_seed: int | None,
              pad_short: bool) -> DataSpec:
    spec = DataSpec()
    if split_seed is not None:
        spec.split_seed = split_seed
    if window is not None:
        spec.window, spec.hop = window, max(1, window // 16)
    if hop is not None:
        spec.hop = hop
    spec.pad_short = pad_short
    return spec


def train_dataset(data_dir, out, *, arch, window: int | None = None, hop: int | None = None,
                  split_seed: int | None = None, force: bool = False, quiet: bool = False,
                  say=print, **fit_args) -> dict:
    """Train on a dataset folder as ``lanthorn train`` does: the window given, or the
    candidates :func:`lanthorn.quantize.dataspec.auto_spec` proposes for this dataset, one
    short model each, the winner chosen on the validation sessions only (the test sessions
    judge it, never choose it). A class without examples is refused before any training.
    ``fit_args`` (seed, epochs, patience, lr, batch) go to :func:`train`."""
    import copy
    import shutil
    import tempfile

    from lanthorn.device.storage.dataset import load_dataset
    from lanthorn.quantize import quality
    from lanthorn.quantize.dataspec import auto_spec

    ds = load_dataset(data_dir)
    # one labelled instance per take: short takes are padded rather than dropped
    pad_short = bool(ds.recordings) and all(len(set(r.labels.tolist())) == 1
                                            for r in ds.recordings)
    windows = [window]
    if window is None:
        windows, why = auto_spec(ds)
        say(f"for this dataset: {why}")

    def fit(w, path, quiet_log):
        splits = prepare(data_dir, _spec_for(w, hop, split_seed, pad_short))
        quality.enforce(quality.class_gates(splits.spec.labels, splits.train.y, None), force)
        return train(data_dir, path, spec=splits.spec, arch=copy.deepcopy(arch),
                     progress=not quiet, splits=splits, force=force,
                     log=(lambda *a: None) if quiet_log else print, **fit_args)

    if len(windows) == 1:
        return fit(windows[0], out, False)
    with tempfile.TemporaryDirectory() as tmp:
        tried = []
        for w in windows:
            got = fit(w, Path(tmp) / f"w{w}.onnx", True)
            tried.append((got["val_accuracy"], w, got))
            say(f"  window {w}: validation accuracy {100 * got['val_accuracy']:.1f}%")
        # a tie goes to the longer window: it sees more of each take (losses of
        # different windows are not comparable; measured on GunPoint: 150 frames 100 %,
        # 75 frames 95 %, both 100 % on the 9 validation takes)
        best = max(tried, key=lambda t: (t[0], t[1]))
        say(f"chose window {best[1]} frames (best on the validation sessions)")
        summary = best[2]
        summary["window_search"] = {str(w): round(a, 4) for a, w, _ in tried}
        summary["window_chosen"] = best[1]
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(Path(tmp) / f"w{best[1]}.onnx", out)
        shutil.copyfile(Path(tmp) / f"w{best[1]}.pt", Path(out).with_suffix(".pt"))
    return summary
