"""The asv configuration with its results and site folders moved, for a folder of trends kept
outside the clone (``.ci/run`` with ``$PLP_BENCH_TRENDS``): asv has no flag for either folder.

``python -m plp_bench.report.asv_config CONFIG RESULTS SITE`` prints the configuration (JSON,
its ``//`` comments dropped) with ``results_dir`` and ``html_dir`` set, and its other folders
made absolute: asv reads a configuration's folders relative to the configuration's own folder,
and the printed one is written elsewhere.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from .asv_results import strip_comments

FOLDERS = ("repo", "benchmark_dir", "env_dir")


def moved(config_text: str, results_dir: str, html_dir: str, base: Path) -> dict:
    """The configuration with its results and site folders replaced, and its other folders
    (relative to ``base``, the original configuration's folder) made absolute."""
    config = json.loads(strip_comments(config_text))
    if not isinstance(config, dict):
        raise ValueError("an asv configuration is a JSON object")
    for key in FOLDERS:
        value = config.get(key)
        if isinstance(value, str) and not Path(value).is_absolute():
            config[key] = str((base / value).resolve())
    config["results_dir"] = str(Path(results_dir).resolve())
    config["html_dir"] = str(Path(html_dir).resolve())
    return config


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print("usage: python -m plp_bench.report.asv_config CONFIG RESULTS_DIR HTML_DIR",
              file=sys.stderr)
        return 2
    path, results_dir, html_dir = argv
    try:
        config = moved(Path(path).read_text(), results_dir, html_dir,
                       Path(path).resolve().parent)
    except (OSError, ValueError) as error:
        print(f"{path}: {error}", file=sys.stderr)
        return 2
    json.dump(config, sys.stdout, indent=4)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
