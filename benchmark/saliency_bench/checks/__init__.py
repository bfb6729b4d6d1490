"""The four sanity checks (docs/protocol.md, "The four checks"), registered as default plugins."""
