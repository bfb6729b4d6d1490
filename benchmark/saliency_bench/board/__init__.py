"""The board: built from stored results, rendered, published; verdicts, figures, comparisons."""
