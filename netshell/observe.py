"""Observers of the core (being written)."""
