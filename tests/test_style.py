"""The project's own conventions, checked where CI runs: ruff, snakefmt and snakemake --lint."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
PYTHON_DIRS = [
    d
    for d in ("src", "tests", "workflow", "benchmarks", "studies", "requirements")
    if (ROOT / d).is_dir()
]


def run(*args: str) -> subprocess.CompletedProcess:
    """Run a tool of the test environment from the repository root."""
    return subprocess.run(
        [str(BIN / args[0]), *args[1:]],
        cwd=ROOT,
        capture_output=True,
        encoding="utf-8",
        errors="replace",
        timeout=300,
    )


@pytest.mark.parametrize(
    "command",
    [
        ("ruff", "check", "--no-cache", *PYTHON_DIRS),
        ("ruff", "format", "--check", "--no-cache", *PYTHON_DIRS),
        ("snakefmt", "--check", "Snakefile", "workflow/rules"),
    ],
    ids=["ruff-check", "ruff-format", "snakefmt"],
)
def test_code_style_is_clean(command):
    result = run(*command)
    assert result.returncode == 0, result.stdout + result.stderr


def test_snakemake_lint_has_no_findings():
    result = run("snakemake", "--lint", "--cores", "1")
    output = result.stdout + result.stderr
    assert "Congratulations" in output, output


def _rule_blocks() -> dict[str, str]:
    """Each rule's text in workflow/rules, by rule name."""
    blocks = {}
    for path in sorted((ROOT / "workflow" / "rules").glob("*.smk")):
        parts = re.split(r"^(?:rule|checkpoint) (\w+):\n", path.read_text(), flags=re.MULTILINE)
        blocks.update(dict(zip(parts[1::2], parts[2::2], strict=True)))
    return blocks


def test_report_captions_name_only_their_rules_params():
    # A caption reading a param its rule lacks fails `snakemake --report` only at the very end.
    checked = 0
    for rule, text in _rule_blocks().items():
        params_block = re.search(r"^    params:\n((?:        .*\n)+)", text, flags=re.MULTILINE)
        params = (
            set(re.findall(r"^        (\w+)=", params_block.group(1), flags=re.MULTILINE))
            if params_block
            else set()
        )
        for caption in re.findall(r'caption="\.\./report/([\w.]+)"', text):
            used = re.findall(
                r"snakemake\.params\.(\w+)",
                (ROOT / "workflow" / "report" / caption).read_text(),
            )
            assert set(used) <= params, f"{caption} of rule {rule} uses {set(used) - params}"
            checked += 1
    assert checked > 20


def test_every_rule_that_runs_work_writes_a_benchmark_file():
    # Issue 30: the end-to-end benchmark and benchmarks/resources.py sum the run's CPU per stage
    # from results/benchmarks/<rule>/; a rule without one is CPU that no stage accounts for.
    blocks = _rule_blocks()
    assert len(blocks) > 50
    for rule, text in blocks.items():
        if "\n    log:\n" not in text:
            continue  # target rules (all, figures, ...) run nothing
        match = re.search(r'^    benchmark:\n        f?"results/benchmarks/(\w+)/', text, re.M)
        assert match, f"rule {rule} has a log but no benchmark under results/benchmarks/"
        assert match.group(1) == rule, f"rule {rule} writes its benchmark under {match.group(1)}"


def _scripts_by_rule() -> dict[str, Path]:
    """The `script:` file of each rule and checkpoint in the Snakefile and workflow/rules."""
    scripts = {}
    for path in [ROOT / "Snakefile", *sorted((ROOT / "workflow" / "rules").glob("*.smk"))]:
        parts = re.split(r"^(?:rule|checkpoint) (\w+):\n", path.read_text(), flags=re.MULTILINE)
        for rule, text in zip(parts[1::2], parts[2::2], strict=True):
            if match := re.search(r'^    script:\n        "([^"]+)"', text, flags=re.MULTILINE):
                scripts[rule] = (path.parent / match.group(1)).resolve().relative_to(ROOT)
    return scripts


def test_every_script_is_named_after_its_rule():
    # Issue 29: `rule fit_models` runs workflow/scripts/fit_models.py: each name finds the other.
    scripts = _scripts_by_rule()
    assert len(scripts) > 40
    for rule, script in scripts.items():
        assert script == Path("workflow", "scripts", f"{rule}.py"), f"rule {rule} runs {script}"
        assert (ROOT / script).is_file(), f"rule {rule}: {script} does not exist"


