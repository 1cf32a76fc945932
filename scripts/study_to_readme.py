"""Copy a study's summary and plots into the README's "What the study shows" section.

    tinynorm study --out study && python scripts/study_to_readme.py study

The section between the README's study markers is replaced by ``OUT/summary.md``
(headings moved down a level, plot links pointed at docs/study/), and the PNGs
are copied to docs/study/. Nothing in the section is typed by hand.
"""
import os
import re
import shutil
import sys

BEGIN, END = "<!-- study:begin -->", "<!-- study:end -->"


def main(out):
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with open(os.path.join(out, "summary.md")) as f:
        summary = f.read()
    body = summary.split("\n", 2)[2]
    body = re.sub(r"^## ", "#### ", body, flags=re.M)
    body = re.sub(r"!\[([^]]*)\]\(([^)]+\.png)\)", r"![\1](docs/study/\2)", body)
    os.makedirs(os.path.join(root, "docs", "study"), exist_ok=True)
    for name in os.listdir(out):
        if name.endswith(".png"):
            shutil.copy(os.path.join(out, name), os.path.join(root, "docs", "study", name))
    readme = os.path.join(root, "README.md")
    with open(readme) as f:
        text = f.read()
    if BEGIN not in text or END not in text:
        raise SystemExit(f"README.md has no {BEGIN} ... {END} section")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    with open(readme, "w") as f:
        f.write(head + BEGIN + "\n" + body.strip() + "\n" + END + tail)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "study")
