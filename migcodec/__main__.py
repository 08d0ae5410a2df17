"""``python -m migcodec``: the ``migcodec`` command, for an environment whose scripts
directory is not on the ``PATH`` (:mod:`migcodec.command`)."""

import sys

from migcodec.command import main

sys.exit(main())
