"""Fused CPU kernels for the slowest MXNet 1.9 operators of a Transformer training step.

Profiling a masked-LM training step of a small Transformer on CPU (``bench/pretrain.py
--profile``) showed four MXNet 1.9 operators far slower than the arithmetic they do:

- ``LayerNorm`` backward, a chain of generic broadcast/reduce kernels (no oneDNN):
  :func:`layer_norm`, one pass forward and one backward (8-10x faster);
- ``broadcast_add`` of the attention mask, whose backward reduces a gradient onto the mask
  that nothing uses: :func:`mask_scores`, backward is a copy;
- ``log_softmax`` backward over the vocabulary (oneDNN's reference implementation):
  :func:`softmax_nll`, cross entropy fused with its gradient;
- ``adamw_update`` (BERTAdam), scalar code several times slower than memory bandwidth:
  :func:`adamw_update`, which also reads its gradient scale from the device so that
  clipping needs no host synchronisation.

They are C++ operators of an MXNet custom-operator library (``include/mxnet/lib_api.h``),
compiled once with the system C++ compiler into ``$BORTKIT_CACHE`` (default
``~/.cache/bortkit``) and loaded with ``mx.library.load``. Without a compiler, or with
``BORTKIT_KERNELS=0``, every function falls back to MXNet's own operators. Parameters and
checkpoints are the same both ways; results differ by float32 rounding (about 1e-6 relative).
"""
from __future__ import annotations

import fcntl
import hashlib
import os
import subprocess
import sysconfig
import tempfile
import warnings
from pathlib import Path

import mxnet as mx

ENV_SWITCH = "BORTKIT_KERNELS"   # "0" turns the fused kernels off
ENV_CACHE = "BORTKIT_CACHE"
_state: dict = {}               # "loaded": bool, "error": str, "path": Path


def _cache_dir() -> Path:
    root = os.environ.get(ENV_CACHE) or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "bortkit")
    return Path(root) / "kernels"


def _cpu_flags() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for row in fh:
                if row.startswith("flags"):
                    return row
    except OSError:
        pass
    return ""


def _compile_command(source: Path, target: Path) -> list[str]:
    root = Path(mx.__file__).parent
    cxx = os.environ.get("CXX") or "g++"
    # -fno-math-errno and -fno-trapping-math let GCC vectorise sqrt, floor and comparisons.
    # The C++ runtime is linked in and bound inside the library: under Horovod, libmxnet.so
    # (which exports the old libstdc++ it was built with) is loaded RTLD_GLOBAL, and the
    # library's std::unordered_map calls would otherwise run that old code (SIGFPE).
    return [cxx, "-O3", "-march=native", "-fno-math-errno", "-fno-trapping-math", "-fopenmp",
            "-std=c++17", "-shared", "-fPIC", "-static-libstdc++", "-Wl,-Bsymbolic",
            "-Wl,--exclude-libs,ALL", f"-I{root / 'include'}", str(source),
            str(root / "src" / "lib_api.cc"), "-o", str(target)]


def library_path() -> Path:
    """Where the compiled library for this source, MXNet, compiler and CPU is cached."""
    flags = " ".join(_compile_command(Path("source"), Path("target")))
    key = hashlib.sha256("\0".join([SOURCE, mx.__version__, flags, _cpu_flags(),
                                     sysconfig.get_platform()]).encode())
    return _cache_dir() / f"bortkit_kernels-{key.hexdigest()[:16]}.so"


