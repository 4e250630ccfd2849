import sys

from tools.cost.cli import main

sys.exit(main())
