"""pachon.algorithms."""
