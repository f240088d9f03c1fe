"""Datasets, mappers, samplers and data loaders."""
