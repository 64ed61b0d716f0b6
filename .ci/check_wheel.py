"""Checks the built distributions in the directory given, from a fresh venv that
has only the wheel and its dependencies installed (run by .ci/run)."""
import importlib.metadata
import importlib.resources
import sys
import zipfile
from pathlib import Path

import bkvcodec
import bkvcodec.testing
import reference_server

assert importlib.metadata.version("bkvcodec") == bkvcodec.__version__
assert importlib.resources.files("bkvcodec").joinpath("py.typed").is_file()
for package in (bkvcodec, bkvcodec.testing, reference_server):
    assert "site-packages" in str(package.__file__), package.__file__

dist = Path(sys.argv[1])
wheel = next(dist.glob("*.whl"))
names = zipfile.ZipFile(wheel).namelist()
stray = [n for n in names if not n.startswith(("bkvcodec", "reference_server"))]
assert not stray, stray

meta = importlib.metadata.metadata("bkvcodec")
assert meta["License-Expression"] == "MIT", meta["License-Expression"]
assert meta.get_all("Project-URL") and meta["Summary"] and meta["Requires-Python"], meta
assert "text/markdown" in meta["Description-Content-Type"]

sdist = next(dist.glob("*.tar.gz"))
print(f"{wheel.name}: {len(names)} files; {sdist.name}; bkvcodec {bkvcodec.__version__}")
