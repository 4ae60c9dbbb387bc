"""Accuracy and confusion matrices: the numbers training, quantization and the report share."""
from __future__ import annotations

import numpy as np


def accuracy(y_true, y_pred) -> float:
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    return float((y_true == y_pred).mean()) if len(y_true) else 0.0


def confusion(y_true, y_pred, n_classes: int) -> np.ndarray:
    """cm[i, j] = how many windows of true class i were predicted as j."""
    cm = np.zeros((n_classes, n_classes), np.int64)
    np.add.at(cm, (np.asarray(y_true, np.int64), np.asarray(y_pred, np.int64)), 1)
    return cm


def per_class_recall(cm: np.ndarray) -> np.ndarray:
    rows = cm.sum(axis=1)
    return np.where(rows > 0, np.diag(cm) / np.maximum(rows, 1), np.nan)


def format_confusion(cm: np.ndarray, labels) -> str:
    """A fixed-width table (rows: truth, columns: prediction) with per-class recall."""
    short = [lab[:10] for lab in labels]
    w = max(6, max(len(s) for s in short) + 1)
    lines = ["truth \\ predicted".ljust(w + 8) + "".join(s.rjust(w) for s in short) + "  recall"]
    recall = per_class_recall(cm)
    for i, name in enumerate(short):
        r = "     -" if np.isnan(recall[i]) else f"{100 * recall[i]:5.1f}%"
        lines.append(name.ljust(w + 8) + "".join(str(v).rjust(w) for v in cm[i]) + "  " + r)
    return "\n".join(lines)
