"""Training the temperament model on a dataset folder: split by session, fit, evaluate, export.

The network and fit loop live in :mod:`lanthorn.quantize.net` (pruning fine-tunes with them
too); the data spec in :mod:`lanthorn.quantize.dataspec`. This module is the orchestration
behind ``lanthorn train``.
"""
from __future__ import annotations

import time
from pathlib import Path

from lanthorn.device.atomic import atomic_write_bytes
from lanthorn.quantize.dataspec import DataSpec, onnx_with_spec, prepare


def train(data_dir, out, *, spec: DataSpec | None = None, arch=None, seed: int = 0,
          epochs: int = 40, patience: int = 8, lr: float = 3e-3, batch: int = 64,
          progress: bool = True, log=print) -> dict:
    """Train, evaluate on held-out sessions, write ``out`` (float ONNX) and ``out``.pt.

    Returns a summary dict (accuracies, confusion matrix, sessions of each split).
    """
    from lanthorn.quantize import net as nets
    from lanthorn.quantize.metrics import accuracy, confusion, format_confusion

    out = Path(out)
    t0 = time.perf_counter()
    s = prepare(data_dir, spec)
    cfg = arch or nets.ArchConfig()
    cfg.in_channels, cfg.window, cfg.n_classes = len(s.spec.channels), s.spec.window, len(s.spec.labels)
    log(f"data: {len(s.train)} training windows from {len(s.sessions['train'])} sessions, "
        f"{len(s.val)} validation ({len(s.sessions['val'])}), {len(s.test)} test "
        f"({len(s.sessions['test'])}); model: {cfg.macs():,} MACs")
    nets.set_deterministic(seed)
    model = nets.TemperamentNet(cfg)
    fr = nets.fit(model, s.train.X, s.train.y, s.train.weights, s.val.X, s.val.y,
                  epochs=epochs, lr=lr, batch=batch, patience=patience, seed=seed,
                  progress=progress)
    held = s.test if len(s.test) else s.val
    pred = nets.predict(model, held.X).argmax(1)
    cm = confusion(held.y, pred, cfg.n_classes)
    acc = accuracy(held.y, pred)
    log(f"best epoch {fr.best_epoch}/{fr.epochs_run}: validation accuracy "
        f"{100 * fr.best_val_accuracy:.1f}%, held-out test accuracy {100 * acc:.1f}% "
        f"({len(held)} windows)")
    log(format_confusion(cm, s.spec.labels))
    summary = {"model": out.name, "macs": cfg.macs(), "arch": cfg.to_json(),
               "data_spec": s.spec.to_json(), "seed": seed, "best_epoch": fr.best_epoch,
               "epochs_run": fr.epochs_run, "val_accuracy": fr.best_val_accuracy,
               "test_accuracy": acc, "confusion": cm.tolist(), "sessions": s.sessions,
               "history": fr.history, "seconds": round(time.perf_counter() - t0, 2)}
    out.parent.mkdir(parents=True, exist_ok=True)
    onnx_bytes = onnx_with_spec(nets.export_onnx(model), s.spec)
    atomic_write_bytes(out, onnx_bytes)
    ckpt = out.with_suffix(".pt")
    # no timings in the checkpoint: same data and seed, same bytes
    nets.save_checkpoint(ckpt, model, s.spec.to_json(), {"train": {
        k: v for k, v in summary.items() if k not in ("history", "seconds")}})
    log(f"wrote {out} ({len(onnx_bytes):,} bytes) and checkpoint {ckpt}")
    return summary
