"""``python -m lanthorn`` is the same as the ``lanthorn`` console script."""
import sys

from lanthorn.cli import main

sys.exit(main())
