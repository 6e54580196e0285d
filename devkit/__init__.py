"""What `tasks.py` is built from, one module per job; imports run one way, tasks.py on top.

settings    the table of settings; .env, the environment and defaults -> one checked Settings
platforms   the two image platforms and the host's
targets     which image, lock, tag and container
engine      the one door to docker, git and other programs: queries run, actions print under --dry;
            every outcome sentence ("# would ..." under --dry); the engine's dialect
runtime     where every container is started: ContainerSpec -> `docker run`, and one start that owns
            the name check, ports, image, secret env-file, stop on a signal, clean-up, outcome
host        this machine's side: who a container runs as, a free port, a writable DATA_DIR, proxies,
            folders for secrets that go on a signal
locks       which .in makes which lock; LockFile, the one reader of a lock; digests
locking     `invoke lock`: pip-compile, all or none; the halves the Dockerfiles install
baseimage   BASE_IMAGE by digest: the record `invoke lock` writes, what a build starts from
building    `invoke build`, its labels, secrets and layer cache
containers  `invoke run`, `shell`, `container-test`, `stop`, `logs`, `clean`
workbench   `invoke tensorboard`, `invoke notebook`      publishing  `invoke push`
distributed `invoke train`: N workers as the training Job's pods   kubernetes  `invoke k8s`
doctor      `invoke doctor`                              errors    UserError: one line and exit 1
capabilities  what the project was generated with (copier.yml): each capability known by its files
sources     what an image was made of (src/, its lock), to say when it is older than an edit
"""
