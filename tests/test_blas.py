"""numpy's BLAS threads in the processes ccscore owns (ccscore.blas): one, in the CLI's process and the pipeline's
workers; a library caller's own process keeps its setting."""

import json
import os
import subprocess
import sys

import pytest

from conftest import BLOCK_IMPORTS, draw_art

# Two BLAS threads to begin with, so that a limit shows (OpenBLAS caps them at the CPUs it may use: skipped on one)
TWO_THREADS = {**os.environ, "OPENBLAS_NUM_THREADS": "2"}


def in_fresh_python(code: str, *args: str) -> list:
    prelude = BLOCK_IMPORTS.format(blocked={"torch"})
    done = subprocess.run([sys.executable, "-c", prelude + code, *args], capture_output=True, text=True, timeout=120,
                          env=TWO_THREADS)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def openblas():
    before, set_now, after = in_fresh_python(
        "import json; from ccscore.blas import blas_threads, limit_blas_threads; "
        "b = blas_threads(); n = limit_blas_threads(1); print(json.dumps([b, n, blas_threads()]))")
    if not before:
        pytest.skip("numpy's BLAS is no OpenBLAS here")
    if before != [2] * len(before):
        pytest.skip(f"OpenBLAS starts with {before} threads here (one CPU?): a limit to one cannot show")
    return before, set_now, after


def test_limiting_sets_every_loaded_openblas_to_one_thread(openblas):
    before, set_now, after = openblas
    assert before == [2] * len(before) and set_now == len(before) and after == [1] * len(before)


def test_importing_ccscore_and_scoring_in_a_callers_process_leaves_its_blas_alone(openblas):
    assert in_fresh_python("import json, numpy as np; from ccscore import Scorer; from ccscore.blas import "
                           "blas_threads; Scorer(device='cpu').score(np.full((300, 300, 3), 90, np.uint8)); "
                           "print(json.dumps(blas_threads()))") == openblas[0]


def test_a_pipeline_worker_runs_one_blas_thread(openblas):
    assert in_fresh_python("import json, numpy; from ccscore.pipeline import _worker_init; "
                           "from ccscore.blas import blas_threads; _worker_init(); "
                           "print(json.dumps(blas_threads()))") == openblas[2]


def test_the_cli_scoring_runs_one_blas_thread_in_its_own_process(openblas, tmp_path):
    draw_art(1).save(tmp_path / "art.png")
    code = ("import json, sys\nfrom ccscore.cli import main\nfrom ccscore.blas import blas_threads\n"
            "try:\n    main(sys.argv[1:])\nexcept SystemExit as exit:\n    assert not exit.code, exit.code\n"
            "print(json.dumps(blas_threads()))")
    assert in_fresh_python(code, str(tmp_path), "--workers", "0", "--device", "cpu") == openblas[2]
