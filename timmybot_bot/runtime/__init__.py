"""The runtime: composition root, settings, keys, scheduler and the entry point."""
