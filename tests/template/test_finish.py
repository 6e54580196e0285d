"""template/finish.py's markers, without copier: what each keeps where its question was answered
true and drops where it was false, the markers going either way."""

import importlib.util

import pytest

from helpers.project import PROJECT_DIR


def finish_module():
    """template/finish.py, which copier runs as a script (template/ is no package)."""
    spec = importlib.util.spec_from_file_location("finish", PROJECT_DIR / "template" / "finish.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


keep_answered = finish_module().keep_answered

MARKED = """\
<!-- if gpu -->
A GPU block.
<!-- endif gpu -->
A line of the GPU image. <!-- if gpu -->
| `invoke build [--gpu] [--platform P] [--dev]` | build `Dockerfile`<!-- if gpu --> or `Dockerfile.gpu`<!-- endif gpu --> |
<!-- if not gpu
Without the GPU image.
endif not gpu -->
# if gpu
ENV NVIDIA_VISIBLE_DEVICES=all
# endif gpu
// if gpu
"8889": {},
// endif gpu
# if example
Example.
# if gpu
Example on the GPU.
# endif gpu
# endif example
"""

KEPT = """\
A GPU block.
A line of the GPU image.
| `invoke build [--gpu] [--platform P] [--dev]` | build `Dockerfile` or `Dockerfile.gpu` |
ENV NVIDIA_VISIBLE_DEVICES=all
"8889": {},
Example.
Example on the GPU.
"""

LEFT_OUT = """\
| `invoke build [--platform P] [--dev]` | build `Dockerfile` |
Without the GPU image.
Example.
"""


@pytest.mark.parametrize(
    ("gpu", "fitted"), [(True, KEPT), (False, LEFT_OUT)], ids=["kept", "left-out"]
)
def test_each_marker_keeps_its_text_with_its_answer_and_goes_itself(gpu, fitted):
    assert keep_answered(MARKED, {"gpu": gpu, "example": True}) == fitted


def test_a_block_inside_a_block_left_out_goes_with_it():
    assert keep_answered(MARKED, {"gpu": True, "example": False}).endswith('"8889": {},\n')


def test_a_span_inside_a_span_goes_with_either():
    line = "a<!-- if gpu --> b<!-- if example --> c<!-- endif example --><!-- endif gpu -->.\n"
    assert keep_answered(line, {"gpu": True, "example": True}) == "a b c.\n"
    assert keep_answered(line, {"gpu": True, "example": False}) == "a b.\n"
    assert keep_answered(line, {"gpu": False, "example": True}) == "a.\n"


def test_a_flag_named_after_no_question_stays():
    line = "`invoke stop [--tensorboard] [--notebook] [--gpu]`\n"
    fitted = keep_answered(line, {"gpu": True, "notebook": False})
    assert fitted == "`invoke stop [--tensorboard] [--gpu]`\n"
