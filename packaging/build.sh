#!/usr/bin/env bash
# Build the self-contained application folder dist/tfesi-desktop (PyInstaller, one folder) from
# a clean environment, install the .desktop file and icon beside it, and run the headless
# self-test. Usage: packaging/build.sh [PYTHON]   (default python3.11)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${1:-python3.11}
VENV=build/package-venv
rm -rf "$VENV" build/pyinstaller dist/tfesi-desktop
"$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
# the program without TensorFlow: its own dependencies and the GUI extra only
"$VENV/bin/python" -m pip install --quiet -c requirements.lock ".[gui]" "pyinstaller==6.22.3"
start=$(date +%s)
"$VENV/bin/pyinstaller" --noconfirm --log-level WARN --distpath dist \
    --workpath build/pyinstaller packaging/tfesi-desktop.spec
echo "pyinstaller: $(( $(date +%s) - start )) s"
APP=dist/tfesi-desktop
mkdir -p "$APP/share/applications" "$APP/share/icons/hicolor/256x256/apps"
cp packaging/tfesi-desktop.desktop "$APP/share/applications/"
cp resources/icon.png "$APP/share/icons/hicolor/256x256/apps/tfesi-desktop.png"
if "$APP/tfesi-desktop" --self-test; then :; else echo "SELF-TEST FAILED"; exit 1; fi
if find "$APP" -iname "*tensorflow*" | grep -q .; then echo "TensorFlow in the bundle"; exit 1; fi
echo "size: $(du -sh "$APP" | cut -f1)  ($APP)"
echo "install the desktop entry: cp -r $APP/share/* ~/.local/share/ and put $APP on PATH"
