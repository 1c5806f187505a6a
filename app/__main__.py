"""``python -m app``: the ``panda`` command."""

import sys

from app.cli import main

sys.exit(main())
