"""Data preparation and helper modules of the benchmarks; run as `python -m benchmarks.tools.<name>`."""
