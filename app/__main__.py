"""``python -m app``: the ``panda`` command."""

import sys

from app.serving.panda_cli import main

sys.exit(main())
