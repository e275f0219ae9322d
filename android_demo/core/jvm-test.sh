#!/usr/bin/env bash
# Compile the Android core and its JUnit 4 tests with javac and run them: no Gradle, no
# network, only Debian's packages (default-jdk-headless junit4 libhamcrest-java
# libandroid-json-java; scripts/setup.sh installs them as root).
#   bash android_demo/core/jvm-test.sh
# BUILD_DIR (default android_demo/core/build/jvm) takes the classes; JAVA_OPTS go to the
# test JVM, e.g. JAVA_OPTS=-Dtfedge.golden=/other/vectors to run against other vectors.
set -euo pipefail
cd "$(dirname "$0")"
BUILD="${BUILD_DIR:-build/jvm}"
JAVA_LIB="${JAVA_LIB:-/usr/share/java}"
JARS="$JAVA_LIB/com.android.json.jar $JAVA_LIB/junit4.jar $JAVA_LIB/hamcrest-core.jar"
for tool in javac java; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "jvm-test: no $tool: sudo apt-get install -y default-jdk-headless (or bash scripts/setup.sh as root)" >&2
    exit 3
  fi
done
for jar in $JARS; do
  if [ ! -f "$jar" ]; then
    echo "jvm-test: no $jar: sudo apt-get install -y junit4 libhamcrest-java libandroid-json-java" >&2
    exit 3
  fi
done
CP="$(echo $JARS | tr ' ' ':')"
rm -rf "$BUILD"
mkdir -p "$BUILD/classes" "$BUILD/test-classes"
# Java 8 language and library level: what the app's minSdk runs without desugaring tricks.
javac --release 8 -encoding UTF-8 -Xlint:all -cp "$CP" -d "$BUILD/classes" \
  $(find src/main/java -name '*.java' | sort)
javac --release 8 -encoding UTF-8 -Xlint:all -cp "$CP:$BUILD/classes" -d "$BUILD/test-classes" \
  $(find src/test/java -name '*.java' | sort)
TESTS=$(cd src/test/java && find . -name '*Test.java' | sed 's|^\./||; s|\.java$||; s|/|.|g' | sort)
# shellcheck disable=SC2086
exec java ${JAVA_OPTS:-} -cp "$CP:$BUILD/classes:$BUILD/test-classes:src/test/resources" \
  org.junit.runner.JUnitCore $TESTS
