"""Dataset contract and the built-in dataset plugins."""
