import sys

from tools.e2e.cli import main

sys.exit(main())
