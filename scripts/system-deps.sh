#!/bin/sh
# Debian packages the program and its tests need beyond Python: the xcb libraries for a real Qt
# window (make run), Xvfb for the end-to-end test, poppler-utils to render and read PDF reports,
# Orthanc (with its DICOMweb plugin) and dcmtk as a real PACS and a second DICOM implementation
# for the PACS tests (Orthanc is started by the tests themselves, never as a service),
# dicom3tools' dciodvfy (the validator every DICOM object we write must pass), and the fonts the
# PDF report embeds (DejaVu Sans: Latin, Greek, Cyrillic; Droid Sans Fallback: CJK).
# Installs what is missing when run as root (as CI does); otherwise names the command to run.
# Not Debian (no dpkg): says nothing and lets Qt report what it misses.
set -eu
need="xvfb xauth libxcb-icccm4 libxcb-keysyms1 libxcb-cursor0 libxkbcommon-x11-0 libegl1 libgl1 libfontconfig1 libdbus-1-3 poppler-utils orthanc orthanc-dicomweb dcmtk dicom3tools fonts-dejavu-core fonts-droid-fallback"
command -v dpkg-query >/dev/null || exit 0
missing=""
for p in $need; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing:$missing"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
    # the package enables a system Orthanc; the tests run their own on free loopback ports
    if command -v systemctl >/dev/null; then systemctl disable --now orthanc >/dev/null 2>&1 || true; fi
else
    echo "missing Debian packages:$missing" >&2
    echo "install them with:  sudo apt-get install -y$missing" >&2
    echo "(without them the window may not open; tests that need them skip)" >&2
fi
