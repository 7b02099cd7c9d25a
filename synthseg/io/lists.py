"""Lists of input paths in a text or CSV file, as a batch is often handed over (one path per line, or a column
of a spreadsheet). Light: ``synthseg volumes`` reads them without importing torch."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Sequence

from synthseg.errors import SynthSegError

LIST_SUFFIXES = (".txt", ".csv", ".lst", ".list")
PATH_COLUMNS = ("path", "image", "input", "file", "filename", "scan")  # a CSV header cell naming the paths' column


def is_list_file(path: Path) -> bool:
    """Whether a file is read as a list of paths (by its suffix, any case)."""
    return path.name.lower().endswith(LIST_SUFFIXES)


def listed_paths(lines: Sequence[str], csv_file: bool = False) -> list[str]:
    """The paths a list file names: one per line (text after a comma ignored; ``#`` lines and blank lines skipped)
    or, for a CSV file, the first column, or the column a header row names ``path``, ``image``, ``input``, ``file``,
    ``filename`` or ``scan`` (any case; the header itself is not a path)."""
    lines = [line for line in lines if line.strip() and not line.lstrip().startswith("#")]
    if not csv_file:
        return [entry for entry in (line.split(",")[0].strip() for line in lines) if entry]
    rows = [row for row in csv.reader(lines) if row]
    column = 0
    if rows:
        header = [cell.strip().lower() for cell in rows[0]]
        named = [i for i, cell in enumerate(header) if cell in PATH_COLUMNS]
        if named:
            column, rows = named[0], rows[1:]
    return [row[column].strip() for row in rows if len(row) > column and row[column].strip()]


def read_path_list(path: Path) -> list[Path]:
    """The paths a list file names (:func:`listed_paths`), relative ones taken from the list's own folder;
    :class:`SynthSegError` naming the list when it cannot be read."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise SynthSegError(f"cannot read the list ({error})", path) from None
    entries = map(Path, listed_paths(lines, csv_file=path.name.lower().endswith(".csv")))
    return [entry if entry.is_absolute() else path.parent / entry for entry in entries]
