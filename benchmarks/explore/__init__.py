"""Exploration scripts: searches and recipe trials behind the claims; run as `python -m benchmarks.explore.<name>`."""
