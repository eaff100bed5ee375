"""Clinical metrics and plots."""
