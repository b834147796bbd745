"""Import cost of hookgate, in fresh interpreters.

    uv run python bench/import_time.py

``import hookgate`` loads nothing heavy (names resolve on first use); the first use of
``Gateway`` pulls in pydantic, structlog and pluggy. Provider plugins add aiohttp. Prints the
median of several fresh processes for each.
"""

from __future__ import annotations

import statistics
import subprocess
import sys

PROBES = {
    "import hookgate": "import hookgate",
    "import hookgate; hookgate.Gateway": "import hookgate; hookgate.Gateway",
    "... + openai provider (aiohttp)": "import hookgate; hookgate.Gateway; import hookgate_openai",
}
SCRIPT = "import time; t = time.perf_counter(); {code}; print(time.perf_counter() - t)"


def main() -> None:
    for name, code in PROBES.items():
        runs = [
            float(
                subprocess.run(
                    [sys.executable, "-c", SCRIPT.format(code=code)],
                    capture_output=True,
                    text=True,
                    check=True,
                ).stdout
            )
            for _ in range(7)
        ]
        print(f"{name:<40} {statistics.median(runs) * 1000:7.1f} ms")
    heavy = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, hookgate; hookgate.Gateway; "
            "print(sorted(m for m in ('chromadb', 'onnxruntime', 'redis', 'tenacity', 'aiohttp', 'starlette') if m in sys.modules))",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    print(f"heavy modules loaded by Gateway: {heavy}")


if __name__ == "__main__":
    main()
