# CPU image: TensorFlow and the example application, for the platform the build targets
# (`invoke build` picks the host's own architecture, so TensorFlow never runs under emulation).
# Build with BuildKit: `invoke build`, or `docker buildx build .`.

# Any image with the official python:3.11-slim's layout works: a mirror, a digest-pinned
# reference, an internal image. `invoke build` passes it by the digest `invoke lock` recorded for
# the target platform (docker/locks/base-image.txt), as NAME@sha256:..., and labels the image with
# it. Unset or empty, python:3.11-slim: the default stands in each FROM, as the dev container
# passes an empty BASE_IMAGE where its environment has none.
ARG BASE_IMAGE

# ---------------------------------------------------------------------------------------------
# locks: the target architecture's lock in the two halves that `invoke lock` writes beside it in
# docker/locks/ (TensorFlow's own entry, and every other package), under fixed names. The
# tensorflow stage copies only the first half, and BuildKit caches a COPY by its content, so adding
# or upgrading any other package never reinstalls, strips or re-exports TensorFlow's 1 GB. No
# stage reads pip-compile's text: devkit/locks.py alone does.
FROM ${BASE_IMAGE:-python:3.11-slim} AS locks

# Set by BuildKit from --platform; picks the lock of that architecture.
ARG TARGETARCH

# The locks come before the source, so an edit in src/ never reinstalls packages.
COPY docker/locks/requirements-tensorflow.txt docker/locks/requirements-packages.txt \
     docker/locks/requirements-arm64-tensorflow.txt docker/locks/requirements-arm64-packages.txt \
     /tmp/locks/

RUN set -eu; \
    case "${TARGETARCH}" in \
      amd64) lock=requirements ;; \
      arm64) lock=requirements-arm64 ;; \
      *) echo "no lock for architecture '${TARGETARCH}': the CPU image is built for amd64 or arm64" >&2; exit 1 ;; \
    esac; \
    mkdir /locks; \
    cp "/tmp/locks/${lock}-tensorflow.txt" /locks/tensorflow.txt; \
    cp "/tmp/locks/${lock}-packages.txt" /locks/packages.txt

# ---------------------------------------------------------------------------------------------
# venv: an empty virtualenv, at the path it keeps in the environment stage (its scripts hard-code
# it).
FROM ${BASE_IMAGE:-python:3.11-slim} AS venv
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

# ---------------------------------------------------------------------------------------------
# tensorflow: TensorFlow alone, installed under /opt/tensorflow in the venv's layout (scripts
# point at /opt/venv/bin/python), slimmed, and merged into the venv by the environment stage.
FROM venv AS tensorflow

# Slimming, on by default, each switchable for users who need what it removes
# (`invoke build --build-arg STRIP_TF_LIBRARIES=0`); see KEEP_TF_HEADERS below too.
# STRIP_TF_LIBRARIES=0 keeps the symbol tables of TensorFlow's shared libraries (about 200 MB, for
#   native debuggers and profilers); `strip --strip-unneeded` keeps everything that loading and
#   linking them needs, and the smoke test trains, saves and reloads a model with them stripped.
ARG STRIP_TF_LIBRARIES=1

