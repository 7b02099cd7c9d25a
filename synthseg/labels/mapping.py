"""Tables from other label schemes (FreeSurfer aseg, MUSE, our own ids) onto the 16 structures.

Codes absent from a table are "unmapped": evaluation leaves them out of scoring.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from synthseg.errors import SynthSegError


def _table(groups: dict[int, list[int | range]]) -> dict[int, int]:
    table: dict[int, int] = {}
    for target, codes in groups.items():
        for item in codes:
            for code in (item if isinstance(item, range) else [item]):
                table[code] = target
    return table


ASEG = _table({
    0: [0],
    1: [3, 42, range(1000, 1036), range(2000, 2036), range(11100, 12176)],
    2: [2, 41, 7, 46, 16, 28, 60, 85, 77, range(251, 256), 25, 57, 512],
    3: [24],
    4: [4, 5, 43, 44, 14, 15, 72, 31, 63, 136, 137, 163, 164],
    5: [8, 47], 6: [10, 49], 7: [13, 52], 8: [12, 51], 9: [11, 50], 10: [26, 58], 11: [18, 54],
    12: [17, 53], 14: [30, 62, 502, 514], 15: [515, 516], 16: [506, 507, 508, 509, 511, 530],
})
MUSE = _table({
    0: [0],
    1: [range(100, 208)], 2: [range(81, 96), 35, 40, 41, 61, 62], 3: [1], 4: [4, 11, range(49, 53)],
    5: [38, 39, range(71, 74)], 6: [59, 60], 7: [55, 56], 8: [57, 58], 9: [36, 37], 10: [23, 30],
    11: [31, 32], 12: [47, 48],
})
SIAM = {i: i for i in range(17)}
MAPPINGS: dict[str, dict[int, int]] = {"aseg": ASEG, "muse": MUSE, "siam": SIAM}


def load_mapping(spec: str | Path) -> dict[int, int]:
    """A shipped mapping by name, or a two-column text file ``code target`` (``#`` comments)."""
    if str(spec) in MAPPINGS:
        return MAPPINGS[str(spec)]
    path = Path(spec)
    if not path.is_file():
        raise SynthSegError(f"no such mapping; use one of {', '.join(MAPPINGS)} or a file", path)
    table: dict[int, int] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        fields = line.split("#")[0].replace(",", " ").split()
        if not fields:
            continue
        try:
            code, target = int(fields[0]), int(fields[1])
        except (ValueError, IndexError):
            raise SynthSegError(f"line {number}: expected 'code target', got {line.strip()!r}", path) from None
        if not 0 <= target <= 16:
            raise SynthSegError(f"line {number}: target {target} is outside 0-16", path)
        if table.get(code, target) != target:
            raise SynthSegError(f"line {number}: code {code} is mapped twice to different targets", path)
        table[code] = target
    return table


def apply_mapping(labels: np.ndarray, table: dict[int, int], unmapped: int = 255) -> np.ndarray:
    """Map codes to target ids through a lookup array; codes not in the table become ``unmapped``."""
    codes = np.asarray(labels)
    if codes.size and codes.min() < 0:
        raise SynthSegError("label map has negative codes")
    size = max(int(codes.max(initial=0)), max(table, default=0)) + 1
    lut = np.full(size, unmapped, dtype=np.uint8)
    for code, target in table.items():
        lut[code] = target
    return lut[codes.astype(np.int64)]
