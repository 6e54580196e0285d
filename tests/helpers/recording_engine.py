"""An Engine whose answers are scripted and whose commands are recorded: the pipelines' decisions,
tested without a container engine."""

from __future__ import annotations

import subprocess

from devkit.engine import Engine, Outcome

# Unless a test scripts otherwise: the engine runs, and a base image pulls.
_RUNNING_ENGINE = {
    "version --format {{.Server.Version}}": (0, "20.10.24\n", ""),
    " pull ": (0, "", ""),
}


class RecordingEngine(Engine):
    """Answers each query and action by the first scripted pattern found in its command line.

    answers: {pattern: (exit status, stdout, stderr)} for queries (default: exit 1, nothing there);
    a pattern that ends in `$` matches the end of a command line only.
    outcomes: {pattern: Outcome} for actions (default: success). `log` lists every command in order,
    as ("query" or "action", its command line).
    """

    def __init__(
        self, *, dry: bool = False, answers=None, outcomes=None, docker: str = "docker"
    ) -> None:
        super().__init__(docker)
        self._dry = dry
        self.answers = dict(answers or {})
        self.outcomes = outcomes or {}
        self.log: list[tuple[str, str]] = []

    @property
    def dry(self) -> bool:
        return self._dry

    def require_cli(self) -> str:
        return f"/usr/bin/{self.docker}"

    @property
    def actions(self) -> list[str]:
        return [line for kind, line in self.log if kind == "action"]

    def ran(self, pattern: str) -> bool:
        return any(pattern in line for line in self.actions)

    def _query_process(self, argv: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
        line = " ".join(argv)
        self.log.append(("query", line))
        scripted = {**self.answers, **_RUNNING_ENGINE}.items()
        status, stdout, stderr = next(
            (answer for pattern, answer in scripted if _matches(pattern, line)), (1, "", "")
        )
        return subprocess.CompletedProcess(argv, status, stdout, stderr)

    def _action_process(self, argv: list[str], options: dict) -> Outcome:
        line = " ".join(argv)
        self.log.append(("action", line))
        if self.dry:
            return Outcome(0)
        return next(
            (outcome for pattern, outcome in self.outcomes.items() if _matches(pattern, line)),
            Outcome(0),
        )


def _matches(pattern: str, line: str) -> bool:
    return line.endswith(pattern[:-1]) if pattern.endswith("$") else pattern in line
