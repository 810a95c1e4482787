"""Datasets: on-disk formats (DeepFashion/Market), the paired dataset, SynthHumans."""
