"""What `tasks.py` is built from: settings, targets, and the docker command lines, as pure functions."""
