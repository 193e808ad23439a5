import sys

from lth.cli import main

sys.exit(main())
