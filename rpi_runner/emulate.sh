#!/usr/bin/env bash
# Emulated Raspberry Pi check: run tfedge-pi in an arm64 Debian bookworm userland
# (what 64-bit Raspberry Pi OS is built on) under qemu-user, and compare its
# outputs with the same run on this (x86) machine.
#
# Usage (as root, from the repository root):
#   sudo rpi_runner/emulate.sh BUNDLE IMAGES_DIR
#   sudo rpi_runner/emulate.sh --cpu cortex-a76 --root /var/tmp/pi-root BUNDLE IMAGES_DIR
#
# Options:
#   --cpu cortex-a72|cortex-a76   the Pi 4 (default) or Pi 5 core; QEMU_CPU and the
#                                 fake /proc/cpuinfo both follow it
#   --root DIR                    the arm64 userland (default /var/tmp/tfedge-pi-root;
#                                 built once, reused by later runs: setup ~6 minutes)
#   --work DIR                    where outputs go (default ./runs/emulate)
#   --python PY                   the host Python for the x86 reference run
#                                 (default .venv/bin/python, else python3)
#   --threads N                   interpreter threads (default 1)
#
# What it does:
#   1. host: apt-get install qemu-user-static binfmt-support debootstrap (if missing),
#      binfmt_misc mounted and qemu-aarch64 registered, so arm64 binaries run;
#   2. debootstrap --arch=arm64 bookworm (minbase + python3, venv, pip, CA
#      certificates) from the Debian mirror the host's apt sources name
#      (DEBIAN_MIRROR overrides it);
#   3. inside: a venv with ai-edge-litert numpy pillow from PyPI, the same
#      versions as the host Python when it has them (pip uses the host's CA
#      bundle: a TLS-intercepting proxy otherwise fails every download);
#   4. runs `python -m rpi_runner BUNDLE IMAGES --golden ...` inside the chroot with
#      QEMU_CPU set, an ARM /proc/cpuinfo bind-mounted and /sys mounted (without
#      them the interpreter crashes or XNNPACK returns different numbers), and the
#      same on the host;
#   5. compares: every record (label, class, exit stage, box, crop window,
#      scores to 1e-6) and every tensor of the golden vectors (quantised inputs,
#      raw outputs) must be identical. The last line printed is one JSON object;
#      exit status 0 when identical, 1 when not, 2 on a setup error.
#
# Nothing here changes the host beyond the three apt packages, the binfmt
# registration and the --root folder; mounts are undone on exit.

set -euo pipefail

CPU="cortex-a72"
ROOT="/var/tmp/tfedge-pi-root"
WORK="runs/emulate"
HOST_PYTHON=""
THREADS=1
SUITE="bookworm"
VENV="/opt/tfedge-venv"
PACKAGES=(ai-edge-litert numpy pillow)

die() { echo "emulate.sh: error: $*" >&2; exit 2; }
log() { echo "[emulate $(date +%H:%M:%S)] $*" >&2; }

POSITIONAL=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --cpu) CPU="$2"; shift 2 ;;
    --root) ROOT="$2"; shift 2 ;;
    --work) WORK="$2"; shift 2 ;;
    --python) HOST_PYTHON="$2"; shift 2 ;;
    --threads) THREADS="$2"; shift 2 ;;
    -h|--help) sed -n '2,40p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) die "unknown option $1 (see --help)" ;;
    *) POSITIONAL+=("$1"); shift ;;
  esac
done
[[ ${#POSITIONAL[@]} -eq 2 ]] || die "pass BUNDLE and IMAGES_DIR (see --help)"
BUNDLE="$(realpath "${POSITIONAL[0]}")"
IMAGES="$(realpath "${POSITIONAL[1]}")"
[[ -e "$BUNDLE" ]] || die "bundle $BUNDLE does not exist: build one with tfedge-convert"
[[ -d "$IMAGES" ]] || die "$IMAGES is not a folder of images"
[[ $(id -u) -eq 0 ]] || die "run as root (debootstrap, chroot and mounts need it): sudo $0 ..."
case "$CPU" in
  cortex-a72) CPU_PART="0xd08"; PI_MODEL="Raspberry Pi 4 Model B Rev 1.5"; HARDWARE="BCM2835" ;;
  cortex-a76) CPU_PART="0xd0b"; PI_MODEL="Raspberry Pi 5 Model B Rev 1.0"; HARDWARE="BCM2712" ;;
  *) die "--cpu must be cortex-a72 (Pi 4) or cortex-a76 (Pi 5), got $CPU" ;;
