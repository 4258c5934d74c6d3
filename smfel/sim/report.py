"""The round table a simulation prints while it runs, and its optional plot."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

__all__ = ["format_header", "format_row", "plot_rounds"]

_CLASSES = ("N", "S", "V", "F")


def _pct(v: float | None) -> str:
    return "   - " if v is None else f"{100 * v:5.1f}"


def format_header() -> str:
    cls = " ".join(f"{c + ' Se':>5s} {c + ' +P':>5s}" for c in _CLASSES)
    return f"round acc%  j-idx  {cls}  acc/rej  beats   sec"


def format_row(row: dict[str, Any]) -> str:
    classes = row.get("classes") or {}
    cls = " ".join(
        f"{_pct(classes.get(c, {}).get('se'))} {_pct(classes.get(c, {}).get('ppv'))}"
        for c in _CLASSES
    )
    j = row.get("j_index")
    jtxt = "  -  " if j is None else f"{j:.3f}"
    return (
        f"{row['round']:5d} {_pct(row.get('accuracy'))} {jtxt}  {cls}  "
        f"{row['accepted']:3d}/{row['rejected']:<3d} {row.get('beats', 0):6d} "
        f"{row['seconds']:5.1f}"
    )


def print_table(rows: Sequence[dict[str, Any]], out: TextIO) -> None:
    print(format_header(), file=out)
    for row in rows:
        print(format_row(row), file=out)


def plot_rounds(results: Sequence[dict[str, Any]], path: str | Path) -> None:
    """Accuracy and j-index per round, one line per result (strategy); needs matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import MaxNLocator
    except ImportError as err:
        raise RuntimeError("--plot needs matplotlib: pip install 'smfel[plot]'") from err
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    for res in results:
        rounds = [r["round"] for r in res["rounds"]]
        for ax, key in zip(axes, ("accuracy", "j_index"), strict=True):
            ax.plot(rounds, [r[key] for r in res["rounds"]], marker="o", label=res["strategy"])
    for ax, title in zip(axes, ("accuracy", "j-index (Mondejar-Guerra)"), strict=True):
        ax.set_xlabel("round")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.savefig(path, dpi=120)
    plt.close(fig)
