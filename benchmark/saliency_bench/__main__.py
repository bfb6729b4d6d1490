"""``python -m saliency_bench``: the command line."""
import sys

from .cli import main

sys.exit(main())
