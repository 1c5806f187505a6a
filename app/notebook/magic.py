"""``%load_ext app.notebook`` then ``%panda --run-dir runs [--run NAME] [--height PX]``, like ``%tensorboard``."""

from __future__ import annotations

from IPython.core.magic import Magics, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring

from app.notebook import server
from app.notebook.display import DEFAULT_HEIGHT, show


@magics_class
class PandaMagics(Magics):
    @magic_arguments()
    @argument("--run-dir", default="runs", help="folder that holds runs, or one run's folder (default: runs)")
    @argument("--run", help="the run to open (default: a live one)")
    @argument("--height", type=int, default=DEFAULT_HEIGHT, help=f"pixels (default {DEFAULT_HEIGHT})")
    @argument("--stop", action="store_true", help="stop this kernel's dashboard servers instead")
    @line_magic
    def panda(self, line: str) -> None:
        """Show Panda's live page in this cell (starts a dashboard for the run directory, or reuses it)."""
        args = parse_argstring(self.panda, line)
        if args.stop:
            print(f"Stopped {server.stop()} Panda dashboard server(s).")
            return
        show(args.run_dir, run=args.run, height=args.height)


def load_ipython_extension(ipython) -> None:
    ipython.register_magics(PandaMagics)
