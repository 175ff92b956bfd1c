"""Lambda weight: the deployment package ``chalice package`` builds, and the import time of ``runtime/app.py``.

The package is built from a copy of ``runtime/`` with the stage settings the
CDK stack passes (no generated IAM policy, an existing role), so what is
measured is what gets deployed, and nothing is written into ``runtime/``.
Import time is measured in a fresh interpreter each time (what a cold start
pays), around ``import app`` only, interpreter start-up excluded.

Run: ``.venv/bin/python -m bench.weight [--imports 7] [--json PATH]``
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

from bench.common import REPO, Row, cli, median, report

RUNTIME = REPO / "runtime"
MB = 1024 * 1024
# As infra/stack.py packages the app: the role comes from CDK, so chalice analyses no policy.
STAGE = {"api_gateway_stage": "api", "manage_iam_role": False, "autogen_policy": False,
         "iam_role_arn": "arn:aws:iam::123456789012:role/jobscheduler-api",
         "lambda_memory_size": 256, "lambda_timeout": 30}
_IMPORT = ("import time; started = time.perf_counter(); import app; "
           "print(time.perf_counter() - started)")


def package_size() -> dict[str, Any]:
    """Build the deployment package from a copy of runtime/; its size and largest entries."""
    with tempfile.TemporaryDirectory(prefix="jobscheduler-package-") as tmp:
        source = Path(tmp) / "runtime"
        shutil.copytree(RUNTIME, source, ignore=shutil.ignore_patterns("__pycache__", "deployments", "venv"))
        config_path = source / ".chalice" / "config.json"
        config = json.loads(config_path.read_text())
        config["stages"] = {"dev": {**config.get("stages", {}).get("dev", {}), **STAGE}}
        config_path.write_text(json.dumps(config))
        out = Path(tmp) / "out"
        env = {**os.environ, "AWS_DEFAULT_REGION": "us-east-1"}
        chalice = Path(sys.executable).with_name("chalice")
        done = subprocess.run([str(chalice), "package", "--stage", "dev", str(out)], cwd=source, env=env,
                              capture_output=True, text=True, timeout=300)
        if done.returncode != 0:
            raise RuntimeError(f"chalice package failed:\n{done.stdout}\n{done.stderr}")
        archive = out / "deployment.zip"
        with zipfile.ZipFile(archive) as zipped:
            entries = sorted(zipped.infolist(), key=lambda i: i.compress_size, reverse=True)
            largest = [(i.filename, i.compress_size) for i in entries[:5]]
            unpacked = sum(i.file_size for i in entries)
        return {"bytes": archive.stat().st_size, "unpacked_bytes": unpacked, "files": len(entries),
                "largest": largest}


def import_seconds(runs: int) -> list[float]:
    """Seconds ``import app`` takes in ``runs`` fresh interpreters (the runtime directory on the path, as in Lambda)."""
    times = []
    for _ in range(runs):
        env = {**os.environ, "PYTHONPATH": str(RUNTIME)}
        done = subprocess.run([sys.executable, "-c", _IMPORT], cwd=RUNTIME, capture_output=True, text=True,
                              timeout=60, env=env)
        if done.returncode != 0:
            raise RuntimeError(f"import app failed:\n{done.stderr}")
        times.append(float(done.stdout.strip().splitlines()[-1]))
    return times


def heaviest_imports() -> list[tuple[str, int]]:
    """The modules with the largest cumulative import time (``-X importtime``), in microseconds."""
    done = subprocess.run([sys.executable, "-X", "importtime", "-c", "import app"], cwd=RUNTIME,
                          capture_output=True, text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(RUNTIME)})
    rows = []
    for line in done.stderr.splitlines():
        parts = line.removeprefix("import time:").split("|")
        if len(parts) == 3 and parts[1].strip().isdigit():
            rows.append((parts[2].strip(), int(parts[1])))
    top = [r for r in rows if not r[0].startswith(" ")]  # top-level imports of app and its modules
    return sorted(top, key=lambda r: r[1], reverse=True)[:6]


def run(imports: int) -> tuple[dict[str, Any], list[Row]]:
    """Measure and lay out the rows."""
    package = package_size()
    times = import_seconds(imports)
    figures = {"package": package, "import_seconds": times, "import_median": median(times),
               "heaviest_imports_us": heaviest_imports()}
    bench = "5 Lambda weight"
    size_mb = package["bytes"] / MB
    rows = [Row(bench, "deployment.zip (chalice package)", f"{package['bytes'] / 1024:.0f} KiB, "
                f"{package['files']} files", key="weight.package_mb", value=size_mb),
            Row(bench, f"import app, median of {imports} fresh interpreters", f"{median(times) * 1000:.0f} ms",
                key="weight.import_ms", value=median(times) * 1000)]
    return figures, rows


def main() -> None:
    """Command line: print the rows, write the JSON."""
    args = cli(__doc__.splitlines()[0], {"imports": 7})
    figures, rows = run(args.imports)
    report("5 Lambda weight", figures, rows, args.json)


if __name__ == "__main__":
    main()
