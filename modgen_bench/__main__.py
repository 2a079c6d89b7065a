"""`python -m modgen_bench ...`: the same entry point as the `modgen-bench` script."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
