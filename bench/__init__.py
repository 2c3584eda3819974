"""Benchmark harness for orderflow (not imported by the application)."""
