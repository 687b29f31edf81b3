"""Average the weights of training runs fine-tuned from one start into a new run folder.

    python tools/average_runs.py --runs=runs/a,runs/b:5 --out=runs/soup
    python tools/average_runs.py --runs=runs/ft --start_weight=0.5 --out=runs/ft_half
    python -m tfunmask.export --model_dir=runs/soup --out=export --mask_closing=6

Each run is a folder (its newest checkpoint) or FOLDER:EPOCH. The runs must have built the same
networks; the new folder takes the first run's config.json and records the runs in
averaged_from.json (``tfunmask.training.averaging``). ``--start_weight=W`` moves the averaged
unmasker W of the way back to the runs' common --warm_start (WiSE-FT); one run is then enough.
"""

from absl import flags

from tfunmask.cli import check_arguments, fail, run_main


def define_flags():
    """Defines the program's flags (only when it runs as a program)."""
    flags.DEFINE_list("runs", None, "Run folders (FOLDER or FOLDER:EPOCH), at least two.")
    flags.DEFINE_string("out", None, "New run folder for the average.")
    flags.DEFINE_float("start_weight", 0.0, "Share of the runs' common --warm_start in the unmasker "
                       "(W x start + (1 - W) x the runs' mean; 0: the mean alone; 1: the start itself, in the runs' "
                       "layout: their step 0, to export and evaluate like them).")


FLAGS = flags.FLAGS


def main(argv):
    check_arguments(argv, "runs", "out")
    from tfunmask.config import ConfigError
    from tfunmask.training import averaging

    try:
        path = averaging.average_runs(FLAGS.runs, FLAGS.out, start_weight=FLAGS.start_weight)
    except ConfigError as error:
        fail(str(error))
    start = f", {FLAGS.start_weight:g} of the way to their warm start," if FLAGS.start_weight else ""
    print(f"averaged {len(FLAGS.runs)} run(s){start} into {path}")


if __name__ == "__main__":
    define_flags()
    run_main(main)
