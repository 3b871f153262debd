"""``python -m medxai.viz.report RUN_DIR [--max-images N]``."""

import sys

from medxai.viz.report import main

sys.exit(main())
