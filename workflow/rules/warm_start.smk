# Every job of a local run starts warm: forked from a server that has already loaded its libraries
# (batchlab.jobs.warm), for as long as the run lasts. Off with `warm_start: false`; no result changes.
from pathlib import Path

from batchlab.cli import ENTRY, warm_preload
from batchlab.jobs.warm import start_for_run

WARM_SERVERS = []


def stop_warm_servers():
    while WARM_SERVERS:
        WARM_SERVERS.pop().stop()


onstart:
    servers = start_for_run(
        CFG.warm_start,
        workflow.local_exec,
        warm_preload(),
        Path("logs/warm_start.log"),
        ENTRY,
    )
    WARM_SERVERS.extend([servers] if servers else [])


onsuccess:
    stop_warm_servers()


onerror:
    stop_warm_servers()
