"""pachon.core."""
