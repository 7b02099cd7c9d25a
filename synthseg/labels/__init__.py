"""The 16 output structures and the code tables that map other label schemes onto them."""

from synthseg.labels.protocol import STRUCTURES, Structure, NUM_CLASSES, structure_table
from synthseg.labels.mapping import MAPPINGS, load_mapping, apply_mapping

__all__ = ["STRUCTURES", "Structure", "NUM_CLASSES", "structure_table", "MAPPINGS", "load_mapping",
           "apply_mapping"]
