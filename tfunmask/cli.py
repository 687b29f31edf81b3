"""What every command-line program shares: one-line errors, never a traceback."""

import sys

from absl import app, flags


def fail(message, code=2):
    """Prints ``error: message`` on stderr and exits with ``code``."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(code)


def parse_flags(argv):
    """absl flag parsing whose errors (unknown flag, bad value) are one line."""
    try:
        return flags.FLAGS(argv)
    except flags.Error as error:
        fail(f"{error} (see --helpshort)")


def run_main(main):
    """``app.run(main)`` with one-line flag errors."""
    app.run(main, flags_parser=parse_flags)
