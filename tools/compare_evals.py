"""Compare two evaluations of the same faces face by face: what differs, and how likely by chance.

    python -m tfunmask.evaluate --model=runs/a ... --out=eval/a
    python -m tfunmask.evaluate --model=runs/b ... --out=eval/b      # same --data, --split, --limit
    python tools/compare_evals.py --a=eval/a --b=eval/b [--json=comparison.json]

Prints a Markdown table per section both scored (paired, held_out, real): HOG detection as the
faces only one model's output is detected on, with the exact McNemar p; PSNR, SSIM and identity as
the mean per-face difference B − A ± its standard error, with the paired t-test's p
(``tfunmask.evaluation.comparison``).
"""

import json
from pathlib import Path

from absl import flags

from tfunmask.cli import check_arguments, fail, run_main


def define_flags():
    """Defines the program's flags (only when it runs as a program)."""
    flags.DEFINE_string("a", None, "Folder of the first evaluation (tfunmask.evaluate --out).")
    flags.DEFINE_string("b", None, "Folder of the second evaluation, of the same faces.")
    flags.DEFINE_string("json", None, "Also write the comparison to this JSON file.")


FLAGS = flags.FLAGS


def main(argv):
    check_arguments(argv, "a", "b")
    from tfunmask.evaluation import comparison
    from tfunmask.evaluation.report import json_safe

    try:
        result = comparison.compare(comparison.load(FLAGS.a), comparison.load(FLAGS.b))
    except comparison.ComparisonError as error:
        fail(str(error))
    print(comparison.markdown(result, Path(FLAGS.a).name or "A", Path(FLAGS.b).name or "B"))
    if FLAGS.json:
        Path(FLAGS.json).write_text(json.dumps(json_safe(result), indent=2) + "\n")


if __name__ == "__main__":
    define_flags()
    run_main(main)
