"""The compress report: one self-contained HTML file, its PNGs, and a JSON summary.

``report/report.html`` embeds every figure as a ``data:`` URI (the PNGs are
also written next to it): the ablation table, accuracy versus MACs of every
row with the cascade's trade-off curve, the cascade's exit distribution, a
grid of test images (true box, predicted box, crop window, predicted label),
and a short plain-language reading of the numbers. ``report/summary.json``
holds the same figures for scripts. Needs matplotlib (the ``train`` extra),
not TensorFlow.
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import numpy as np

from ..runtime.fileio import atomic_write_bytes, atomic_write_json

__all__ = ["write_report", "draw_grid", "reading", "SUMMARY_FORMAT"]

SUMMARY_FORMAT = "tfedge-compress-summary"
_COLOURS = {"true": "#1a9850", "predicted": "#d73027", "window": "#fdae61"}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> None:
    import io

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    _pyplot().close(fig)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, buffer.getvalue())


def draw_grid(path: Path, images: Sequence[np.ndarray], *, labels: np.ndarray,
              predictions: np.ndarray, exits: np.ndarray, true_boxes: Optional[np.ndarray],
              predicted_boxes: Optional[np.ndarray], windows: np.ndarray,
              class_names: Sequence[str], columns: int = 4) -> None:
    """Test images with the true box, the predicted box, the crop window and the label."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Rectangle

    plt = _pyplot()
    n = len(images)
    rows = max(1, -(-n // columns))
    fig, axes = plt.subplots(rows, columns, figsize=(3.0 * columns, 3.25 * rows + 0.6),
                             squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i, image in enumerate(images):
        ax = axes.flat[i]
        h, w = image.shape[:2]
        ax.imshow(image)

        def box(b, colour, style="-", width=2.0):
            ax.add_patch(Rectangle((b[1] * w, b[0] * h), (b[3] - b[1]) * w, (b[2] - b[0]) * h,
                                   fill=False, edgecolor=colour, linewidth=width,
                                   linestyle=style))

        if true_boxes is not None and not np.isnan(true_boxes[i]).any():
            box(true_boxes[i], _COLOURS["true"])
        if predicted_boxes is not None:
            box(predicted_boxes[i], _COLOURS["predicted"])
        y0, x0, y1, x1 = (int(v) for v in windows[i])
        ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False,
                               edgecolor=_COLOURS["window"], linewidth=1.5, linestyle="--"))
        ok = int(predictions[i]) == int(labels[i])
        ax.set_title(f"{'OK' if ok else 'WRONG'}: {class_names[int(predictions[i])]}\n"
                     f"(true {class_names[int(labels[i])]}, exit {int(exits[i])})",
                     fontsize=9, color="black" if ok else _COLOURS["predicted"])
    legend = [Line2D([0], [0], color=_COLOURS["predicted"], lw=2, label="predicted box (int8)"),
              Line2D([0], [0], color=_COLOURS["window"], lw=1.5, ls="--",
                     label="crop window the classifier sees")]
    if true_boxes is not None and not np.isnan(true_boxes[:n]).all():  # else none is drawn
        legend.insert(0, Line2D([0], [0], color=_COLOURS["true"], lw=2, label="true box"))
    fig.legend(handles=legend, loc="lower center", ncol=len(legend), frameon=False, fontsize=9)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    _save(fig, path)


def _tradeoff_plot(path: Path, rows: Sequence[Mapping[str, Any]],
                   curve: Sequence[Mapping[str, Any]], split: str = "test") -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    if curve:
        ax.plot([p["expected_macs"] / 1e6 for p in curve], [p["top1"] for p in curve], "-",
                color="#999999", lw=1, label=f"cascade, other thresholds ({split})")
    # Rows at the same point (a cascade that exits at its first stage every time) get one
    # label, not two drawn over each other.
    labels: dict[tuple[float, float], list[str]] = {}
    for r in rows:
        ax.scatter(r["macs"] / 1e6, r["top1"], s=45, zorder=3)
        labels.setdefault((r["macs"] / 1e6, r["top1"]), []).append(r["method"])
    for point, names in labels.items():
        ax.annotate(" = ".join(names), point, textcoords="offset points", xytext=(5, 4),
                    fontsize=8, annotation_clip=False)
    ax.margins(x=0.12, y=0.08)  # room for the labels of the outermost points
    ax.set_xlabel("MACs per image (millions; cascade: expected)")
    ax.set_ylabel(f"top-1 on the {split} split")
    ax.grid(alpha=0.3)
    if curve:
        ax.legend(fontsize=8, loc="best")
    ax.set_title("accuracy versus compute")
    _save(fig, path)


def _exits_plot(path: Path, cascade: Mapping[str, Any], split: str = "test") -> None:
    plt = _pyplot()
    names = [s["name"] for s in cascade["stages"]]
    x = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(5.2, 3.4))
    ax.bar(x - 0.18, cascade["float_exit_fractions"], 0.36, label="float")
    ax.bar(x + 0.18, cascade["int8_exit_fractions"], 0.36, label="int8 bundle")
    ax.set_xticks(x, [f"stage {k}\n{n}" for k, n in enumerate(names)], fontsize=8)
    ax.set_ylabel(f"share of {split} images leaving here")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8)
    ax.set_title("where images exit the cascade")
    _save(fig, path)


