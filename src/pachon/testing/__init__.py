"""Helpers for testing and benchmarking Pachón against real servers."""
