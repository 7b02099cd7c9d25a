"""Evaluation: per-structure Dice, HD95 and volume differences; contrast-consistency."""

from synthseg.evaluation.metrics import dice, dice_per_label, hausdorff95, volume_ml
from synthseg.evaluation.evaluate import (
    consistency, evaluate_files, evaluate_pair, format_table, pair_paths, rows_to_csv, summary,
)

__all__ = ["dice", "dice_per_label", "hausdorff95", "volume_ml", "consistency", "evaluate_files",
           "evaluate_pair", "format_table", "pair_paths", "rows_to_csv", "summary"]
