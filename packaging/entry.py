"""Entry point of the packaged application (PyInstaller runs this file)."""

import sys

from tfesi_desktop.gui.app import main

if __name__ == "__main__":
    sys.exit(main())
