"""numpy's BLAS threads in the processes ccscore owns: the scoring and bench commands', the pipeline's workers, the
Ray integration's actors.

The runtime's matrix products are small (the appearance network's convolutions, colour conversions): OpenBLAS's own
threads gain nothing on them, and after each call they spin, beside onnxruntime's threads and the other workers, on
the same cores. On the speed set (139 PNG illustrations, a 2-core VM), `ccscore DIR --jsonl` took 10.2 s and 19.8
CPU-s with numpy's default (a BLAS thread per core in every process) and 3.8 s and 7.0 CPU-s with one, the records
byte-identical (session 26). An environment variable cannot do this: a worker forks from a process whose numpy (and
its BLAS) is loaded already. A library caller's own process keeps its settings (OPENBLAS_NUM_THREADS=1 does the
same there). Linux only (where the loaded libraries are listed); elsewhere nothing changes."""

from __future__ import annotations

import ctypes

# The thread-count setters of OpenBLAS builds: plain, 64-bit-integer (suffixed), and numpy's own scipy-openblas
SETTERS = ("openblas_set_num_threads", "openblas_set_num_threads64_", "scipy_openblas_set_num_threads",
           "scipy_openblas_set_num_threads64_")
GETTERS = tuple(name.replace("_set_", "_get_") for name in SETTERS)


def loaded_openblas() -> list[str]:
    """Paths of the OpenBLAS libraries loaded in this process (from /proc/self/maps; [] where there is none): named
    so, or in a folder named so (Debian's openblas-pthread/libblas.so.3)."""
    try:
        with open("/proc/self/maps") as maps:
            fields = [line.split(None, 5) for line in maps]
    except OSError:
        return []
    return sorted({f[5].strip() for f in fields if len(f) == 6 and ".so" in f[5] and "openblas" in f[5].lower()})


def _calls(names: tuple[str, ...]) -> list:
    """The first function of `names` each loaded OpenBLAS exports."""
    import numpy  # noqa: F401  (loads its BLAS)

    found = []
    for path in loaded_openblas():
        try:
            library = ctypes.CDLL(path)  # loaded already: the same handle
        except OSError:  # a library deleted since it was loaded
            continue
        for name in names:
            function = getattr(library, name, None)
            if function is not None:
                found.append(function)
                break
    return found


def limit_blas_threads(threads: int = 1) -> int:
    """Sets every loaded OpenBLAS (numpy's) to `threads`; how many it set."""
    setters = _calls(SETTERS)
    for setter in setters:
        setter(ctypes.c_int(threads))
    return len(setters)


def blas_threads() -> list[int]:
    """The thread count of every loaded OpenBLAS ([] where none is found)."""
    return [int(getter()) for getter in _calls(GETTERS)]
