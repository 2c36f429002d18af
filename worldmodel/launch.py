"""Start ``K`` local processes of one command on MLX's ring backend, without ``mlx.launch``'s polling.

    python -m worldmodel.launch -n 2 -- wmplan benchmark --episodes 40

does what ``mlx.launch -n 2 --backend ring -- wmplan benchmark --episodes 40`` does on one machine:
write the ring hostfile (``[["127.0.0.1:P"], ["127.0.0.1:P+1"], ...]``), start every rank with
``MLX_RANK`` and ``MLX_HOSTFILE`` set, and wait. The ranks share this terminal (rank 0 prints; the
others print only errors). When a rank fails the others are stopped, and the exit status is the
first failure's.

Why: ``mlx.launch`` (MLX 0.32) relays each rank's stdin/stdout through threads whose ``select``
includes the child's always-writable stdin pipe, so they spin: the launcher keeps about one CPU
core busy for the whole run. On a machine with few cores that core is taken from the ranks.
For several machines use ``mlx.launch --hostfile`` (see the README).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time


def free_ports(count: int, host: str = "127.0.0.1") -> int:
    """A port ``p`` with ``p .. p + count - 1`` free on ``host``."""
    for _ in range(100):
        port = random.randint(20000, 60000 - count)
        sockets = []
        try:
            for i in range(count):
                s = socket.socket()
                sockets.append(s)
                s.bind((host, port + i))
            return port
        except OSError:
            continue
        finally:
            for s in sockets:
                s.close()
    raise RuntimeError(f"no {count} consecutive free ports on {host}")


def launch(command: list, processes: int, port: int | None = None, host: str = "127.0.0.1") -> int:
    """Run ``command`` as ``processes`` ring ranks on ``host``; return the exit status.

    One process runs the command plainly (a one-rank ring cannot connect to itself).
    """
    if processes == 1:
        return subprocess.call(command)
    port = port or free_ports(processes, host)
    with tempfile.NamedTemporaryFile("w", suffix=".json", prefix="wmplan-ring-", delete=False) as f:
        json.dump([[f"{host}:{port + rank}"] for rank in range(processes)], f)
        hostfile = f.name
    children = []
    try:
        for rank in range(processes):
            env = {**os.environ, "MLX_RANK": str(rank), "MLX_HOSTFILE": hostfile}
            children.append(subprocess.Popen(command, env=env))
        status = 0
        while any(child.poll() is None for child in children):
            failed = [child.returncode for child in children if child.returncode not in (None, 0)]
            if failed:
                status = failed[0]
                for child in children:
                    if child.poll() is None:
                        child.send_signal(signal.SIGTERM)
                break
            time.sleep(0.05)
        for child in children:
            child.wait()
        return status or next((c.returncode for c in children if c.returncode), 0)
    except KeyboardInterrupt:
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        for child in children:
            child.wait()
        return 130
    finally:
        os.unlink(hostfile)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m worldmodel.launch", description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", "--processes", type=int, default=2, help="Number of ranks (default: 2).")
    parser.add_argument("-p", "--starting-port", type=int, default=None, help="First ring port (default: a free one).")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="The command, after --.")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the command to run after --, e.g. -- wmplan benchmark")
    if args.processes < 1:
        parser.error("--processes must be >= 1")
    return launch(command, args.processes, args.starting_port)


if __name__ == "__main__":
    sys.exit(main())
