"""The accuracy-versus-expected-MACs picture of a cascade (matplotlib, Agg backend, PNG)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Union

from .._errors import TfedgeError
from .._io import atomic_path
from ._evaluate import CascadeEvaluation

__all__ = ["plot_tradeoff"]

_MEGA = 1e6
_POINTS = 100.0
_DPI = 120
_FIGSIZE = (6.4, 4.4)


def plot_tradeoff(evaluation: CascadeEvaluation, path: Union[str, os.PathLike], *,
                  base: Optional[tuple[float, float, str]] = None,
                  title: Optional[str] = None) -> Path:
    """Write a PNG: the cascade's curve (thresholds from validation, figures from this split),
    each stage alone, the calibrated operating point and, optionally, ``base`` =
    ``(macs, top1, label)`` (e.g. the uncropped base model)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise TfedgeError("plotting needs matplotlib: pip install 'tfedge[bench]' (or "
                          "matplotlib)") from exc
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise TfedgeError(f"the plot is written as PNG: give a path ending in .png, got "
                          f"{str(path)!r}")
    fig, ax = plt.subplots(figsize=_FIGSIZE)
    try:
        if evaluation.curve:
            xs = [p["expected_macs"] / _MEGA for p in evaluation.curve]
            ys = [p["top1"] * _POINTS for p in evaluation.curve]
            ax.plot(xs, ys, "-o", ms=3, color="tab:blue",
                    label="cascade (thresholds from validation)")
        sx = [s["alone_macs"] / _MEGA for s in evaluation.stages]
        sy = [s["top1"] * _POINTS for s in evaluation.stages]
        ax.scatter(sx, sy, marker="s", color="tab:gray", zorder=3, label="single stages")
        for s, x, y in zip(evaluation.stages, sx, sy):
            ax.annotate(s["name"], (x, y), textcoords="offset points", xytext=(4, -10),
                        fontsize=7, color="tab:gray")
        ax.scatter([evaluation.expected_macs / _MEGA], [evaluation.top1 * _POINTS], marker="*",
                   s=160, color="tab:red", zorder=4, label="calibrated cascade")
        if base is not None:
            ax.scatter([base[0] / _MEGA], [base[1] * _POINTS], marker="D", color="black",
                       zorder=4, label=base[2])
        ax.set_xlabel("expected MMACs per image (predictor included)")
        ax.set_ylabel("top-1 (%)")
        ax.set_title(title or f"cascade on {evaluation.count} images")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8, loc="best")
        fig.tight_layout()
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=_DPI, format="png")
    finally:
        plt.close(fig)
    return path
