"""Training the temperament model on a dataset folder: split by session, fit, evaluate, export.

The network and fit loop live in :mod:`lanthorn.quantize.net` (pruning fine-tunes with them
too); the data spec in :mod:`lanthorn.quantize.dataspec`. This module is the orchestration
behind ``lanthorn train``.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from lanthorn.device.storage.atomic import atomic_write_bytes
from lanthorn.host import finetune
from lanthorn.quantize.dataspec import TRAINING_KEY, DataSpec, onnx_with_spec, prepare, scale_windows
from lanthorn.words import plural


def train(data_dir, out, *, spec: DataSpec | None = None, arch=None, seed: int = 0,
          epochs: int | None = 40, patience: int | None = 8, lr: float | None = None,
          batch: int | None = 64, progress: bool = True, log=print,
          splits=None, force: bool = False, on_epoch=None, base=None) -> dict:
    """Train, evaluate on held-out sessions, write ``out`` (float ONNX) and ``out``.pt.

    ``epochs``/``patience``/``batch`` None: chosen from the dataset's size
    (:func:`~lanthorn.quantize.dataspec.auto_fit`). ``splits``: already prepared data.
    Returns a summary dict (accuracies, confusion matrix, sessions of each split, quality
    gates). The gates are reported, not enforced (``lanthorn train`` enforces them).
    ``on_epoch``: called after each epoch (see :func:`lanthorn.quantize.net.fit`).
    ``base``: a :class:`lanthorn.host.finetune.Base` to fine-tune from (its data spec must
    be the one ``splits`` was made with; :func:`lanthorn.host.finetune.replay` mixes its
    training data in).
    """
    from lanthorn.quantize import net as nets

    out = Path(out)
    t0 = time.perf_counter()
    s = splits or prepare(data_dir, spec)
    warm = base is not None and base.warm
    settings, auto = _fit_settings(len(s.train), batch, epochs, patience, warm)
    lr = lr or (finetune.FINETUNE_FIT["lr"] if warm else 3e-3)
    cfg = _shaped_arch(arch, s.spec)
    if base is None:   # a model replacing one reads its inputs as that one did
        _scale_inputs(s)
    log(_data_line(s, cfg, auto))
    nets.set_deterministic(seed)
    model = finetune.warm_model(base, cfg, seed)[0] if warm else nets.TemperamentNet(cfg)
    fr = nets.fit(model, s.train.X, s.train.y, s.train.weights, s.val.X, s.val.y, lr=lr,
                  seed=seed, progress=progress, ring=s.spec.ring, on_epoch=on_epoch, **settings)
    held, held_name, cm, acc, pred = _evaluate(model, s, fr, log)
    old_eval = finetune.evaluate_old(model, base)
    training = _quality_record(s, held, held_name, acc, force,
                               finetune.recall_check(base, old_eval, cm, s.spec.labels, log),
                               old_eval, pred)
    summary = {"model": out.name, "macs": cfg.macs(), "arch": cfg.to_json(),
               "data_spec": s.spec.to_json(), "seed": seed, "best_epoch": fr.best_epoch,
               "epochs_run": fr.epochs_run, "val_accuracy": fr.best_val_accuracy,
               "val_loss": fr.best_val_loss,
               "test_accuracy": acc, "confusion": cm.tolist(), "sessions": s.sessions,
               "recall": _recall(cm, s.spec.labels),
               "take_accuracy": (take_accuracy(held, pred) or (None,))[0],
               **({"replaces": str(base.path), "fine_tuned": warm} if base is not None else {}),
               "fit": {**settings, "lr": lr, "chosen_for_dataset_size": sorted(auto)},
               "quality": training,
               "history": fr.history, "seconds": round(time.perf_counter() - t0, 2)}
    _write_model(out, model, s.spec, training, summary, log)
    return summary


def _recall(cm, labels) -> dict:
    """{label: held-out recall} (None for a class with no held-out windows)."""
    from lanthorn.quantize.metrics import per_class_recall

    return {lab: None if r != r else round(float(r), 4)
            for lab, r in zip(labels, per_class_recall(cm), strict=True)}


def _fit_settings(n_windows: int, batch: int | None, epochs: int | None,
                  patience: int | None, warm: bool = False) -> tuple[dict, dict]:
    """(batch, epochs and patience to fit with; those of them chosen for this dataset's size,
    or for fine-tuning when ``warm``). Each one given as None is chosen; the log and the summary
    name the chosen ones, so a run can be repeated with them spelled out."""
    from lanthorn.quantize.dataspec import auto_fit

    given = {"batch": batch, "epochs": epochs, "patience": patience}
    chosen = auto_fit(n_windows)
    if warm:
        chosen.update({k: v for k, v in finetune.FINETUNE_FIT.items() if k in given})
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
               if s.spec.ring else "; no ring declared: no rotation")
            + _held_in_time_note(s.held_in_time))


def _held_in_time_note(held: dict[str, int]) -> str:
    """What the split did with gestures of too few takes to hold one out (see
    :func:`lanthorn.quantize.dataspec.hold_out_in_time`)."""
    if not held:
        return ""
    names = ", ".join(f"{g} ({plural(n, 'take')})" for g, n in held.items())
    return (f"\nheld out in time within each take (too few takes to hold whole ones out): "
            f"{names}; their held-out figures are from the same takes' later frames, not "
            f"from new takes")


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
    val = (f"best epoch {fr.best_epoch}/{fr.epochs_run}: validation accuracy "
           f"{100 * fr.best_val_accuracy:.1f}%" if len(s.val) else
           f"no validation (--no-validation): all {fr.epochs_run} epochs, the last kept")
    log(f"{val}, held-out {held_name} accuracy {100 * acc:.1f}% ({len(held)} windows)")
    log(format_confusion(cm, s.spec.labels))
    takes = take_accuracy(held, pred)
    if takes is not None:
        log(f"take-level accuracy {100 * takes[0]:.1f}% ({takes[1]} held-out takes of one "
            f"gesture each, each read as the majority of its windows; window accuracy "
            f"{100 * acc:.1f}%)")
    return held, held_name, cm, acc, pred


def take_accuracy(held, pred) -> tuple[float, int] | None:
    """(share of held-out takes read right, how many): a take of one gesture throughout is
    read as the majority of its windows' predictions -- what papers and artists count
    (one take, one gesture); None when no take is of one gesture (visits of many)."""
    right = n = 0
    for key in dict.fromkeys(held.sessions.tolist()):
        mine = held.sessions == key
        y = held.y[mine]
        if (y != y[0]).any():
            continue
        n += 1
        right += int(np.bincount(pred[mine]).argmax() == y[0])
    return (right / n, n) if n else None


def _quality_record(s, held, held_name: str, acc: float, force: bool, extra=(),
                    old_eval=None, pred=None) -> dict:
    """The quality gates and what they were judged on, for the summary and the ONNX: they
    travel with the model, so ``lanthorn quantize`` and the card can tell a forced model."""
    from lanthorn.quantize import quality

    n_classes = len(s.spec.labels)
    held_y, judged = held.y, f"held-out {held_name} accuracy"
    if old_eval is not None:   # a model replacing one: its old gestures are held out there
        held_y = np.concatenate([held.y, old_eval[0]])
        pred = np.concatenate([pred, old_eval[1]])
        acc, judged = float((pred == held_y).mean()), judged + " (with the old model's)"
    gates = quality.class_gates(s.spec.labels, s.train.y, held_y, held_name)
    gates.append(quality.accuracy_gate(acc, held_y, n_classes, judged))
    gates += list(extra)
    return {"sessions": s.sessions, "held_out": held_name, "accuracy": round(acc, 4),
            "chance": round(quality.chance_level(held_y, n_classes), 4),
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
    # no timings in the checkpoint: same data and seed, same bytes (and the recall, which
    # the confusion holds, as the shipped checkpoint always has)
    nets.save_checkpoint(ckpt, model, spec.to_json(), {"train": {
        k: v for k, v in summary.items()
        if k not in ("history", "seconds", "recall", "take_accuracy")}})
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
                  say=print, base_from=None, full: bool = False, old_data=None,
                  mix_old: bool = True, no_validation: bool = False, **fit_args) -> dict:
    """Train on a dataset folder as ``lanthorn train`` does: the window given, or the
    candidates :func:`lanthorn.quantize.dataspec.auto_spec` proposes for this dataset, one
    short model each, the winner chosen on the validation sessions only (the test sessions
    judge it, never choose it). A class without examples is refused before any training.
    ``fit_args`` (seed, epochs, patience, lr, batch) go to :func:`train`. ``base_from``,
    ``full``, ``old_data``, ``mix_old``: fine-tuning (see :mod:`lanthorn.host.finetune`).
    ``no_validation``: the validation sessions train too, for every epoch (no early stop)."""
    import copy

    from lanthorn.device.storage.dataset import load_dataset
    from lanthorn.quantize import quality
    from lanthorn.quantize.dataspec import auto_spec

    ds = load_dataset(data_dir)
    # one labelled instance per take: short takes are padded rather than dropped
    pad_short = bool(ds.recordings) and all(len(set(r.labels.tolist())) == 1
                                            for r in ds.recordings)
    base = finetune.choose_base(base_from, full, ds, old_data, say)
    windows = [window]
    if base is not None:
        windows = [base.spec.window]
    elif window is None:
        windows, why = auto_spec(ds)
        say(f"for this dataset: {why}")

    def fit(w, path, quiet_log):
        splits = prepare(data_dir, finetune.spec_for(base, pad_short) if base is not None
                         else _spec_for(w, hop, split_seed, pad_short))
        if base is not None and mix_old:   # before the gates: old classes' examples count
            splits.train = finetune.replay(splits.train, base, say)
            splits.val = finetune.replay_validation(splits.val, base)
        if no_validation:
            _all_to_training(splits)
        quality.enforce(quality.class_gates(splits.spec.labels, splits.train.y, None), force)
        return train(data_dir, path, spec=splits.spec, arch=copy.deepcopy(arch),
                     progress=not quiet, splits=splits, force=force, base=base,
                     log=(lambda *a: None) if quiet_log else print,
                     **fit_args)

    if len(windows) == 1:
        return fit(windows[0], out, False)
    return _window_search(windows, fit, out, say)


def _all_to_training(splits) -> None:
    """``--no-validation``: a published training part trains whole (nothing of it kept
    back); with no validation to stop on, every epoch runs and the last one is kept. The
    held-out test sessions must be there, to judge the model."""
    from lanthorn.device.storage.dataset import DataError

    if not len(splits.test):
        raise DataError("--no-validation needs held-out test sessions to judge the model "
                        "(import the published test part with --split test)")
    splits.train = finetune.join(splits.train, splits.val)
    splits.val = splits.val.subset(np.zeros(len(splits.val), bool))
    splits.sessions["train"] = sorted(splits.sessions["train"] + splits.sessions["val"])
    splits.sessions["val"] = []


def _window_search(windows, fit, out, say) -> dict:
    """One short model per window (``fit(window, path, quiet)``), the best on validation
    copied to ``out``; its summary, with what was tried."""
    import shutil
    import tempfile

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
