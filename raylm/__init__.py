"""raylm: web text to a trained, tuned and evaluated language model on Ray."""

__version__ = "0.1.0"
