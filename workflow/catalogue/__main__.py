"""python -m workflow.catalogue: see workflow/catalogue/cli.py."""
import sys

from .cli import _main

sys.exit(_main(sys.argv[1:]))
