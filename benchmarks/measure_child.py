"""Run one command and print {"wall_s", "cpu_s", "max_rss", "exit"} as JSON: bench_run.py's stopwatch.

    python -I -S benchmarks/measure_child.py COMMAND ARGS...

On Linux a child's peak RSS (ru_maxrss) also counts the memory of the process that spawned
it (the spawner's address space until exec), so bench_run.py, which holds data, does not spawn
the measured commands itself: this small launcher (a bare interpreter, a few MB) does, with
posix_spawn, and reports that child's own wait4 figures. The child's standard output goes to
/dev/null; its standard error is this launcher's.
"""

import json
import os
import sys
import time


def main() -> int:
    command = sys.argv[1:]
    if not command:
        sys.exit(__doc__)
    actions = [(os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0)]
    started = time.perf_counter()
    pid = os.posix_spawnp(command[0], command, os.environ, file_actions=actions)
    _, status, usage = os.wait4(pid, 0)
    wall = time.perf_counter() - started
    print(json.dumps({"wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime, "max_rss": usage.ru_maxrss * 1024,
                      "exit": os.waitstatus_to_exitcode(status)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