def _pct(x: float) -> str:
    return f"{100.0 * x:.1f}%"


def reading(summary: Mapping[str, Any]) -> list[str]:
    """A few plain sentences on what the numbers say."""
    rows = {r["method"]: r for r in summary["ablation"]}
    base, crop = rows["base"], rows["crop"]
    cascade = rows["crop+shrink+cascade"]
    out = []
    data = summary["data"]
    size = data["sizes"]
    out.append(f"The base classifier reaches {_pct(base['top1'])} top-1 on "
               f"{summary['measured']['images']} {summary['measured']['split']} images at "
               f"{base['macs'] / 1e6:.1f} M MACs and {base['int8_ms']:.2f} ms per int8 frame.")
    delta = (crop["top1"] - base["top1"]) * 100
    out.append(f"Cropping to the predicted object first (dynamic image cropping) "
               f"{'gains' if delta >= 0 else 'loses'} {abs(delta):.1f} points at "
               f"{_pct(crop['macs'] / base['macs'])} of the base's MACs: the classifier sees the "
               "object at a lower resolution instead of the whole scene.")
    if "shrink" in rows:
        s = rows["shrink"]
        out.append(f"Shrinking the base on whole images to the same budget (compound shrinking "
                   f"only) scores {_pct(s['top1'])}: spending those MACs on the crop "
                   f"{'beats' if crop['top1'] > s['top1'] else 'does not beat'} spending them on "
                   "the whole image.")
    ex = summary["measured"]["cascade"]["int8_exit_fractions"]
    out.append(f"The cascade lets {_pct(ex[0])} of the images leave at its cheapest stage; it "
               f"scores {_pct(cascade['top1'])} (int8 bundle {_pct(cascade['int8_top1'])}) at "
               f"{cascade['macs'] / 1e6:.1f} M expected MACs, {_pct(cascade['macs'] / base['macs'])}"
               f" of the base, and {cascade['int8_ms']:.2f} ms per int8 frame against "
               f"{base['int8_ms']:.2f} ms.")
    iou = summary["measured"].get("box_iou")
    if iou:
        out.append(f"The predicted boxes overlap the true ones with mean IoU {iou['miou']:.2f}; "
                   "a missed object costs the crop pipeline the image.")
    if size["train"] is not None and size["train"] < 10000:
        out.append(f"This run trained on {size['train']} images for "
                   f"{summary['settings']['epochs']} epochs per classifier: a small budget "
                   "that leaves every model under-trained, so absolute accuracies are low and "
                   "differences of a point or two are within noise. The full preset (20,000 "
                   "images, 3 seeds in benchmarks/) gives the figures to quote.")
    return out


def _data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def _table(rows: Sequence[Mapping[str, Any]], base_macs: float) -> str:
    head = ("<tr><th>method</th><th>top-1</th><th>int8 top-1</th><th>MACs (M)</th>"
            "<th>vs base</th><th>parameters</th><th>int8 size (KB)</th><th>int8 ms / frame</th>"
            "<th>what</th></tr>")
    body = []
    for r in rows:
        body.append(
            "<tr>" + "".join(f"<td>{c}</td>" for c in (
                html.escape(r["method"]), f"{r['top1']:.4f}",
                "" if r.get("int8_top1") is None else f"{r['int8_top1']:.4f}",
                f"{r['macs'] / 1e6:.2f}", _pct(r["macs"] / base_macs), f"{r['params']:,d}",
                f"{r['int8_bytes'] / 1024:.0f}", f"{r['int8_ms']:.3f}", html.escape(r["note"])))
            + "</tr>")
    return f"<table>{head}{''.join(body)}</table>"


_STYLE = """body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;font-size:14px}td,th{border:1px solid #ccc;padding:4px 8px;
text-align:right}td:first-child,td:last-child,th:last-child{text-align:left}
img{max-width:100%;border:1px solid #eee}code{background:#f4f4f4;padding:1px 4px}"""


