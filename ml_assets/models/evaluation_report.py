"""The evaluation report: challenger vs champion vs baselines on the same out-of-time data.

`build_evaluation_report` returns markdown for Dagster metadata and writes `report.html`,
`calibration.png` and `slices.csv` into a folder the markdown links to.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from ml_assets.models.metrics import METRIC_NAMES, Evaluation, write_calibration_plot

@dataclass(frozen=True)
class EvaluationReport:
    markdown: str
    html_path: Path
    calibration_png: Path
    slices_csv: Path
    summary: pl.DataFrame  # one row per model: name, metrics, worst_slice_gap


def summary_table(evaluations: dict[str, Evaluation]) -> pl.DataFrame:
    return pl.DataFrame(
        [
            {"model": name, **{m: e.metrics[m] for m in METRIC_NAMES}, "worst_slice_gap": e.worst_slice_gap}
            for name, e in evaluations.items()
        ]
    )


def _format(value) -> str:
    if isinstance(value, float):
        return "n/a" if math.isnan(value) else f"{value:.4f}"
    return str(value)


def _markdown_table(frame: pl.DataFrame) -> str:
    lines = ["| " + " | ".join(frame.columns) + " |", "|" + "---|" * frame.width]
    lines += ["| " + " | ".join(_format(v) for v in row) + " |" for row in frame.iter_rows()]
    return "\n".join(lines)


def _html_table(frame: pl.DataFrame) -> str:
    header = "".join(f"<th>{html.escape(c)}</th>" for c in frame.columns)
    rows = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_format(v))}</td>" for v in row) + "</tr>"
        for row in frame.iter_rows()
    )
    return f"<table><thead><tr>{header}</tr></thead><tbody>{rows}</tbody></table>"


def build_evaluation_report(
    evaluations: dict[str, Evaluation],
    output_dir: Path,
    title: str,
    focus_model: str = "challenger",
    notes: tuple[str, ...] = (),
) -> EvaluationReport:
    """Report on named evaluations (e.g. challenger, champion, baseline_rate, logistic).

    The slice tables show `focus_model`; `notes` (e.g. the promotion decision) are listed first.
    """
    output_dir = output_dir.resolve()
    output_dir.mkdir(parents=True, exist_ok=True)
    summary = summary_table(evaluations)
    focus = evaluations[focus_model]
    calibration_png = write_calibration_plot(
        {name: e.calibration for name, e in evaluations.items()}, output_dir / "calibration.png"
    )
    slices_csv = output_dir / "slices.csv"
    pl.concat(
        [e.slices.with_columns(pl.lit(name).alias("model")) for name, e in evaluations.items()]
    ).write_csv(slices_csv)

    html_path = output_dir / "report.html"
    html_path.write_text(
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title>"
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}</style></head><body>"
        f"<h1>{html.escape(title)}</h1>"
        + "".join(f"<p>{html.escape(note)}</p>" for note in notes)
        + f"<h2>Metrics</h2>{_html_table(summary)}"
        + f"<h2>Worst slices ({html.escape(focus_model)})</h2>{_html_table(focus.worst_slices)}"
        + f"<h2>Calibration</h2><img src='{calibration_png.name}' alt='calibration plot'>"
        + f"<h2>All slices ({html.escape(focus_model)})</h2>{_html_table(focus.slices)}"
        + "</body></html>"
    )

    markdown = "\n\n".join(
        [
            f"## {title}",
            *notes,
            _markdown_table(summary),
            f"**Worst slices ({focus_model})**",
            _markdown_table(focus.worst_slices),
            f"Files: [report]({html_path.as_uri()}) · [calibration plot]({calibration_png.as_uri()}) · "
            f"[slices]({slices_csv.as_uri()})",
        ]
    )
    return EvaluationReport(markdown, html_path, calibration_png, slices_csv, summary)
