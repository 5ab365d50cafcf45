"""Which task a command trains on: ``--task NAME --data-dir DIR`` (GLUE/SuperGLUE) or the
user's own files, ``--train FILE --dev FILE --text-column C [--text-pair-column C2]
--label-column L [--task-type classification|regression]`` (CSV, TSV, JSONL; see
:mod:`bortkit.tasks.files`). Shared by ``bortkit.finetune``, ``bortkit.sweep`` and
``bortkit.agora``; framework-free, so ``--help`` stays light.

The choice is carried as ``(task, data_dir, files)``: ``files`` is ``None`` for a registered
task, else the keyword arguments of :func:`bortkit.tasks.files.file_task`, which the argument
dataclasses keep (and a resumed run reads again).
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Optional

from ..errors import ConfigError
from ..options import check_choice
from ..tasks.files import TASK_TYPES

FILE_FLAGS = {"text_column": "--text-column", "text_pair_column": "--text-pair-column",
              "label_column": "--label-column", "task_type": "--task-type"}


def add_task_options(parser: argparse.ArgumentParser) -> None:
    """``--task``/``--data-dir`` or ``--train``/``--dev`` and the column options."""
    parser.add_argument("--task", help="GLUE/SuperGLUE task (SST-2, MRPC, BoolQ, ...; ALL for "
                                       "fine-tuning); or use --train with your own files")
    parser.add_argument("--data-dir", help="benchmark root or the task's folder (with --task)")
    group = parser.add_argument_group("your own files (instead of --task)")
    group.add_argument("--train", help="training file: .csv, .tsv or .jsonl with named columns")
    group.add_argument("--dev", help="evaluation file, same columns")
    group.add_argument("--text-column", help="column of the text (default text)")
    group.add_argument("--text-pair-column", help="column of the second text, for pair tasks")
    group.add_argument("--label-column", help="column of the label (default label); "
                                              "classes are the values found in --train")
    group.add_argument("--task-type", help="classification (default unless the labels are "
                                           "non-integer numbers) or regression")


def task_choice(args: argparse.Namespace) -> tuple[str, Optional[str], Optional[dict]]:
    """``(task, data_dir, files)`` from parsed options; one ConfigError when they disagree.
    Reads no file: :func:`bortkit.tasks.files.load_task` does, before any work."""
    given = [flag for name, flag in FILE_FLAGS.items() if getattr(args, name) is not None]
    if args.task is not None and args.train is not None:
        raise ConfigError("--task and --train are mutually exclusive: --task names a "
                          "GLUE/SuperGLUE task read from --data-dir, --train your own file")
    if args.task is None and args.train is None:
        raise ConfigError("give --task NAME with --data-dir, or your own files with --train "
                          "FILE --dev FILE --text-column C --label-column L")
    if args.task is not None:
        stray = given + (["--dev"] if args.dev is not None else [])
        if stray:
            raise ConfigError(f"{', '.join(stray)} only apply with --train (your own files), "
                              f"not with --task {args.task}")
        if args.data_dir is None:
            raise ConfigError(f"--task {args.task} needs --data-dir (the benchmark root or "
                              f"the task's folder)")
        return args.task, args.data_dir, None
    if args.data_dir is not None:
        raise ConfigError("--data-dir only applies with --task; --train reads the file given")
    if args.dev is None:
        raise ConfigError("--train needs --dev, the file runs are evaluated on")
    if args.task_type is not None:
        check_choice("task_type", args.task_type, TASK_TYPES)
    files = {"train": args.train, "dev": args.dev,
             "text_column": args.text_column or "text",
             "label_column": args.label_column or "label",
             "text_pair_column": args.text_pair_column, "task_type": args.task_type}
    name = Path(args.train).stem
    if name in ("", ".", ".."):  # the run's folder is named after the task
        raise ConfigError(f"--train: the file name {Path(args.train).name!r} gives no task "
                          f"name (its stem is {name!r}); rename the file, e.g. train.csv")
    return name, None, files


def drop_task_options(options: dict) -> dict:
    """``options`` without the task-choice keys (after :func:`task_choice` has read them)."""
    names = {"task", "data_dir", "train", "dev", *FILE_FLAGS}
    return {k: v for k, v in options.items() if k not in names}
