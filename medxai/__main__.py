"""``python -m medxai``: the same as the ``medxai`` command."""

import sys

from medxai.cli import main

sys.exit(main())
