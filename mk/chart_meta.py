"""Sets a chart's publishing metadata (home, sources, icon, a maintainer's email and URL) in Chart.yaml,
validated, for `make chart-package`: the repository's Chart.yaml names no public address until there is
one, so the address is given when the chart is packaged.

    python mk/chart_meta.py CHART_DIR --home URL [--source URL ...] [--icon URL]
                            [--maintainer-email ADDR] [--maintainer-url URL]
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from urllib.parse import urlsplit

import yaml


def url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme != "https" or not parts.netloc:
        raise argparse.ArgumentTypeError(f"{value!r} is not an https:// URL")
    return value


def email(value: str) -> str:
    if not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", value):
        raise argparse.ArgumentTypeError(f"{value!r} is not an email address")
    return value


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("chart", type=Path)
    ap.add_argument("--home", type=url, required=True)
    ap.add_argument("--source", type=url, action="append", default=[], help="repeatable")
    ap.add_argument("--icon", type=url)
    ap.add_argument("--maintainer-email", type=email)
    ap.add_argument("--maintainer-url", type=url)
    args = ap.parse_args(argv)
    path = args.chart / "Chart.yaml"
    chart = yaml.safe_load(path.read_text())
    chart["home"] = args.home
    chart["sources"] = args.source or [args.home]
    if args.icon:
        chart["icon"] = args.icon
    for maintainer in chart.get("maintainers") or []:
        if args.maintainer_email:
            maintainer["email"] = args.maintainer_email
        if args.maintainer_url:
            maintainer["url"] = args.maintainer_url
    path.write_text(yaml.safe_dump(chart, sort_keys=False, width=110))
    print(f"{path}: home {chart['home']}, sources {', '.join(chart['sources'])}"
          + (f", icon {chart['icon']}" if "icon" in chart else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
