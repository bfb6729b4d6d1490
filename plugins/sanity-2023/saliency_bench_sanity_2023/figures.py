"""eMPRT's figure: each method's mean map complexity on the trained and on the fully randomised model (a dumbbell).

Drawn from the board alone, in the project's colour-blind palette (Okabe & Ito 2008): trained blue, randomised
vermillion, the controls' names grey; one row per method, sorted by the eMPRT ratio.
"""
from __future__ import annotations

from pathlib import Path

from saliency_bench import is_control

BLUE, VERMILLION, GREY = "#0072B2", "#D55E00", "#777777"  # Okabe & Ito (2008), as the board's other figures


def emprt_rows(board: dict, check: str) -> list[tuple[str, float, float, float, bool]]:
    """``(method, H_orig, H_rand, ratio, is_control)`` of every method with an eMPRT result, by ratio."""
    rows = []
    for name, entry in board.get("methods", {}).items():
        result = (entry.get("results") or {}).get(check) or {}
        metrics = result.get("metrics", {}) if result.get("status") == "ok" else {}
        found = [metrics.get(key, {}).get("value") for key in ("entropy_original", "entropy_randomized", "ratio")]
        if None not in found:
            rows.append((name, *map(float, found), is_control(entry.get("family"))))
    return sorted(rows, key=lambda row: (row[3], row[0]))


def draw_emprt(board: dict, path: Path, check: str) -> bool:
    """The dumbbell chart of ``check``'s entropies at ``path``; False (nothing drawn) without any result."""
    rows = emprt_rows(board, check)
    if not rows:
        return False
    from matplotlib.figure import Figure  # no pyplot: no backend or global state touched

    figure = Figure(figsize=(7.0, 1.2 + 0.22 * len(rows)), dpi=100, layout="constrained")
    axes = figure.add_subplot()
    for y, (name, before, after, _, _) in enumerate(rows):
        axes.plot([before, after], [y, y], color=GREY, linewidth=1.0, zorder=1)
    ys = range(len(rows))
    axes.scatter([r[1] for r in rows], ys, marker="o", color=BLUE, zorder=2, label="trained model")
    axes.scatter([r[2] for r in rows], ys, marker="^", color=VERMILLION, zorder=3, label="fully randomised model")
    axes.set_yticks(list(ys), [f"{r[0]}  ({r[3]:.2f})" for r in rows], fontsize=7.5)
    for label, row in zip(axes.get_yticklabels(), rows):
        label.set_color(GREY if row[4] else "black")
    axes.set_ylim(-0.6, len(rows) - 0.4)
    axes.set_xlabel("mean entropy of the map's 100-bin histogram (nats)", fontsize=8)
    axes.set_title("eMPRT: map complexity before and after randomising every weight (method (ratio); controls grey)",
                   fontsize=8.5)
    axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, fontsize=7.5)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    return True
