import sys

from eventlog.cli import main

sys.exit(main())
