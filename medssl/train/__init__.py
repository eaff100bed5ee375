"""Training loops for pretraining and fine-tuning."""
