"""``python -m aunets``: the ``aunets`` command."""

import sys

from aunets.cli import main

sys.exit(main())
