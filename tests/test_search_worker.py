"""The search's worker processes: one per candidate, gone with the search."""


def test_a_candidate_worker_ends_with_its_killed_search():
    """Killing the search (SIGKILL, no clean-up) must not leave its worker training on."""
    import os
    import signal
    import subprocess
    import sys
    import time
    parent = subprocess.Popen([sys.executable, "-c", "import time; from bortkit.search.worker "
                               "import isolated; isolated(time.sleep, 300)"])

    def workers():
        found = []
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                with open(f"/proc/{pid}/stat") as fh:
                    ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
                with open(f"/proc/{pid}/cmdline", "rb") as fh:
                    command = fh.read()
            except OSError:
                continue
            if ppid == parent.pid and b"spawn_main" in command:
                found.append(int(pid))
        return found

    try:
        deadline = time.time() + 60
        while not workers() and time.time() < deadline:
            time.sleep(0.2)
        worker = workers()
        assert worker, "the worker process never started"
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        deadline = time.time() + 15
        while os.path.exists(f"/proc/{worker[0]}") and time.time() < deadline:
            time.sleep(0.2)
        alive = os.path.exists(f"/proc/{worker[0]}")
        if alive:
            os.kill(worker[0], signal.SIGKILL)
        assert not alive, "the worker outlived its killed parent by 15 s"
    finally:
        if parent.poll() is None:
            parent.kill()
