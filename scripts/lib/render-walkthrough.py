#!/usr/bin/env python3
"""Renders docs/integration.md: the template with each {{label}} replaced by the command and
reply that scripts/control-plane-walkthrough.sh recorded under that label ("@@ label" lines).
Fails when the template names a step the run did not record, or a step is never used.

usage: render-walkthrough.py TEMPLATE STEPS
"""
import re, sys


def main():
    template_path, steps_path = sys.argv[1], sys.argv[2]
    steps, label = {}, None
    for line in open(steps_path, encoding="utf-8").read().split("\n"):
        if line.startswith("@@ "):
            label = line[3:].strip()
            steps[label] = []
        elif label is not None:
            steps[label].append(line)
    template = open(template_path, encoding="utf-8").read()
    used = set()

    def block(match):
        name = match.group(1)
        if name not in steps:
            sys.exit(f"render-walkthrough: the run recorded no step '{name}'")
        used.add(name)
        lines = steps[name]
        while lines and lines[-1] == "":
            lines = lines[:-1]
        return "```\n" + "\n".join(lines) + "\n```"

    page = re.sub(r"\{\{([a-z0-9-]+)\}\}", block, template)
    unused = sorted(set(steps) - used)
    if unused:
        sys.exit(f"render-walkthrough: steps not placed in the template: {', '.join(unused)}")
    sys.stdout.write(page)


if __name__ == "__main__":
    main()
