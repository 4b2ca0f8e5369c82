"""``python -m diffhep.cli``: the same as the ``diffhep`` command."""

import sys

from diffhep.cli import main

sys.exit(main())
