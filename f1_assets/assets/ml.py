"""ML-facing assets: train/validation/test split views over lap_features, and driver profiles."""

ASSETS: list = []
