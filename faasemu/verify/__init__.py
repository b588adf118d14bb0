"""The verification campaign behind `faasemu chaos`: a pure core (comparing, shrinking,
classifying, planning probes) and the I/O modules that execute schedules: `runner.py` (local lanes,
with `lanes.py` and `perturbed.py`) and `cluster.py` (lanes on Ray actors)."""
