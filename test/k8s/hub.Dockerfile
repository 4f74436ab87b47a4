# fnbus's image for the tests: this checkout's build copied as it is (the repository's Dockerfile
# builds it from source, which needs the internet), on a base made of this machine's files.
ARG WATCHDOG_IMAGE
ARG BASE_IMAGE
FROM ${WATCHDOG_IMAGE} AS watchdog

FROM ${BASE_IMAGE}
COPY --from=watchdog /opt/fnbus/bin/tini /usr/bin/tini
WORKDIR /app
COPY package.json ./
COPY bin ./bin
COPY dist ./dist
COPY node_modules ./node_modules
COPY templates ./templates
USER 10001:10001
ENV HOME=/tmp FNBUS_STATE_DIR=/tmp/fnbus
EXPOSE 8080
ENTRYPOINT ["/usr/bin/tini", "--", "/app/bin/fnbus"]
CMD ["gateway", "--host", "0.0.0.0"]
