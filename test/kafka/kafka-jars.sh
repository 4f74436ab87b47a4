#!/usr/bin/env bash
# Fetches Apache Kafka 4.4.0's broker jars and their runtime closure from Maven Central (Kafka is
# published there as jars, so no tarball is needed) into a cache folder, and prints the folder.
# The Kafka tests start a broker from it (test/helpers/kafka.ts). Runs once: a `.complete` marker
# makes later runs print the folder and do nothing.
#
# Env: FNBUS_KAFKA_JARS (the folder; $HOME/.cache/fnbus/kafka-4.4.0), MAVEN_REPO (Maven's local
# repository; ~/.m2/repository). Needs Java 17+ to run the broker and Maven (`mvn`) to fetch.
set -euo pipefail

kafka=4.4.0
log4j=2.24.3
jars=${FNBUS_KAFKA_JARS:-$HOME/.cache/fnbus/kafka-$kafka}

if [ -f "$jars/.complete" ]; then
  echo "$jars"
  exit 0
fi
command -v mvn >/dev/null || { echo "kafka-jars.sh: mvn not found (apt-get install maven)" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# Kafka 4 logs through the slf4j 1.x API; log4j 2 is the binding its own scripts ship.
cat >"$work/pom.xml" <<POM
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>fnbus.test</groupId>
  <artifactId>kafka-jars</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_2.13</artifactId>
      <version>$kafka</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-slf4j-impl</artifactId>
      <version>$log4j</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-core</artifactId>
      <version>$log4j</version>
    </dependency>
  </dependencies>
</project>
POM

if ! mvn -B -q ${MAVEN_REPO:+"-Dmaven.repo.local=$MAVEN_REPO"} -f "$work/pom.xml" \
  org.apache.maven.plugins:maven-dependency-plugin:3.6.1:copy-dependencies \
  -DincludeScope=runtime -DoutputDirectory="$work/jars" >"$work/mvn.log" 2>&1; then
  tail -30 "$work/mvn.log" >&2
  echo "kafka-jars.sh: Maven could not fetch Kafka $kafka" >&2
  exit 1
fi
[ -f "$work/jars/kafka_2.13-$kafka.jar" ] || { echo "kafka-jars.sh: no kafka_2.13-$kafka.jar fetched" >&2; exit 1; }

# Moved into place whole, then marked: an interrupted run leaves no half folder that looks done.
mkdir -p "$(dirname "$jars")"
rm -rf "$jars"
mv "$work/jars" "$jars"
touch "$jars/.complete"
echo "$jars"
