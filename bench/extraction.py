"""How much of the teacher does a search candidate keep when it starts from the teacher's
weights (``--init teacher``, ``bortkit/search/extract.py``)? For each shape D-A-H-I, the
candidate is built as the search builds it (the space's fixed fields, the teacher's
vocabulary), initialised from the search's teacher by the function-preserving copy and by
the leading-block copy (the rest random, the earlier extraction), and scored before any
training on held-out masked positions with the search's ``heldout_losses``. Prints a table,
writes ``bench/results/extraction.json``::

    python bench/extraction.py 6-12-384-1536 6-16-512-1536 6-16-768-3072 8-4-512-768 2-4-512-256

The teacher and shards are the search's defaults (prepared, or read from the user cache,
under ``--work-dir``).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import common  # bench/common.py: the script's directory is first on sys.path


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("shapes", nargs="+", metavar="D-A-H-I")
    parser.add_argument("--eval-batches", type=int, default=10)
    parser.add_argument("--work-dir", type=Path, default=Path.home() / ".cache"
                        / "bortkit-bench" / "extraction")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    common.configure_threads(args.threads)
    import mxnet as mx

    from bortkit.checkpoint import named_parameters, read_state
    from bortkit.distill import build_masked_lm
    from bortkit.search.error import DistillationError, Training, heldout_losses
    from bortkit.search.extract import init_from_teacher
    from bortkit.search.teacher import user_cache_dir
    from search_proxy import masked_lm   # bench/search_proxy.py
    error = DistillationError.prepare(args.work_dir, teacher=None, corpus=None, heldout=None,
                                      training=Training(), seq_length=64,
                                      cache=user_cache_dir(), progress=False)
    teacher_state = read_state(error.teacher_dir)
    teacher = masked_lm(error.teacher_dir)

    def score(student) -> float:
        return heldout_losses(student, teacher, str(error.heldout_dir), 8,
                              args.eval_batches)["teacher-ce"]

    rows = [{"shape": "teacher", "function_preserving": score(teacher), "leading_block": None}]
    for shape in args.shapes:
        layers, heads, units, ffn_units = map(int, shape.split("-"))
        arch = {"num_layers": layers, "num_heads": heads, "units": units,
                "ffn_units": ffn_units}
        row = {"shape": shape}
        for label, head_counts in (("function_preserving", (heads, teacher_state.config.num_heads)),
                                   ("leading_block", None)):
            mx.random.seed(0)
            student = build_masked_lm(error.student_config(arch))
            init_from_teacher(named_parameters(student), teacher_state.tensors, heads=head_counts)
            row[label] = score(student)
        rows.append(row)
    print(common.format_table(
        ["shape", "teacher-CE, function-preserving copy", "teacher-CE, leading-block copy"],
        [[r["shape"], f"{r['function_preserving']:.3f}",
          "" if r["leading_block"] is None else f"{r['leading_block']:.3f}"] for r in rows]))
    payload = {"eval_batches": args.eval_batches, "teacher": str(error.teacher_dir),
               "rows": rows}
    print(f"wrote {common.write_results('extraction', payload, args.out)}")


if __name__ == "__main__":
    main()
