#!/usr/bin/env python3
"""Compare `grove profile resolve` with zc.buildout on the conformance cases.

zc.buildout is the reference for the parts of the dialect SlapOS shares with upstream;
it is not a dependency of Grove. Run it from a scratch virtualenv:

    python3 -m venv /tmp/zcb && /tmp/zcb/bin/pip install zc.buildout==6.0.1
    cargo build
    python3 tools/compare-zc-buildout.py --python /tmp/zcb/bin/python \\
        --grove target/debug/grove crates/profile/tests/cases

Cases marked `# dialect: slapos` (SlapOS's fork differs from upstream there) or
`# compare: skip` (with the reason) are skipped. Every other case must give the same
values section by section, and fail where zc.buildout fails.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

# Runs inside the zc.buildout virtualenv: resolves what zc.buildout resolves, without
# installing recipes.
ORACLE = r'''
import json, sys
import zc.buildout.buildout as bb
bb.Options.initialize = lambda self: None
config, args = sys.argv[1], sys.argv[2:]
cl = []
for a in args:
    target, value = a.split("=", 1)
    section, option = target.split(":", 1) if ":" in target else ("buildout", target)
    cl.append((section.strip(), option.strip(), value.strip()))
out = {"sections": {}, "failed": {}, "error": None, "parts": None}
try:
    b = bb.Buildout(config, cl, use_user_defaults=False)
    parts = b["buildout"].get("parts", "") or ""
    for p in parts.split():
        b[p]["recipe"]
    out["parts"] = list(b._parts)
except Exception as e:
    out["error"] = "%s: %s" % (type(e).__name__, e)
    print(json.dumps(out)); sys.exit(0)
for s in sorted(b._raw):
    try:
        o = b[s]
        out["sections"][s] = {k: o[k] for k in o.keys()}
    except Exception as e:
        out["failed"][s] = "%s: %s" % (type(e).__name__, e)
print(json.dumps(out))
'''

# Values that belong to the Python running zc.buildout, not to the dialect.
IGNORED = {("buildout", "executable"), ("versions", "zc.buildout"), ("versions", "zc.recipe.egg")}


def read_case(path):
    files, args, header, current = {}, [], [], None
    for line in open(path, encoding="utf-8").read().split("\n"):
        if line.startswith("==> ") and line.endswith(" <=="):
            current = line[4:-4]
            if current not in ("args", "expect"):
                files[current] = []
            continue
        if current is None:
            header.append(line)
        elif current == "args":
            if line:
                args.append(line)
        elif current != "expect":
            files[current].append(line)
    return header, {n: "\n".join(ls).rstrip("\n") + "\n" for n, ls in files.items()}, args


def compare(case, python, grove):
    header, files, args = read_case(case)
    for line in header:
        if line.startswith("# dialect: slapos") or line.startswith("# compare: skip"):
            return "skip", line[2:]
    if any("://" in n or n.startswith("/") for n in files):
        return "skip", "files outside the case directory"
    with tempfile.TemporaryDirectory() as tmp:
        for name, text in files.items():
            path = os.path.join(tmp, name)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            open(path, "w", encoding="utf-8").write(text)
        main = os.path.join(tmp, "buildout.cfg")
        ref = json.loads(subprocess.run([python, "-c", ORACLE, main, *args], cwd=tmp,
                                        capture_output=True, text=True, check=True).stdout.strip().split("\n")[-1])
        got = subprocess.run([grove, "profile", "resolve", "--json", "--keep-going", main, *args],
                             cwd=tmp, capture_output=True, text=True)
        mine = json.loads(got.stdout) if got.stdout.strip() else {}
        failed = got.returncode != 0
        if ref["error"]:
            return ("ok", "both fail") if failed else ("DIFF", "zc.buildout fails (%s), grove does not" % ref["error"])
        problems = []
        for section, options in ref["sections"].items():
            for option, value in options.items():
                if (section, option) in IGNORED:
                    continue
                value = value.replace(tmp, "/TMP")
                other = mine.get(section, {}).get(option)
                other = other.replace(tmp, "/TMP") if other is not None else None
                if other != value:
                    problems.append("%s:%s: zc.buildout %r, grove %r" % (section, option, value, other))
        for section in ref["failed"]:
            if section in mine:
                problems.append("[%s]: zc.buildout fails (%s), grove resolves it" % (section, ref["failed"][section]))
        for section, options in mine.items():
            for option in options:
                if section in ref["sections"] and option not in ref["sections"][section]:
                    problems.append("%s:%s: only grove has it" % (section, option))
        if ref["failed"] and not failed and "warning" not in got.stderr:
            problems.append("zc.buildout fails on some sections, grove reports nothing")
        return ("DIFF", "; ".join(problems)) if problems else ("ok", "same values")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--python", required=True, help="python of a virtualenv with zc.buildout")
    parser.add_argument("--grove", required=True, help="the grove binary")
    parser.add_argument("cases")
    opts = parser.parse_args()
    counts = {"ok": 0, "skip": 0, "DIFF": 0}
    for name in sorted(os.listdir(opts.cases)):
        if not name.endswith(".test"):
            continue
        status, detail = compare(os.path.join(opts.cases, name), opts.python, os.path.abspath(opts.grove))
        counts[status] += 1
        print("%-5s %s: %s" % (status, name, detail))
    print("%d same, %d skipped, %d different" % (counts["ok"], counts["skip"], counts["DIFF"]))
    sys.exit(1 if counts["DIFF"] else 0)


if __name__ == "__main__":
    main()
