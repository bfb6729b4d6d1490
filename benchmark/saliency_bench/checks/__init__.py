"""The four sanity checks (DESIGN.md "The four sanity checks"), registered as default plugins."""