def write_report(report_dir: Path, *, run_record: Mapping[str, Any],
                 measured: Mapping[str, Any]) -> dict[str, Any]:
    """Write ``report.html``, the PNGs and ``summary.json`` into ``report_dir``; the summary."""
    report_dir = Path(report_dir)
    report_dir.mkdir(parents=True, exist_ok=True)
    rows = list(measured["rows"])
    cascade = measured["cascade"]
    tradeoff, exits, grid = (report_dir / "accuracy_vs_macs.png", report_dir / "exits.png",
                             report_dir / measured["grid"])
    split = measured.get("split", "test")
    _tradeoff_plot(tradeoff, rows, cascade.get("curve", []), split)
    _exits_plot(exits, cascade, split)
    summary = {"format": SUMMARY_FORMAT, "version": 1, "ablation": rows,
               "data": run_record["data"], "settings": run_record["settings"],
               "measured": {k: v for k, v in measured.items() if k != "rows"},
               "steps": run_record["steps"], "steps_run": run_record["steps_run"],
               "steps_cached": run_record["steps_cached"], "artifacts": run_record["artifacts"],
               "bundle": str(Path(run_record["run_dir"]) / "bundle.zip"),
               "figures": {"accuracy_vs_macs": tradeoff.name, "exits": exits.name,
                           "grid": grid.name}}
    summary["reading"] = reading(summary)
    base_macs = next(r["macs"] for r in rows if r["method"] == "base")
    verify = run_record["steps"].get("verify", {})
    notes = [
        ("Top-1: float Keras models on the held-out split; " if split == "test" else
         f"Top-1: float Keras models on the {html.escape(split)} split, which is not held out: "
         "this data has no test split, and early stopping and the cascade's thresholds were "
         "chosen on it (give the folder train/, val/ and test/ class folders for held-out "
         "figures); ")
        + "the cascade also as the int8 bundle run by the device runtime. MACs include the "
        "foreground predictor; the cascade's are the expected MACs per image.",
        f"int8 ms: {html.escape(measured['timing'])}; a pipeline sums its models' medians "
        "(the cascade weights each stage by the share of frames reaching it); decoding and "
        "cropping are not included.",
        f"Bundle: <code>{html.escape(summary['bundle'])}</code>, manifest version "
        f"{measured['bundle']['manifest_version']}, verified: {bool(verify.get('ok'))}; it holds "
        + ("the predictor and its refiner (the stages crop at refined boxes)."
           if measured["bundle"].get("refiner_in_bundle") else "the plain predictor (no refiner)."),
    ]
    if measured.get("refined"):
        r = measured["refined"]
        plain = r.get("predictor_only") or {}

        def miou(boxes):
            return (boxes or {}).get("miou", float("nan"))

        notes.append(f"Refiner ({r.get('passes', '?')} passes, in the crop row, the cascade and "
                     f"the bundle): crop top-1 {r['top1']:.4f} at {r['macs'] / 1e6:.2f} M MACs, "
                     f"box mean IoU {miou(r['boxes']):.3f}; the predictor alone: top-1 "
                     f"{plain.get('top1', float('nan')):.4f} at "
                     f"{plain.get('macs', float('nan')) / 1e6:.2f} M MACs, mean IoU "
                     f"{miou(plain.get('boxes')):.3f}.")
    title = f"tfedge compress: {html.escape(run_record['data']['name'])}"
    body = [f"<h1>{title}</h1>",
            "<h2>What the numbers say</h2>",
            "".join(f"<p>{html.escape(p)}</p>" for p in summary["reading"]),
            "<h2>Ablation</h2>", _table(rows, base_macs),
            "<ul>" + "".join(f"<li>{n}</li>" for n in notes) + "</ul>",
            "<h2>Accuracy versus MACs</h2>",
            f'<img alt="accuracy versus MACs" src="{_data_uri(tradeoff)}">',
            "<h2>Cascade exits</h2>",
            f'<img alt="exit distribution" src="{_data_uri(exits)}">',
            "<p>" + ", ".join(f"stage {k} ({html.escape(s['name'])}, {s['macs'] / 1e6:.2f} M "
                              f"MACs): {_pct(f)} exit" for k, (s, f) in enumerate(
                                  zip(cascade["stages"], cascade["int8_exit_fractions"])))
            + " (int8 bundle)</p>",
            "<h2>Test images</h2>",
            f'<img alt="test images with boxes and labels" src="{_data_uri(grid)}">',
            "<h2>Run</h2>",
            f"<p>Steps run: {html.escape(', '.join(summary['steps_run']) or 'none')}; cached: "
            f"{html.escape(', '.join(summary['steps_cached']) or 'none')}. Settings and "
            "artifact hashes: <code>summary.json</code>.</p>"]
    page = (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{title}</title>"
            f"<style>{_STYLE}</style></head><body>{''.join(body)}</body></html>")
    atomic_write_bytes(report_dir / "report.html", page.encode("utf-8"))
    atomic_write_json(report_dir / "summary.json", json.loads(json.dumps(summary, default=str)))
    return summary
