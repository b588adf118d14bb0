"""The process boundary: worker entry point (stdlib only) and the supervisor's side of it."""
