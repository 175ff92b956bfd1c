"""The console's front-end libraries: which file of which npm package is shipped as ``static/vendor/NAME``.

``package.json`` pins them (``npm ci`` installs them in ``node_modules``);
the copies in ``static/vendor/`` ship inside the Python package, so a
``pip install`` needs no Node.js. ``python -m jobscheduler.ui.vendor``
refreshes the copies after an upgrade; a test fails when they differ.
"""

from __future__ import annotations

import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
NODE_MODULES = ROOT / "node_modules"
VENDOR = Path(__file__).resolve().parent / "static" / "vendor"

# shipped name -> file under node_modules/
FILES = {
    "alpine.min.js": "alpinejs/dist/cdn.min.js",
    "mermaid.min.js": "mermaid/dist/mermaid.min.js",
    "mermaid.LICENSE.txt": "mermaid/LICENSE",
    "pico.min.css": "@picocss/pico/css/pico.min.css",
    "pico.LICENSE.txt": "@picocss/pico/LICENSE.md",
}


def copy() -> list[str]:
    """Copy every file from ``node_modules`` into ``static/vendor/``; the names copied."""
    VENDOR.mkdir(parents=True, exist_ok=True)
    for name, source in FILES.items():
        shutil.copyfile(NODE_MODULES / source, VENDOR / name)
    return sorted(FILES)


if __name__ == "__main__":
    print("copied:", ", ".join(copy()))
