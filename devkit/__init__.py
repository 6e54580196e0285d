"""What `tasks.py` is built from, one module per job; imports run one way, tasks.py on top.

settings   .env, the environment and defaults -> one validated Settings
platforms  the two image platforms and the host's    targets  which image, lock, tag and container
engine     the one door to docker, git and other programs: queries run, actions print under --dry
host       this machine's side: who a container runs as, a free port, a writable DATA_DIR, proxies
locks      which .in makes which lock, digests, pins   locking  `invoke lock`: pip-compile, all or none
building   `invoke build`                                 containers  run, shell, container-test, stop, clean
publishing `invoke push`                                  doctor   `invoke doctor`
errors     UserError: one line and exit 1, never a traceback
"""
