"""Contract conformance suite for AI gateway APIs."""

__version__ = "0.1.0"
