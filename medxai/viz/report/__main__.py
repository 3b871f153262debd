"""``python -m medxai.viz.report RUN_DIR [--max-images N] [--thumbnail-size PX] [--no-progress]``."""

import sys

from medxai.viz.report import main

sys.exit(main())
