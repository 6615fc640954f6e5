"""The original engine's location of the model checkpoint manager (see `model_checkpoint_mgr`)."""
