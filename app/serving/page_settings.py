"""The dashboard's settings: from ``streamlit run app/dashboard.py -- --run-dir DIR`` or from the
environment that ``panda app`` sets (so the token never shows in a process list)."""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from app.serving.auth import ENV_CODE, ENV_PRESENT, ENV_RUN_DIR, ENV_TOKEN
from app.serving.share import ENV_VIEW_URL

#: The page's query parameter for its compact form (a notebook's cell): the run's charts and its Steer
#: panel, without the page links, the run directory, "Start a new run" and "Compare runs".
COMPACT = "compact"


@dataclass(frozen=True)
class Settings:
    run_dir: Path
    token: str | None
    present: bool
    code: str | None = None  # the presenter URL's one-time code
    view_url: str | None = None  # the viewers' URL that panda app printed (its QR code is on the presenter's page)


def load(argv: list[str] | None = None) -> Settings:
    """Script arguments win over the environment; ``runs`` is the default run directory."""
    if argv is None:
        # Streamlit runs the script with sys.argv = [script, *args after "--"]; elsewhere (tests)
        # sys.argv belongs to someone else.
        argv = sys.argv[1:] if sys.argv and sys.argv[0].endswith("dashboard.py") else []
    parser = argparse.ArgumentParser(prog="dashboard.py", add_help=False)
    parser.add_argument("--run-dir")
    parser.add_argument("--present", action="store_true")
    args, _ = parser.parse_known_args(argv)
    run_dir = args.run_dir or os.environ.get(ENV_RUN_DIR) or "runs"
    present = args.present or os.environ.get(ENV_PRESENT) == "1"
    return Settings(run_dir=Path(run_dir).expanduser().resolve(), token=os.environ.get(ENV_TOKEN) or None, present=present,
                    code=os.environ.get(ENV_CODE) or None, view_url=os.environ.get(ENV_VIEW_URL) or None)
