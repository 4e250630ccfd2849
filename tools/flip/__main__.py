import signal
import sys

from tools.flip.cli import main

code = main()
# The flip is over and its result stands: a late signal (GitHub's SIGTERM after a SIGINT) must not replace it.
signal.signal(signal.SIGINT, signal.SIG_IGN)
signal.signal(signal.SIGTERM, signal.SIG_IGN)
sys.exit(code)
