"""One run as a pipeline: resolve, plan, execute (local or Ray), record, publish."""
