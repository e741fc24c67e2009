#!/usr/bin/python3
"""Crash-consistency soak: the crash scenario (test_crash.py, whose
docstring lists every assertion) at soak size: 500 users with nine updates
each, about 5,250 events, and four SIGKILLs at random moments (seeded, so a
failure can be replayed), each followed by a restart. Prints the duplicate
results the at-least-once replays produced."""
import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_crash  # noqa: E402

SEED = int(os.environ.get("BWPROVD_SOAK_SEED", "20261127"))


def main():
    rng = random.Random(SEED)
    # Kill points spread over the run's ~5,500 requests, at least 300 apart.
    kills = sorted(rng.sample(range(300, 5000, 300), 4))
    print("soak seed %d, SIGKILL after %s requests" % (SEED, kills), flush=True)
    test_crash.main(users=500, updates=9, kill_at=tuple(kills), prefix="sk", seed=SEED,
                    name="soak")


if __name__ == "__main__":
    main()