def test_every_script_belongs_to_exactly_one_rule():
    used = Counter(str(script) for script in _scripts_by_rule().values())
    on_disk = {str(p.relative_to(ROOT)) for p in (ROOT / "workflow" / "scripts").glob("*.py")}
    assert on_disk - set(used) == set(), "scripts no rule runs"
    assert {s for s, n in used.items() if n > 1} == set(), "scripts shared by rules"


def test_every_figure_rule_is_in_figures_smk():
    # One place for the rules `make figures` reruns; the stage files hold no *_figure rule.
    for path in (ROOT / "workflow" / "rules").glob("*.smk"):
        rules = re.findall(r"^(?:rule|checkpoint) (\w+_figure):", path.read_text(), re.MULTILINE)
        assert path.name == "figures.smk" or not rules, f"{path.name} holds {rules}"


def private_hccrad_names(path: Path) -> list[str]:
    """Names starting with `_` that a file imports from hccrad or reads off a hccrad module."""
    tree = ast.parse(path.read_text(), filename=str(path))
    bound, found = set(), []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "hccrad":
                    found += [part for part in alias.name.split(".") if part.startswith("_")]
                    bound.add(alias.asname or alias.name.split(".")[0])
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "hccrad":
            found += [part for part in node.module.split(".") if part.startswith("_")]
            for alias in node.names:
                if alias.name.startswith("_"):
                    found.append(alias.name)
                else:
                    bound.add(alias.asname or alias.name)
    # `train._fit` after `from hccrad.deep import train`; `hccrad.deep.train._fit` too
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr.startswith("_"):
            base = node.value
            while isinstance(base, ast.Attribute):
                base = base.value
            if isinstance(base, ast.Name) and base.id in bound:
                found.append(f"{ast.unparse(node)} (line {node.lineno})")
    return found


def test_private_hccrad_names_are_found(tmp_path):
    script = tmp_path / "script.py"
    script.write_text(
        "import hccrad.deep.train\nfrom hccrad.deep import train\n"
        "from hccrad.radiogenomics.correlate import _Product\n"
        "train._fit()\nhccrad.deep.train._loader()\nsuper()._fit_network()\n"
    )
    assert private_hccrad_names(script) == [
        "_Product",
        "train._fit (line 4)",
        "hccrad.deep.train._loader (line 5)",
    ]


@pytest.mark.parametrize("folder", ["benchmarks", "studies"])
def test_benchmarks_and_studies_use_public_hccrad_names_only(folder):
    # A benchmark measures, and a study reproduces, what users can call: a private helper can
    # change or vanish without notice, and the script would then measure something else.
    scripts = sorted((ROOT / folder).glob("*.py"))
    assert scripts
    private = {str(p.relative_to(ROOT)): private_hccrad_names(p) for p in scripts}
    assert not {name: found for name, found in private.items() if found}


