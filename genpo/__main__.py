"""``python -m genpo ...``: the ``genpo`` command line (what ``torchrun ... -m genpo train`` runs on each rank)."""

import sys

from genpo.cli import main

sys.exit(main())
