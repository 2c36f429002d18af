"""The README stays true: its Python examples run and print what it shows, and its links resolve."""

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = ROOT / "docs"

FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
NUMBER = re.compile(r"-?\d+\.\d+")


def fenced_blocks(text):
    """``[(language, body)]`` of the fenced code blocks, in order."""
    return [(m.group(1), m.group(2)) for m in FENCE.finditer(text)]


def python_examples(text):
    """``[(code, shown_output)]``: each ``python`` block and the plain block right after it ("" if none)."""
    blocks = fenced_blocks(text)
    examples = []
    for i, (language, body) in enumerate(blocks):
        if language == "python":
            following = blocks[i + 1] if i + 1 < len(blocks) else None
            shown = following[1] if following is not None and following[0] == "" else ""
            examples.append((body, shown))
    return examples


def test_readme_is_short():
    assert len(README.read_text().splitlines()) <= 200


def test_readme_python_examples_run_and_print_what_the_readme_shows(tmp_path):
    """All python blocks run in order in one fresh interpreter, as a reader pastes them; each block's
    printed lines match the output block shown after it (numbers within 0.01)."""
    examples = python_examples(README.read_text())
    assert examples, "the README has no python example"
    run_examples(examples, tmp_path)


def test_docs_sequence_evaluator_examples_run_and_print_what_they_show(tmp_path):
    """docs/planners.md's black-box section, as the README's examples (its MuJoCo block only with the mujoco extra)."""
    text = (DOCS / "planners.md").read_text().split("## Black-box simulators: sequence evaluators")[1].split("\n## ")[0]
    examples = python_examples(text)
    assert len(examples) == 2 and "mujoco_true" in examples[1][0]
    have_mujoco = all(importlib.util.find_spec(m) is not None for m in ("mujoco", "gymnasium"))
    run_examples(examples if have_mujoco else examples[:1], tmp_path)


def run_examples(examples, tmp_path):
    """Run ``[(code, shown_output)]`` in order in one fresh interpreter; each block prints what it shows."""
    marker = "=== wmplan readme block ==="
    script = "".join(
        f"print({marker!r}, flush=True)\nexec(compile({code!r}, 'README block {i}', 'exec'))\n"
        for i, (code, _) in enumerate(examples)
    )
    env = dict(os.environ, WMPLAN_HOME=str(tmp_path / "home"))
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    printed = done.stdout.split(marker + "\n")[1:]
    assert len(printed) == len(examples)
    for i, ((_, shown), out) in enumerate(zip(examples, printed)):
        got, want = out.strip().splitlines(), shown.strip().splitlines()
        assert len(got) == len(want), f"block {i} printed {got}, the README shows {want}"
        for g, w in zip(got, want):
            assert NUMBER.sub("#", g) == NUMBER.sub("#", w), f"block {i}: {g!r} vs {w!r}"
            for a, b in zip(NUMBER.findall(g), NUMBER.findall(w)):
                assert abs(float(a) - float(b)) <= 0.01, f"block {i}: {g!r} vs {w!r}"


def heading_anchors(path):
    """GitHub's anchors for the headings of a markdown file (outside code blocks)."""
    text = FENCE.sub("", path.read_text())
    anchors = set()
    for line in text.splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            anchors.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return anchors


def relative_links(path):
    """The relative link targets of a markdown file (outside code blocks)."""
    text = FENCE.sub("", path.read_text())
    return [t for t in LINK.findall(text) if not re.match(r"[a-z]+:", t)]


def test_every_relative_link_and_image_exists_with_its_anchor():
    for page in [README, *sorted(DOCS.glob("*.md"))]:
        for target in relative_links(page):
            file, _, anchor = target.partition("#")
            resolved = (page.parent / file).resolve() if file else page
            assert resolved.is_file(), f"{page.name}: {target} does not exist"
            if anchor:
                assert anchor in heading_anchors(resolved), f"{page.name}: no heading for {target}"


def test_every_docs_page_is_linked_from_the_readme():
    linked = {(ROOT / t.partition("#")[0]).resolve() for t in relative_links(README)}
    pages = sorted(DOCS.glob("*.md"))
    assert pages
    for page in pages:
        assert page.resolve() in linked, f"docs/{page.name} is not linked from the README"
