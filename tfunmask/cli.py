"""What every command-line program shares: one-line errors, never a traceback."""

import sys

from absl import app, flags, logging


def fail(message, code=2):
    """Prints ``error: message`` on stderr and exits with ``code``."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(code)


def parse_flags(argv):
    """absl flag parsing whose errors (unknown flag, bad value) are one line.

    TensorFlow's INFO chatter (saver, builder) is hidden unless --verbosity is given.
    """
    try:
        argv = flags.FLAGS(argv)
    except flags.Error as error:
        fail(f"{error} (see --helpshort)")
    if not flags.FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)
    return argv


def run_main(main):
    """``app.run(main)`` with one-line flag errors."""
    app.run(main, flags_parser=parse_flags)
