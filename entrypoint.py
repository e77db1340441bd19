#!/usr/bin/env python3
"""The Docker action's entry point: the Actions environment in, an exit code out.

All logic lives in promptgate.action, which the tests drive without GitHub.
"""

import os
import sys

from promptgate.action import main
from promptgate.shutdown import before_exit

if __name__ == "__main__":
    code = main(os.environ)
    before_exit()
    sys.exit(code)
