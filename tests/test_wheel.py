"""A non-editable install works: build a wheel from the checkout, install it into a new
virtual environment and, from a folder outside the checkout, run what a new user runs first.

The new environment gets bortkit and search from the wheel only; the heavy dependencies
(MXNet, GluonNLP, ...) are reused from the test's own environment through a ``.pth`` line
appended after the environment's own site-packages. (``venv --system-site-packages`` would
expose the base interpreter's packages, not those of the environment running the tests.) A
``.pth`` line adds a folder to the path but runs none of the ``.pth`` files in it, so the
editable install of the checkout stays out: the test checks ``bortkit.__file__``.
"""
from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sys
from pathlib import Path

import pytest

from test_search_cli import SPACE, make_teacher

REPO = Path(__file__).resolve().parents[1]
SOURCES = ["bortkit", "search", "setup.py", "setup.cfg", "README.md"]

pytestmark = pytest.mark.slow


def _run(args, cwd, env, timeout=600):
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, (args, proc.stdout[-2000:], proc.stderr[-3000:])
    return proc


@pytest.fixture(scope="module")
def wheel_env(tmp_path_factory):
    """(python of the new environment, environment variables, a folder outside the
    checkout)."""
    root = tmp_path_factory.mktemp("wheel")
    source = root / "src"  # a copy, so the build leaves nothing in the checkout
    source.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.so")
    for name in SOURCES:
        path = REPO / name
        if path.is_dir():
            shutil.copytree(path, source / name, ignore=ignore)
        else:
            shutil.copy2(path, source / name)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    build = _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                  "--wheel-dir", str(root / "dist"), str(source)], cwd=root, env=env)
    assert "is absent from the `packages` configuration" not in build.stdout + build.stderr
    wheel, = (root / "dist").glob("bortkit-*.whl")

    venv = root / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=root, env=env)
    python = venv / "bin" / "python"
    purelib = Path(_run([str(python), "-c", "import sysconfig; "
                         "print(sysconfig.get_paths()['purelib'])"], root, env).stdout.strip())
    (purelib / "zz_test_dependencies.pth").write_text(
        "".join(f"{path}\n" for path in site.getsitepackages()))
    _run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps",
          "--no-index", str(wheel)], cwd=root, env=env)
    outside = root / "work"
    outside.mkdir()
    return python, env, outside


def test_the_wheel_is_what_runs(wheel_env):
    python, env, outside = wheel_env
    proc = _run([str(python), "-c", "import bortkit, search; print(bortkit.__file__); "
                 "print(search.__file__); print(len(search.SearchSpace.from_yaml()))"],
                outside, env)
    bortkit_file, search_file, points = proc.stdout.split()
    venv = python.parent.parent
    assert Path(bortkit_file).is_relative_to(venv), bortkit_file
    assert Path(search_file).is_relative_to(venv), search_file
    assert int(points) == 300  # the bundled space: the Bort paper's 300 points


def test_info_finds_the_presets(wheel_env):
    python, env, outside = wheel_env
    proc = _run([str(python), "-m", "bortkit.info", "bort"], outside, env)
    assert "total                     75,106,304" in proc.stdout, proc.stdout


def test_the_operators_build_from_the_wheel(wheel_env):
    """The wheel ships the C++ sources; they build into (or find) the same cached library
    as the checkout's, the cache key being the sources' bytes, not their folder."""
    from bortkit import ops
    from bortkit.ops import library
    if not ops.available():
        pytest.skip(ops.status())
    python, env, outside = wheel_env
    proc = _run([str(python), "-m", "bortkit.ops", "build"], outside, env)
    built = Path(proc.stderr.split()[0])
    assert built == library.library_path() and library.is_verified(built)


