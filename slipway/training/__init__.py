"""Model training: device selection, time-based split, LightGBM, metrics and plots."""
