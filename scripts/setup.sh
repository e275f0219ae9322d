#!/usr/bin/env bash
# Set up tfedge on this machine: Debian's Fashion-MNIST package (when root) and a
# virtual environment in .venv with tfedge and its extras. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

FASHION_DIR="${TFEDGE_FASHION_MNIST:-/usr/share/datasets/fashion-mnist}"
EXTRAS="${TFEDGE_EXTRAS:-dev}"
PYTHON="${PYTHON:-python3}"

if [ ! -f "$FASHION_DIR/train-images-idx3-ubyte.gz" ]; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing Debian's dataset-fashion-mnist (the built-in benchmark's objects)" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist >/dev/null
  else
    echo "setup: Fashion-MNIST is not in $FASHION_DIR. Install it with" >&2
    echo "         sudo apt-get install dataset-fashion-mnist" >&2
    echo "       or point TFEDGE_FASHION_MNIST at a folder holding its four IDX .gz files." >&2
    exit 2
  fi
fi

# The Android core's JVM tests (tests/test_android_core.py): Debian's JDK, JUnit 4, Hamcrest and
# Android's own org.json. Without them that test skips locally and fails under CI.
JAVA_PACKAGES="default-jdk-headless junit4 libhamcrest-java libandroid-json-java"
if ! command -v javac >/dev/null 2>&1 || [ ! -f /usr/share/java/junit4.jar ] \
    || [ ! -f /usr/share/java/hamcrest-core.jar ] || [ ! -f /usr/share/java/com.android.json.jar ]; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing Debian's $JAVA_PACKAGES (the Android core's JVM tests)" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $JAVA_PACKAGES >/dev/null
  else
    echo "setup: the Android core's JVM tests need Debian's Java packages; install them with" >&2
    echo "         sudo apt-get install -y $JAVA_PACKAGES" >&2
    echo "       (until then tests/test_android_core.py skips them; under CI=true it fails)." >&2
  fi
fi

# The Android app's framework-only sources are compiled against a real android.jar
# (tests/test_android_core.py). Debian bookworm has no android-sdk-platform-*, bullseye has
# android-sdk-platform-23. Its three .debs are fetched with apt from bullseye through a
# private apt state (its own sources list, index and cache in a temporary folder; the
# system's sources, package lists and installed packages are not touched: nothing is
# installed or upgraded, apt only verifies the downloads against bullseye's signed index)
# and unpacked with dpkg -x under $TFEDGE_ANDROID_SDK. Failing that, the test skips (fails
# under CI=true).
ANDROID_PACKAGES="android-sdk-platform-23 libandroid-23-java libandroid-uiautomator-23-java"
if [ "$(id -u)" = "0" ]; then
  ANDROID_PREFIX="${TFEDGE_ANDROID_SDK:-/opt/tfedge/android-sdk-23}"
else
  ANDROID_PREFIX="${TFEDGE_ANDROID_SDK:-${XDG_CACHE_HOME:-$HOME/.cache}/tfedge/android-sdk-23}"
fi
ANDROID_JAR_PATH="$ANDROID_PREFIX/usr/lib/android-sdk/platforms/android-23/android.jar"
if [ ! -f "$ANDROID_JAR_PATH" ] && command -v apt-get >/dev/null 2>&1 \
    && command -v dpkg >/dev/null 2>&1; then
  echo "setup: fetching bullseye's $ANDROID_PACKAGES into $ANDROID_PREFIX (android.jar, API 23)" >&2
  APT_TMP="$(mktemp -d)"
  mkdir -p "$APT_TMP/lists/partial" "$APT_TMP/cache/archives/partial" "$APT_TMP/debs"
  echo "deb http://deb.debian.org/debian bullseye main" > "$APT_TMP/bullseye.list"
  APT_PRIVATE=(-o "Dir::Etc::SourceList=$APT_TMP/bullseye.list" -o "Dir::Etc::SourceParts=/dev/null"
               -o "Dir::State::Lists=$APT_TMP/lists" -o "Dir::Cache=$APT_TMP/cache"
               -o "Dir::State::Status=/dev/null" -o "APT::Sandbox::User=$(id -un)")
  if apt-get -qq "${APT_PRIVATE[@]}" update >/dev/null \
      && (cd "$APT_TMP/debs" && apt-get -qq "${APT_PRIVATE[@]}" download $ANDROID_PACKAGES >/dev/null); then
    mkdir -p "$ANDROID_PREFIX"
    for deb in "$APT_TMP"/debs/*.deb; do
      dpkg -x "$deb" "$ANDROID_PREFIX"
    done
  else
    echo "setup: could not fetch $ANDROID_PACKAGES from deb.debian.org bullseye; the app's" >&2
    echo "       framework-only sources will not be compiled (set ANDROID_JAR to an android.jar)." >&2
  fi
  rm -rf "$APT_TMP"
fi

# Quantisation-aware training (tfedge.qat): installed --no-deps, as setup.py's QAT_NO_DEPS says.
QAT_PACKAGES="tf-keras==2.21.0 tensorflow-model-optimization==0.8.1"
# What each extra installs, as modules: a set-up .venv imports them all (else: install).
CHECK="import tfedge"
WANT_QAT=0
for extra in ${EXTRAS//,/ }; do
  case "$extra" in
    train) CHECK="$CHECK, tensorflow, skimage, sklearn, matplotlib" ;;
    runtime) CHECK="$CHECK, ai_edge_litert" ;;
    camera) CHECK="$CHECK, cv2" ;;
    qat) WANT_QAT=1; CHECK="$CHECK, tf_keras, tensorflow_model_optimization" ;;
    dev) WANT_QAT=1
         CHECK="$CHECK, tensorflow, skimage, sklearn, matplotlib, ai_edge_litert, cv2, pytest"
         CHECK="$CHECK, tf_keras, tensorflow_model_optimization" ;;
  esac
done

if [ ! -x .venv/bin/python ]; then
  echo "setup: creating the virtual environment .venv" >&2
  "$PYTHON" -m venv .venv
fi
if ! .venv/bin/python -c "$CHECK" >/dev/null 2>&1 || [ setup.py -nt .venv/.tfedge-installed ]; then
  echo "setup: installing tfedge[$EXTRAS] into .venv (TensorFlow CPU, LiteRT; about a minute)" >&2
  .venv/bin/python -m pip install -q --upgrade pip >/dev/null
  .venv/bin/python -m pip install -q -e ".[$EXTRAS]"
  if [ "$WANT_QAT" = 1 ]; then
    .venv/bin/python -m pip install -q --no-deps $QAT_PACKAGES
  fi
  touch .venv/.tfedge-installed
fi
echo "setup: ready (.venv/bin/tfedge, .venv/bin/tfedge-convert, .venv/bin/tfedge-pi)" >&2
