"""pachon.pipe."""
