"""``python -m ambient.operator``."""

import sys

from ambient.operator.main import main

sys.exit(main())
