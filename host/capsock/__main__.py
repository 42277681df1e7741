"""`python -m capsock` is the `capsock` command."""

import sys

from .cli import main

sys.exit(main())
