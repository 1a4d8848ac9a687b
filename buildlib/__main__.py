"""`python -m buildlib`: the buildlib command."""
import sys

from .cli import main

sys.exit(main())
