"""The netshell protocol library: one module or package per protocol."""
