# fnbus's own image: the gateway, queue worker and connectors (`fnbus gateway`, `fnbus
# queue-worker`, `fnbus connector <kind>`), as deploy/kubernetes/manifests/fnbus.yaml runs them.
#   docker build -t fnbus:0.1.0 .
ARG BASE_IMAGE=node:22-slim
FROM ${BASE_IMAGE} AS build
# better-sqlite3 and the watchdog's spawner are compiled here.
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN npm ci --no-audit --no-fund && npm prune --omit=dev && rm -rf dist/test dist/bench

FROM ${BASE_IMAGE}
RUN apt-get update && apt-get install -y --no-install-recommends tini \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY --from=build /src/package.json ./
COPY --from=build /src/bin ./bin
COPY --from=build /src/dist ./dist
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/templates ./templates
USER 10001:10001
ENV HOME=/tmp FNBUS_STATE_DIR=/tmp/fnbus
EXPOSE 8080
ENTRYPOINT ["/usr/bin/tini", "--", "/app/bin/fnbus"]
CMD ["gateway", "--host", "0.0.0.0"]
