"""What `tasks.py` is built from, one module per job; imports run one way, tasks.py on top.

settings    the table of settings; .env, the environment and defaults -> one checked Settings
platforms   the two image platforms and the host's     targets   which image, lock, tag and container
engine      the one door to docker, git and other programs: queries run, actions print under --dry
host        this machine's side: who a container runs as, a free port, a writable DATA_DIR, proxies
locks       which .in makes which lock, digests, pins    locking   `invoke lock`: pip-compile, all or none
building    `invoke build`, its labels, secrets and layer cache
containers  `invoke run`, `shell`, `container-test`, `stop`, `logs`, `clean`
workbench   `invoke tensorboard`, `invoke notebook`      publishing  `invoke push`
distributed `invoke train`: N workers as the training Job's pods   kubernetes  `invoke k8s`
doctor      `invoke doctor`                              errors    UserError: one line and exit 1
"""
