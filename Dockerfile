# syntax=docker/dockerfile:1
# echain: one image for the web process (CMD), the worker (`echain worker`), migrations (`echain migrate`) and the
# WeChat simulator (`echain wechat-sim`). Build: docker build -t echain . ; run: see docker-compose.yml and README.
# tests/test_container.py reads this file: it checks the invariants below and runs CMD and HEALTHCHECK outside Docker.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---- build: resolve nothing, install exactly uv.lock into /app/.venv ---------------------------------------
FROM ${PYTHON_IMAGE} AS build
ENV UV_PYTHON_DOWNLOADS=never \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PROJECT_ENVIRONMENT=/app/.venv \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
# The same uv as the Makefile.
RUN pip install uv==0.13.8
WORKDIR /app
# Dependencies first: this layer is rebuilt only when the lock changes. dlib comes as the prebuilt dlib-bin wheel
# (pyproject's [tool.uv] override-dependencies keeps face_recognition's dlib from building from source).
COPY pyproject.toml uv.lock ./
RUN uv sync --locked --no-dev --no-install-project --python /usr/local/bin/python3
# Then the project itself, installed as a wheel (not editable): the runtime stage needs only the venv.
COPY . .
RUN uv sync --locked --no-dev --no-editable --python /usr/local/bin/python3

# ---- runtime --------------------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime
# fonts-wqy-zenhei: a TrueType CJK font reportlab can embed (signing/fonts.py finds it; fonts-noto-cjk is CFF
# OpenType, which reportlab cannot embed). libstdc++6: dlib's extension module links it.
RUN apt-get update \
    && apt-get install -y --no-install-recommends fonts-wqy-zenhei libstdc++6 \
    && rm -rf /var/lib/apt/lists/*
RUN groupadd --system --gid 10001 echain \
    && useradd --system --uid 10001 --gid echain --create-home --home-dir /home/echain echain \
    && mkdir -p /data \
    && chown echain:echain /data
# Owned by root, read-only for the service user.
COPY --from=build /app/.venv /app/.venv
ENV PATH="/app/.venv/bin:$PATH" \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    ECHAIN_ENV=production \
    ECHAIN_HOST=0.0.0.0 \
    ECHAIN_PORT=8080 \
    ECHAIN_DATA_DIR=/data \
    ECHAIN_LOG_FORMAT=json \
    ECHAIN_CONTRACT_FONT=auto
WORKDIR /home/echain
# Uploaded documents, the platform CA (unless ECHAIN_CA_* name your own), the embedded Redis when none is set.
VOLUME ["/data"]
USER 10001:10001
EXPOSE 8080
# Standard library only (no curl in slim); exits 1 unless GET /healthz answers 200 (database and Redis up).
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 CMD ["python", "-m", "echain.healthcheck"]
CMD ["echain", "serve"]
