"""``python -m parafe.signer`` = ``parafe-signer``."""

import sys

from parafe.signer.cli import main

sys.exit(main())
