"""Build some extension modules in place, for quick development loops.

    .venv/bin/python tools/dev_build.py _list            # just nogil_collections._list
    .venv-gil/bin/python tools/dev_build.py _dict _core._qsbr

Each module set gets its own build/temp directory, so several builds can run
at once without colliding.  Then run tests against the in-place build with
``PYTHONPATH=src .venv/bin/python -m pytest tests/test_list_behaviour.py``.
(`make test` instead installs the package into the venvs.)
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__)
        return 2
    tag = sysconfig.get_config_var("SOABI") or "py"
    temp = ROOT / "build" / f"dev-{'-'.join(argv)}-{tag}"
    env = dict(os.environ, NOGIL_COLLECTIONS_ONLY=",".join(argv))
    cmd = [sys.executable, "setup.py", "-q", "build_ext", "--inplace", "--build-temp", str(temp)]
    return subprocess.call(cmd, cwd=ROOT, env=env)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
