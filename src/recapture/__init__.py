"""Recapture: re-shoot a portrait after the fact (new pose, figure, clothing), after "Recapture as You Want"."""

__version__ = "0.1.0"
