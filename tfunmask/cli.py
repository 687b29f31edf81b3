"""What every command-line program shares: one-line errors, never a traceback."""

import sys

from absl import app, flags, logging


def fail(message, code=2, prog=None):
    """Prints ``[prog: ]error: message`` as one line on stderr and exits with ``code``."""
    prefix = f"{prog}: " if prog else ""
    print(f"{prefix}error: {' '.join(str(message).split())}", file=sys.stderr)
    sys.exit(code)


def flags_parser(prog=None, code=2):
    """An absl flags parser whose errors (unknown flag, bad value) are one line.

    TensorFlow's INFO chatter (saver, builder) is hidden unless --verbosity is given.
    """
    def parse(argv):
        try:
            argv = flags.FLAGS(argv)
        except flags.Error as error:
            fail(f"{error} (see --helpshort)", code, prog)
        if not flags.FLAGS["verbosity"].present:
            logging.set_verbosity(logging.WARNING)
        return argv

    return parse


parse_flags = flags_parser()


def run_main(main):
    """``app.run(main)`` with one-line flag errors."""
    app.run(main, flags_parser=parse_flags)
