"""``python -m bortkit.analyze nonlinearity|replace|remove|freeze|swap|shuffle ...``

The non-linearity and layer-commutativity analyses of Zhao et al. (IJCNN 2021) on a
checkpoint (fine-tuned with a task head for every command but ``nonlinearity`` and
``freeze``). Each command writes ``OUT/<command>.csv``, ``.json`` and ``.png`` (``-noskip``
added with ``--cancel-skip``); existing results are never overwritten.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence

from ..errors import ConfigError, run_cli
from .taps import PARTS, check_layers, check_permutation

PART_NAMES = tuple(PARTS)


def parse_indices(text: str, option: str) -> Optional[list[int]]:
    """``all`` -> None; ``0,2,4`` or ``0-5`` (inclusive) -> a list."""
    if text == "all":
        return None
    try:
        values = []
        for piece in text.split(","):
            if "-" in piece.strip()[1:]:
                start, stop = piece.split("-")
                values.extend(range(int(start), int(stop) + 1))
            else:
                values.append(int(piece))
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
                                formatter_class=argparse.RawDescriptionHelpFormatter)
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
    layers = argparse.ArgumentParser(add_help=False)
    layers.add_argument("--layers", default="all", help="e.g. 0,1,2 or 0-5 or all")
    skip = argparse.ArgumentParser(add_help=False)
    skip.add_argument("--cancel-skip", default="",
                      help="layers whose residual connections are multiplied by 0 (or all)")

    n = sub.add_parser("nonlinearity", parents=[common, fit, layers],
                       help="1 - cos of linear/MLP approximators per layer and part")
    n.add_argument("--parts", default=",".join(PART_NAMES),
                   help=f"comma-separated, of {', '.join(PART_NAMES)}")
    for name, helptext in (("replace", "replace a part by its approximator"),
                           ("remove", "remove a part (true removal)")):
        s = sub.add_parser(name, parents=[common, layers] + ([fit] if name == "replace" else []),
                           help=helptext)
        s.add_argument("--part", required=True, choices=PART_NAMES)
        s.add_argument("--cumulative", choices=("forward", "backward"),
                       help="growing sets of layers instead of one layer at a time")
        if name == "replace":
            s.add_argument("--approximator", default="linear", choices=("linear", "mlp"))
    f = sub.add_parser("freeze", parents=[common, layers],
                       help="fine-tune with parts frozen (one run per part and a baseline)")
    f.add_argument("--parts", default="attention_block,ffn_block,layer",
                   help=f"comma-separated, of {', '.join(PART_NAMES)}, embeddings")
    f.add_argument("--learning-rate", type=float, default=1e-4)
    f.add_argument("--max-steps", type=int, default=300)
    f.add_argument("--warmup-ratio", type=float, default=0.1)
    f.add_argument("--eval-every", type=int, default=0)
    f.add_argument("--max-train-examples", type=int)
    f.add_argument("--pooling", default="mean", choices=("cls", "mean"))
    w = sub.add_parser("swap", parents=[common, skip], help="swap two layers, evaluate")
    w.add_argument("--pairs", default="all", help="e.g. 0,1;0,2 (default: every pair)")
    s = sub.add_parser("shuffle", parents=[common, skip], help="permute layers, evaluate")
    s.add_argument("--orders", help="explicit orders, e.g. 1,0,2,3,4,5;5,4,3,2,1,0")
    s.add_argument("--random", type=int, default=30, help="random orders when no --orders")
    return p


def _check_positive(args) -> None:
    for name in ("batch_size", "max_length", "max_eval_examples", "max_train_examples",
                 "mlp_tokens", "mlp_epochs", "max_steps", "random"):
        value = getattr(args, name, None)
        if value is not None and value <= 0:
            raise ConfigError(f"--{name.replace('_', '-')}: must be a positive integer, "
                              f"got {value}")


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
            "cancel_skip": cancel, "seed": args.seed}
    fitted = None
    if args.command in ("nonlinearity", "replace"):
        train = ex.load_split(subject, args.data_dir, "train", args.max_train_examples,
                              args.seed)
        hidden = subject.network.config.units if args.mlp_hidden_units < 0 \
            else args.mlp_hidden_units
        if args.command == "replace":
            parts = [args.part]
            hidden = hidden if args.approximator == "mlp" else 0
        fitted = ex.fit_approximators(subject, train, parts, layers, hidden, args.mlp_tokens,
                                      args.mlp_epochs, args.batch_size, args.seed, progress)
        meta.update(train_examples=len(train.examples), mlp_hidden_units=hidden,
                    mlp_tokens=args.mlp_tokens, mlp_epochs=args.mlp_epochs)
    title = f"{Path(args.model).name} on {subject.task.name} dev"
    if args.command == "nonlinearity":
        rows = ex.measure_nonlinearity(subject, dev, fitted, args.batch_size, progress)
        plot_nonlinearity(rows, out / f"{name}.png", f"non-linearity per layer, {title}")
    elif args.command in ("replace", "remove"):
        sets = ex.layer_sets(layers, args.cumulative)
        if args.command == "replace":
            rows = ex.replace_parts(subject, dev, fitted, args.part, sets, args.approximator,
                                    args.batch_size, progress)
        else:
            rows = ex.remove_parts(subject, dev, args.part, sets, args.batch_size, progress)
        meta["baseline"] = rows[0]["score"]
        plot_scores(rows[1:], "layers", out / f"{name}.png",
                    f"{args.command} {args.part}, {title}", "layers edited",
                    baseline=rows[0]["score"])
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
            "max_steps": args.max_steps, "learning_rate": args.learning_rate}
    paths = write_table(rows, out, "freeze", meta)
    plot_scores(rows, "setting", out / "freeze.png", f"freeze, {args.task} dev",
                "frozen parameters", baseline=rows[0]["score"])
    print(f"wrote {paths['csv']}, {paths['json']}, {out / 'freeze.png'}")
    return 0


if __name__ == "__main__":
    run_cli(main)