def _build(target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one compile when several workers start at once
        if target.exists():
            return
        with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
            source = Path(tmp) / "bortkit_kernels.cc"
            source.write_text(SOURCE, encoding="utf-8")
            built = Path(tmp) / target.name
            command = _compile_command(source, built)
            done = subprocess.run(command, capture_output=True, text=True, timeout=600)
            if done.returncode != 0:
                lines = done.stderr.strip().splitlines()
                raise RuntimeError(f"{command[0]} failed: "
                                   f"{lines[-1] if lines else done.returncode}")
            os.replace(built, target)


def available() -> bool:
    """True when the fused operators are loaded (built on first use); never raises."""
    if "loaded" in _state:
        return _state["loaded"]
    _state["loaded"] = False
    if os.environ.get(ENV_SWITCH, "1").strip().lower() in ("0", "false", "no", "off"):
        _state["error"] = f"{ENV_SWITCH}=0"
        return False
    try:
        path = library_path()
        if not path.exists():
            _build(path)
        mx.library.load(str(path), verbose=False)
        _state.update(loaded=True, path=path)
    except Exception as err:  # no compiler, read-only cache, ...: MXNet's operators instead
        _state["error"] = f"{type(err).__name__}: {err}"
        warnings.warn(f"bortkit: fused CPU kernels unavailable ({_state['error']}); using "
                      f"MXNet's operators (slower). Set {ENV_SWITCH}=0 to silence this.",
                      RuntimeWarning, stacklevel=2)
    return _state["loaded"]


def status() -> str:
    """One line for logs and benchmarks: which implementation is in use."""
    if available():
        return f"fused kernels ({_state['path']})"
    return f"MXNet operators ({_state.get('error', 'not loaded')})"


def layer_norm(F, x, gamma, beta, eps: float):
    """LayerNorm over the last axis (MXNet ``LayerNorm(axis=-1)``)."""
    if not available():
        return F.LayerNorm(x, gamma, beta, axis=-1, eps=eps)
    # Library operators write their outputs without looking at the request type, so a
    # parameter whose gradient accumulates (grad_req="add") must not be a direct input:
    # identity() takes the gradient and adds it properly.
    return F.bortkit_layer_norm(x, F.identity(gamma), F.identity(beta), eps=eps)[0]


def mask_scores(F, scores, attention_mask, fill: float):
    """``scores`` (B, H, T, T) + (1 - attention_mask) * fill, ``attention_mask`` (B, T)
    broadcast over heads and queries; no gradient flows into the mask."""
    if not available():
        bias = F.expand_dims(F.expand_dims((1.0 - attention_mask) * fill, 1), 1)
        return F.broadcast_add(scores, bias)
    return F.bortkit_mask_scores(scores, F.BlockGrad(attention_mask), fill=fill)


def softmax_nll(F, logits, labels):
    """Per-row cross entropy ``logsumexp(logits) - logits[label]``: (M, V), (M,) -> (M,)."""
    if not available():
        return -F.pick(F.log_softmax(logits, axis=-1), labels, axis=-1)
    return F.bortkit_softmax_nll(logits, labels)[0]


def adamw_update(weight, grad, mean, var, scale, lr: float, wd: float, beta1: float,
                 beta2: float, epsilon: float) -> None:
    """In place, BERTAdam's (MXNet ``adamw_update``'s) step with gradient ``scale * grad``,
    ``scale`` a (1,) NDArray; skipped when ``scale`` is not finite. Needs :func:`available`."""
    mx.nd.bortkit_adamw(grad, scale, weight, mean, var, lr=lr, wd=wd, beta1=beta1,
                        beta2=beta2, epsilon=epsilon)


SOURCE = r"""// Fused CPU kernels for MXNet 1.9 (custom operator library, include/mxnet/lib_api.h);
// see the docstring of bortkit/model/kernels.py for why.
//
// bortkit_layer_norm(data, gamma, beta; eps) -> (out, mean, rstd)
//     LayerNorm over the last axis; mean and rstd = 1/sqrt(var + eps) have the shape of
//     data without its last axis. Only `out` carries a gradient.
// bortkit_mask_scores(scores, mask; fill) -> out
//     scores (B, ..., T) + (1 - mask) * fill, with mask (B, T) of 1 (keep) / 0 (pad)
//     broadcast over the middle axes. The gradient of scores is the output gradient; mask
//     gets none (zeros).
// bortkit_softmax_nll, bortkit_adamw: see below.
//
// Library operators see no request type (write / add): gradients are always written, so
// callers must not feed a parameter with grad_req="add" straight in (kernels.py wraps them
// in identity()). Backward functions receive [output gradients..., inputs..., outputs...]
// and write one gradient per input. Rows are split over OpenMP threads when there is
// enough work; results do not depend on the number of threads except for LayerNorm's
// gamma/beta gradients (per-thread partial sums).
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "mxnet/lib_api.h"
#ifdef _OPENMP
#include <omp.h>
#endif

using namespace mxnet::ext;

namespace {

constexpr int64_t kParallelMin = 1 << 16;  // elements below which one thread is faster

int64_t rows_of(const MXTensor& t) {
  int64_t rows = 1;
  for (size_t i = 0; i + 1 < t.shape.size(); ++i) rows *= t.shape[i];
  return rows;
}

float attr_float(const std::unordered_map<std::string, std::string>& attrs, const char* name,
                 float fallback) {
  auto it = attrs.find(name);
  return it == attrs.end() ? fallback : std::stof(it->second);
}

// Row sums for the LayerNorm statistics, in order, in float: the arithmetic of MXNet's CPU
// LayerNorm kernel (layer_norm_cpu.h, as built in the mxnet 1.9.1 wheel, which MXNet runs
// for inference), so that inference outputs are bit-identical to MXNet's.
inline float row_sum(const float* x, int64_t n, float centre, bool square) {
  float s = 0;
  for (int64_t j = 0; j < n; ++j) {
    const float v = x[j] - centre;
    s += square ? v * v : v;
  }
  return s;
}

// exp(x) for x <= 88 (Cephes' expf: Cody-Waite reduction and a degree-6 polynomial, about
// 1 ulp), branch-free so that loops over it vectorise; x below -87.3 gives exp(-87.3),
// about 1e-38, instead of a smaller number or 0.
inline float exp_approx(float x) {
  const float clamped = x > -87.3f ? x : -87.3f;
  const float n = std::floor(clamped * 1.44269504088896341f + 0.5f);
  const float r = clamped - n * 0.693359375f + n * 2.12194440e-4f;
  float y = 1.9875691500e-4f;
  y = y * r + 1.3981999507e-3f;
  y = y * r + 8.3334519073e-3f;
  y = y * r + 4.1665795894e-2f;
  y = y * r + 1.6666665459e-1f;
  y = y * r + 5.0000001201e-1f;
  y = y * r * r + r + 1.0f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof(scale));
  return y * scale;
}

// ------------------------------------------------------------------------- layer norm
MXReturnValue ln_parse(const std::unordered_map<std::string, std::string>& attrs,
                       int* num_in, int* num_out) {
  *num_in = 3;
  *num_out = 3;
  return MX_SUCCESS;
}

MXReturnValue ln_type(const std::unordered_map<std::string, std::string>& attrs,
                      std::vector<int>* in, std::vector<int>* out) {
  for (int t : *in)
    if (t != kFloat32) {
      MX_ERROR_MSG << "bortkit_layer_norm supports float32 only";
      return MX_FAIL;
    }
  out->assign(3, kFloat32);
  return MX_SUCCESS;
}

MXReturnValue ln_shape(const std::unordered_map<std::string, std::string>& attrs,
                       std::vector<std::vector<unsigned int>>* in,
                       std::vector<std::vector<unsigned int>>* out) {
  const auto& data = (*in)[0];
  if (data.empty() || (*in)[1].size() != 1 || (*in)[2].size() != 1 ||
      (*in)[1][0] != data.back() || (*in)[2][0] != data.back()) {
    MX_ERROR_MSG << "bortkit_layer_norm: gamma and beta must be (C,) for data (..., C)";
    return MX_FAIL;
  }
  std::vector<unsigned int> stats(data.begin(), data.end() - 1);
  if (stats.empty()) stats.push_back(1);
  out->clear();
  out->push_back(data);
  out->push_back(stats);
  out->push_back(stats);
  return MX_SUCCESS;
}

MXReturnValue ln_forward(const std::unordered_map<std::string, std::string>& attrs,
                         std::vector<MXTensor>* inputs, std::vector<MXTensor>* outputs,
                         const OpResource& res) {
  const float eps = attr_float(attrs, "eps", 1e-5f);
  const MXTensor& data = (*inputs)[0];
  const float* x = (*inputs)[0].data<float>();
  const float* gamma = (*inputs)[1].data<float>();
  const float* beta = (*inputs)[2].data<float>();
  float* y = (*outputs)[0].data<float>();
  float* mean_out = (*outputs)[1].data<float>();
  float* rstd_out = (*outputs)[2].data<float>();
  const int64_t cols = data.shape.back(), rows = rows_of(data);
#pragma omp parallel for schedule(static) if (rows * cols >= kParallelMin)
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * cols;
    float* yr = y + r * cols;
    const float mean = row_sum(xr, cols, 0.0f, false) / static_cast<float>(cols);
    const float sigma = std::sqrt(row_sum(xr, cols, mean, true) / static_cast<float>(cols)
                                  + eps);
    for (int64_t j = 0; j < cols; ++j) yr[j] = (xr[j] - mean) * gamma[j] / sigma + beta[j];
    mean_out[r] = mean;
    rstd_out[r] = 1.0f / sigma;
  }
  return MX_SUCCESS;
}

// inputs: d_out, d_mean, d_rstd, data, gamma, beta, out, mean, rstd
MXReturnValue ln_backward(const std::unordered_map<std::string, std::string>& attrs,
                          std::vector<MXTensor>* inputs, std::vector<MXTensor>* outputs,
                          const OpResource& res) {
  const MXTensor& data = (*inputs)[3];
  const float* dy = (*inputs)[0].data<float>();
  const float* x = static_cast<const float*>(data.data_ptr);
  const float* gamma = (*inputs)[4].data<float>();
  const float* mean = (*inputs)[7].data<float>();
  const float* rstd = (*inputs)[8].data<float>();
  float* dx = (*outputs)[0].data<float>();
  float* dgamma = (*outputs)[1].data<float>();
  float* dbeta = (*outputs)[2].data<float>();
  const int64_t cols = data.shape.back(), rows = rows_of(data);
  const bool parallel = rows * cols >= kParallelMin;
  // One row of partial dgamma/dbeta sums per thread, added up at the end.
  int threads = 1;
#ifdef _OPENMP
  if (parallel) threads = omp_get_max_threads();
#endif
  std::vector<float> partial(static_cast<size_t>(threads) * 2 * cols, 0.0f);
  std::vector<float> scratch(static_cast<size_t>(threads) * cols);
#pragma omp parallel num_threads(threads) if (parallel)
  {
    int t = 0;
#ifdef _OPENMP
    t = omp_get_thread_num();
#endif
    float* pg = partial.data() + static_cast<size_t>(t) * 2 * cols;
    float* pb = pg + cols;
    float* xhat = scratch.data() + static_cast<size_t>(t) * cols;
#pragma omp for schedule(static)
    for (int64_t r = 0; r < rows; ++r) {
      const float* xr = x + r * cols;
      const float* dyr = dy + r * cols;
      float* dxr = dx + r * cols;
      const float m = mean[r], s = rstd[r];
      float acc1[8] = {0, 0, 0, 0, 0, 0, 0, 0}, acc2[8] = {0, 0, 0, 0, 0, 0, 0, 0};
      int64_t j = 0;
      for (; j + 8 <= cols; j += 8)
        for (int k = 0; k < 8; ++k) {
          const float h = (xr[j + k] - m) * s, g = dyr[j + k] * gamma[j + k];
          xhat[j + k] = h;
          acc1[k] += g;
          acc2[k] += g * h;
        }
      float sum_g = 0, sum_gh = 0;
      for (; j < cols; ++j) {
        const float h = (xr[j] - m) * s, g = dyr[j] * gamma[j];
        xhat[j] = h;
        sum_g += g;
        sum_gh += g * h;
      }
      for (int k = 0; k < 8; ++k) {
        sum_g += acc1[k];
        sum_gh += acc2[k];
      }
      const float a = sum_g / cols, b = sum_gh / cols;
      for (j = 0; j < cols; ++j) {
        dxr[j] = s * (dyr[j] * gamma[j] - a - xhat[j] * b);
        pg[j] += dyr[j] * xhat[j];
        pb[j] += dyr[j];
      }
    }
  }
  for (int64_t j = 0; j < cols; ++j) {
    float g = 0, b = 0;
    for (int t = 0; t < threads; ++t) {
      g += partial[static_cast<size_t>(t) * 2 * cols + j];
      b += partial[static_cast<size_t>(t) * 2 * cols + cols + j];
    }
    dgamma[j] = g;
    dbeta[j] = b;
  }
  return MX_SUCCESS;
}

// ------------------------------------------------------------------------ mask scores
MXReturnValue mask_parse(const std::unordered_map<std::string, std::string>& attrs,
                         int* num_in, int* num_out) {
  *num_in = 2;
  *num_out = 1;
  return MX_SUCCESS;
}

MXReturnValue mask_type(const std::unordered_map<std::string, std::string>& attrs,
                        std::vector<int>* in, std::vector<int>* out) {
  if ((*in)[0] != kFloat32 || (*in)[1] != kFloat32) {
    MX_ERROR_MSG << "bortkit_mask_scores supports float32 only";
    return MX_FAIL;
  }
  out->assign(1, kFloat32);
  return MX_SUCCESS;
}

MXReturnValue mask_shape(const std::unordered_map<std::string, std::string>& attrs,
                         std::vector<std::vector<unsigned int>>* in,
                         std::vector<std::vector<unsigned int>>* out) {
  const auto& scores = (*in)[0];
  const auto& mask = (*in)[1];
  if (scores.size() < 2 || mask.size() != 2 || mask[0] != scores[0] ||
      mask[1] != scores.back()) {
    MX_ERROR_MSG << "bortkit_mask_scores: mask must be (B, T) for scores (B, ..., T)";
    return MX_FAIL;
  }
  out->assign(1, scores);
  return MX_SUCCESS;
}

MXReturnValue mask_forward(const std::unordered_map<std::string, std::string>& attrs,
                           std::vector<MXTensor>* inputs, std::vector<MXTensor>* outputs,
                           const OpResource& res) {
  const float fill = attr_float(attrs, "fill", -1e4f);
  const MXTensor& scores = (*inputs)[0];
  const float* s = static_cast<const float*>(scores.data_ptr);
  const float* mask = (*inputs)[1].data<float>();
  float* out = (*outputs)[0].data<float>();
  const int64_t batch = scores.shape[0], cols = scores.shape.back();
  const int64_t rows_per_batch = rows_of(scores) / batch, rows = rows_of(scores);
#pragma omp parallel for schedule(static) if (rows * cols >= kParallelMin)
  for (int64_t r = 0; r < rows; ++r) {
    const float* m = mask + (r / rows_per_batch) * cols;
    const float* sr = s + r * cols;
    float* o = out + r * cols;
    for (int64_t j = 0; j < cols; ++j) o[j] = sr[j] + (1.0f - m[j]) * fill;
  }
  return MX_SUCCESS;
}

// inputs: d_out, scores, mask, out
MXReturnValue mask_backward(const std::unordered_map<std::string, std::string>& attrs,
                            std::vector<MXTensor>* inputs, std::vector<MXTensor>* outputs,
                            const OpResource& res) {
  const MXTensor& dout = (*inputs)[0];
  std::memcpy((*outputs)[0].data_ptr, dout.data_ptr, sizeof(float) * dout.size());
  std::memset((*outputs)[1].data_ptr, 0, sizeof(float) * (*outputs)[1].size());
  return MX_SUCCESS;
}

// ------------------------------------------------------------ softmax cross entropy
// bortkit_softmax_nll(logits (M, V), labels (M,)) -> (nll (M,), lse (M,))
//     nll = logsumexp(logits) - logits[label] per row (labels clipped into [0, V)); lse is
//     kept for the backward pass: d logits = d nll * (softmax(logits) - onehot(label)).
MXReturnValue nll_parse(const std::unordered_map<std::string, std::string>& attrs,
                        int* num_in, int* num_out) {
  *num_in = 2;
  *num_out = 2;
  return MX_SUCCESS;
}

MXReturnValue nll_type(const std::unordered_map<std::string, std::string>& attrs,
                       std::vector<int>* in, std::vector<int>* out) {
  if ((*in)[0] != kFloat32 || (*in)[1] != kFloat32) {
    MX_ERROR_MSG << "bortkit_softmax_nll supports float32 only";
    return MX_FAIL;
  }
  out->assign(2, kFloat32);
  return MX_SUCCESS;
}

MXReturnValue nll_shape(const std::unordered_map<std::string, std::string>& attrs,
                        std::vector<std::vector<unsigned int>>* in,
                        std::vector<std::vector<unsigned int>>* out) {
  const auto& logits = (*in)[0];
  const auto& labels = (*in)[1];
  if (logits.size() != 2 || labels.size() != 1 || labels[0] != logits[0]) {
    MX_ERROR_MSG << "bortkit_softmax_nll: logits must be (M, V) and labels (M,)";
    return MX_FAIL;
  }
  out->assign(2, std::vector<unsigned int>{logits[0]});
  return MX_SUCCESS;
}

inline int64_t label_of(float value, int64_t classes) {
  const int64_t k = static_cast<int64_t>(value);
  return k < 0 ? 0 : (k >= classes ? classes - 1 : k);
}

MXReturnValue nll_forward(const std::unordered_map<std::string, std::string>& attrs,
                          std::vector<MXTensor>* inputs, std::vector<MXTensor>* outputs,
                          const OpResource& res) {
  const MXTensor& logits = (*inputs)[0];
  const float* x = static_cast<const float*>(logits.data_ptr);
  const float* labels = (*inputs)[1].data<float>();
  float* nll = (*outputs)[0].data<float>();
  float* lse_out = (*outputs)[1].data<float>();
  const int64_t rows = logits.shape[0], cols = logits.shape[1];
#pragma omp parallel for schedule(static) if (rows * cols >= kParallelMin)
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * cols;
    float mx[8];
    for (int k = 0; k < 8; ++k) mx[k] = -INFINITY;
    int64_t j = 0;
    for (; j + 8 <= cols; j += 8)
      for (int k = 0; k < 8; ++k) mx[k] = xr[j + k] > mx[k] ? xr[j + k] : mx[k];
    float m = -INFINITY;
    for (; j < cols; ++j) m = xr[j] > m ? xr[j] : m;
    for (int k = 0; k < 8; ++k) m = mx[k] > m ? mx[k] : m;
    float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    for (j = 0; j + 8 <= cols; j += 8)
      for (int k = 0; k < 8; ++k) acc[k] += exp_approx(xr[j + k] - m);
    float sum = 0;
    for (; j < cols; ++j) sum += exp_approx(xr[j] - m);
    for (int k = 0; k < 8; ++k) sum += acc[k];
    const float lse = m + std::log(sum);
    lse_out[r] = lse;
    nll[r] = lse - xr[label_of(labels[r], cols)];
  }
  return MX_SUCCESS;
}

// inputs: d_nll, d_lse, logits, labels, nll, lse
MXReturnValue nll_backward(const std::unordered_map<std::string, std::string>& attrs,
                           std::vector<MXTensor>* inputs, std::vector<MXTensor>* outputs,
                           const OpResource& res) {
  const float* dnll = (*inputs)[0].data<float>();
  const MXTensor& logits = (*inputs)[2];
  const float* x = static_cast<const float*>(logits.data_ptr);
  const float* labels = (*inputs)[3].data<float>();
  const float* lse = (*inputs)[5].data<float>();
  float* dx = (*outputs)[0].data<float>();
  const int64_t rows = logits.shape[0], cols = logits.shape[1];
#pragma omp parallel for schedule(static) if (rows * cols >= kParallelMin)
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * cols;
    float* dxr = dx + r * cols;
    const float g = dnll[r], l = lse[r];
    for (int64_t j = 0; j < cols; ++j) dxr[j] = g * exp_approx(xr[j] - l);
    dxr[label_of(labels[r], cols)] -= g;
  }
  std::memset((*outputs)[1].data_ptr, 0, sizeof(float) * (*outputs)[1].size());
  return MX_SUCCESS;
}

// ------------------------------------------------------------------------------ adamw
// bortkit_adamw(grad, scale, weight, mean, var; lr, wd, beta1, beta2, epsilon) -> flag (1,)
//     BERTAdam / MXNet adamw_update with lr=1, eta=lr, in place on weight, mean and var:
//       g = scale * grad; m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2;
//       w -= lr * (m / (sqrt(v) + eps) + wd * w)
//     scale (1,) is read on the device (clipping needs no host sync); a non-finite scale
//     skips the update, as MXNet's. flag is 1 if the update was applied.
MXReturnValue adamw_parse(const std::unordered_map<std::string, std::string>& attrs,
                          int* num_in, int* num_out) {
  *num_in = 5;
  *num_out = 1;
  return MX_SUCCESS;
}

MXReturnValue adamw_type(const std::unordered_map<std::string, std::string>& attrs,
                         std::vector<int>* in, std::vector<int>* out) {
  for (int t : *in)
    if (t != kFloat32) {
      MX_ERROR_MSG << "bortkit_adamw supports float32 only";
      return MX_FAIL;
    }
  out->assign(1, kFloat32);
  return MX_SUCCESS;
}

MXReturnValue adamw_shape(const std::unordered_map<std::string, std::string>& attrs,
                          std::vector<std::vector<unsigned int>>* in,
                          std::vector<std::vector<unsigned int>>* out) {
  const auto& g = (*in)[0];
  if ((*in)[2] != g || (*in)[3] != g || (*in)[4] != g || (*in)[1].size() != 1 ||
      (*in)[1][0] != 1) {
    MX_ERROR_MSG << "bortkit_adamw: grad, weight, mean and var must have one shape; scale (1,)";
    return MX_FAIL;
  }
  out->assign(1, std::vector<unsigned int>{1});
  return MX_SUCCESS;
}

MXReturnValue adamw_mutate(const std::unordered_map<std::string, std::string>& attrs,
                           std::vector<int>* indices) {
  indices->assign({2, 3, 4});
  return MX_SUCCESS;
}

MXReturnValue adamw_forward(const std::unordered_map<std::string, std::string>& attrs,
                            std::vector<MXTensor>* inputs, std::vector<MXTensor>* outputs,
                            const OpResource& res) {
  const float lr = attr_float(attrs, "lr", 0.0f), wd = attr_float(attrs, "wd", 0.0f);
  const float b1 = attr_float(attrs, "beta1", 0.9f), b2 = attr_float(attrs, "beta2", 0.999f);
  const float eps = attr_float(attrs, "epsilon", 1e-6f);
  const float* grad = (*inputs)[0].data<float>();
  const float scale = (*inputs)[1].data<float>()[0];
  float* w = (*inputs)[2].data<float>();
  float* m = (*inputs)[3].data<float>();
  float* v = (*inputs)[4].data<float>();
  float* flag = (*outputs)[0].data<float>();
  const int64_t n = (*inputs)[0].size();
  flag[0] = std::isfinite(scale) ? 1.0f : 0.0f;
  if (!std::isfinite(scale)) return MX_SUCCESS;
#pragma omp parallel for schedule(static) if (n >= 4 * kParallelMin)
  for (int64_t i = 0; i < n; ++i) {
    const float g = scale * grad[i];
    const float mi = b1 * m[i] + (1.0f - b1) * g;
    const float vi = b2 * v[i] + (1.0f - b2) * g * g;
    m[i] = mi;
    v[i] = vi;
    w[i] -= lr * (mi / (std::sqrt(vi) + eps) + wd * w[i]);
  }
  return MX_SUCCESS;
}

}  // namespace

REGISTER_OP(bortkit_softmax_nll)
    .setParseAttrs(nll_parse)
    .setInferType(nll_type)
    .setInferShape(nll_shape)
    .setForward(nll_forward, "cpu")
    .setBackward(nll_backward, "cpu");

REGISTER_OP(bortkit_adamw)
    .setParseAttrs(adamw_parse)
    .setInferType(adamw_type)
    .setInferShape(adamw_shape)
    .setMutateInputs(adamw_mutate)
    .setForward(adamw_forward, "cpu");

REGISTER_OP(bortkit_layer_norm)
    .setParseAttrs(ln_parse)
    .setInferType(ln_type)
    .setInferShape(ln_shape)
    .setForward(ln_forward, "cpu")
    .setBackward(ln_backward, "cpu");

REGISTER_OP(bortkit_mask_scores)
    .setParseAttrs(mask_parse)
    .setInferType(mask_type)
    .setInferShape(mask_shape)
    .setForward(mask_forward, "cpu")
    .setBackward(mask_backward, "cpu");

MXReturnValue initialize(int version) {
  return version >= 10900 ? MX_SUCCESS : MX_FAIL;
}
"""
