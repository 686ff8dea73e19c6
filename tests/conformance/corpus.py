#!/usr/bin/env python3
"""Reads kaniko's Dockerfile corpus for the conformance tier and decides, per file, whether it
runs here, and with what.

  corpus.py plan CORPUS_DIR REGISTRY OUT_DIR

CORPUS_DIR is kaniko's `integration/dockerfiles` (read, never copied into the repository).
Every file there but `*.dockerignore` is a case. Beside this script: `bases` (which local
image stands for each base the corpus names), `not-runnable` (cases that cannot run here, with
the reason) and `args` (build args and flags, as kaniko's integration/images.go passes them).

For a runnable case it writes OUT_DIR/CASE/Dockerfile: the file with the bases of the table
rewritten to REGISTRY (in FROM, COPY --from and the default of an ARG that names one; stage
names left alone) and a `# syntax=` line dropped, beside it `Dockerfile.dockerignore` when the
corpus has `CASE.dockerignore`. It prints one tab-separated line per case, runnable ones in an
order where a case whose base another case builds comes after it:

  run   CASE  CONTEXT  ARGS...     CONTEXT relative to integration/; ARGS NAME=VALUE or --target=S
  skip  CASE  REASON               REASON `kind: detail`; the summary counts kinds
"""
import hashlib
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def table(name):
    """Non-comment lines of a table beside this script, split in two at the first blank."""
    rows = []
    with open(os.path.join(HERE, name), encoding="utf-8") as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            if line:
                key, _, rest = line.partition(" ")
                rows.append((key, rest.strip()))
    return rows


FROM = re.compile(r"^(\s*FROM\s+)((?:--\S+\s+)*)(\S+)(.*)$", re.I | re.S)
COPY_FROM = re.compile(r"(?<=--from=)(\S+)", re.I)
ARG = re.compile(r"^(\s*ARG\s+\w+=)([\"']?)([^\"'\s]*)([\"']?)(\s*)$", re.I | re.S)
STAGE_NAME = re.compile(r"\s+AS\s+(\S+)\s*$", re.I)


def rewrite(text, bases, registry, target=None):
    """The Dockerfile with the table's bases pointing at the loopback registry. Returns (text,
    external images with no local one, corpus cases it builds on), the last two for the stages
    the target needs only (BuildKit and Slipway resolve no other stage's base)."""
    out, stages, needs = [], [], []

    def local(ref):
        t = bases[ref]
        if t.startswith("@"):
            needs.append((len(stages) - 1, t[1:]))
            return f"{registry}/conformance-buildkit/{t[1:].lower()}:latest"
        return f"{registry}/{t}:latest"

    def stage_ref(ref):
        """The index of the stage `ref` names, None if it names an image."""
        if ref.isdigit():
            return int(ref)
        for i, st in enumerate(stages):
            if st["name"] == ref.lower():
                return i
        return None

    for line in text.splitlines(keepends=True):
        if re.match(r"^#\s*syntax\s*=", line, re.I) and not out:
            continue
        m = FROM.match(line)
        if m:
            ref = m.group(3)
            s = STAGE_NAME.search(m.group(4))
            st = {"name": s.group(1).lower() if s else None, "deps": set(), "unmapped": []}
            dep = stage_ref(ref)
            stages.append(st)
            if dep is not None:
                st["deps"].add(dep)
            elif ref in bases:
                ref = local(ref)
            elif ref.lower() != "scratch" and "$" not in ref:
                st["unmapped"].append(ref)
            line = m.group(1) + m.group(2) + ref + m.group(4)
        elif re.match(r"^\s*(COPY|ADD)\s", line, re.I) and stages:
            c = COPY_FROM.search(line)
            if c:
                ref = c.group(1)
                dep = stage_ref(ref)
                if dep is not None:
                    stages[-1]["deps"].add(dep)
                elif ref in bases:
                    line = line[:c.start(1)] + local(ref) + line[c.end(1):]
                elif "$" not in ref:
                    stages[-1]["unmapped"].append(ref)
        else:
            a = ARG.match(line)
            if a and a.group(3) in bases:
                line = a.group(1) + a.group(2) + local(a.group(3)) + a.group(4) + a.group(5)
        out.append(line)
    last = len(stages) - 1
    if target is not None:
        last = next((i for i, st in enumerate(stages) if st["name"] == target.lower()), last)
    needed, todo = set(), [last]
    while todo:
        i = todo.pop()
        if i in needed or not 0 <= i < len(stages):
            continue
        needed.add(i)
        todo.extend(stages[i]["deps"])
    unmapped = [r for i in sorted(needed) for r in stages[i]["unmapped"]]
    return "".join(out), unmapped, [case for i, case in needs if i in needed]


def plan(corpus, registry, out_dir):
    bases = dict(table("bases"))
    not_runnable = dict(table("not-runnable"))
    args = {k: v.split() for k, v in table("args")}
    for k, v in args.items():
        args[k] = [a.replace("{registry}", registry) for a in v]
    cases = sorted(f for f in os.listdir(corpus) if not f.endswith(".dockerignore"))
    for listed in set(not_runnable) | set(args):
        if listed not in cases:
            sys.exit(f"corpus.py: {listed} is listed but not in {corpus}")
    seen, verdict, runs = {}, {}, []
    for case in cases:
        with open(os.path.join(corpus, case), encoding="utf-8") as f:
            text = f.read()
        # Comments and blank lines change nothing a builder does.
        body = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
        key = hashlib.sha256("\0".join(body + ["--"] + args.get(case, [])).encode()).hexdigest()
        if case in not_runnable:
            verdict[case] = not_runnable[case]
            continue
        if key in seen:
            verdict[case] = f"duplicate: the same Dockerfile and args as {seen[key]}"
            continue
        seen[key] = case
        target = next((a.split("=", 1)[1] for a in args.get(case, []) if a.startswith("--target=")), None)
        new, unmapped, needs = rewrite(text, bases, registry, target)
        if unmapped:
            verdict[case] = "no local base image: " + ", ".join(dict.fromkeys(unmapped))
            continue
        runs.append((case, new, needs))
    first, later = [], []
    for case, new, needs in runs:
        gone = [n for n in needs if n in verdict]
        if gone:
            verdict[case] = f"no local base image: built by {gone[0]}, which does not run here"
            continue
        d = os.path.join(out_dir, case)
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "Dockerfile"), "w", encoding="utf-8") as f:
            f.write(new)
        ignore = os.path.join(corpus, case + ".dockerignore")
        if os.path.exists(ignore):
            with open(ignore, "rb") as src, open(os.path.join(d, "Dockerfile.dockerignore"), "wb") as dst:
                dst.write(src.read())
        context, flags = ".", []
        for a in args.get(case, []):
            if a.startswith("--context="):
                context = a.split("=", 1)[1]
            else:
                flags.append(a)
        (later if needs else first).append("\t".join(["run", case, context] + flags))
    for line in first + later:
        print(line)
    for case in cases:
        if case in verdict:
            print(f"skip\t{case}\t{verdict[case]}")


if __name__ == "__main__":
    if len(sys.argv) != 5 or sys.argv[1] != "plan":
        sys.exit(__doc__)
    plan(*sys.argv[2:])
