"""Encoders and heads built from MONAI networks."""
