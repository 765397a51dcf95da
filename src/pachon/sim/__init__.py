"""pachon.sim."""
