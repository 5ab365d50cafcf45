"""``bortkit COMMAND [OPTIONS]`` (or ``python -m bortkit COMMAND``): one console script whose
commands are the ``python -m bortkit.X`` entry points, run exactly as those (same options,
same output); ``bortkit COMMAND --help`` shows a command's options, ``bortkit --version``
the version. Nothing heavy is imported before the command runs.
"""
from __future__ import annotations

import runpy
import sys
from typing import Optional, Sequence

# command -> (module run as ``python -m``, what it does)
COMMANDS = {
    "finetune": ("bortkit.finetune", "fine-tune a model on a GLUE/SuperGLUE task or your files"),
    "predict": ("bortkit.predict", "run a fine-tuned model over a .txt/.csv/.tsv/.jsonl file"),
    "export": ("bortkit.export", "write a Hugging Face or ONNX (int8) directory"),
    "sweep": ("bortkit.sweep", "Optuna study over fine-tuning (or Agora) settings"),
    "distill": ("bortkit.distill", "pre-train a student by knowledge distillation"),
    "agora": ("bortkit.agora", "Agora: fine-tuning with generated and relabelled data"),
    "search": ("bortkit.search", "FPTAS architecture search over the Bort space"),
    "prune": ("bortkit.prune", "FLOP structured pruning of a fine-tuned classifier"),
    "multitask": ("bortkit.multitask", "one model for several tasks with adapters"),
    "analyze": ("bortkit.analyze", "non-linearity and layer-commutativity analyses"),
    "info": ("bortkit.info", "parameter table of a preset or checkpoint"),
    "create-pretraining-data": ("bortkit.data.create_pretraining_data",
                                "tokenise a corpus into pretraining shards"),
    "convert-shards": ("bortkit.data.convert_shards",
                       "convert old pretraining shards to the current format"),
    "ops": ("bortkit.ops", "build or inspect the fused C++ operators"),
}


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: bortkit [--version] [--help] COMMAND [OPTIONS]", "",
             "Find, distil, fine-tune and ship small BERT models.", "", "commands:"]
    lines += [f"  {name:<{width}}  {what}" for name, (_, what) in COMMANDS.items()]
    lines += ["", "bortkit COMMAND --help shows a command's options; each command is also "
              "python -m MODULE (e.g. python -m bortkit.finetune)."]
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage(), file=sys.stdout if argv else sys.stderr)
        return 0 if argv else 2
    if argv[0] == "--version":
        from . import __version__
        print(f"bortkit {__version__}")
        return 0
    command = argv[0]
    if command not in COMMANDS:
        print(f"bortkit: error: unknown command {command!r} (commands: "
              f"{', '.join(COMMANDS)}; bortkit --help)", file=sys.stderr)
        return 2
    module = COMMANDS[command][0]
    sys.argv = [f"bortkit {command}", *argv[1:]]
    runpy.run_module(module, run_name="__main__", alter_sys=True)  # exits as `python -m`
    return 0


if __name__ == "__main__":
    sys.exit(main())
