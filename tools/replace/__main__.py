import sys

from tools.replace.cli import main

sys.exit(main())
