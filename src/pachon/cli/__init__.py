"""pachon.cli."""
