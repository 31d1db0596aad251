#!/usr/bin/env python3
"""Regenerates the benchmark tables in src/guide/performance.md from criterion's output.

Each table sits between markers that say which criterion group it shows, the bench that produces it and,
optionally, the benchmark the others are compared with:

    <!-- bench: passkey_verify bench=passkeys vs=p256_ecdsa_verify -->
    ...the table, replaced...
    <!-- /bench -->

Run the bench (`cargo bench --all-features --bench passkeys`), then this script: every table whose group has
output under target/criterion is rewritten with the medians of the newest run, the ratio to `vs`, the command and
the machine. Tables whose group has no output are left as they are.
"""

import argparse
import datetime
import json
import os
import platform
import re
import sys

MARKER = re.compile(r"<!-- bench: (?P<args>[^>]*?) -->\n(?P<body>.*?)<!-- /bench -->", re.S)


def machine():
    model = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{os.cpu_count()} cores, {model}"


def duration(ns):
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("µs", 1e3)):
        if ns >= scale:
            return f"{ns / scale:.3g} {unit}" if ns / scale < 100 else f"{ns / scale:.0f} {unit}"
    return f"{ns:.3g} ns"


def medians(group_dir):
    found = {}
    for root, _dirs, files in os.walk(group_dir):
        if os.path.basename(root) == "new" and "estimates.json" in files:
            with open(os.path.join(root, "estimates.json")) as f:
                estimate = json.load(f)["median"]["point_estimate"]
            name = os.path.relpath(os.path.dirname(root), group_dir)
            stamp = os.path.getmtime(os.path.join(root, "estimates.json"))
            found[name] = (estimate, stamp)
    return found


def table(group, options, found):
    vs = options.get("vs")
    base = found.get(vs, (None,))[0] if vs else None
    when = datetime.datetime.fromtimestamp(max(s for _, s in found.values()), datetime.timezone.utc)
    lines = [
        f"`cargo bench --all-features --bench {options.get('bench', group)}`, group `{group}`; "
        f"medians of one run on {when:%Y-%m-%d}, {machine()}.",
        "",
        "| benchmark | median |" + (f" × `{vs}` |" if base else ""),
        "|---|---|" + ("---|" if base else ""),
    ]
    for name, (ns, _) in sorted(found.items(), key=lambda kv: kv[1][0]):
        row = f"| `{name}` | {duration(ns)} |"
        if base:
            row += f" {ns / base:.2f} |"
        lines.append(row)
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--criterion", default="target/criterion")
    parser.add_argument("--guide", default="src/guide/performance.md")
    args = parser.parse_args()
    with open(args.guide) as f:
        text = f.read()
    replaced = []

    def replace(match):
        words = match.group("args").split()
        group, options = words[0], dict(w.split("=", 1) for w in words[1:])
        found = medians(os.path.join(args.criterion, group))
        if not found:
            return match.group(0)
        replaced.append(group)
        return f"<!-- bench: {match.group('args')} -->\n{table(group, options, found)}<!-- /bench -->"

    text = MARKER.sub(replace, text)
    with open(args.guide, "w") as f:
        f.write(text)
    print("regenerated:", ", ".join(replaced) or "nothing (no criterion output found)", file=sys.stderr)


if __name__ == "__main__":
    main()
