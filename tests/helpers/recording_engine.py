"""An Engine whose answers are scripted and whose commands are recorded: the pipelines' decisions,
tested without a container engine."""

from __future__ import annotations

import subprocess

from devkit.engine import Engine, Outcome
from devkit.runtime import START_LABEL
from devkit.targets import PROJECT_LABEL
from helpers.base_image import docker_index

# Unless a test scripts otherwise: the engine runs, and a base image pulls, its registry naming its
# two platforms' digests (helpers.base_image).
_RUNNING_ENGINE = {
    "version --format {{.Server.Version}}": (0, "20.10.24\n", ""),
    " pull ": (0, "", ""),
    " manifest inspect --verbose ": (0, docker_index("python:3.11-slim"), ""),
}

# A scripted answer: the image asked for is built, for linux/amd64 (the host of `target_of`).
BUILT = {"{{.Os}}/{{.Architecture}}": (0, "linux/amd64\n", "")}


class RecordingEngine(Engine):
    """Answers each query and action by the first scripted pattern found in its command line.

    answers: {pattern: (exit status, stdout, stderr)} for queries (default: exit 1, nothing there);
    a pattern that ends in `$` matches the end of a command line only.
    outcomes: {pattern: Outcome} for actions (default: success). `log` lists every command in order,
    as ("query" or "action", its command line).
    """

    def __init__(
        self,
        *,
        dry: bool = False,
        answers=None,
        outcomes=None,
        docker: str = "docker",
        run_leaves: str | None = None,
    ) -> None:
        """run_leaves: the state (`created`, `running`, `exited`) in which a `docker run` leaves
        the container it names, with the labels it gave it; None: the run leaves nothing of its
        own there (`--rm`), and `container inspect` keeps its scripted answers."""
        super().__init__(docker)
        self._dry = dry
        self.answers = dict(answers or {})
        self.outcomes = outcomes or {}
        self.run_leaves = run_leaves
        self.log: list[tuple[str, str]] = []
        self._started: dict[str, tuple[str, str]] = {}

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
        if argv[1:3] == ["container", "inspect"] and argv[-1] in self._started:
            project, start = self._started[argv[-1]]
            answer = f"{self.run_leaves} {project} {start} id-of-{argv[-1]}\n"
            return subprocess.CompletedProcess(argv, 0, answer, "")
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
        self.remember(argv)
        if argv[1] in ("rm", "container") and "--force" in argv:
            for name in [word.removeprefix("id-of-") for word in argv[argv.index("--force") :]]:
                self._started.pop(name, None)
        if argv[1] == "pull" and not any("pull" in pattern for pattern in self.outcomes):
            return Outcome(0)  # a pull of the base image succeeds unless a test says otherwise
        return next(
            (outcome for pattern, outcome in self.outcomes.items() if _matches(pattern, line)),
            Outcome(0),
        )

    def remember(self, argv: list[str]) -> None:
        """A `docker run` that leaves its container (`run_leaves`): inspected as it made it."""
        if argv[1] == "run" and "--name" in argv and self.run_leaves is not None:
            labels = dict(
                argv[i + 1].split("=", 1) for i, word in enumerate(argv) if word == "--label"
            )
            self._started[argv[argv.index("--name") + 1]] = (
                labels.get(PROJECT_LABEL, ""),
                labels.get(START_LABEL, ""),
            )


def _matches(pattern: str, line: str) -> bool:
    return line.endswith(pattern[:-1]) if pattern.endswith("$") else pattern in line
