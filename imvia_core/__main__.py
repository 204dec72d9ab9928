import sys

from imvia_core.cli import main

sys.exit(main())
