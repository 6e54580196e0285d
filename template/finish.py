"""copier's task (copier.yml): fit a freshly rendered project to its answers. Runs in the project.

`python finish.py PROJECT_NAME example=True gpu=False ...`, with the standard library only (it runs
on copier's Python). copier runs it after every render, `copier update`'s old and new ones too, so
it does the same on the same input every time:

- with `example=False`, the minimal app of template/minimal/ goes in (the example is excluded);
- in the files below, a block between `<!-- if NAME -->` and `<!-- endif NAME -->` lines (`# if
  NAME` and `# endif NAME` in a Dockerfile, a workflow, .env.example or .gitignore, `// if NAME`
  and `// endif NAME` in a devcontainer.json), a single line ending in `<!-- if NAME -->`, or a
  span of a line between `<!-- if NAME -->` and `<!-- endif NAME -->` (never at the line's start,
  where Markdown would take the rest of the line for HTML), stays where NAME was answered true and
  goes where it was false; a block between `<!-- if not NAME` and `endif not NAME -->` (a comment,
  unseen in the template's own README) the other way round. The markers go either way. NAME
  `template` is false in every project: what only the template's own README says;
- an optional flag named after a question, ` [--gpu]` in a task's synopsis (a code span, where a
  marker would show), goes where that question was answered false;
- the README's title becomes the project's name.
"""

import re
import shutil
import sys
from pathlib import Path

TEMPLATE = Path(__file__).resolve().parent
MARKED = (
    "README.md",
    "Dockerfile",
    "Dockerfile.gpu",
    ".env.example",
    ".gitignore",
    "docs/*.md",
    ".github/workflows/*.y*ml",
    ".devcontainer/**/devcontainer.json",
)
_BEGIN = re.compile(r"^\s*(?:<!--|#|//)\s*if (not )?(\w+)\s*(?:-->)?\s*$")
_END = re.compile(r"^\s*(?:<!--|#|//)?\s*endif (?:not )?(\w+)\s*(?:-->)?\s*$")
_LINE = re.compile(r"\s*<!--\s*if (\w+)\s*-->\s*$")
_SPAN = re.compile(r"<!--\s*if (\w+)\s*-->(.*?)<!--\s*endif \1\s*-->")
_FLAG = re.compile(r" \[--(\w+)\]")


def _keep_spans(line: str, answers: dict[str, bool]) -> str:
    """The line without its spans of what was answered false, spans inside spans too."""
    while (fitted := _SPAN.sub(lambda span: span[2] if answers[span[1]] else "", line)) != line:
        line = fitted
    return line


def keep_answered(text: str, answers: dict[str, bool]) -> str:
    """The text without the blocks and lines of what was answered false, and without the markers."""
    kept, dropping = [], []
    for line in text.splitlines(keepends=True):
        if begin := _BEGIN.match(line):
            negated, name = begin[1] is not None, begin[2]
            dropping.append(answers[name] == negated)
        elif _END.match(line):
            dropping.pop()
        elif any(dropping):
            continue
        else:
            line = _keep_spans(line, answers)
            line = _FLAG.sub(lambda flag: "" if answers.get(flag[1]) is False else flag[0], line)
            if single := _LINE.search(line):
                if answers[single[1]]:
                    kept.append(line[: single.start()] + "\n" * line.endswith("\n"))
            else:
                kept.append(line)
    return "".join(kept)


def main(project_name: str, *pairs: str) -> None:
    answers = {key: value == "True" for key, value in (pair.split("=", 1) for pair in pairs)}
    answers["template"] = False
    project = Path.cwd()
    if not answers["example"]:
        shutil.copytree(TEMPLATE / "minimal", project, dirs_exist_ok=True)
    for pattern in MARKED:
        for path in project.glob(pattern):
            path.write_text(keep_answered(path.read_text(encoding="utf-8"), answers), "utf-8")
    readme = project / "README.md"
    title, rest = readme.read_text(encoding="utf-8").split("\n", 1)
    readme.write_text(f"# {project_name}\n{rest}", encoding="utf-8")


if __name__ == "__main__":
    main(*sys.argv[1:])
