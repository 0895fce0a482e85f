"""Jupyter: the IPython extension (``%load_ext netshell``), the kernelspec, and the rich displays
(:mod:`netshell.kernel.displays`)."""
