"""Manifest, labels, splits and transforms."""
