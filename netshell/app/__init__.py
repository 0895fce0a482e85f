"""The top layer: the ``netsh`` command line and headless runs.

``cli`` is the command line (the prompt, ``run``, ``-c``, ``serve``, ``diff``);
``runner`` runs scripts and saved sessions headless on a fresh reactor. Both sit
above the shell and the protocols, which sit above the core: nothing below
imports from here.
"""
