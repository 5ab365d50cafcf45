"""The fused CPU operators (bortkit.ops) against MXNet's own operators at every ISA tier this
CPU runs, the checks on the cached library, a failed build remembered, and the library built
as on an AVX2 machine (-march=x86-64-v3) passing the kernel tests at the avx2 tier."""
import numpy as np
import mxnet as mx
import pytest
from mxnet import autograd

from bortkit import ops as kernels

pytestmark = pytest.mark.usefixtures("kernels")


def _grads(fn, *arrays, head=None):
    xs = [mx.nd.array(a) for a in arrays]
    for x in xs:
        x.attach_grad()
    with autograd.record():
        y = fn(*xs)
    y.backward(None if head is None else mx.nd.array(head))
    return y.asnumpy(), [x.grad.asnumpy() for x in xs]


def test_layer_norm_forward_is_mxnets_and_backward_matches(tier):
    rng = np.random.default_rng(0)
    x = (rng.normal(size=(64, 384)) * 2 + 1).astype(np.float32)
    g, b = rng.normal(size=(2, 384)).astype(np.float32)
    np.testing.assert_array_equal(
        mx.nd.bortkit_layer_norm(mx.nd.array(x), mx.nd.array(g), mx.nd.array(b), eps=1e-12)[0]
        .asnumpy(), mx.nd.LayerNorm(mx.nd.array(x), mx.nd.array(g), mx.nd.array(b), eps=1e-12)
        .asnumpy())
    dy = rng.normal(size=x.shape).astype(np.float32)
    ours = _grads(lambda *a: kernels.layer_norm(mx.nd, *a, 1e-5), x, g, b, head=dy)
    theirs = _grads(lambda *a: mx.nd.LayerNorm(*a, eps=1e-5), x, g, b, head=dy)
    for a, t in zip([ours[0]] + ours[1], [theirs[0]] + theirs[1]):
        np.testing.assert_allclose(a, t, rtol=1e-4, atol=1e-4)


def test_mask_scores_and_softmax_nll_match_mxnet(tier):
    rng = np.random.default_rng(1)
    scores = rng.normal(size=(2, 3, 5, 5)).astype(np.float32)
    mask = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], np.float32)
    bias = ((1 - mask) * -1e4)[:, None, None, :]
    np.testing.assert_array_equal(
        kernels.mask_scores(mx.nd, mx.nd.array(scores), mx.nd.array(mask), -1e4).asnumpy(),
        scores + bias)
    logits = (rng.normal(size=(7, 50)) * 5).astype(np.float32)
    labels = rng.integers(0, 50, 7).astype(np.float32)
    head = rng.normal(size=7).astype(np.float32)
    ours = _grads(lambda x: kernels.softmax_nll(mx.nd, x, mx.nd.array(labels)), logits, head=head)
    theirs = _grads(lambda x: -mx.nd.pick(mx.nd.log_softmax(x), mx.nd.array(labels)), logits,
                    head=head)
    np.testing.assert_allclose(ours[0], theirs[0], rtol=1e-5)
    np.testing.assert_allclose(ours[1][0], theirs[1][0], rtol=1e-5, atol=1e-7)


def test_adamw_matches_mxnet_and_skips_non_finite_scale(tier):
    rng = np.random.default_rng(2)
    w, g, m = rng.normal(size=(3, 1000)).astype(np.float32)
    v = np.abs(rng.normal(size=1000)).astype(np.float32)
    ours = [mx.nd.array(a) for a in (w, g, m, v)]
    theirs = [mx.nd.array(a) for a in (w, g, m, v)]
    scale = mx.nd.array([0.5])
    kernels.adamw_update(*ours, scale, lr=1e-3, wd=0.01, beta1=0.9, beta2=0.999, epsilon=1e-6)
    mx.nd.contrib.adamw_update(*theirs, scale, lr=1.0, eta=1e-3, wd=0.01, beta1=0.9,
                               beta2=0.999, epsilon=1e-6, out=theirs[0])
    for a, b in zip(ours[::2] + ours[3:], theirs[::2] + theirs[3:]):  # w, m, v (MXNet's
        np.testing.assert_allclose(a.asnumpy(), b.asnumpy(), rtol=1e-6, atol=1e-6)  # also
    np.testing.assert_array_equal(ours[1].asnumpy(), g)  # overwrites its grad; ours does not
    before = ours[0].asnumpy()
    kernels.adamw_update(*ours, mx.nd.array([np.inf]), lr=1e-3, wd=0.01, beta1=0.9,
                         beta2=0.999, epsilon=1e-6)
    np.testing.assert_array_equal(ours[0].asnumpy(), before)


