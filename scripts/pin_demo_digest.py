"""Set DEMO_BUNDLE_SHA256 in tfesi_desktop/core/bundle.py to the digest of the shipped demo
bundle (after retraining or re-exporting it on purpose)."""

import re
from pathlib import Path

from tfesi_desktop.core import bundle
from tfesi_desktop.core.paths import resource_path

digest = bundle._load(resource_path(*bundle.DEMO_BUNDLE), check_signature=False).digest
src = Path(bundle.__file__)
text = re.sub(r'DEMO_BUNDLE_SHA256 = "[0-9a-f]{64}"', f'DEMO_BUNDLE_SHA256 = "{digest}"',
              src.read_text())
src.write_text(text)
print(digest)
