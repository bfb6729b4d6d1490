"""Model wrappers and the built-in model plugins."""
