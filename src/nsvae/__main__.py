"""``python -m nsvae``: the command line."""

import sys

from .cli import main

if __name__ == "__main__":  # worker processes that import this module must not run the CLI
    sys.exit(main())
