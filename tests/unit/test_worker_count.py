"""`--workers` of `invoke train` and `invoke k8s`: a whole number in ASCII digits, or one line."""

import pytest

from devkit.distributed import MAX_WORKERS, parse_workers
from devkit.errors import UserError


@pytest.mark.parametrize("value", ["²", "٣", "３", "1²"])
def test_a_worker_count_in_other_digits_is_one_line(value):
    # "²".isdigit() is true and int("²") a traceback; int("٣") is 3.
    with pytest.raises(UserError) as raised:
        parse_workers(value)
    assert (
        str(raised.value) == f"--workers {value}: expected a whole number from 1 to {MAX_WORKERS}"
    )
