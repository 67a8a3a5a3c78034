"""The `ccscore` command. `ccscore IMAGE...` scores images; `ccscore COMMAND ...` runs another command.

One module per command; each exposes a Typer `app`.
"""

from __future__ import annotations

import importlib
import sys

# Subcommand name -> module in this package. Anything else on the command line is an image to score.
COMMANDS = {"score": "score", "bench": "bench"}


def main(argv: list[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    name = args[0] if args and args[0] in COMMANDS else "score"
    if args and args[0] == name:
        args = args[1:]
    module = importlib.import_module(f".{COMMANDS[name]}", __name__)
    module.app(args=args, prog_name=f"ccscore {name}" if name != "score" else "ccscore")
