"""What the piece keeps on its card: power-cut-safe writes, the data directory, model files with rollback, settings, presets and the lock, the fault log, the dataset format."""
