"""The local web editor."""
