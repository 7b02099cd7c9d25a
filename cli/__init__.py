"""The ``synthseg`` command line (installed as ``synthseg.cli``): a thin layer over the library."""
