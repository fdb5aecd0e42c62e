import sys

from auralize.cli import main

sys.exit(main())
