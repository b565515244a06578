"""`python -m bitmark.cli ...` is the `bitmark` command."""

import sys

from bitmark.cli.main import main

sys.exit(main())
