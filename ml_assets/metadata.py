"""Metadata that makes an asset useful in the Dagster UI: schema, profile, preview, location."""

import dagster as dg
import polars as pl

PREVIEW_ROWS = 10


def markdown_table(frame: pl.DataFrame) -> str:
    header = "| " + " | ".join(frame.columns) + " |\n|" + "---|" * frame.width + "\n"
    return header + "".join("| " + " | ".join(_cell(v) for v in row) + " |\n" for row in frame.rows())


def _cell(value) -> str:
    text = "" if value is None else f"{value:.4g}" if isinstance(value, float) else str(value)
    return text.replace("|", "\\|")[:80]


def table_schema(frame: pl.DataFrame, descriptions: dict[str, str] | None = None) -> dg.TableSchema:
    descriptions = descriptions or {}
    return dg.TableSchema(
        columns=[
            dg.TableColumn(name, str(dtype), description=descriptions.get(name))
            for name, dtype in frame.schema.items()
        ]
    )


def profile(frame: pl.DataFrame) -> pl.DataFrame:
    """Null share, min and max of every column."""
    if frame.is_empty():
        return pl.DataFrame({"column": frame.columns})
    nulls = frame.select(pl.all().is_null().mean()).row(0)
    orderable = frame.select(pl.all().exclude(pl.Boolean, pl.List, pl.Struct))
    low = orderable.select(pl.all().min()).row(0, named=True)
    high = orderable.select(pl.all().max()).row(0, named=True)
    return pl.DataFrame(
        {
            "column": frame.columns,
            "null_pct": [round(100 * n, 2) for n in nulls],
            "min": [str(low.get(c, "")) for c in frame.columns],
            "max": [str(high.get(c, "")) for c in frame.columns],
        }
    )


def table_metadata(
    frame: pl.DataFrame, uri: str, version: int, descriptions: dict[str, str] | None = None
) -> dict:
    """The standard metadata of a stored table."""
    metadata = {
        "dagster/row_count": frame.height,
        "dagster/column_schema": table_schema(frame, descriptions),
        "dagster/uri": uri,
        "delta_table_version": version,
        "profile": dg.MetadataValue.md(markdown_table(profile(frame))),
        "preview": dg.MetadataValue.md(markdown_table(frame.head(PREVIEW_ROWS))),
    }
    if "date" in frame.columns and frame.height:
        metadata["days"] = frame.get_column("date").n_unique()
    return metadata
