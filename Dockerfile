# An Airbyte source image: `docker build -t tap-metronome/source-metronome:0.1.0 .`
# Not built in this repository's CI (no Docker registry is reachable there).
FROM python:3.11-slim
WORKDIR /airbyte/integration_code
COPY pyproject.toml README.md LICENSE ./
COPY tap_metronome ./tap_metronome
COPY schemas ./schemas
RUN pip install --no-cache-dir . && useradd --create-home airbyte
USER airbyte
ENV AIRBYTE_ENTRYPOINT="source-metronome"
ENTRYPOINT ["source-metronome"]
LABEL io.airbyte.name="tap-metronome/source-metronome" io.airbyte.version="0.1.0"
