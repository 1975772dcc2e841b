"""The documentation site stays complete: no mkdocs build, no mkdocs import.

* every public name of ``applications``, ``training``, ``export`` and ``data``
  has an API page (a ``:::`` directive on it, or on its module listing it in
  ``members``), and every directive names something that exists;
* every page in ``docs/`` is in the ``mkdocs.yml`` nav, and every nav entry
  is a page;
* every tutorial in ``tutorials/`` is on the course map (skipped while there
  are none);
* every figure a page shows exists, and every figure is shown.
"""

import importlib
import importlib.util
import inspect
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
API = DOCS / "api"
TUTORIALS = ROOT / "tutorials"
DOCUMENTED_PACKAGES = ("applications", "training", "export", "data", "understanding")
TUTORIAL_GLOB = "[0-9][0-9]_*.py"


def load_hooks():
    spec = importlib.util.spec_from_file_location("kcc_docs_hooks", DOCS / "hooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def public_names(package):
    """``__all__`` plus any public function or class of the package imported into it."""
    names = set(getattr(package, "__all__", ()))
    for name, value in vars(package).items():
        if name.startswith("_") or not (inspect.isfunction(value) or inspect.isclass(value)):
            continue
        if getattr(value, "__module__", "").startswith("keras_cv_course"):
            names.add(name)
    return names


def parse_directives(text):
    """``[(identifier, members or None)]`` of the ``:::`` directives of a page."""
    directives, lines = [], text.splitlines()
    for index, line in enumerate(lines):
        match = re.match(r"^::: ([\w.]+)\s*$", line)
        if not match:
            continue
        options = []
        for follow in lines[index + 1:]:
            if follow.strip() and not follow.startswith(" "):
                break
            options.append(follow)
        directives.append((match.group(1), _members(options)))
    return directives


def _members(options):
    for index, line in enumerate(options):
        match = re.match(r"^(\s*)members:\s*(.*)$", line)
        if not match:
            continue
        inline = match.group(2).strip()
        if inline.startswith("["):
            return [name.strip() for name in inline.strip("[]").split(",") if name.strip()]
        if inline:  # members: true / false
            return None
        names = []
        for item in options[index + 1:]:
            entry = re.match(r"^\s+-\s+(\w+)\s*$", item)
            if not entry:
                break
            names.append(entry.group(1))
        return names
    return None


def all_directives():
    found = []
    for page in sorted(API.rglob("*.md")):
        found += [(page, *directive) for directive in
                  parse_directives(page.read_text(encoding="utf-8"))]
    return found


def resolve(identifier):
    """Imports a directive's identifier: a module, or an attribute of one."""
    parts = identifier.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for attribute in parts[cut:]:
            obj = getattr(obj, attribute)
        return obj
    raise ImportError(identifier)


def test_parse_directives_reads_both_forms():
    page = ("# t\n\n::: keras_cv_course.data.pipeline\n\n"
            "::: keras_cv_course.layers\n    options:\n      members:\n        - BatchNorm\n"
            "        - GELU\n\n::: keras_cv_course.tasks\n    options:\n"
            "      members: [Task, get_task]\ntext\n")
    assert parse_directives(page) == [("keras_cv_course.data.pipeline", None),
                                      ("keras_cv_course.layers", ["BatchNorm", "GELU"]),
                                      ("keras_cv_course.tasks", ["Task", "get_task"])]


def documented_objects():
    """``(identifiers, objects)``: what the API pages' directives render.

    A directive renders the object its identifier resolves to, and with a
    ``members`` list those members of it. Functions and classes are matched
    by identity, so a directive whose identifier resolves to something else
    (``keras_cv_course.training.train`` is the module ``train.py``, not the
    function that the package re-exports under that name) does not count.
    """
    identifiers, objects = set(), []
    for _, identifier, members in all_directives():
        identifiers.add(identifier)
        obj = resolve(identifier)
        objects.append(obj)
        for member in members or ():
            identifiers.add(f"{identifier}.{member}")
            objects.append(getattr(obj, member))
    return identifiers, objects


@pytest.mark.parametrize("package_name", DOCUMENTED_PACKAGES)
def test_every_public_name_has_an_api_entry(package_name):
    module = f"keras_cv_course.{package_name}"
    package = importlib.import_module(module)
    identifiers, objects = documented_objects()
    missing = []
    for name in sorted(public_names(package)):
        value = getattr(package, name)
        if inspect.isfunction(value) or inspect.isclass(value):
            found = any(obj is value for obj in objects)
        else:  # constants: by the package's own path
            found = f"{module}.{name}" in identifiers
        if not found:
            missing.append(name)
    assert not missing, (f"{module}: no API page has a ::: directive for {missing}; add "
                         f"'::: {module}.NAME' (or its defining module's path) to a page "
                         "in docs/api/")


def test_every_directive_names_something_that_exists():
    broken = []
    for page, identifier, members in all_directives():
        try:
            obj = resolve(identifier)
            for member in members or ():
                getattr(obj, member)
        except (ImportError, AttributeError) as error:
            broken.append(f"{page.relative_to(ROOT)}: {identifier} ({error})")
    assert not broken, "directives that do not resolve:\n" + "\n".join(broken)


def nav_entries():
    """The page paths of the ``nav:`` section of mkdocs.yml, in order."""
    lines = (ROOT / "mkdocs.yml").read_text(encoding="utf-8").splitlines()
    start = lines.index("nav:")
    entries = []
    for line in lines[start + 1:]:
        if line.strip() and not line.startswith((" ", "-")):
            break
        match = re.search(r"([\w./-]+\.(?:md|py))\s*$", line)
        if match:
            entries.append(match.group(1))
    return entries


def doc_pages():
    """Every page the site builds: Markdown in docs/ and the tutorials."""
    pages = {str(path.relative_to(DOCS)) for path in DOCS.rglob("*.md")
             if "tutorials" not in path.relative_to(DOCS).parts}
    pages |= {f"tutorials/{name}" for name in tutorial_files()}
    return pages


def tutorial_files():
    return sorted(path.name for path in TUTORIALS.glob(TUTORIAL_GLOB)) if TUTORIALS.is_dir() \
        else []


def test_every_page_is_in_the_nav_and_every_nav_entry_is_a_page():
    entries = nav_entries()
    assert len(entries) == len(set(entries)), "a page is in the nav twice"
    pages = doc_pages()
    not_in_nav = sorted(pages - set(entries))
    tutorials_pending = {entry for entry in entries
                         if entry.startswith("tutorials/") and not tutorial_files()}
    not_a_page = sorted(set(entries) - pages - tutorials_pending)
    assert not not_in_nav, f"pages missing from the mkdocs.yml nav: {not_in_nav}"
    assert not not_a_page, f"nav entries with no page: {not_a_page}"


def test_tutorials_are_linked_into_docs():
    link = DOCS / "tutorials"
    assert link.is_symlink() and Path(link.readlink()) == Path("../tutorials"), \
        "docs/tutorials must be a symlink to ../tutorials"


def test_every_tutorial_is_on_the_course_map():
    tutorials = tutorial_files()
    if not tutorials:
        pytest.skip("tutorials/ has no tutorials yet")
    hooks = load_hooks()
    course_map = hooks.course_map_markdown()
    missing = [name for name in tutorials if f"](tutorials/{name})" not in course_map]
    assert not missing, (f"tutorials not on the course map: {missing}; add them to LECTURES "
                         "in docs/hooks.py")


def test_course_map_rows_name_registered_models():
    hooks = load_hooks()
    course_map = hooks.course_map_markdown()
    assert len(hooks.LECTURES) == len(hooks.tutorial_files())
    for row in hooks.LECTURES:
        assert f"**{row['lecture']}**" in course_map
    assert "`resnet18`" in course_map and "`fcn8s`" in course_map and "`conv_vae`" in course_map
    assert "`yolo_v1`" in course_map and "`fcos_resnet50_fpn`" in course_map
    bad = dict(hooks.LECTURES[0], families=("no_such_family",))
    with pytest.raises(ValueError, match="no_such_family"):
        hooks.lecture_models(bad, hooks._registry())


def test_model_table_comes_from_the_readme():
    hooks = load_hooks()
    table = hooks.readme_model_table()
    assert table.startswith("| model |") and "`resnet50`" in table
    assert hooks.MODEL_TABLE_MARKER in (DOCS / "models.md").read_text(encoding="utf-8")


def referenced_images(page):
    text = page.read_text(encoding="utf-8")
    targets = re.findall(r"!\[[^\]]*\]\(([^)\s]+)", text)
    targets += re.findall(r"<img[^>]+src=\"([^\"]+)\"", text)
    return [target for target in targets if not target.startswith(("http:", "https:"))]


def test_every_referenced_figure_exists_and_every_figure_is_shown():
    shown, missing = set(), []
    for page in DOCS.rglob("*.md"):
        for target in referenced_images(page):
            path = (page.parent / target).resolve()
            shown.add(path)
            if not path.is_file():
                missing.append(f"{page.relative_to(ROOT)}: {target}")
    assert not missing, f"figures that do not exist: {missing}"
    unshown = sorted(str(path.relative_to(ROOT)) for path in (DOCS / "figures").glob("*.png")
                     if path.resolve() not in shown)
    assert not unshown, f"figures no page shows (add them to docs/figures.md): {unshown}"


def test_docs_extra_and_execution_switch(monkeypatch):
    setup = (ROOT / "setup.py").read_text(encoding="utf-8")
    for package in ("mkdocs-material", "mkdocstrings", "mkdocs-jupyter", "ipykernel",
                    "jupytext"):
        assert f'"{package}' in setup, f"the docs extra of setup.py lacks {package}"
    config = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    assert "execute: !ENV [KCC_DOCS_EXECUTE, false]" in config
    hooks = load_hooks()
    monkeypatch.delenv("KCC_FAST", raising=False)
    monkeypatch.setenv("KCC_DOCS_EXECUTE", "false")
    hooks.on_config({})
    assert not hooks.executing() and "KCC_FAST" not in hooks.os.environ
    monkeypatch.setenv("KCC_DOCS_EXECUTE", "true")
    hooks.on_config({})
    assert hooks.executing() and hooks.os.environ["KCC_FAST"] == "1"


def test_tensorflow_start_up_logs_are_dropped_from_tutorial_pages():
    hooks = load_hooks()

    def stderr(text):
        return ('<div class="jp-OutputArea-child">\n<div class="jp-OutputPrompt '
                'jp-OutputArea-prompt"></div>\n<div class="jp-RenderedText jp-OutputArea-output" '
                'data-mime-type="application/vnd.jupyter.stderr" tabindex="0">\n'
                f"<pre>{text}</pre>\n</div>\n</div>")

    noise = ("WARNING: All log messages before absl::InitializeLog() is called are written to "
             "STDERR\nI0000 00:00:1795816972.354321    3715 cudart_stub.cc:31] Could not find "
             "cuda drivers on your machine, GPU will not be used.\n")
    assert hooks.strip_native_logs("<p>a</p>" + stderr(noise)) == "<p>a</p>"
    kept = hooks.strip_native_logs(stderr(noise + "UserWarning: x &lt; y\n"))
    assert kept == stderr("UserWarning: x &lt; y\n")
