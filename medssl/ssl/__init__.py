"""Self-supervised objectives, one per module."""
