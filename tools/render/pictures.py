"""The README's pictures of the dashboard and the alerts, drawn offline from what the program declares.

    venv/bin/python -m tools.render.pictures --out docs/img

Runs the program under the offline engine (the tests' two-cluster config with the edge on, so
every kind of panel is there), reads the Dashboard's JSON and the AlertPolicies it declared, and
draws them with matplotlib: the dashboard's mosaic tile by tile (titles, queries' thresholds),
and one row per alert condition. Nothing is fetched; the pictures change when the program does.
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from components.names import ALERT_POLICY, DASHBOARD
from offline import configs, run_program
from offline.engine import Program

DPI = 100


def program() -> Program:
    config = configs.with_edge(configs.base())
    config["ca"] = {"algorithm": "ECDSA"}  # the pictures do not depend on the CA; ECDSA is fast offline
    return run_program(config)


def draw_dashboard(document: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    layout = document["mosaicLayout"]
    columns = layout["columns"]
    rows = max(t["yPos"] + t["height"] for t in layout["tiles"])
    scale = 0.25  # inches per grid unit
    fig = plt.figure(figsize=(columns * scale, rows * scale * 0.55))
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, columns)
    ax.set_ylim(rows, 0)
    ax.axis("off")
    for tile in layout["tiles"]:
        x, y, w, h = tile["xPos"], tile["yPos"], tile["width"], tile["height"]
        widget = tile["widget"]
        if "sectionHeader" in widget:
            ax.add_patch(Rectangle((x, y), w, h, facecolor="#e8eaed", edgecolor="none"))
            ax.text(x + 0.5, y + h * 0.35, widget["title"], va="center", fontsize=11, weight="bold")
            ax.text(x + 0.5, y + h * 0.75, widget["sectionHeader"]["subtitle"], va="center", fontsize=8,
                    color="#5f6368")
            continue
        ax.add_patch(Rectangle((x + 0.2, y + 0.2), w - 0.4, h - 0.4, facecolor="white", edgecolor="#dadce0"))
        ax.text(x + 0.6, y + 1.2, "\n".join(textwrap.wrap(widget["title"], int(w * 2.2))), va="top", fontsize=7.5,
                weight="bold")
        chart = widget["xyChart"]
        # A sketch of the plot area: one stroke per dataset, the thresholds as dashed red lines.
        top, bottom = y + 4.5, y + h - 1.2
        for i, d in enumerate(chart["dataSets"]):
            style = "-" if i == 0 else ":"
            level = top + (bottom - top) * (0.35 + 0.3 * i)
            ax.plot([x + 1, x + w - 1], [level, level], style, color=f"C{i}", lw=1.5)
            ax.text(x + 1, level - 0.3, d["timeSeriesQuery"]["prometheusQuery"][:int(w * 2.4)] + "…",
                    fontsize=5, color="#5f6368", family="monospace")
        for t in chart.get("thresholds", []):
            level = top + (bottom - top) * 0.15
            ax.plot([x + 1, x + w - 1], [level, level], "--", color="#d93025", lw=1)
            ax.text(x + w - 1, level - 0.3, f"{t['label']}: {t['value']:g}", fontsize=6, color="#d93025",
                    ha="right")
        ax.text(x + 0.6, y + h - 0.6, chart["yAxis"]["label"], fontsize=6, color="#5f6368")
    fig.savefig(path, dpi=DPI)
    plt.close(fig)


def draw_alerts(policies: Sequence[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [(p["displayName"], p.get("severity", ""), c["displayName"],
             c["conditionPrometheusQueryLanguage"]["duration"], c["conditionPrometheusQueryLanguage"]["query"])
            for p in policies for c in p["conditions"]]
    height = 0.9 + sum(1.1 + 0.13 * min(6, len(r[4]) // 150) for r in rows)
    fig = plt.figure(figsize=(16, height))
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, 16)
    ax.set_ylim(height, 0)
    ax.axis("off")
    ax.text(0.2, 0.5, "Alert policies (Cloud Monitoring, PromQL conditions): policy · severity · condition · for",
            fontsize=12, weight="bold", va="center")
    y = 0.9
    colors = {"CRITICAL": "#d93025", "ERROR": "#e37400", "WARNING": "#f9ab00"}
    for policy, severity, condition, duration, query in rows:
        lines = textwrap.wrap(query, 190)[:7]
        box = 0.9 + 0.13 * (len(lines) - 1)
        ax.add_patch(plt.Rectangle((0.1, y), 15.8, box, facecolor="white", edgecolor="#dadce0"))
        ax.add_patch(plt.Rectangle((0.1, y), 0.12, box, facecolor=colors.get(severity, "#5f6368"), edgecolor="none"))
        ax.text(0.4, y + 0.25, f"{policy}", fontsize=9, weight="bold", va="center")
        ax.text(0.4, y + 0.5, f"{severity} · {condition} · for {duration}", fontsize=8, va="center",
                color="#3c4043")
        ax.text(0.4, y + 0.72, "\n".join(lines) + (" …" if len(textwrap.wrap(query, 190)) > 7 else ""), fontsize=5.5,
                va="top", family="monospace", color="#5f6368")
        y += box + 0.2
    fig.savefig(path, dpi=DPI)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.render.pictures", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/img"), help="folder for the PNGs (default docs/img)")
    args = parser.parse_args(argv)
    if not args.out.is_dir():
        parser.error(f"--out {args.out}: no such folder")
    declared = program()
    (board,) = declared.of_type(DASHBOARD)
    draw_dashboard(json.loads(board.inputs["dashboardJson"]), args.out / "dashboard.png")
    draw_alerts([p.inputs for p in declared.of_type(ALERT_POLICY)], args.out / "alerts.png")
    print(f"wrote {args.out / 'dashboard.png'} and {args.out / 'alerts.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