# binutils, for strip: in this stage only, never in the image that runs. Debian's current version
# (not pinned, so that security updates apply); the list is removed in the same layer.
# hadolint ignore=DL3008
RUN if [ "${STRIP_TF_LIBRARIES}" = 1 ]; then \
      apt-get update \
      && apt-get install --yes --no-install-recommends binutils \
      && rm -rf /var/lib/apt/lists/*; \
    fi

COPY --from=locks /locks/tensorflow.txt /tmp/locks/

# Every lock is installed the same way, by docker/install-lock (hash-checked, no resolving, wheels
# only), mounted for the one command. The pip cache is a BuildKit cache mount: a rebuild after a
# lock change downloads only what is new, and no cache lands in a layer. BUILD_CA_BUNDLE (for
# TLS-intercepting proxies) reaches pip only as a BuildKit secret, mounted for this one command and
# never stored in the image; so is a package index other than PyPI (PIP_INDEX_URL,
# PIP_EXTRA_INDEX_URL, credentials included), as pip's /etc/pip.conf.
RUN --mount=type=cache,target=/root/.cache/pip,sharing=locked \
    --mount=type=secret,id=ca_bundle \
    --mount=type=secret,id=pip_conf,target=/etc/pip.conf \
    --mount=type=bind,source=docker/install-lock,target=/tmp/install-lock \
    sh /tmp/install-lock /tmp/locks/tensorflow.txt --prefix=/opt/tensorflow

# KEEP_TF_HEADERS=1 keeps tensorflow/include, about 290 MB of C++ headers that only compiling custom
# ops needs; TensorFlow never reads them at run time. Declared here, so switching it reinstalls nothing.
ARG KEEP_TF_HEADERS=0
RUN set -eu; \
    tensorflow="$(python -c 'import sysconfig; print(sysconfig.get_path("purelib", vars={"base": "/opt/tensorflow"}))')/tensorflow"; \
    test -d "${tensorflow}"; \
    if [ "${KEEP_TF_HEADERS}" != 1 ]; then rm -rf "${tensorflow}/include"; fi; \
    if [ "${STRIP_TF_LIBRARIES}" = 1 ]; then \
      find "${tensorflow}" -type f -name '*.so*' -exec strip --strip-unneeded {} +; \
    fi

# ---------------------------------------------------------------------------------------------
# packages: every other locked package, in the venv itself.
FROM venv AS packages

COPY --from=locks /locks/packages.txt /tmp/locks/

# Installed as TensorFlow is above.
RUN --mount=type=cache,target=/root/.cache/pip,sharing=locked \
    --mount=type=secret,id=ca_bundle \
    --mount=type=secret,id=pip_conf,target=/etc/pip.conf \
    --mount=type=bind,source=docker/install-lock,target=/tmp/install-lock \
    sh /tmp/install-lock /tmp/locks/packages.txt

# ---------------------------------------------------------------------------------------------
# sbom: the image's CycloneDX SBOM (docker/sbom.py): every package of the lock the image installs,
# with its version, purl and hashes, and the base image, by digest where BASE_IMAGE names one. The
# generator (cyclonedx-py, from requirements-sbom.txt) stays in this stage: the release stage copies
# the JSON alone.
FROM venv AS sbom

# Installed as the packages above, into this stage's own venv.
RUN --mount=type=cache,target=/root/.cache/pip,sharing=locked \
    --mount=type=secret,id=ca_bundle \
    --mount=type=secret,id=pip_conf,target=/etc/pip.conf \
    --mount=type=bind,source=docker/install-lock,target=/tmp/install-lock \
    --mount=type=bind,source=requirements-sbom.txt,target=/tmp/locks/sbom.txt \
    sh /tmp/install-lock /tmp/locks/sbom.txt

COPY --from=locks /locks/ /tmp/locks/

# The base image as this build was given it, and the architecture of its variant (set by BuildKit
# from --platform); declared here, so that neither reinstalls the generator.
ARG BASE_IMAGE
ARG TARGETARCH
RUN --mount=type=bind,source=docker/sbom.py,target=/tmp/sbom.py \
    python /tmp/sbom.py "${BASE_IMAGE:-python:3.11-slim}" "${TARGETARCH}" /sbom.cdx.json \
      /tmp/locks/tensorflow.txt /tmp/locks/packages.txt

# ---------------------------------------------------------------------------------------------
# environment: the base image and the venv, with the user and settings the application runs with;
# no compilers, caches or lock files. The runtime stage adds src/ to it (and the release stage, the
# image `invoke build` makes, its SBOM and labels); the notebook image (`--target notebook`, for
# `invoke notebook`) adds JupyterLab instead.
FROM ${BASE_IMAGE:-python:3.11-slim} AS environment

ARG CONTAINER_PORT=8888

# A fixed uid, so a host folder can be prepared for it; `invoke run` on Linux runs as the calling
# user instead, so that files written to data/ belong to that user.
RUN useradd --create-home --uid 1000 --user-group app \
    && mkdir -p /app/data \
    && chown app:app /app/data

# PYTHONDONTWRITEBYTECODE: the venv's bytecode is compiled at install time; nothing is written later.
# TF_CPP_MIN_LOG_LEVEL=2: TensorFlow's C++ start-up INFO and WARNING lines (CPU features, missing
# CUDA) are noise in a CPU container; errors still show. Override it at run time to debug.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/app/src \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    TF_CPP_MIN_LOG_LEVEL=2 \
    PORT=${CONTAINER_PORT}

# TensorFlow first, in a layer of its own that stays cached when any other package changes.
COPY --from=tensorflow /opt/tensorflow/ /opt/venv/
COPY --from=packages /opt/venv /opt/venv

# The health probe is the template's, outside /app/src, so that it outlives a replaced app.
COPY docker/healthcheck.py /opt/healthcheck.py

WORKDIR /app

# if notebook
# ---------------------------------------------------------------------------------------------
# notebook: JupyterLab on the image's Python and TensorFlow, for `invoke notebook`, which mounts
# src/, notebooks/ and DATA_DIR; never part of the release image below.
FROM environment AS notebook

# Set by BuildKit from --platform; picks the notebook lock of that architecture.
ARG TARGETARCH

# JupyterLab from the notebook lock of the target's architecture, compiled against the CPU lock of
# that architecture (whose shared packages the GPU lock holds at the same versions), so the
# packages they share keep the image's versions. Installed as the packages above; the locks are
# mounted, under their architecture's name, never copied into a layer.
RUN --mount=type=cache,target=/root/.cache/pip,sharing=locked \
    --mount=type=secret,id=ca_bundle \
    --mount=type=secret,id=pip_conf,target=/etc/pip.conf \
    --mount=type=bind,source=docker/install-lock,target=/tmp/install-lock \
    --mount=type=bind,source=requirements-notebook.txt,target=/tmp/locks/notebook-amd64.txt \
    --mount=type=bind,source=requirements-notebook-arm64.txt,target=/tmp/locks/notebook-arm64.txt \
    sh /tmp/install-lock "/tmp/locks/notebook-${TARGETARCH}.txt"

USER 1000:1000
EXPOSE 8888

# `invoke notebook` passes the token in the environment (JUPYTER_TOKEN), never on this command line.
CMD ["jupyter", "lab", "--ip=0.0.0.0", "--port=8888", "--no-browser", "--ServerApp.root_dir=/app"]
# endif notebook

# ---------------------------------------------------------------------------------------------
# runtime: the environment and the application. The release stage (last) labels it: the image
# `invoke build` makes and you ship; the dev stage adds the host tools to it.
FROM environment AS runtime

ARG CONTAINER_PORT=8888

COPY src/ /app/src/

# Numeric, so Kubernetes' runAsNonRoot can verify it without the image's /etc/passwd.
USER 1000:1000
EXPOSE ${CONTAINER_PORT}

# Any app answers /health on $PORT (the app contract); the probe uses Python, as the slim base has no
# curl. -I: the standard library only, never a module of PYTHONPATH (src/) that shares a name with it.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-I", "/opt/healthcheck.py"]

CMD ["python", "-m", "app"]

# ---------------------------------------------------------------------------------------------
# dev: the runtime stage plus the host tools of requirements-dev.txt (invoke, nox, pytest, ruff, ...)
# and git, for the dev container (.devcontainer/). Never shipped: a build without --target, such as
# `invoke build` or `docker build .`, makes the last stage, and nothing there comes from this one.
FROM runtime AS dev

USER 0

# git, for the editor's source control and the terminal; Debian's current version, as binutils above.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install --yes --no-install-recommends git \
    && rm -rf /var/lib/apt/lists/*

COPY requirements-dev.txt /tmp/locks/

# Installed as the packages above, into the same venv, so the tools run with the image's TensorFlow
# (`python -m pytest`). --keep-installed: the image's packages stay as its lock pins them; where the
# dev lock would move one, the build stops and names it (pip aside, which the dev lock pins newer
# than the venv's own).
RUN --mount=type=cache,target=/root/.cache/pip,sharing=locked \
    --mount=type=secret,id=ca_bundle \
    --mount=type=secret,id=pip_conf,target=/etc/pip.conf \
    --mount=type=bind,source=docker/install-lock,target=/tmp/install-lock \
    sh /tmp/install-lock --keep-installed /tmp/locks/requirements-dev.txt

# The dev container runs no app of its own (the editor keeps it alive), so the image's probe of the
# app would only mark it unhealthy. By name, so that the dev container can give the user your uid.
HEALTHCHECK NONE
# hadolint ignore=DL3066
USER app

# ---------------------------------------------------------------------------------------------
# release: the runtime stage with its SBOM and labels: the image `invoke build` makes and you ship.
# The last stage, so the one that a build without --target makes too.
FROM runtime AS release

# The SBOM of the image's Python environment and base image (the sbom stage), which
# `invoke sbom` reads out: the JSON alone, never its generator.
COPY --from=sbom /sbom.cdx.json /usr/share/doc/app/sbom.cdx.json

# Last, as they change on every build and must not invalidate the layers above.
ARG TENSORFLOW_VERSION=unknown
ARG SOURCE_URL=""
ARG REVISION=""
ARG CREATED=""
LABEL org.opencontainers.image.title="TensorFlow CPU image" \
      org.opencontainers.image.source="${SOURCE_URL}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.tensorflow.version="${TENSORFLOW_VERSION}"
