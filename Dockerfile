# riskd image. Build context: the repository root.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    NUMBA_CACHE_DIR=/tmp/numba-cache

WORKDIR /app
COPY pyproject.toml README.md ./
COPY engine ./engine
COPY feeds ./feeds
COPY config ./config
# Editable install, so config/ beside engine/ is found as in a checkout.
RUN pip install --no-cache-dir -e . \
    && useradd --system --uid 10001 riskd
USER riskd

ENTRYPOINT ["riskd"]
CMD ["run", "-c", "config/docker.toml", "--view", "off"]
