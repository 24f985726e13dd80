"""``python -m tfesi_desktop.cli``: the ``tfesi`` command."""

import sys

from . import main

sys.exit(main())