PACKAGE = ROOT / "src" / "hccrad"
FIGURES = PACKAGE / "figures"
CLI = PACKAGE / "cli"
MAX_MODULE_LINES = 600


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports, at any depth: `from a.b import c` gives a.b and a.b.c."""
    modules = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            modules |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            modules.add(node.module)
            modules |= {f"{node.module}.{alias.name}" for alias in node.names}
    return modules


def imports_package(path: Path, package: str) -> bool:
    """Whether a file imports ``package`` or any module under it."""
    return any(m == package or m.startswith(f"{package}.") for m in imported_modules(path))


def test_imported_modules_are_found_at_any_depth(tmp_path):
    module = tmp_path / "module.py"
    module.write_text(
        "def draw():\n    from matplotlib.lines import Line2D\n"
        "if True:\n    import matplotlib.pyplot as plt\n"
        "from hccrad import figures\n"
    )
    assert imports_package(module, "matplotlib")
    assert imports_package(module, "hccrad.figures")
    assert not imports_package(module, "hccrad.fig")


def test_no_module_is_longer_than_the_limit():
    # Issue 29: a module over 600 lines mixes layers; split it into modules named for what
    # they know.
    lengths = {
        str(path.relative_to(ROOT)): len(path.read_text(encoding="utf-8").splitlines())
        for path in sorted(PACKAGE.rglob("*.py"))
    }
    offenders = {name: n for name, n in lengths.items() if n > MAX_MODULE_LINES}
    assert not offenders, f"modules over {MAX_MODULE_LINES} lines: {offenders}"


def subpackage_imports() -> dict[str, set[str]]:
    """hccrad subpackage -> the other subpackages its modules import (at any depth)."""
    edges: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE).parts
        if len(parts) < 2:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            for name in names:
                pieces = name.split(".")
                if pieces[0] == "hccrad" and len(pieces) > 1 and pieces[1] != parts[0]:
                    edges.setdefault(parts[0], set()).add(pieces[1])
    return edges


def test_subpackages_import_each_other_without_a_cycle():
    # Issue 29's layering (docs/architecture.md): core at the bottom, figures at the top; a
    # cycle between two packages (cohorts <-> imaging came back once) means a module sits in
    # the wrong package.
    edges = subpackage_imports()
    assert edges.get("core", set()) == set(), "core imports no other hccrad package"

    def reachable(start: str) -> set[str]:
        seen, todo = set(), [start]
        while todo:
            for nxt in edges.get(todo.pop(), set()) - seen:
                seen.add(nxt)
                todo.append(nxt)
        return seen

    cycles = sorted((a, b) for a, targets in edges.items() for b in targets if a in reachable(b))
    assert not cycles, f"package cycles: {cycles}"


def test_only_figures_draw_and_nothing_else_imports_figures():
    # matplotlib is slow to import and drawing is a layer of its own: the computing modules
    # neither draw nor depend on the figures that show their results.
    # hccrad.cli is the console layer above the figures (wiring, as workflow/scripts): it hands
    # the library the drawing functions, so it alone may import them.
    outside = [
        p
        for p in sorted(PACKAGE.rglob("*.py"))
        if not p.is_relative_to(FIGURES) and not p.is_relative_to(CLI)
    ]
    assert outside
    drawing = [str(p.relative_to(ROOT)) for p in outside if imports_package(p, "matplotlib")]
    assert not drawing, f"modules outside hccrad.figures import matplotlib: {drawing}"
    upward = [str(p.relative_to(ROOT)) for p in outside if imports_package(p, "hccrad.figures")]
    assert not upward, f"modules outside hccrad.figures import hccrad.figures: {upward}"


def test_drawing_and_result_tables_import_no_torch():
    # torch and MONAI take ~2.5-3 s to import: a job that draws a figure or builds a table from
    # results must not pay it (issue 30). Only the networks' own modules import them.
    modules = [
        ".".join(p.relative_to(ROOT / "src").with_suffix("").parts)
        for folder in (FIGURES, PACKAGE / "reporting")
        for p in sorted(folder.glob("*.py"))
        if p.stem != "__init__"
    ] + ["hccrad.segment.evaluate", "hccrad.segment.config", "hccrad.deep.cam_panels"]
    code = (
        "import importlib, sys\n"
        "for name in sys.argv[1:]:\n"
        "    importlib.import_module(name)\n"
        "print(sorted(m for m in ('torch', 'monai') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, *modules],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]", f"importing {modules} loads {result.stdout}"


# Backticked words of docs/architecture.md that name repository files; placeholders skipped.
REPO_PREFIXES = (
    "src/",
    "workflow/",
    "config/",
    "resources/",
    "tests/",
    "benchmarks/",
    "envs/",
    "profiles/",
)


def test_architecture_page_names_only_existing_paths():
    page = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    paths = [
        word
        for word in re.findall(r"`([^`\s]+)`", page)
        if word.startswith(REPO_PREFIXES) and not set(word) & set("<{*")
    ]
    assert len(paths) > 50, paths
    missing = sorted({p for p in paths if not (ROOT / p).exists()})
    assert not missing, f"docs/architecture.md names paths that do not exist: {missing}"


# Tests read the project's shared real data (conftest.SHARED); CI's script says it is there.
OUTSIDE_CLONE_ALLOWED = ("tests/", ".ci/run")


def test_nothing_refers_to_files_outside_the_clone():
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=False)
    if listed.returncode != 0:
        pytest.skip("not a git checkout: no list of tracked files")
    offenders = []
    for name in listed.stdout.decode().split("\0"):
        path = ROOT / name
        if not name or name.startswith(OUTSIDE_CLONE_ALLOWED) or not path.is_file():
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue  # binary data
        offenders += [
            f"{name}: {needle}" for needle in ("../shared", "DESIGN.md") if needle in text
        ]
    assert not offenders, offenders
