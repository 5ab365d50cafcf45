"""ê for the search: held-out masked-LM loss of a candidate after a short distillation from
the teacher (de Wynter & Perry train each candidate for a fixed budget against the maximum
point's outputs; here the teacher plays that role).

Each candidate is built with its searched shape and the *teacher's* vocabulary (the
distillation targets are the teacher's token distributions), trained for ``steps`` steps
with :func:`bortkit.distill.train` (Bort's loss: 0.1 MLM + 0.5 T² KD, T = 2), and scored on
the held-out shards. p̂ still counts the space's own fixed fields (e.g. Bort's 50,265-token
vocabulary); only the training uses the teacher's.

Everything is cached under the search's output directory, so a resumed search does not
rebuild the data or the teacher.
"""
from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Optional, Sequence

from ..checkpoint import read_state
from ..errors import BortkitError, ConfigError
from ..io import write_json
from .costs import arch_config

RESOURCES = Path(__file__).resolve().parents[1] / "resources" / "corpus"
TEACHER_MLM_STEPS = 200  # fit an MLM head on the bundled MiniLM, which ships without one


def _fingerprint(paths: Sequence[Path]) -> str:
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def _shards(inputs: Sequence[Path], tokenizer_dir: Path, out: Path, seq_length: int,
            progress: bool) -> Path:
    from ..data.pretraining import create_pretraining_data
    from ..tokenizers import load_tokenizer
    if not (out / "meta.json").exists():
        create_pretraining_data([str(p) for p in inputs], load_tokenizer(tokenizer_dir), out,
                                max_seq_length=seq_length, overwrite=True, progress=progress)
    return out


@dataclass
class DistillationError:
    """Callable ``error(arch) -> float`` over prepared data and teacher."""

    out: Path
    teacher_dir: Path
    train_dir: Path
    heldout_dir: Path
    vocab: dict
    steps: int
    batch_size: int
    seed: int
    teacher_id: str
    corpus_id: str
    eval_batches: int = 25

    @classmethod
    def prepare(cls, out: Path, teacher: Optional[str], corpus: Optional[Sequence[str]],
                heldout: Optional[Sequence[str]], steps: int, batch_size: int,
                seq_length: int, seed: int, progress: bool = True) -> "DistillationError":
        """Tokenise the corpus with the teacher's tokenizer into shards; fit the bundled
        teacher's MLM head when no teacher is given."""
        out = Path(out)
        corpus = [Path(p) for p in (corpus or [RESOURCES / "train.txt"])]
        heldout = [Path(p) for p in (heldout or [RESOURCES / "heldout.txt"])]
        for path in (*corpus, *heldout):
            if not path.is_file():
                raise BortkitError("corpus file not found", path=path)
        base = Path(teacher) if teacher else _bundled_minilm()
        state = read_state(base)
        if state.tokenizer_dir is None:
            raise BortkitError("teacher checkpoint has no tokenizer files", path=base)
        data = out / "data"
        train_dir = _shards(corpus, state.tokenizer_dir, data / "train", seq_length, progress)
        heldout_dir = _shards(heldout, state.tokenizer_dir, data / "heldout", seq_length,
                              progress)
        _check_vocabulary(state, train_dir, base)
        teacher_dir = base
        if "mlm_head.decoder.bias" not in state.tensors:
            teacher_dir = _fit_teacher_head(base, train_dir, out / "teacher", batch_size, seed,
                                            progress)
        config = state.config
        vocab = {"vocab_size": config.vocab_size, "pad_token_id": config.pad_token_id,
                 "type_vocab_size": config.type_vocab_size,
                 "max_length": max(config.max_length, seq_length)}
        return cls(out, teacher_dir, train_dir, heldout_dir, vocab, steps, batch_size, seed,
                   teacher_id=f"{base}:{_fingerprint(sorted(Path(base).glob('*.json')))}",
                   corpus_id=_fingerprint(corpus + heldout))

    def student_config(self, arch: Mapping):
        return arch_config(arch).replace(**self.vocab)

    def __call__(self, arch: Mapping) -> float:
        from ..distill import PretrainingArguments, train
        config = self.student_config(arch)
        key = "-".join(f"{arch[k]}" for k in ("num_layers", "num_heads", "units", "ffn_units"))
        if arch.get("attention", "dot_product") != "dot_product":  # one folder per variant
            key += f"-{arch['attention']}"
        run_dir = self.out / "candidates" / key
        shutil.rmtree(run_dir, ignore_errors=True)  # a killed candidate starts over
        run_dir.mkdir(parents=True)
        write_json(run_dir / "student.json", config.to_dict())
        results = train(PretrainingArguments(
            train=str(self.train_dir), test=str(self.heldout_dir), output_dir=str(run_dir),
            student_config=str(run_dir / "student.json"), teacher=str(self.teacher_dir),
            max_steps=self.steps, batch_size=self.batch_size, learning_rate=5e-4,
            warmup_ratio=0.1, eval_every=0, eval_batches=self.eval_batches,
            checkpoint_every=0, seed=self.seed, progress=False,
            # only the held-out loss after training counts; a search trains many candidates,
            # so it keeps their logs and curves but writes no weights
            baseline_eval=False, save_weights=False))
        write_json(run_dir / "error.json", {"arch": dict(arch), "eval": results["eval"]})
        return float(results["eval"]["mlm_loss"])


def _bundled_minilm() -> Path:
    from ..info import bundled_minilm
    return bundled_minilm()


def _check_vocabulary(teacher_state, train_dir: Path, teacher_path: Path) -> None:
    meta = json.loads((train_dir / "meta.json").read_text())
    size = meta["tokenizer"]["vocab_size"]
    if size > teacher_state.config.vocab_size:
        raise ConfigError(f"the teacher's tokenizer has {size} tokens but its embedding only "
                          f"{teacher_state.config.vocab_size}: tokenizer and teacher do not "
                          "match", path=teacher_path)


def _fit_teacher_head(base: Path, train_dir: Path, out: Path, batch_size: int, seed: int,
                      progress: bool) -> Path:
    """The bundled MiniLM has no MLM head: train it as a masked LM once, reuse it after."""
    from ..distill import fit_mlm_head
    adapted = out / "teacher"
    if not (adapted / "config.json").exists():
        fit_mlm_head(base, train_dir, adapted, TEACHER_MLM_STEPS, scope="head",
                     batch_size=batch_size, seed=seed, progress=progress)
    return adapted
