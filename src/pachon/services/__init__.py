"""pachon.services."""
