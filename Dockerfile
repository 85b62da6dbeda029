# One image for every Kinwell process; what it runs is the command:
#   python -m services.<consent|checkin|recommender|aggregator|escalation>   a service
#   kinwell migrate <service>                                                  one-shot: its database schema
#   kinwell nats provision                                                     one-shot: streams + consent KV
# Build:  docker build -t kinwell:0.1.0 .        (docker-compose.yml and deploy/ use this image)

# --- build: resolve and install into a virtualenv (every dependency ships a wheel) ----------------
FROM python:3.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m venv /opt/kinwell
COPY pyproject.toml constraints.txt README.md ./
COPY shared ./shared
COPY services ./services
# Non-editable: the code, its migrations and data files land in the venv's site-packages.
RUN /opt/kinwell/bin/pip install -c constraints.txt . \
 && /opt/kinwell/bin/pip uninstall -y pip setuptools \
 && find /opt/kinwell -name '__pycache__' -prune -exec rm -rf {} +

# --- runtime: the venv only; no compiler, no pip, no source tree, no root -------------------------
FROM python:3.11-slim-bookworm AS runtime
# The base image's own pip is a package installer the services never need.
RUN rm -rf /usr/local/lib/python3.11/site-packages/pip* /usr/local/bin/pip* \
 && useradd --system --uid 10001 --gid 0 --no-create-home --home-dir /nonexistent kinwell
COPY --from=build /opt/kinwell /opt/kinwell
ENV PATH=/opt/kinwell/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    KINWELL_MODE=production \
    KINWELL_HEALTHCHECK_URL=http://127.0.0.1:8000/healthz
WORKDIR /tmp
# Numeric, so Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
USER 10001:0
EXPOSE 8000
# Each service sets KINWELL_HEALTHCHECK_URL to its own port (docker-compose.yml does).
HEALTHCHECK --interval=10s --timeout=4s --start-period=20s --retries=3 CMD ["kinwell", "healthcheck"]
CMD ["kinwell", "--help"]
