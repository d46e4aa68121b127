"""Benchmarks: each prints one JSON object of figures; run through `controlcenter bench`."""
