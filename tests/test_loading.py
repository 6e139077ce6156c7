"""Reading policies from hostile places (issue 11 items 11 and 12) and
includes that fan out (issue 17 item 2): bounded reads, non-regular files
refused without blocking, impossible include paths as positioned E002, and
each distinct file read, parsed and checked once per load."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from policydsl import PolicySyntaxError, load_policy
from policydsl import checker as checker_module
from policydsl import loader as loader_module
from policydsl.cli import main
from policydsl.parser import MAX_SOURCE_BYTES

HEADER = 'policy "p" version "1"\n'
MAIN_TAIL = "account { id : text }\nactions { sms }\nallow sms\n"


def _e002(path: Path | str) -> PolicySyntaxError:
    with pytest.raises(PolicySyntaxError) as caught:
        load_policy(path)
    assert caught.value.diagnostic.code == "E002", str(caught.value)
    return caught.value


def _check(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["check", *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.output


# ------------------------------------------------------------ bounded, non-blocking reads (11.11)


_COUNT_READ_BYTES = """
import os
from policydsl import PolicySyntaxError, load_policy
total, real_read = 0, os.read
def counting_read(fd, size):
    global total
    chunk = real_read(fd, size)
    total += len(chunk)
    return chunk
os.read = counting_read
try:
    load_policy("/dev/zero")
except PolicySyntaxError as error:
    print(error.diagnostic.code, total, error.diagnostic.message)
