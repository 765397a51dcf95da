"""pachon.alerts."""
