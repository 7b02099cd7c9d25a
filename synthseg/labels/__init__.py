"""The 16 output structures (:mod:`.protocol`, pure Python) and the code tables that map other label
schemes onto them (:mod:`.mapping`, imported on demand because it needs NumPy)."""

from synthseg.labels.protocol import NUM_CLASSES, STRUCTURES, Structure, structure_table

__all__ = ["STRUCTURES", "Structure", "NUM_CLASSES", "structure_table"]
