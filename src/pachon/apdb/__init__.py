"""pachon.apdb."""
