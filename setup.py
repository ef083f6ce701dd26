"""Build the Cython extension modules of nogil_collections.

Every ``*.pyx`` under ``src/nogil_collections`` becomes an extension module.
Environment switches (docs/development.md):

- ``NOGIL_COLLECTIONS_DEBUG=1``: ``-O0 -g`` with C asserts on.
- ``NOGIL_COLLECTIONS_SANITIZE=thread|address``: build with that sanitizer
  (``address`` also enables UBSan).
- ``NOGIL_COLLECTIONS_FAULT_INJECTION=1``: every suspension point detaches
  for a moment or calls a test's hook (``_core/faultinject.h``,
  ``make fault-injection``).  Never for a release build.
"""

from __future__ import annotations

import os
from pathlib import Path

from Cython.Build import cythonize
from setuptools import Extension, setup

ROOT = Path(__file__).parent
PKG = Path("src") / "nogil_collections"
CORE = PKG / "_core"

debug = os.environ.get("NOGIL_COLLECTIONS_DEBUG", "") not in ("", "0")
sanitize = os.environ.get("NOGIL_COLLECTIONS_SANITIZE", "")
fault_injection = os.environ.get("NOGIL_COLLECTIONS_FAULT_INJECTION", "") not in ("", "0")

compile_args = ["-std=gnu11", "-Wno-unused-function", "-fno-strict-aliasing"]
link_args: list[str] = []
macros: list[tuple[str, str | None]] = []
if debug:
    compile_args += ["-O0", "-g3", "-UNDEBUG"]
    macros.append(("NCC_DEBUG", "1"))
else:
    compile_args += ["-O2"]
if fault_injection:
    macros.append(("NCC_FAULT_INJECTION", "1"))
if sanitize == "thread":
    compile_args += ["-fsanitize=thread", "-g"]
    link_args += ["-fsanitize=thread"]
elif sanitize == "address":
    compile_args += ["-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-g"]
    link_args += ["-fsanitize=address,undefined"]
elif sanitize:
    raise SystemExit(f"NOGIL_COLLECTIONS_SANITIZE must be 'thread' or 'address', not {sanitize!r}")

# NOGIL_COLLECTIONS_ONLY=_list,_core._qsbr builds just those modules (used by
# tools/dev_build.py so that parallel in-place builds do not collide).
only = {m for m in os.environ.get("NOGIL_COLLECTIONS_ONLY", "").split(",") if m}

headers = sorted(str(p) for p in CORE.glob("*.[hc]"))
extensions = []
for pyx in sorted(PKG.rglob("*.pyx")):
    module = ".".join(pyx.with_suffix("").relative_to("src").parts)
    if only and module.removeprefix("nogil_collections.") not in only:
        continue
    extensions.append(
        Extension(
            module,
            [str(pyx)],
            include_dirs=[str(CORE)],
            depends=headers + [str(p) for p in CORE.glob("*.pxi")]
            + [str(p) for p in pyx.parent.glob("*.pxd")],
            define_macros=macros,
            extra_compile_args=compile_args,
            extra_link_args=link_args,
        )
    )

setup(
    ext_modules=cythonize(
        extensions,
        compiler_directives={
            "language_level": 3,
            "freethreading_compatible": True,
            "embedsignature": True,
            "boundscheck": False,
            "wraparound": False,
        },
        nthreads=int(os.environ.get("NOGIL_COLLECTIONS_CYTHON_JOBS", "0") or 0),
        annotate=False,
    ),
)
