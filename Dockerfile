# Gallring: one image for every service. The command picks the service:
#   docker run IMAGE api | purger | notifier | migrate | keys … (see `gallring --help`)
# Build: docker build -t gallring:0.1.0 .   (docker-compose.yml and deploy/README.md use it)
#
# The base image is pinned to an exact Python patch release on Debian bookworm, the same in both
# stages, so the virtual environment built in the first runs unchanged in the second. Every
# dependency has a binary wheel for linux/amd64 and linux/arm64, so neither stage needs a
# compiler. For a production registry, pin the digest as well (tag@sha256:…).

FROM python:3.11.14-slim-bookworm AS build

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /src
# What the wheel is built from: pyproject.toml names README.md as the readme, and the two
# packages carry the policy YAML and the Alembic migrations as package data.
COPY pyproject.toml README.md ./
COPY shared ./shared
COPY services ./services
RUN pip install --no-cache-dir .


FROM python:3.11.14-slim-bookworm AS runtime

LABEL org.opencontainers.image.title="gallring" \
      org.opencontainers.image.description="Retention and erasure service: keeps a privacy notice's erasure promises automatically." \
      org.opencontainers.image.version="0.1.0" \
      org.opencontainers.image.base.name="docker.io/library/python:3.11.14-slim-bookworm"

# A fixed uid and gid, so that volume and secret permissions and Kubernetes' runAsUser can name
# them; no home directory and no shell: the services write nothing but to /tmp.
RUN groupadd --system --gid 10001 gallring \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin gallring

COPY --from=build /opt/venv /opt/venv

# Listening on every interface is what a container needs to be reached at all; the defaults
# (127.0.0.1) suit `gallring up` on a workstation. docker-compose.yml and the Kubernetes
# ConfigMap set the same explicitly.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    GALLRING_API_HOST=0.0.0.0 \
    GALLRING_PURGER_METRICS_HOST=0.0.0.0 \
    GALLRING_NOTIFIER_METRICS_HOST=0.0.0.0

WORKDIR /app
USER 10001:10001
EXPOSE 8000

# For `docker run IMAGE` (the API). docker-compose.yml overrides it per service: the purger and
# the notifier with /readyz on their status ports (not /metrics, which queries the database, for
# Prometheus alone), the one-shot migrate with none.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('GALLRING_API_PORT', '8000') + '/healthz', timeout=4)"]

ENTRYPOINT ["gallring"]
CMD ["api"]
