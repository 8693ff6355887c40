#!/usr/bin/env bash
# Installs the system programs the tests use (real Redis, Chromium, ffmpeg, promtool)
# through apt when run as root; otherwise says exactly what to install.
set -euo pipefail
declare -A need=(
  [redis-server]=redis-server
  [chromium]=chromium
  [ffmpeg]=ffmpeg
  [promtool]=prometheus
  [kubectl]=kubernetes-client
  # impairment tests: network namespaces, tbf bandwidth caps (ip, tc) and random loss (nft)
  [ip]=iproute2
  [tc]=iproute2
  [nft]=nftables
  [gst-launch-1.0]=gstreamer1.0-tools
)
missing=()
for cmd in "${!need[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${need[$cmd]}")
done
# Chinese text in the pages (and their screenshots) needs a CJK font.
[ -d /usr/share/fonts/opentype/noto ] && ls /usr/share/fonts/opentype/noto | grep -qi cjk \
  || missing+=(fonts-noto-cjk)
# The RTSP cameras of the ingest tests: a GstRtspServer under the system python3 (gi)
# encoding with x264enc (H.264) and x265enc (the H.265 a camera must not send).
gst_check='import gi
gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import Gst, GstRtspServer
Gst.init(None)
assert all(Gst.ElementFactory.find(n) for n in ("x264enc", "x265enc", "rtph265pay", "avdec_h264"))'
/usr/bin/python3 -c "$gst_check" >/dev/null 2>&1 || missing+=(python3-gi
  gir1.2-gst-rtsp-server-1.0 gstreamer1.0-rtsp gstreamer1.0-plugins-base
  gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly
  gstreamer1.0-libav)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing system packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends $(printf '%s\n' "${missing[@]}" | sort -u) >/dev/null
else
  echo "missing system packages: ${missing[*]}" >&2
  echo "install them with: sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
