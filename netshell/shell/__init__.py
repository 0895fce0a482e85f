"""The netsh shell: the prompt, and what it shows (tables, notes, traces, chains).

``console`` runs inputs (top-level await, display, transcript) and is shared
by the prompt, ``netsh run`` and Jupyter; ``namespace`` builds the names a
person finds at the prompt; ``prompt`` is the prompt_toolkit front end and
``ipython`` the IPython one. Only ``prompt`` and ``ipython`` import a
terminal library.
"""
