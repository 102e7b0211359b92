"""PNG plots for asset metadata (matplotlib, Agg, no pyplot state): bytes in, markdown out.

`png_markdown` wraps PNG bytes as a markdown image with a `data:image/png;base64,` URL, which the
Dagster UI renders inline for `dg.MetadataValue.md(...)`. Used by `f1_assets.assets.ml`
(`profile_scatter_png`) and available to the feature assets (`lap_time_distribution_png`).
"""

from __future__ import annotations

import base64
import io

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

DPI = 80


def _png(fig: Figure) -> bytes:
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    return buf.getvalue()


def png_markdown(png: bytes, alt: str) -> str:
    """A markdown image embedding the PNG (for `dg.MetadataValue.md`)."""
    return f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode('ascii')})"


def profile_scatter_png(profiles: pd.DataFrame, x: str = "aggression", y: str = "consistency") -> bytes:
    """One point per driver with both scores, labelled with the driver code; the rest are counted."""
    fig = Figure(figsize=(7, 5))
    ax = fig.add_subplot()
    both = profiles.dropna(subset=[x, y]) if len(profiles) else profiles
    if len(both):
        ax.scatter(both[x].astype(float), both[y].astype(float), s=28, alpha=0.8)
        labels = both["driver_code"].fillna(both["driver_id"]) if "driver_code" in both else both["driver_id"]
        for xv, yv, label in zip(both[x].astype(float), both[y].astype(float), labels, strict=True):
            ax.annotate(str(label), (xv, yv), xytext=(3, 3), textcoords="offset points", fontsize=7)
        ax.axvline(1.0, color="grey", lw=0.6, ls="--")
        ax.axhline(1.0, color="grey", lw=0.6, ls="--")
    else:
        ax.text(0.5, 0.5, "no driver with both scores", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel(f"{x} (1 = race field's rate)")
    ax.set_ylabel(f"{y} (1 = race field's spread)")
    ax.set_title(f"driver profiles: {len(both)} of {len(profiles)} drivers with both scores", fontsize=10)
    fig.tight_layout()
    return _png(fig)


def lap_time_distribution_png(lap_features: pd.DataFrame, title: str | None = None) -> bytes:
    """One race's lap times (s) per driver: box (and dots) of the non-outlier laps, outlier laps as crosses.

    Drivers ordered by their median lap; takes the `lap_features` rows of one race (driver_id,
    driver_code, lap_time_ms, is_outlier).
    """
    df = lap_features.dropna(subset=["lap_time_ms"]).copy()
    df["t"] = pd.to_numeric(df["lap_time_ms"]).astype(float) / 1000.0
    df["label"] = df["driver_code"].fillna(df["driver_id"]) if "driver_code" in df else df["driver_id"]
    outlier = df["is_outlier"].astype("boolean").fillna(False).astype(bool)
    clean = df[~outlier]
    order = clean.groupby("label")["t"].median().sort_values().index.tolist()
    order += sorted(set(df["label"]) - set(order))
    fig = Figure(figsize=(max(6.0, 0.38 * len(order) + 1.5), 4.5))
    ax = fig.add_subplot()
    if order:
        data = [clean.loc[clean["label"] == lab, "t"].to_numpy() for lab in order]
        ax.boxplot([d if len(d) else np.array([np.nan]) for d in data],
                   flierprops={"marker": ".", "markersize": 3, "alpha": 0.5})
        ax.set_xticks(range(1, len(order) + 1), order, rotation=90, fontsize=7)
        pos = {lab: i + 1 for i, lab in enumerate(order)}
        out = df[outlier]
        ax.scatter(out["label"].map(pos), out["t"], marker="x", s=12, color="tab:red", alpha=0.6, label="outlier laps")
        if len(clean):
            lo, hi = clean["t"].quantile(0.005), clean["t"].quantile(0.995)
            ax.set_ylim(lo - 1.0, hi + 0.25 * (hi - lo) + 1.0)  # outliers above the range are clipped
        ax.legend(fontsize=7, loc="upper left")
    else:
        ax.text(0.5, 0.5, "no timed laps", ha="center", va="center", transform=ax.transAxes)
    ax.set_ylabel("lap time (s)")
    race = title or (str(df["race_id"].iloc[0]) if "race_id" in df and len(df) else "race")
    ax.set_title(f"{race}: lap times per driver ({len(clean)} clean, {int(outlier.sum())} outlier laps)", fontsize=10)
    fig.tight_layout()
    return _png(fig)
