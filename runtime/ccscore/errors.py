"""Errors a user can act on; each message is one line."""


class CCScoreError(Exception):
    """Base of every error ccscore raises on purpose."""


class OnnxRuntimeMissing(CCScoreError, ImportError):
    def __init__(self) -> None:
        super().__init__(
            "onnxruntime is not installed: pip install 'ccscore[cpu]' (CPU) or 'ccscore[gpu]' (CUDA); "
            "install only one of the two, they overwrite each other"
        )


class ModelError(CCScoreError):
    """A model file is missing, unreadable, or does not follow the ccscore model contract."""


class ModelOutputError(ModelError):
    """A model produced outputs that are not probabilities (NaN, infinite, negative, not summing to 1, the wrong
    shape) or failed to run: an error for the images concerned, never a decision."""


class ImageError(CCScoreError):
    """An input cannot be decoded as an image."""


def one_line(exc: BaseException, path: object = None) -> str:
    """The first line of an exception's message (its type name when it has none): errors stay one line. With
    `path`, the line breaks in the path's spellings do not count: a line break in a file's name must not cut the
    reason off (`without_path` then drops the name)."""
    text = str(exc).strip()
    names = {}
    for k, spelling in enumerate(path_spellings(path) if path is not None else []):
        if spelling.splitlines() != [spelling]:
            names[f"\0{k}\0"] = spelling
            text = text.replace(spelling, f"\0{k}\0")
    first = text.splitlines()[0] if text else ""
    for mark, spelling in names.items():
        first = first.replace(mark, spelling)
    return first or type(exc).__name__


def path_spellings(path: object) -> list[str]:
    """How messages spell a path: as given and as pathlib writes it (a shard member's key, or another name, as str)."""
    import os
    from pathlib import Path

    if not isinstance(path, (str, os.PathLike)):
        return [str(path)]
    return list(dict.fromkeys([os.fspath(path), str(Path(path))]))


def without_path(message: str, path: object) -> str:
    """An error message for a record that names its path already: a leading `PATH: ` and a quoted 'PATH'
    (Pillow's "cannot identify image file 'PATH'") are dropped, however the path was spelled."""
    if path is None:
        return message
    for spelling in path_spellings(path):
        if message.startswith(f"{spelling}: "):
            message = message[len(spelling) + 2:]
        message = message.replace(f" '{spelling}'", "")
    return message


class DecodePoolError(CCScoreError):
    """The decode workers cannot be kept running (processes cannot be started): the run cannot go on."""


class ExtraMissing(CCScoreError, ImportError):
    """A package of an optional extra (pyarrow, ray) is not installed; the message says how to install it."""

    def __init__(self, package: str, extra: str, needed_for: str) -> None:
        super().__init__(f"{needed_for} needs {package}, which is not installed: pip install 'ccscore[{extra}]'")


def import_extra(module: str, extra: str, needed_for: str):
    """`import module`, or `ExtraMissing` naming the extra that provides it (never a traceback)."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise ExtraMissing(module.split(".")[0], extra, needed_for) from None
