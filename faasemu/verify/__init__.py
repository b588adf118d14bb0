"""The verification campaign behind `faasemu chaos`: a pure core (comparing, shrinking,
classifying, planning probes) and one I/O module, `runner.py`, that executes schedules."""