esac
REPO="$(cd "$(dirname "$0")/.." && pwd)"
cd "$REPO"
if [[ -z "$HOST_PYTHON" ]]; then
  if [[ -x .venv/bin/python ]]; then HOST_PYTHON=.venv/bin/python; else HOST_PYTHON=python3; fi
fi
mkdir -p "$WORK"
WORK="$(realpath "$WORK")"
START=$(date +%s)

# ---------------------------------------------------------------- 1. host tools and binfmt
need=()
command -v qemu-aarch64-static >/dev/null || need+=(qemu-user-static)
command -v update-binfmts >/dev/null || need+=(binfmt-support)
command -v debootstrap >/dev/null || need+=(debootstrap)
if [[ ${#need[@]} -gt 0 ]]; then
  log "installing ${need[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
if [[ ! -e /proc/sys/fs/binfmt_misc/status ]]; then
  mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc || die "cannot mount binfmt_misc"
fi
if [[ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]]; then
  log "registering qemu-aarch64 with binfmt_misc"
  update-binfmts --enable qemu-aarch64 2>/dev/null || update-binfmts --import qemu-aarch64 \
    || die "cannot register qemu-aarch64 (is qemu-user-static installed?)"
fi
[[ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]] || die "qemu-aarch64 is not registered"

# ---------------------------------------------------------------- 2. the arm64 userland
mirror_from_host() {
  # deb822 sources (URIs: ...) first, then one-line sources (deb URL suite ...).
  local uri
  uri=$(grep -h -E '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null \
        | awk '{print $2}' | grep -v -E 'security|updates' | grep -i debian | head -n1 || true)
  if [[ -z "$uri" ]]; then
    uri=$(grep -h -E '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null \
          | awk '{print $2}' | grep -v security | grep -i debian | head -n1 || true)
  fi
  echo "${uri:-http://deb.debian.org/debian}"
}
MIRROR="${DEBIAN_MIRROR:-$(mirror_from_host)}"
if [[ ! -e "$ROOT/.tfedge-debootstrap-done" ]]; then
  log "debootstrap --arch=arm64 $SUITE into $ROOT from $MIRROR (several minutes)"
  rm -rf "$ROOT"
  mkdir -p "$ROOT"
  debootstrap --arch=arm64 --variant=minbase \
    --include=python3,python3-venv,python3-pip,ca-certificates \
    "$SUITE" "$ROOT" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 \
    || { tail -n 20 "$WORK/debootstrap.log" >&2; die "debootstrap failed (log: $WORK/debootstrap.log)"; }
  touch "$ROOT/.tfedge-debootstrap-done"
fi

# ---------------------------------------------------------------- mounts (undone on exit)
MOUNTS=()
cleanup() {
  local i
  for (( i=${#MOUNTS[@]}-1; i>=0; i-- )); do umount -l "${MOUNTS[$i]}" 2>/dev/null || true; done
}
trap cleanup EXIT
mount_bind() { mount --bind "$1" "$2"; MOUNTS+=("$2"); }

mkdir -p "$ROOT/proc" "$ROOT/sys" "$ROOT/dev" "$ROOT/opt/tfedge-work"
mount -t proc proc "$ROOT/proc"; MOUNTS+=("$ROOT/proc")
# /sys too: without /sys/devices/system/cpu/{present,possible} the cpuinfo library fails
# ("failed to parse the list of present processors") and XNNPACK's int8 results change.
mount -t sysfs sysfs "$ROOT/sys"; MOUNTS+=("$ROOT/sys")
mount_bind /dev "$ROOT/dev"
# An ARM /proc/cpuinfo: LiteRT's cpuinfo library reads it to pick kernels. It lists as
# many processors as /sys says are present (the library cross-checks the two).
present=$(cat /sys/devices/system/cpu/present 2>/dev/null || echo 0)
if [[ "$present" =~ ^0-([0-9]+)$ ]]; then LAST_CPU=${BASH_REMATCH[1]}; else LAST_CPU=$(( $(nproc --all) - 1 )); fi
CPUINFO="$WORK/cpuinfo-$CPU"
{
  for (( n=0; n<=LAST_CPU; n++ )); do
    cat <<EOF
processor	: $n
BogoMIPS	: 108.00
Features	: fp asimd evtstrm crc32 cpuid$( [[ $CPU == cortex-a76 ]] && echo " atomics fphp asimdhp asimdrdm lrcpc dcpop asimddp" )
CPU implementer	: 0x41
CPU architecture: 8
CPU variant	: $( [[ $CPU == cortex-a76 ]] && echo 0x4 || echo 0x0 )
CPU part	: $CPU_PART
CPU revision	: $( [[ $CPU == cortex-a76 ]] && echo 1 || echo 3 )

EOF
  done
  printf 'Hardware\t: %s\nRevision\t: c03115\nSerial\t\t: 10000000deadbeef\nModel\t\t: %s\n' \
    "$HARDWARE" "$PI_MODEL"
} > "$CPUINFO"
mount_bind "$CPUINFO" "$ROOT/proc/cpuinfo"
# DNS and the host's CA bundle for pip.
cp -L /etc/resolv.conf "$ROOT/etc/resolv.conf" 2>/dev/null || true
HOST_CA=""
for ca in "${PIP_CERT:-}" "${SSL_CERT_FILE:-}" /etc/ssl/certs/ca-certificates.crt; do
  if [[ -n "$ca" && -f "$ca" ]]; then HOST_CA="$ca"; break; fi
done
[[ -n "$HOST_CA" ]] || die "no CA bundle on the host (set PIP_CERT)"
cp -L "$HOST_CA" "$ROOT/opt/tfedge-work/host-ca.crt"

in_root() {
  # Run a command in the arm64 userland under the emulated CPU.
  env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
    QEMU_CPU="$CPU" PIP_CERT=/opt/tfedge-work/host-ca.crt SSL_CERT_FILE=/opt/tfedge-work/host-ca.crt \
    REQUESTS_CA_BUNDLE=/opt/tfedge-work/host-ca.crt PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_DEFAULT_TIMEOUT=180 ${HTTPS_PROXY:+HTTPS_PROXY=$HTTPS_PROXY} ${HTTP_PROXY:+HTTP_PROXY=$HTTP_PROXY} \
    ${https_proxy:+https_proxy=$https_proxy} ${http_proxy:+http_proxy=$http_proxy} \
    chroot "$ROOT" "$@"
}
ARCH=$(in_root uname -m)
[[ "$ARCH" == aarch64 ]] || die "the chroot runs as $ARCH, not aarch64: binfmt is not working"

# ---------------------------------------------------------------- 3. the venv
pins=()
for pkg in "${PACKAGES[@]}"; do
  version=$("$HOST_PYTHON" -c "import importlib.metadata as m; print(m.version('$pkg'))" 2>/dev/null || true)
  pins+=("${pkg}${version:+==$version}")
done
if [[ ! -e "$ROOT/$VENV/.tfedge-pins" ]] || [[ "$(cat "$ROOT/$VENV/.tfedge-pins")" != "${pins[*]}" ]]; then
  log "venv in the chroot: pip install ${pins[*]} (from PyPI, emulated: a few minutes)"
  rm -rf "${ROOT:?}/$VENV"
  in_root python3 -m venv "$VENV"
  in_root "$VENV/bin/pip" install --no-cache-dir -q "${pins[@]}" >"$WORK/pip.log" 2>&1 \
    || { tail -n 20 "$WORK/pip.log" >&2; die "pip install failed in the chroot (log: $WORK/pip.log)"; }
  echo "${pins[*]}" > "$ROOT/$VENV/.tfedge-pins"
fi

# ---------------------------------------------------------------- 4. the runs
log "copying the runner, the bundle and the images into the chroot"
rm -rf "$ROOT/opt/tfedge-src" "$ROOT/opt/tfedge-work/bundle" "$ROOT/opt/tfedge-work/images"
mkdir -p "$ROOT/opt/tfedge-src"
# The device contract (tfedge.runtime, with the package's lazy __init__ and its error-class
# alias) and the runner, nothing else of tfedge: the chroot has no TensorFlow at all, and
# anything the runner reached beyond tfedge.runtime would fail here.
tar -C "$REPO" --exclude='__pycache__' -cf - tfedge/__init__.py tfedge/_errors.py tfedge/runtime \
  rpi_runner | tar -C "$ROOT/opt/tfedge-src" -xf -
cp -rL "$BUNDLE" "$ROOT/opt/tfedge-work/bundle"
cp -rL "$IMAGES" "$ROOT/opt/tfedge-work/images"
BUNDLE_NAME="bundle"
[[ -f "$BUNDLE" ]] && { mv "$ROOT/opt/tfedge-work/bundle" "$ROOT/opt/tfedge-work/bundle.zip"; BUNDLE_NAME="bundle.zip"; }

log "arm64 run ($CPU, $THREADS thread(s))"
ARM_START=$(date +%s)
in_root env PYTHONPATH=/opt/tfedge-src "$VENV/bin/python" -m rpi_runner \
  "/opt/tfedge-work/$BUNDLE_NAME" /opt/tfedge-work/images --threads "$THREADS" \
  --output /opt/tfedge-work/arm.jsonl --golden /opt/tfedge-work/arm_golden.json \
  --golden-limit 1000000 2>"$WORK/arm.log" || [[ $? -eq 1 ]] \
  || { tail -n 20 "$WORK/arm.log" >&2; die "the runner failed in the chroot (log: $WORK/arm.log)"; }
ARM_SECONDS=$(( $(date +%s) - ARM_START ))
cp "$ROOT/opt/tfedge-work/arm.jsonl" "$ROOT/opt/tfedge-work/arm_golden.json" "$WORK/"
ARM_BACKEND=$(in_root env PYTHONPATH=/opt/tfedge-src "$VENV/bin/python" -c \
  "import platform, numpy, ai_edge_litert; from importlib.metadata import version; print(platform.machine(), 'numpy', numpy.__version__, 'ai-edge-litert', version('ai-edge-litert'))")

log "x86 run on the host"
"$HOST_PYTHON" -m rpi_runner "$BUNDLE" "$ROOT/opt/tfedge-work/images" --threads "$THREADS" \
  --output "$WORK/x86.jsonl" --golden "$WORK/x86_golden.json" --golden-limit 1000000 \
  2>"$WORK/x86.log" || [[ $? -eq 1 ]] || { tail -n 20 "$WORK/x86.log" >&2; die "the host run failed"; }

# ---------------------------------------------------------------- 5. compare
"$HOST_PYTHON" - "$WORK" "$CPU" "$ARM_SECONDS" "$(( $(date +%s) - START ))" "$ARM_BACKEND" <<'PY'
import json, sys
from pathlib import Path

work, cpu, arm_seconds, total_seconds, backend = sys.argv[1:6]
work = Path(work)
TIMING = ("stage_ms", "predictor_ms", "refiner_ms", "decode_ms", "preprocess_ms", "infer_ms",
          "pipeline_ms", "total_ms")
SCORES = ("score", "exit_score")

def records(name):
    out = []
    for line in (work / name).read_text().splitlines():
        r = json.loads(line)
        r["source"] = Path(r["source"]).name
        out.append(r)
    return out

arm, x86 = records("arm.jsonl"), records("x86.jsonl")
problems, max_score_diff = [], 0.0
if len(arm) != len(x86):
    problems.append(f"{len(arm)} arm64 records, {len(x86)} x86 records")
for a, b in zip(arm, x86):
    for key in sorted(set(a) | set(b)):
        if key in TIMING:
            continue
        if key in SCORES and key in a and key in b:
            diff = abs(a[key] - b[key])
            max_score_diff = max(max_score_diff, diff)
            if diff > 1e-6:
                problems.append(f"{a['source']}: {key} {a[key]} vs {b[key]}")
        elif a.get(key) != b.get(key):
            problems.append(f"{a['source']}: {key} {a.get(key)!r} vs {b.get(key)!r}")
ga = json.loads((work / "arm_golden.json").read_text())["cases"]
gx = json.loads((work / "x86_golden.json").read_text())["cases"]
tensors = 0
for ca, cx in zip(ga, gx):
    pairs = []
    if ca["predictor"] and cx["predictor"]:
        pairs.append(("predictor input", ca["predictor"]["input"], cx["predictor"]["input"]))
        pairs += [("predictor output", a, b) for a, b in zip(ca["predictor"]["outputs"],
                                                             cx["predictor"]["outputs"])]
    for k, (pa, px) in enumerate(zip(ca.get("refiner") or [], cx.get("refiner") or [])):
        pairs += [(f"refiner pass {k} window", pa["window"], px["window"]),
                  (f"refiner pass {k} input", pa["input"], px["input"]),
                  (f"refiner pass {k} box", pa["box"], px["box"])]
        pairs += [(f"refiner pass {k} output", a, b) for a, b in zip(pa["outputs"], px["outputs"])]
    for k, (sa, sx) in enumerate(zip(ca["stages"], cx["stages"])):
        pairs += [(f"stage {k} input", sa["input"], sx["input"]),
                  (f"stage {k} output", sa["output"], sx["output"])]
    for what, a, b in pairs:
        tensors += 1
        if a != b:
            problems.append(f"{Path(ca['source']).name}: {what} differs")
identical = not problems
summary = {"identical": identical, "frames": len(arm), "errors": sum("error" in r for r in arm),
           "tensors_compared": tensors, "max_score_difference": max_score_diff,
           "problems": problems[:20], "cpu": cpu, "arm": backend,
           "arm_run_seconds": int(arm_seconds), "total_seconds": int(total_seconds)}
print(json.dumps(summary, sort_keys=True))
sys.exit(0 if identical else 1)
PY
