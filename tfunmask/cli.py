"""What every command-line program shares: one-line errors, never a traceback, and a quiet start."""

import sys

from absl import app, flags, logging

from tfunmask import startup
from tfunmask.data import splits


def fail(message, code=2, prog=None):
    """Prints ``[prog: ]error: message`` as one line on stderr and exits with ``code``."""
    prefix = f"{prog}: " if prog else ""
    print(f"{prefix}error: {' '.join(str(message).split())}", file=sys.stderr)
    sys.exit(code)


def check_arguments(argv, *required):
    """Fails in one line on positional arguments (a program takes flags only) and on each flag of
    ``required`` left unset."""
    if len(argv) > 1:
        fail(f"unexpected arguments: {' '.join(argv[1:])}")
    for name in required:
        if not flags.FLAGS[name].value:
            fail(f"--{name} is required")


def define_split_flags():
    """--split and --split_salt, for the tools that write a split dataset (``splits.parse_rule``
    reads them back)."""
    flags.DEFINE_string("split", "0.9,0.05,0.05", "train,val,test fractions (by source photo).")
    flags.DEFINE_string("split_salt", splits.SALT, "Salt of the source photos' hash that draws the split: "
                        "another salt, another split with the same fractions (recorded in dataset.json).")


def flags_parser(prog=None, code=2):
    """An absl flags parser whose errors (unknown flag, bad value) are one line.

    Once the flags are good, TensorFlow's first import is made quiet (``startup.quiet_tensorflow``:
    its native start-up lines and INFO chatter, such as saver and builder, show only with
    --verbosity (-v)); it loads only when the program first needs it, so a user error found
    before then is reported at once.
    """
    def parse(argv):
        try:
            argv = flags.FLAGS(argv)
        except flags.Error as error:
            fail(f"{error} (see --helpshort)", code, prog)
        verbose = flags.FLAGS["verbosity"].present
        if not verbose:
            logging.set_verbosity(logging.WARNING)
        startup.quiet_tensorflow(verbose)
        return argv

    return parse


parse_flags = flags_parser()


def run_main(main):
    """``app.run(main)`` with one-line flag errors."""
    app.run(main, flags_parser=parse_flags)