def test_layer_norm_gradients_accumulate_with_grad_req_add(tier):
    """Library operators ignore the request type; kernels.layer_norm must not."""
    from mxnet.gluon import nn
    from bortkit.model.blocks import LayerNorm
    x = mx.nd.array(np.random.default_rng(3).normal(size=(4, 8)))
    grads = []
    for block in (LayerNorm(in_channels=8), nn.LayerNorm(in_channels=8)):
        block.initialize()
        block.hybridize(static_alloc=True)
        block.gamma.grad_req = block.beta.grad_req = "add"
        for _ in range(2):
            with autograd.record():
                y = block(x)
            y.backward()
        grads.append(block.gamma.grad().asnumpy())
    np.testing.assert_allclose(grads[0], grads[1], rtol=1e-5, atol=1e-6)


_ENCODE = """
import sys, numpy as np, bortkit
from bortkit import ops as kernels
ref = dict(np.load(sys.argv[1]))
out = bortkit.from_pretrained(sys.argv[2]).encode(ref["input_ids"], ref["token_type_ids"],
                                                  ref["attention_mask"])
np.save(sys.argv[3], out.last_hidden_state)
print(kernels.available())
"""


def test_without_kernels_the_model_is_the_same(minilm_dir, shared_dir, tmp_path):
    """BORTKIT_KERNELS=0 (or no compiler) falls back to MXNet's operators: same outputs."""
    import os
    import subprocess
    import sys
    reference = shared_dir / "reference" / "minilm_hf_reference.npz"
    outputs = {}
    for switch in ("1", "0"):
        path = tmp_path / f"kernels-{switch}.npy"
        proc = subprocess.run([sys.executable, "-c", _ENCODE, str(reference), str(minilm_dir),
                               str(path)], capture_output=True, text=True, timeout=300,
                              env={**os.environ, "BORTKIT_KERNELS": switch})
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert proc.stdout.split()[-1] == ("True" if switch == "1" else "False")
        outputs[switch] = np.load(path)
    mask = np.load(reference)["attention_mask"].astype(bool)
    assert np.abs(outputs["1"] - outputs["0"])[mask].max() < 1e-4


# ------------------------------------------------------------------ the cached library
_LOAD = """
import warnings
warnings.simplefilter("ignore")
from bortkit import ops
print(ops.available(), ops.status())
"""


