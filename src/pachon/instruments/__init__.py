"""pachon.instruments."""
