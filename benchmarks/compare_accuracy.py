"""Two runs of ``benchmarks/accuracy.py`` side by side, as a candidate is judged against the shipped model: each
measurement both JSONs hold, then every synthetic render whose score moved at five decimals (mean Dice over all
structures but dura).
The renders are seeded per case, so the comparison is paired.

    python benchmarks/compare_accuracy.py SHIPPED.json CANDIDATE.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from accuracy import no_dura, ship_figures


def measurements(report: dict) -> dict[str, float]:
    """The ship rule's figures that ``report`` holds, with the agreement's three pairs after it."""
    card = report["card"]
    found = {}
    for name, value in ship_figures(card).items():
        found[name] = value
        if name == "agreement":
            found.update({f"  {pair}": v for pair, v in card["contrast_consistency"]["pairs_mean_brain"].items()})
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    args = parser.parse_args()
    before, after = (json.loads(p.read_text(encoding="utf-8")) for p in (args.before, args.after))
    for key in ("tta", "amp"):
        if before.get(key) != after.get(key):
            print(f"warning: the runs differ in {key} ({before.get(key)} / {after.get(key)}): not a paired comparison")
    a, b = measurements(before), measurements(after)
    for name in (n for n in a if n in b):
        print(f"{name:24s} {a[name]:.5f} -> {b[name]:.5f} {b[name] - a[name]:+.5f}")
    cases_a = before.get("synthetic_heldout", {}).get("cases", {})
    cases_b = after.get("synthetic_heldout", {}).get("cases", {})
    changes = {case: (no_dura(cases_a[case]), no_dura(cases_b[case])) for case in cases_a if case in cases_b}
    # moved = changed at the five decimals printed; below that is the summation order of other thread counts
    moved = {case: (x, y) for case, (x, y) in changes.items() if round(y - x, 5) != 0}
    for case, (x, y) in moved.items():
        print(f"  {case:34s} {x:.5f} -> {y:.5f} {y - x:+.5f}")
    if changes:
        up = sum(y > x for x, y in moved.values())
        print(f"synthetic renders: {len(changes)} compared, {up} up, {len(moved) - up} down")


if __name__ == "__main__":
    main()
