"""pachon.repo."""
