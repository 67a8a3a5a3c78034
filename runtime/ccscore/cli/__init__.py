"""The `ccscore` command. `ccscore IMAGE...` scores images; `ccscore COMMAND ...` runs another command.

One module per command; each exposes a Typer `app`.
"""

from __future__ import annotations

import importlib
import os
import signal
import sys

# Subcommand name -> module in this package. Anything else on the command line is an image to score.
COMMANDS = {"score": "score", "bench": "bench"}
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report a command stopped by Ctrl-C


def exit_interrupted(signum=None, frame=None) -> None:
    """SIGINT handler outside the part of a run that stops cleanly on KeyboardInterrupt: exit 130 at once.

    Raised from here, an exception could land anywhere: inside an import (numpy's, onnxruntime's native
    code turns it into an ImportError) or a class definition, with a traceback and a wrong exit status. Exiting
    on the spot is as safe as the kill -9 that every run must survive anyway: nothing is half written."""
    os.write(2, b"ccscore: interrupted\n")
    os._exit(EXIT_INTERRUPTED)


def main(argv: list[str] | None = None) -> None:
    signal.signal(signal.SIGINT, exit_interrupted)  # first, before anything slow is imported
    args = list(sys.argv[1:] if argv is None else argv)
    name = args[0] if args and args[0] in COMMANDS else "score"
    if args and args[0] == name:
        args = args[1:]
    module = importlib.import_module(f".{COMMANDS[name]}", __name__)
    module.app(args=args, prog_name=f"ccscore {name}" if name != "score" else "ccscore")
