"""The `ccscore` command. `ccscore IMAGE...` scores images; `ccscore COMMAND ...` runs another command.

One module per command; each exposes a Typer `app`.
"""

from __future__ import annotations

import importlib
import signal
import sys

# Subcommand name -> module in this package. Anything else on the command line is an image to score.
COMMANDS = {"score": "score", "bench": "bench"}
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report a command stopped by Ctrl-C


def exit_interrupted(signum=None, frame=None) -> None:
    """SIGINT handler until a command can stop cleanly on its own: exit 130, no traceback. (Importing the
    command takes a few hundred ms; Python's own KeyboardInterrupt would print a traceback and exit -2.)"""
    sys.stderr.write("ccscore: interrupted\n")
    raise SystemExit(EXIT_INTERRUPTED)


def main(argv: list[str] | None = None) -> None:
    signal.signal(signal.SIGINT, exit_interrupted)  # first, before anything slow is imported
    args = list(sys.argv[1:] if argv is None else argv)
    name = args[0] if args and args[0] in COMMANDS else "score"
    if args and args[0] == name:
        args = args[1:]
    module = importlib.import_module(f".{COMMANDS[name]}", __name__)
    module.app(args=args, prog_name=f"ccscore {name}" if name != "score" else "ccscore")