def _damaged_cache(tmp_path, monkeypatch, damage: str, **env):
    """A cache holding the library loaded in this process, then damaged: truncated to half
    (its old stamp kept) or replaced by garbage (no stamp). Returns its path and the
    environment that makes bortkit look for it there."""
    import os
    from bortkit.ops import library
    good = kernels.library.build()
    env = {**os.environ, "BORTKIT_CACHE": str(tmp_path / "cache"), **env}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    target = library.library_path()  # where the subprocess will look (CXX is in the key)
    target.parent.mkdir(parents=True)
    if damage == "truncated":
        data = good.read_bytes()
        target.write_bytes(data[:len(data) // 2])
        library.stamp_path(target).write_bytes(library.stamp_path(good).read_bytes())
    else:
        target.write_bytes(b"\x7fELF" + b"garbage" * 1000)
    return target, env, good


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_a_damaged_library_without_a_compiler_is_removed_not_loaded(tmp_path, monkeypatch,
                                                                    damage):
    """No SIGBUS, no crash: the damaged file is not loaded, not kept, and MXNet's operators
    are used (the compiler is missing here)."""
    import subprocess
    import sys
    from bortkit.ops import library
    target, env, _ = _damaged_cache(tmp_path, monkeypatch, damage,
                                 CXX=str(tmp_path / "no-such-g++"))
    proc = subprocess.run([sys.executable, "-c", _LOAD], capture_output=True, text=True,
                          timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.startswith("False MXNet operators (RuntimeError: no C++ compiler: ")
    assert not target.exists() and not library.stamp_path(target).exists()
    assert not library.is_verified(target)


@pytest.mark.slow
def test_a_truncated_library_is_rebuilt(tmp_path, monkeypatch):
    """With a compiler, a truncated library is rebuilt (one compile, about 15 s) and loads."""
    import subprocess
    import sys
    from bortkit.ops import library
    target, env, good = _damaged_cache(tmp_path, monkeypatch, "truncated")
    proc = subprocess.run([sys.executable, "-c", _LOAD], capture_output=True, text=True,
                          timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split()[:3] == ["True", "fused", "kernels,"]
    assert library.is_verified(target)  # a fresh stamp of the rebuilt file
    # whole again: the truncated half was replaced by a full build (not byte-equal to `good`,
    # which may come from a checkout in another folder: the source paths are in the binary)
    assert target.stat().st_size > len(good.read_bytes()) // 2


def test_build_command_reports_a_missing_compiler_in_one_line(tmp_path):
    import os
    import subprocess
    import sys
    proc = subprocess.run([sys.executable, "-m", "bortkit.ops", "build"], capture_output=True,
                          text=True, timeout=300,
                          env={**os.environ, "BORTKIT_CACHE": str(tmp_path),
                               "CXX": str(tmp_path / "no-such-g++")})
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("bortkit: error: ")
    assert f"no C++ compiler: {tmp_path / 'no-such-g++'} not found" in proc.stderr


_FAILING_CXX = """#!/bin/sh
if [ "$1" = "--version" ]; then echo "fake-g++ 12.2.0"; exit 0; fi
echo call >> "{count}"
echo "In file included from /tmp/x/bortkit_ops.cc:3:" >&2
echo "/some/where/bortkit/ops/attention.cc:12:5: error: 'foo' was not declared in this scope" >&2
echo "   12 |     foo();" >&2
echo "/some/where/bortkit/ops/attention.cc:20:1: error: a later error" >&2
echo "compilation terminated." >&2
exit 1
"""


def test_a_failed_build_is_reported_by_its_first_error_and_not_retried(tmp_path):
    """The first process pays for the failed build; the next one neither compiles nor
    waits, and says why; `python -m bortkit.ops build` tries again and exits non-zero."""
    import os
    import subprocess
    import sys
    count = tmp_path / "calls"
    cxx = tmp_path / "g++"
    cxx.write_text(_FAILING_CXX.format(count=count))
    cxx.chmod(0o755)
    env = {**os.environ, "BORTKIT_CACHE": str(tmp_path / "cache"), "CXX": str(cxx)}
    first_error = "attention.cc:12:5: error: 'foo' was not declared in this scope"
    proc = subprocess.run([sys.executable, "-c", _LOAD], capture_output=True, text=True,
                          timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.startswith(f"False MXNet operators (RuntimeError: {cxx} failed: "
                                  f"{first_error})")
    calls = len(count.read_text().splitlines())
    assert calls >= 1
    again = subprocess.run([sys.executable, "-c", _LOAD], capture_output=True, text=True,
                           timeout=300, env=env)
    assert again.stdout.startswith(f"False MXNet operators (RuntimeError: {cxx} failed: "
                                   f"{first_error} (an earlier build; `python -m bortkit.ops "
                                   "build` tries again")
    assert len(count.read_text().splitlines()) == calls  # not compiled again
    build = subprocess.run([sys.executable, "-m", "bortkit.ops", "build"], capture_output=True,
                           text=True, timeout=300, env=env)
    assert build.returncode == 2 and build.stderr.count("\n") == 1
    assert first_error in build.stderr and "a later error" not in build.stderr
    assert len(count.read_text().splitlines()) > calls  # the command does try again


@pytest.mark.slow
def test_built_as_on_an_avx2_machine_the_kernel_tests_pass_at_the_avx2_tier(tmp_path):
    """-march=x86-64-v3 (AVX2, no AVX-512, no AMX) as the baseline, the tier capped at avx2:
    the library builds, loads at that tier, and the kernel tests pass with no skips."""
    import os
    import subprocess
    import sys
    from pathlib import Path
    from bortkit.ops import isa, library
    if library.TIERS.index(isa.host()) < library.TIERS.index("avx2"):
        pytest.skip(f"this CPU runs at most {isa.host()}, below avx2")
    env = {**os.environ, "BORTKIT_CACHE": str(tmp_path / "cache"),
           "BORTKIT_MARCH": "x86-64-v3", "BORTKIT_ISA": "avx2"}
    built = subprocess.run([sys.executable, "-m", "bortkit.ops", "build"], capture_output=True,
                           text=True, timeout=600, env=env)
    assert built.returncode == 0, built.stderr
    status = subprocess.run([sys.executable, "-m", "bortkit.ops", "status"],
                            capture_output=True, text=True, timeout=300, env=env)
    assert status.stdout.startswith("fused kernels, avx2 tier")
    assert f"({tmp_path / 'cache'}" in status.stdout
    tests = Path(__file__).resolve().parent
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider",
         str(tests / "test_int8_dense.py"), str(tests / "test_self_attention_op.py"),
         str(tests / "test_kernels.py"), str(tests / "test_training_kernels.py"),
         "-k", "tier and not avx2_machine"],
        capture_output=True, text=True, timeout=900, env=env, cwd=tmp_path)
    assert run.returncode == 0, run.stdout[-3000:]
    summary = run.stdout.strip().splitlines()[-1]
    assert " passed" in summary and "skipped" not in summary and "failed" not in summary
    assert "avx512" not in run.stdout  # no test ran above the cap