def test_search_on_a_tiny_space(wheel_env, minilm_dir):
    python, env, outside = wheel_env
    (outside / "space.yaml").write_text(SPACE.replace("num_layers: [1, 2, 3]",
                                                      "num_layers: [1, 2]"))
    teacher = make_teacher(outside / "teacher", minilm_dir)
    _run([str(python), "-m", "bortkit.search", "--no-progress", "--max-params", "2.5M",
          "--space", "space.yaml", "--teacher", str(teacher), "--steps-per-candidate", "2",
          "--epsilon", "4", "--batch-size", "4", "--seq-length", "32", "--latency", "flops",
          "--out", "search-out"], outside, env)
    best = json.loads((outside / "search-out" / "best" / "config.json").read_text())
    assert best["num_layers"] in (1, 2) and best["units"] in (32, 64)


def test_a_few_fine_tuning_steps(wheel_env, tiny_model, glue_dir):
    python, env, outside = wheel_env
    _run([str(python), "-m", "bortkit.finetune", "--no-progress", "--task", "SST-2",
          "--model", str(tiny_model), "--data-dir", str(glue_dir), "--max-train-examples",
          "32", "--max-eval-examples", "16", "--batch-size", "8", "--epochs", "1",
          "--max-length", "32", "--output-dir", "ft-out"], outside, env)
    result_file, = (outside / "ft-out").rglob("result.json")  # SST-2/seed-0/result.json
    result = json.loads(result_file.read_text())
    assert 0.0 <= result["best"]["accuracy"] <= 1.0


def test_console_script_from_the_wheel(wheel_env):
    """The wheel installs a `bortkit` script: --help, --version and a command's --help, none
    of which loads MXNet."""
    import bortkit
    python, env, outside = wheel_env
    script = python.parent / "bortkit"
    assert script.is_file()
    top = _run([str(script), "--help"], outside, env)
    assert top.stdout.startswith("usage: bortkit") and "  finetune " in top.stdout
    assert _run([str(script), "--version"], outside, env).stdout == \
        f"bortkit {bortkit.__version__}\n"
    finetune = _run([str(script), "finetune", "--help"], outside, env)
    assert "usage: python -m bortkit.finetune" in finetune.stdout and "--task" in finetune.stdout
    check = _run([str(python), "-c", "import sys\nfrom bortkit.__main__ import main\n"
                  "try:\n    main(['finetune', '--help'])\nexcept SystemExit:\n    pass\n"
                  "print('mxnet' in sys.modules, file=sys.stderr)"], outside, env)
    assert check.stderr.strip() == "False"
    assert _run([str(python), "-m", "bortkit", "--version"], outside, env).stdout == \
        f"bortkit {bortkit.__version__}\n"


def test_bundled_spaces_by_name_from_the_wheel(wheel_env):
    """--space small-student (a sweep space) and --space attention-space (a search space)
    name files inside the installed package, read from a folder without them."""
    python, env, outside = wheel_env
    proc = _run([str(python), "-c", "import search\n"
                 "from bortkit.sweep.space import load_space\n"
                 "space = load_space('small-student')\n"
                 "print(space.source, sorted(space.names()))\n"
                 "s = search.SearchSpace.from_yaml('attention-space')\n"
                 "print(s.path, len(s))"], outside, env)
    venv = python.parent.parent
    (sweep_path, *names), (search_path, points) = (line.split(maxsplit=1)[0:1] +
                                                    line.split(maxsplit=1)[1:]
                                                    for line in proc.stdout.splitlines())
    assert Path(sweep_path).is_relative_to(venv) and sweep_path.endswith("small-student.yaml")
    assert "learning_rate" in names[0]
    assert Path(search_path).is_relative_to(venv) and int(points) > 0
    bad = subprocess.run([str(python), "-m", "bortkit.sweep", "--task", "SST-2", "--model", "m",
                          "--data-dir", "d", "--space", "no-such-space", "--output-dir", "o",
                          "--study", "s", "--n-trials", "1"],
                         cwd=outside, env=env, capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "bundled spaces by name: bort, small-student" in bad.stderr, \
        bad.stderr[-2000:]
    assert not (outside / "o").exists()
