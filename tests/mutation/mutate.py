"""Mutation testing of the modules that keep a run safe: ``python tests/mutation/mutate.py MODULE...``.

mutmut (3.x) changes one thing at a time in a module (flips a comparison, drops a condition,
returns the other value) and runs the tests that reach the changed function; a mutant no test
notices is a gap in the tests. Each module is tested with its own fast test selection (and its
doctests), declared once in ``pyproject.toml`` under ``[tool.panda.mutation]``; ``[tool.mutmut]``
there holds the settings every module shares.

mutmut reads its configuration from the current directory's ``pyproject.toml`` and works in
``./mutants``, so each module gets a scratch root ``mutants/<module>/`` (git ignores ``mutants/``)
holding links to ``trainer``, ``app`` and ``tests`` and a ``pyproject.toml`` with that module's
``only_mutate`` and test selection. A fresh run each time; ``--keep``, after adding tests (not after
changing the module), tests only the last run's survivors again.

Survivors judged equivalent, or changing only a message's wording, are listed in
``tests/mutation/accepted.toml`` by function and changed lines (not by mutmut's numbered name,
which shifts when the function is edited) and do not count. The command prints, per module,
mutants / killed / survived / no tests / accepted / score, where score = killed / (mutants -
accepted), and exits 1 when a score is below ``--min`` (90 %). Unaccepted survivors are printed
as TOML entries to paste into ``accepted.toml`` (with a reason) or to kill with a test.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ACCEPTED = Path(__file__).with_name("accepted.toml")
#: Folders linked into each scratch root: mutmut copies them into its ``mutants/``.
LINKED = ("trainer", "app", "tests")
#: mutmut's exit-code verdicts, folded into the columns this command reports.
VERDICTS = {1: "killed", 3: "killed", 36: "killed", 37: "killed", -24: "killed", 24: "killed",
            152: "killed", 255: "killed", 0: "survived", 5: "no tests", 33: "no tests", 34: "skipped"}


def project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def selections() -> dict[str, list[str]]:
    """Module path -> the pytest arguments that select its fast tests (pyproject's table)."""
    return project()["tool"]["panda"]["mutation"]


def _toml_table(name: str, table: dict) -> str:
    # JSON's strings, numbers, booleans and arrays of them are valid TOML values
    return f"[{name}]\n" + "".join(f"{k} = {json.dumps(v, ensure_ascii=False)}\n" for k, v in table.items())


def scratch_root(module: str, tests: list[str], keep: bool) -> Path:
    """``mutants/<module>/``: links to the sources and a pyproject.toml for this module alone."""
    root = ROOT / "mutants" / module.replace("/", "_").removesuffix(".py")
    if root.exists() and not keep:
        shutil.rmtree(root)
    root.mkdir(parents=True, exist_ok=True)
    for name in LINKED:
        if not (root / name).exists():
            (root / name).symlink_to(ROOT / name, target_is_directory=True)
    tool = project()["tool"]
    mutmut = dict(tool["mutmut"], only_mutate=[module], pytest_add_cli_args_test_selection=tests)
    text = _toml_table("tool.mutmut", mutmut) + _toml_table("tool.pytest.ini_options", tool["pytest"]["ini_options"])
    (root / "pyproject.toml").write_text(text, encoding="utf-8")
    return root


def run_mutmut(root: Path, max_children: int, mutants: list[str]) -> None:
    """mutmut's own ``run`` in ``root``, of all mutants or only ``mutants`` (its console entry point:
    ``python -m mutmut`` re-imports itself)."""
    code = "import sys; from mutmut.__main__ import cli; sys.exit(cli())"
    args = [sys.executable, "-c", code, "run", "--max-children", str(max_children), *mutants]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # mutmut puts its mutants first itself
    done = subprocess.run(args, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if done.returncode != 0:
        sys.stdout.write(done.stdout[-6000:])
        raise SystemExit(f"mutmut failed in {root} (exit {done.returncode})")


def verdicts(root: Path, module: str) -> dict[str, str]:
    meta = json.loads((root / "mutants" / (module + ".meta")).read_text(encoding="utf-8"))
    return {name: VERDICTS.get(code, "suspicious") for name, code in meta["exit_code_by_key"].items()}


def function_of(mutant: str) -> str:
    """The function a mutant changes, without mutmut's number (which shifts when the function is edited).

    >>> function_of("trainer.contract.options.xǁOptionǁcheck__mutmut_12")
    'trainer.contract.options.xǁOptionǁcheck'
    """
    return mutant.rpartition("__mutmut_")[0]


def changes(root: Path, mutants: list[str]) -> dict[str, tuple[str, str]]:
    """Each mutant's removed and added lines (stripped): its name-independent identity."""
    if not mutants:
        return {}
    code = ("import json, sys; from mutmut.mutation.diff_apply import get_diff_for_mutant, find_mutant\n"
            "out = {n: get_diff_for_mutant(n, path=find_mutant(n).path) for n in sys.argv[1:]}\n"
            "print(json.dumps(out))")
    done = subprocess.run([sys.executable, "-c", code, *mutants], cwd=root, capture_output=True, text=True,
                          check=True)
    out = {}
    for name, diff in json.loads(done.stdout.splitlines()[-1]).items():
        lines = diff.splitlines()[2:]  # after the ---/+++ header
        was = "\n".join(l[1:].strip() for l in lines if l.startswith("-"))
        now = "\n".join(l[1:].strip() for l in lines if l.startswith("+"))
        out[name] = (was, now)
    return out


def accepted_keys() -> dict[tuple[str, str, str], str]:
    entries = tomllib.loads(ACCEPTED.read_text(encoding="utf-8")).get("accepted", []) if ACCEPTED.exists() else []
    return {(e["function"], e["was"], e["now"]): e["why"] for e in entries if e["why"].strip()}  # no reason, no pass


def _toml_str(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def mutate_module(module: str, tests: list[str], args) -> dict:
    started = time.monotonic()
    root = scratch_root(module, tests, args.keep)
    meta = root / "mutants" / (module + ".meta")
    again = [n for n, v in verdicts(root, module).items() if v != "killed"] if meta.exists() else []
    if not meta.exists() or again:
        run_mutmut(root, args.max_children, again)
    found = verdicts(root, module)
    open_ones = [n for n, v in found.items() if v in ("survived", "no tests", "suspicious")]
    diffs = changes(root, open_ones)
    accepted = accepted_keys()
    counts = {v: 0 for v in ("killed", "survived", "no tests", "suspicious", "skipped", "accepted")}
    unexplained, matched = [], set()
    for name, verdict in found.items():
        counts[verdict] += 1
        if name in diffs:
            key = (function_of(name), *diffs[name])
            if key in accepted:
                counts["accepted"] += 1
                matched.add(key)
            else:
                unexplained.append(name)
    prefix = module.removesuffix(".py").replace("/", ".") + "."
    for function, was, now in sorted(set(accepted) - matched):
        if function.startswith(prefix):  # the code or the tests changed: the entry can go
            print(f"# stale entry in accepted.toml (no such survivor now): {function}: {was!r} -> {now!r}")
    counted = len(found) - counts["accepted"] - counts["skipped"]
    score = counts["killed"] / counted if counted else 1.0
    for name in sorted(unexplained):
        was, now = diffs[name]
        print(f"# {found[name]}: {name}\n[[accepted]]\nfunction = {_toml_str(function_of(name))}\n"
              f"was = {_toml_str(was)}\nnow = {_toml_str(now)}\nwhy = \"\"\n")
    return dict(module=module, mutants=len(found), score=score, seconds=time.monotonic() - started, **counts)


def main(argv: list[str] | None = None) -> int:
    table = selections()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("modules", nargs="*", metavar="MODULE", help=f"of {', '.join(table)} (default: all)")
    parser.add_argument("--max-children", type=int, default=2, help="mutants tested at once (default 2)")
    parser.add_argument("--min", type=float, default=90.0, help="the lowest passing score, in %% (default 90)")
    parser.add_argument("--keep", action="store_true",
                        help="after changing tests only: keep the last run's mutants and kills, test the rest again")
    args = parser.parse_args(argv)
    unknown = [m for m in args.modules if m not in table]
    if unknown:
        parser.error(f"no test selection for {', '.join(unknown)} in pyproject.toml [tool.panda.mutation]")
    rows = [mutate_module(m, table[m], args) for m in args.modules or table]
    print(f"| module | mutants | killed | survived | no tests | accepted | score | time |\n|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| `{r['module']}` | {r['mutants']} | {r['killed']} | {r['survived']} | {r['no tests']} "
              f"| {r['accepted']} | {100 * r['score']:.1f} % | {r['seconds']:.0f} s |")
    low = [r["module"] for r in rows if 100 * r["score"] < args.min]
    if low:
        print(f"mutation score below {args.min:g} %: {', '.join(low)}")
    return 1 if low else 0


if __name__ == "__main__":
    sys.exit(main())
