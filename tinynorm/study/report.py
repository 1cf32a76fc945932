"""What the study writes: each experiment's JSON, its table and verdicts on the terminal, and
``summary.md`` with every table, verdict and plot."""
import json
import os


def records(planned, results):
    """The JSON records of an experiment: one per planned record, in plan order."""
    from .runs import run_key
    out = []
    for p in planned:
        res = results[run_key(p.spec)]
        out.append({"params": dict(p.params), "seed": p.seed, "test_accuracy": res[p.field],
                    "curve": res["curve"]})
    return out


def document(experiment, recs, verdicts):
    """The experiment's JSON document, with exactly the interface's keys."""
    return {"experiment": experiment.NAME, "claim": experiment.CLAIM, "runs": recs,
            "verdicts": verdicts}


def write_json(path, doc):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(doc, f, indent=1, allow_nan=False)
        f.write("\n")
    os.replace(tmp, path)


def verdict_line(v):
    return f"{'HOLDS' if v['holds'] else 'DOES NOT HOLD'}: {v['claim']} ({v['evidence']})"


def terminal(experiment, table, verdicts):
    lines = [f"== {experiment.NAME} ==", experiment.CLAIM, "", table.text(), ""]
    lines += [verdict_line(v) for v in verdicts]
    return "\n".join(lines) + "\n"


def summary(sections, settings):
    """``summary.md``: ``sections`` is a list of (experiment, table, verdicts, plot file or None)."""
    lines = ["# tinynorm study", "", settings, ""]
    held = sum(v["holds"] for _, _, vs, _ in sections for v in vs)
    total = sum(len(vs) for _, _, vs, _ in sections)
    lines += [f"{held} of {total} verdicts hold.", ""]
    for exp, table, verdicts, plot in sections:
        lines += [f"## {exp.NAME}", "", exp.CLAIM, "", table.markdown(), ""]
        lines += [f"- **{'holds' if v['holds'] else 'does not hold'}**: {v['claim']} "
                  f"({v['evidence']})" for v in verdicts]
        lines.append("")
        if plot:
            lines += [f"![{exp.NAME}]({plot})", ""]
    return "\n".join(lines)
