"""``python -m bortkit.analyze nonlinearity|replace|remove|freeze|swap|shuffle ...``

The non-linearity and layer-commutativity analyses of Zhao et al. (IJCNN 2021) on a
checkpoint (fine-tuned with a task head for every command but ``nonlinearity`` and
``freeze``). Each command writes ``OUT/<command>.csv``, ``.json`` and ``.png`` (``-noskip``
added with ``--cancel-skip``); existing results are never overwritten.

Where the commands differ from the reference is listed at the end (each command's --help
lists its own, and its JSON records them under ``deviations``).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence

from ..errors import ConfigError, run_cli
from .parts import PARTS, check_layers, check_permutation

PART_NAMES = tuple(PARTS)

# Where each command differs from Zhao et al.'s code, the reference's setting in brackets:
# (commands it concerns, text). Shown by --help (all of them; each command's own in its
# --help) and recorded in every result's JSON (``deviations``).
DEVIATIONS = (
    (("replace", "remove"),
     "replace and remove evaluate the edited model without retraining unless --epochs or "
     "--finetune-steps is given [fine-tuning after the edit: --epochs 3 --learning-rate "
     "2e-5 --batch-size 64]; with it, the table has both columns"),
    (("nonlinearity", "replace"),
     "the non-linearity table has the closed-form least-squares map (linear) and an MLP on "
     "top of it (mlp) beside the reference's Dense and Dense + ReLU trained by Adam on "
     "1 - cos (linear_cosine, mlp_cosine: --approximator-learning-rate 1e-3, "
     "--approximator-epochs 3, --batch-size 64, all theirs), fitted on --max-train-examples "
     "2000 sentences of the task [10 % of MNLI, about 39,000 sentences]"),
    (("replace",),
     "replace uses the closed-form map unless told [the reference replaces with its "
     "Adam-fit Dense: --approximator linear_cosine (mlp_cosine for Dense + ReLU)]"),
    (("nonlinearity",),
     "the measure averages over the real tokens of every dev sentence [the reference "
     "skips sentences without padding]"),
    (("nonlinearity", "replace", "remove"),
     "the parts are 5 of the reference's 10 --approximate_part: attention [its "
     "self_attention_ff], attention_block [attention], ffn [mlp], ffn_block [ffn], layer "
     "[encoder]; the head output before W_O, the 3072-wide GELU output and the taps before "
     "LayerNorm (self_attention, ff_after_self_attention, attention_before_ln, ffgelu, "
     "ffn_before_ln) are not tapped, and approximators train on 1 - cos only [also --loss "
     "mse, l2]"),
    (("remove",),
     "remove is true removal [the reference left \"removed\" weights at random values]"),
    (("freeze",),
     "freeze fine-tunes --max-steps 300 at --learning-rate 1e-4 [3 epochs at 2e-5: pass "
     "--learning-rate 2e-5 and --max-steps of 3 epochs], freezing attention_block, "
     "ffn_block, layer or embeddings of --layers [its ffn, att, encoder, "
     "pooler+embedding, allbutoutput and other settings]"),
    (("swap", "shuffle"),
     "swap and shuffle evaluate only [its shuffle can also fine-tune the shuffled model]"),
    (("nonlinearity", "replace", "remove", "freeze", "swap", "shuffle"),
     "not implemented: the MLP/CNN comparison (MLP, DeepMLP, LeNet, ConvNet on MNIST and "
     "CIFAR-10 put through the same approximation, swap and shuffle), pretraining without "
     "skip connections or without FFNs (--model_type no-ffn), and run_track's tap dumps, "
     "feed_same and --layers_use_relu. --cancel-skip multiplies by 0 the residuals of a "
     "model trained with them, which is not the paper's no-skip model (such a model is at "
     "chance), so layer commutativity without skips is not measured here"),
)


def deviations(command: Optional[str] = None) -> list[str]:
    """The DEVIATIONS texts that concern ``command`` (None: all)."""
    return [text for commands, text in DEVIATIONS if command is None or command in commands]


def _deviation_text(command: Optional[str] = None) -> str:
    import textwrap
    return "Where this differs from the reference (its setting in brackets):\n" + "\n".join(
        textwrap.fill(text, 88, initial_indent="  - ", subsequent_indent="    ",
                      break_on_hyphens=False)
        for text in deviations(command))


def parse_indices(text: str, option: str) -> Optional[list[int]]:
    """``all`` -> None; ``0,2,4`` or ``0-5`` (inclusive) -> a list."""
    if text == "all":
        return None
    try:
        values = []
        for piece in text.split(","):
            if "-" in piece.strip()[1:]:
                start, stop = (int(end) for end in piece.split("-"))
                if start > stop:
                    raise ConfigError(f"{option}: the range {piece.strip()} selects no layer "
                                      f"(a range is low-high, e.g. {stop}-{start})")
                values.extend(range(start, stop + 1))
            else:
                values.append(int(piece))
    except ConfigError:
        raise
    except ValueError:
        raise ConfigError(f"{option}: expected layer indices like 0,1,2 or a range 0-5, "
                          f"got {text!r}") from None
    return values


def parse_orders(text: str, option: str) -> list[list[int]]:
    """``1,0,2;2,1,0`` -> [[1, 0, 2], [2, 1, 0]]."""
    return [parse_indices(piece, option) or [] for piece in text.split(";") if piece.strip()]


def parse_pairs(text: str, option: str) -> list[tuple]:
    """``0,1;0,2`` -> [(0, 1), (0, 2)]."""
    pairs = []
    for piece in text.split(";"):
        values = parse_indices(piece, option) or []
        if len(values) != 2:
            raise ConfigError(f"{option}: expected pairs like 0,1;2,3, got {piece!r}")
        pairs.append(tuple(values))
    return pairs


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bortkit.analyze", description=__doc__,
                                epilog=_deviation_text(),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    raw = {"formatter_class": argparse.RawDescriptionHelpFormatter}
    sub = p.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--model", required=True, help="checkpoint (bortkit, Hugging Face)")
    common.add_argument("--data-dir", required=True, help="benchmark root or the task's folder")
    common.add_argument("--task", default="SST-2")
    common.add_argument("--output-dir", default="runs/analyze")
    common.add_argument("--max-length", type=int, help="default: the head's, else 128")
    common.add_argument("--batch-size", type=int, default=64)
    common.add_argument("--seed", type=int, default=0)
    common.add_argument("--max-eval-examples", type=int, help="random subset of dev")
    common.add_argument("--no-progress", dest="progress", action="store_false")
    fit = argparse.ArgumentParser(add_help=False)
    fit.add_argument("--max-train-examples", type=int, default=2000,
                     help="training examples whose tokens fit the approximators")
    fit.add_argument("--mlp-hidden-units", type=int, default=-1,
                     help="hidden width of the MLP approximator (-1: units, 0: no MLP)")
    fit.add_argument("--mlp-tokens", type=int, default=4000, help="tokens the MLP trains on")
    fit.add_argument("--mlp-epochs", type=int, default=10)
    fit.add_argument("--approximator-epochs", type=int, default=3,
                     help="epochs of the reference's approximators (Dense, Dense + ReLU "
                          "trained from scratch by Adam on 1 - cos, one step per "
                          "--batch-size sequences; the reference's 3); 0: closed form only")
    fit.add_argument("--approximator-learning-rate", type=float, default=1e-3,
                     help="Adam's learning rate for them (the reference's 1e-3)")
    tune = argparse.ArgumentParser(add_help=False)
    tune.add_argument("--finetune-steps", type=int,
                      help="fine-tune this many steps after each edit (and the unedited "
                           "model as the baseline) and report the score beside the "
                           "evaluation-only one; overrides --epochs")
    tune.add_argument("--epochs", type=float,
                      help="fine-tune this many epochs of the training data after each edit "
                           "(the reference: 3). Neither option: evaluation only, which the "
                           "reference does not report")
    tune.add_argument("--learning-rate", type=float, default=2e-5,
                      help="peak learning rate of that fine-tuning (the reference's 2e-5; "
                           "BERTAdam, 10%% warm-up, linear decay)")
    layers = argparse.ArgumentParser(add_help=False)
    layers.add_argument("--layers", default="all", help="e.g. 0,1,2 or 0-5 or all")
    skip = argparse.ArgumentParser(add_help=False)
    skip.add_argument("--cancel-skip", default="",
                      help="layers whose residual connections are multiplied by 0 (or all)")

    n = sub.add_parser("nonlinearity", parents=[common, fit, layers],
                       help="1 - cos of linear/MLP approximators per layer and part",
                       description="1 - cos(y, f(x)) on the dev split's real tokens of each "
                                   "approximator f of each part of each layer",
                       epilog=_deviation_text("nonlinearity"), **raw)
    n.add_argument("--parts", default=",".join(PART_NAMES),
                   help=f"comma-separated, of {', '.join(PART_NAMES)}")
    for name, helptext in (("replace", "replace a part by its approximator"),
                           ("remove", "remove a part (true removal)")):
        s = sub.add_parser(name, parents=[common, layers, tune]
                           + ([fit] if name == "replace" else []), help=helptext,
                           description=helptext, epilog=_deviation_text(name), **raw)
        s.add_argument("--part", required=True, choices=PART_NAMES)
        s.add_argument("--cumulative", choices=("forward", "backward"),
                       help="growing sets of layers instead of one layer at a time")
        if name == "replace":
            s.add_argument("--approximator", default="linear",
                           choices=("linear", "mlp", "linear_cosine", "mlp_cosine"),
                           help="linear: least squares (closed form); mlp: least squares + "
                                "a ReLU correction; linear_cosine / mlp_cosine: the "
                                "reference's Dense / Dense + ReLU trained by Adam on 1 - cos "
                                "(the reference replaces with these)")
        else:
            s.add_argument("--max-train-examples", type=int,
                           help="training examples to fine-tune on (default: all)")
    f = sub.add_parser("freeze", parents=[common, layers],
                       help="fine-tune with parts frozen (one run per part and a baseline)",
                       description="fine-tune with parts frozen (one run per part and a "
                                   "baseline)", epilog=_deviation_text("freeze"), **raw)
    f.add_argument("--parts", default="attention_block,ffn_block,layer",
                   help=f"comma-separated, of {', '.join(PART_NAMES)}, embeddings")
    f.add_argument("--learning-rate", type=float, default=1e-4)
    f.add_argument("--max-steps", type=int, default=300)
    f.add_argument("--warmup-ratio", type=float, default=0.1)
    f.add_argument("--eval-every", type=int, default=0)
    f.add_argument("--max-train-examples", type=int)
    f.add_argument("--pooling", default="mean", choices=("cls", "mean"))
    w = sub.add_parser("swap", parents=[common, skip], help="swap two layers, evaluate",
                       description="swap two layers, evaluate",
                       epilog=_deviation_text("swap"), **raw)
    w.add_argument("--pairs", default="all", help="e.g. 0,1;0,2 (default: every pair)")
    s = sub.add_parser("shuffle", parents=[common, skip], help="permute layers, evaluate",
                       description="permute layers, evaluate",
                       epilog=_deviation_text("shuffle"), **raw)
    s.add_argument("--orders", help="explicit orders, e.g. 1,0,2,3,4,5;5,4,3,2,1,0")
    s.add_argument("--random", type=int, default=30, help="random orders when no --orders")
    return p


def _check_positive(args) -> None:
    for name in ("batch_size", "max_length", "max_eval_examples", "max_train_examples",
                 "mlp_tokens", "mlp_epochs", "max_steps", "random", "finetune_steps"):
        value = getattr(args, name, None)
        if value is not None and value <= 0:
            raise ConfigError(f"--{name.replace('_', '-')}: must be a positive integer, "
                              f"got {value}")
    for name in ("approximator_epochs",):
        value = getattr(args, name, None)
        if value is not None and value < 0:
            raise ConfigError(f"--{name.replace('_', '-')}: must be >= 0, got {value}")
    for name in ("epochs", "learning_rate", "approximator_learning_rate"):
        value = getattr(args, name, None)
        if value is not None and not value > 0:
            raise ConfigError(f"--{name.replace('_', '-')}: must be > 0, got {value}")
    if getattr(args, "approximator", "").endswith("_cosine") and not args.approximator_epochs:
        raise ConfigError(f"--approximator-epochs: must be >= 1 to train --approximator "
                          f"{args.approximator}, got 0")


def _outputs(args, name: str) -> Path:
    out = Path(args.output_dir)
    for suffix in ("csv", "json", "png"):
        if (out / f"{name}.{suffix}").exists():
            raise ConfigError(f"--output-dir: {out / f'{name}.{suffix}'} already exists "
                              f"(results are never overwritten); choose another folder")
    return out


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    _check_positive(args)
    layers = parse_indices(getattr(args, "layers", "all"), "--layers")
    cancel = getattr(args, "cancel_skip", "")
    cancel = parse_indices(cancel, "--cancel-skip") if cancel else []
    parts = [p for p in getattr(args, "parts", "").split(",") if p]
    allowed = PART_NAMES + (("embeddings",) if args.command == "freeze" else ())
    for part in parts:
        if part not in allowed:
            raise ConfigError(f"--parts: each part must be one of {', '.join(allowed)}, "
                              f"got {part!r}")
    if args.command == "freeze":
        return _freeze(args, layers, parts)

    from . import experiments as ex
    subject = ex.load_subject(args.model, args.task, args.max_length,
                              need_head=args.command != "nonlinearity")
    num_layers = subject.num_layers
    layers = list(range(num_layers)) if layers is None else layers
    check_layers(layers, num_layers, "--layers")
    cancel = list(range(num_layers)) if cancel is None else cancel
    check_layers(cancel, num_layers, "--cancel-skip")
    if args.command == "swap":
        pairs = ex.all_pairs(num_layers) if args.pairs == "all" else \
            parse_pairs(args.pairs, "--pairs")
        check_layers([i for pair in pairs for i in pair], num_layers, "--pairs")
    if args.command == "shuffle":
        orders = parse_orders(args.orders, "--orders") if args.orders else \
            ex.random_orders(num_layers, args.random, args.seed)
        for order in orders:
            check_permutation(order, num_layers, "--orders")
    name = args.command + ("-noskip" if cancel else "")
    out = _outputs(args, name)

    from .report import plot_nonlinearity, plot_scores, plot_swap, write_table
    progress = args.progress and sys.stderr.isatty()
    dev = ex.load_split(subject, args.data_dir, "dev", args.max_eval_examples, 0)
    meta = {"command": args.command, "model": str(args.model), "task": subject.task.name,
            "max_length": subject.max_length, "dev_examples": len(dev.examples),
            "cancel_skip": cancel, "seed": args.seed,
            "deviations": deviations(args.command)}
    fitted = retrainer = None
    tuned = args.command in ("replace", "remove") and (args.finetune_steps or args.epochs)
    if args.command in ("nonlinearity", "replace") or tuned:
        train = ex.load_split(subject, args.data_dir, "train", args.max_train_examples,
                              args.seed)
        meta.update(train_examples=len(train.examples))
    if args.command in ("nonlinearity", "replace"):
        hidden = subject.network.config.units if args.mlp_hidden_units < 0 \
            else args.mlp_hidden_units
        kinds = ("linear_cosine", "mlp_cosine")
        if args.command == "replace":
            parts = [args.part]
            hidden = hidden if args.approximator == "mlp" else 0
            kinds = tuple(k for k in kinds if k == args.approximator)
        fitted = ex.fit_approximators(subject, train, parts, layers, hidden, args.mlp_tokens,
                                      args.mlp_epochs, args.batch_size, args.seed, progress,
                                      cosine_epochs=args.approximator_epochs if kinds else 0,
                                      cosine_learning_rate=args.approximator_learning_rate,
                                      kinds=kinds)
        meta.update(mlp_hidden_units=hidden, mlp_tokens=args.mlp_tokens,
                    mlp_epochs=args.mlp_epochs, approximator_epochs=args.approximator_epochs,
                    approximator_learning_rate=args.approximator_learning_rate,
                    approximators={k: v for k, v in ex.APPROXIMATORS.items()
                                   if k in ("linear", "mlp") + kinds})
    if tuned:
        from .retrain import RetrainSettings, Retrainer
        settings = RetrainSettings(steps=args.finetune_steps, epochs=args.epochs or 3.0,
                                   learning_rate=args.learning_rate,
                                   batch_size=args.batch_size, seed=args.seed)
        retrainer = Retrainer(subject, train, settings, progress)
        meta["finetune"] = {"steps": settings.total_steps(len(train.features)),
                            "learning_rate": settings.learning_rate,
                            "batch_size": settings.batch_size,
                            "warmup_ratio": settings.warmup_ratio,
                            "weight_decay": settings.weight_decay}
    elif args.command in ("replace", "remove"):
        meta["finetune"] = None
        print("evaluation only: the reference fine-tunes after each edit (3 epochs at "
              "2e-5: --epochs 3; or --finetune-steps N)", file=sys.stderr)
    title = f"{Path(args.model).name} on {subject.task.name} dev"
    if args.command == "nonlinearity":
        rows = ex.measure_nonlinearity(subject, dev, fitted, args.batch_size, progress)
        plot_nonlinearity(rows, out / f"{name}.png", f"non-linearity per layer, {title}")
    elif args.command in ("replace", "remove"):
        sets = ex.layer_sets(layers, args.cumulative)
        if args.command == "replace":
            rows = ex.replace_parts(subject, dev, fitted, args.part, sets, args.approximator,
                                    args.batch_size, progress, retrainer)
        else:
            rows = ex.remove_parts(subject, dev, args.part, sets, args.batch_size, progress,
                                   retrainer)
        meta["baseline"] = rows[0]["score"]
        if retrainer is not None:
            meta["baseline_finetuned"] = rows[0]["finetuned"]
        plot_scores(rows[1:], "layers", out / f"{name}.png",
                    f"{args.command} {args.part}, {title}", "layers edited",
                    baseline=rows[0]["score"],
                    also=("finetuned", rows[0]["finetuned"]) if retrainer else None)
    elif args.command == "swap":
        rows = ex.swap_layers(subject, dev, pairs, cancel, args.batch_size, progress)
        plot_swap(rows, num_layers, out / f"{name}.png",
                  f"swap{' (no skip)' if cancel else ''}, {title}")
    else:
        rows = ex.shuffle_layers(subject, dev, orders, cancel, args.batch_size, progress)
        meta["baseline"] = ex.evaluate(subject, dev, None, args.batch_size)
        plot_scores(rows, "kendall", out / f"{name}.png",
                    f"shuffle{' (no skip)' if cancel else ''}, {title}",
                    "layer pairs out of order (Kendall distance)", baseline=meta["baseline"],
                    scatter=True)
    paths = write_table(rows, out, name, meta)
    print(f"wrote {paths['csv']}, {paths['json']}, {out / f'{name}.png'}")
    return 0


def _freeze(args, layers, parts) -> int:
    from ..checkpoint import read_state
    from . import experiments as ex
    from .report import plot_scores, write_table
    num_layers = read_state(args.model).config.num_layers
    layers = list(range(num_layers)) if layers is None else layers
    check_layers(layers, num_layers, "--layers")
    out = _outputs(args, "freeze")
    span = ",".join(str(layer) for layer in layers)
    settings = [("nothing", None, [])] + [(p if p == "embeddings" else f"{p}-{span}", p, layers)
                                          for p in parts]
    rows = ex.freeze_parts(
        settings, out, task=args.task, model=args.model, data_dir=args.data_dir,
        learning_rate=args.learning_rate, batch_size=args.batch_size,
        max_steps=args.max_steps, warmup_ratio=args.warmup_ratio,
        max_length=args.max_length or 128, seed=args.seed, eval_every=args.eval_every,
        max_train_examples=args.max_train_examples, max_eval_examples=args.max_eval_examples,
        pooling=args.pooling, progress=args.progress)
    meta = {"command": "freeze", "model": str(args.model), "task": args.task,
            "max_steps": args.max_steps, "learning_rate": args.learning_rate,
            "deviations": deviations("freeze")}
    paths = write_table(rows, out, "freeze", meta)
    plot_scores(rows, "setting", out / "freeze.png", f"freeze, {args.task} dev",
                "frozen parameters", baseline=rows[0]["score"])
    print(f"wrote {paths['csv']}, {paths['json']}, {out / 'freeze.png'}")
    return 0


if __name__ == "__main__":
    run_cli(main)
