"""Metrics pipeline."""