"""


def _limited_memory() -> None:
    """A regression (reading /dev/zero whole) must fail the test, not
    exhaust the memory of a machine the test shares."""
    resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))


def test_dev_zero_is_too_large_after_reading_at_most_the_limit() -> None:
    done = subprocess.run([sys.executable, "-c", _COUNT_READ_BYTES], capture_output=True, text=True, timeout=60,
                          preexec_fn=_limited_memory, check=False)
    assert done.stdout.split(" ", 2) == ["E002", str(MAX_SOURCE_BYTES + 1),
                                         f"policy file is larger than {MAX_SOURCE_BYTES} bytes\n"], done.stderr
    check = subprocess.run([sys.executable, "-m", "policydsl", "check", "/dev/zero"], capture_output=True, text=True,
                           timeout=60, preexec_fn=_limited_memory, check=False, env={**os.environ, "NO_COLOR": "1"})
    assert check.returncode == 1
    assert "/dev/zero:1:1: error[E002]: policy file is larger than" in check.stderr, check.stderr


def test_a_fifo_as_the_policy_is_refused_without_waiting_for_a_writer(tmp_path: Path) -> None:
    fifo = tmp_path / "p.policy"
    os.mkfifo(fifo)
    outcome: list[Any] = []
    worker = threading.Thread(target=lambda: outcome.append(_catch(lambda: load_policy(fifo))), daemon=True)
    worker.start()
    worker.join(10)
    if worker.is_alive():  # unblock the reader the old code left waiting, then fail
        with open(fifo, "w"):
            pass
        pytest.fail("reading a FIFO policy blocked")
    error = outcome[0]
    assert isinstance(error, PolicySyntaxError) and error.diagnostic.code == "E002"
    assert "it is a FIFO (named pipe), not a regular file" in error.diagnostic.message


def _catch(action: Callable[[], object]) -> BaseException | None:
    try:
        action()
    except BaseException as exc:  # whatever was raised, the test inspects it
        return exc
    return None


def test_a_directory_or_a_file_of_exactly_the_limit(tmp_path: Path) -> None:
    assert "it is a directory, not a regular file" in _e002(tmp_path).diagnostic.message
    exact = tmp_path / "exact.policy"
    exact.write_bytes((HEADER + MAIN_TAIL).encode().ljust(MAX_SOURCE_BYTES, b" "))
    assert load_policy(exact).actions == ("sms",)
    exact.write_bytes(exact.read_bytes() + b" ")
    assert "larger than" in _e002(exact).diagnostic.message


def test_policy_check_of_a_fifo_through_the_cli(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.policy"
    os.mkfifo(fifo)
    check = subprocess.run([sys.executable, "-m", "policydsl", "check", str(fifo)], capture_output=True, text=True,
                           timeout=60, check=False, env={**os.environ, "NO_COLOR": "1"})
    assert check.returncode == 1
    assert f"{fifo}:1:1: error[E002]: cannot read policy file: it is a FIFO (named pipe), not a regular file" \
        in check.stderr


# ------------------------------------------------------------ include paths the OS would refuse (11.12)


@pytest.mark.parametrize(("path", "message"), [
    ("a\0b.policy", "include path contains a NUL byte"),
    ("x" * 300 + ".policy", "include path has a file or directory name longer than 255 bytes"),
    ("d/" * 2100 + "x.policy", "include path is longer than 4096 bytes"),
])
def test_an_impossible_include_path_is_e002_at_the_include(tmp_path: Path, path: str, message: str) -> None:
    main_file = tmp_path / "main.policy"
    main_file.write_text(HEADER + "\n" + f'  include "{path}"\n' + MAIN_TAIL, encoding="utf-8")
    error = _e002(main_file)
    assert error.diagnostic.message == message
    assert (error.span.file, error.span.line, error.span.column) == (str(main_file), 3, 3)
    code, output = _check(str(main_file))
    assert code == 1 and f"{main_file}:3:3: error[E002]: {message}" in output


# ------------------------------------------------------------ includes that fan out (17.2)


def _fan_out(directory: Path, levels: int, width: int) -> Path:
    """`width` files per level, each including every file of the next level:
    width ** levels include paths reach the deepest files."""
    for level in range(levels):
        for k in range(width):
            below = "".join(f'include "l{level + 1}_{j}.policy"\n' for j in range(width)) if level + 1 < levels else ""
            (directory / f"l{level}_{k}.policy").write_text(
                f'policy "l{level}_{k}" version "1"\n{below}actions {{ a{level}_{k} }}\n'
                f'forbid a{level}_{k} when false because "never"\n', encoding="utf-8")
    main_file = directory / "main.policy"
    main_file.write_text(HEADER + "".join(f'include "l0_{j}.policy"\n' for j in range(width)) + MAIN_TAIL,
                         encoding="utf-8")
    return main_file


def _counting(monkeypatch: pytest.MonkeyPatch, module: Any, name: str) -> list[int]:
    calls = [0]
    real = getattr(module, name)

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, counted)
    return calls


def test_three_includes_per_level_over_ten_levels_read_parse_and_check_each_file_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    main_file = _fan_out(tmp_path, levels=10, width=3)
    parses = _counting(monkeypatch, loader_module, "parse")
    reads = _counting(monkeypatch, loader_module, "read_source")
    resolutions = _counting(monkeypatch, checker_module, "_resolution")  # once per baseline the checker merges
    policy = load_policy(main_file)
    files = 1 + 10 * 3
    assert parses[0] == files and reads[0] == files  # not 3 + 9 + ... + 3 ** 10 = 88,572
    assert resolutions[0] <= 2 * files * 3  # a few per include edge, not per path (3 ** 10)
    assert len(policy.model.sources) == files
    assert "a9_2" in policy.actions


def test_a_file_reached_again_deeper_still_respects_the_include_depth(tmp_path: Path) -> None:
    """`leaf` is first loaded through a short path; the long path that
    reaches it again would nest beyond MAX_INCLUDE_DEPTH."""
    depth = loader_module.MAX_INCLUDE_DEPTH
    (tmp_path / "leaf.policy").write_text('policy "leaf" version "1"\ninclude "leaf2.policy"\n', encoding="utf-8")
    (tmp_path / "leaf2.policy").write_text('policy "leaf2" version "1"\n', encoding="utf-8")
    for level in range(depth - 1):  # main, c0 .. c14 include leaf at nesting 16: leaf2 is at 17
        target = f"c{level + 1}.policy" if level + 2 < depth else "leaf.policy"
        (tmp_path / f"c{level}.policy").write_text(f'policy "c{level}" version "1"\ninclude "{target}"\n',
                                                   encoding="utf-8")
    main_file = tmp_path / "main.policy"
    main_file.write_text(HEADER + 'include "leaf.policy"\ninclude "c0.policy"\n' + MAIN_TAIL, encoding="utf-8")
    error = _e002(main_file)
    assert "includes nested deeper than 16" in error.diagnostic.message
    main_file.write_text(HEADER + 'include "c0.policy"\n' + MAIN_TAIL, encoding="utf-8")  # the same, unshared
    assert "includes nested deeper than 16" in _e002(main_file).diagnostic.message


# ------------------------------------------------------------ found by benchmarks/adversarial.py


def test_a_symbolic_link_loop_or_a_nul_byte_in_the_policy_path_is_e002(tmp_path: Path) -> None:
    loop = tmp_path / "loop.policy"
    loop.symlink_to(loop)
    assert _e002(loop).diagnostic.message == "cannot read policy file: a loop of symbolic links"
    assert _e002("bad\0name.policy").diagnostic.message == "cannot read policy file: the path contains a NUL byte"
    main_file = tmp_path / "main.policy"
    main_file.write_text(HEADER + 'include "loop.policy"\n' + MAIN_TAIL, encoding="utf-8")
    error = _e002(main_file)
    assert error.diagnostic.message == "cannot read included file 'loop.policy': a loop of symbolic links"
    assert (error.span.line, error.span.column) == (2, 1)


def test_includes_cannot_multiply_the_size_limit(tmp_path: Path) -> None:
    """Each file within the limit, together over it: refused at the include
    that crossed it, before the rest are read."""
    part = MAX_SOURCE_BYTES // 3
    names = [f"b{i}" for i in range(5)]
    for name in names:
        (tmp_path / f"{name}.policy").write_bytes(f'policy "{name}" version "1"\n'.encode().ljust(part, b" ") + b"\n")
    main = tmp_path / "main.policy"
    main.write_text(HEADER + "".join(f'include "{name}.policy"\n' for name in names) + MAIN_TAIL)
    error = _e002(main)
    assert error.diagnostic.message == (f"a policy and its includes are larger than {MAX_SOURCE_BYTES} bytes in all "
                                        "(through 'b2.policy')")
    assert error.span.line == HEADER.count("\n") + 3
