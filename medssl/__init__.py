"""medssl: self-supervised pretraining and few-label anomaly detection on hospital imaging."""

__version__ = "0.1.0"
