import sys

from tools.flip.cli import main

sys.exit(main())
