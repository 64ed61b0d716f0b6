"""Checks the built distributions from a fresh venv that has only wheels and their
dependencies installed (run by .ci/run).

    check_wheel.py DIST                   the venv has both wheels (bkvcodec with its
                                          testing extra, and bkvcodec-server)
    check_wheel.py --library-only DIST    the venv has the bkvcodec wheel alone

DIST holds lib/ (the library's sdist and wheel) and server/ (the server's).
Commands run with DIST as the working directory, so that ``python -m`` finds the
installed packages, not a checkout's folders.
"""
import importlib.metadata
import importlib.resources
import importlib.util
import struct
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

library_only = sys.argv[1] == "--library-only"
dist = Path(sys.argv[-1]).resolve()
scripts = Path(sys.executable).parent


def run(*command: str | Path) -> str:
    """The standard output of *command*, which must succeed."""
    done = subprocess.run([str(c) for c in command], cwd=dist, capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0, (command, done.returncode, done.stderr[-2000:])
    return done.stdout


def wheel_names(folder: str) -> tuple[Path, list[str]]:
    wheel = next((dist / folder).glob("*.whl"))
    return wheel, zipfile.ZipFile(wheel).namelist()


def sdist_names(folder: str) -> tuple[Path, list[str]]:
    sdist = next((dist / folder).glob("*.tar.gz"))
    with tarfile.open(sdist) as tar:
        # Paths inside the sdist's top folder (bkvcodec-0.1.0/...).
        return sdist, [name.partition("/")[2] for name in tar.getnames()]


def check_metadata(name: str) -> importlib.metadata.PackageMetadata:
    meta = importlib.metadata.metadata(name)
    assert meta["License-Expression"] == "MIT", (name, meta["License-Expression"])
    assert meta.get_all("Project-URL") and meta["Summary"] and meta["Requires-Python"], meta
    assert "text/markdown" in meta["Description-Content-Type"], name
    return meta


import bkvcodec  # noqa: E402

version = bkvcodec.__version__
assert "site-packages" in str(bkvcodec.__file__), bkvcodec.__file__
assert importlib.metadata.version("bkvcodec") == version
assert importlib.resources.files("bkvcodec").joinpath("py.typed").is_file()
check_metadata("bkvcodec")
assert run(scripts / "bkvcodec", "--version") == f"bkvcodec {version}\n"
assert run(sys.executable, "-m", "bkvcodec", "--version") == f"bkvcodec {version}\n"

# The library's wheel holds bkvcodec/ alone; its sdist has no server sources.
lib_wheel, names = wheel_names("lib")
stray = [n for n in names if not n.startswith(("bkvcodec/", f"bkvcodec-{version}.dist-info/"))]
assert not stray, stray
lib_sdist, sdist_files = sdist_names("lib")
assert not [n for n in sdist_files if n.startswith(("reference_server", "tests/server"))]
assert "tests/vectors/bkv.json" in sdist_files and "docs/conf.py" in sdist_files

if library_only:
    # Importing the library (every module of it) must not bring the server along.
    # Without the testing extra, bkvcodec.testing says what to install.
    import importlib
    import pkgutil

    for module in pkgutil.walk_packages(bkvcodec.__path__, "bkvcodec."):
        if module.name in ("bkvcodec.testing", "bkvcodec._corpus"):
            try:
                importlib.import_module(module.name)
            except ImportError as err:
                assert module.name == "bkvcodec._corpus" or (
                    "pip install 'bkvcodec[testing]'" in str(err)), err
            else:
                raise AssertionError(f"{module.name} imported without hypothesis")
        elif module.name != "bkvcodec.__main__":  # that one runs the CLI
            importlib.import_module(module.name)
    assert importlib.util.find_spec("reference_server") is None
    assert "reference_server" not in sys.modules
    # Without the sniff extra, `bkvcodec sniff` on a pcap says what to install (exit 2);
    # text captures need nothing.
    (dist / "empty.pcap").write_bytes(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
    done = subprocess.run([str(scripts / "bkvcodec"), "sniff", "empty.pcap"], cwd=dist,
                          capture_output=True, text=True, check=False)
    assert done.returncode == 2 and "pip install 'bkvcodec[sniff]'" in done.stderr, done
    assert "Traceback" not in done.stderr, done.stderr
    (dist / "frames.txt").write_text(
        "up fcfe002e000000000000018224121800038238393836303835353130323444313938383139363230"
        "302e312e31371152fcee\n")
    assert '"kind": "frame"' in run(scripts / "bkvcodec", "sniff", "frames.txt")
    assert not (scripts / "bkvcodec-server").exists()
    run(sys.executable, "-c", "import bkvcodec, importlib.util, sys; "
        "sys.exit(importlib.util.find_spec('reference_server') is not None)")
    print(f"{lib_wheel.name} alone: no reference_server; bkvcodec {version}")
    sys.exit(0)

import bkvcodec.testing  # noqa: E402
import reference_server  # noqa: E402

for package in (bkvcodec.testing, reference_server):
    assert "site-packages" in str(package.__file__), package.__file__
assert reference_server.__version__ == version == importlib.metadata.version("bkvcodec-server")
meta = check_metadata("bkvcodec-server")
assert f"bkvcodec=={version}" in (meta.get_all("Requires-Dist") or []), meta.get_all(
    "Requires-Dist")

# The server's wheel holds reference_server/ alone; its sdist is that folder (the
# package's sources at its top, plus pyproject.toml, README.md, LICENSE and metadata).
server_wheel, names = wheel_names("server")
stray = [n for n in names
         if not n.startswith(("reference_server/", f"bkvcodec_server-{version}.dist-info/"))]
assert not stray, stray
assert "reference_server/api/app.py" in names and "reference_server/_version.py" in names
server_sdist, sdist_files = sdist_names("server")
assert {"pyproject.toml", "README.md", "LICENSE", "__main__.py", "api/app.py"} <= set(
    sdist_files), sdist_files
assert not [n for n in sdist_files if n.startswith(("bkvcodec/", "tests", "docs"))]

server_text = f"bkvcodec-server {version} (bkvcodec {version})\n"
assert run(scripts / "bkvcodec-server", "--version") == server_text
assert run(sys.executable, "-m", "reference_server", "--version") == server_text
# --help names the commands; the server's own flags are under serve --help.
top_help = run(sys.executable, "-m", "reference_server", "--help")
assert all(command in top_help for command in ("serve", "testplan", "monitor", "batch"))
assert "--tcp-port" in run(sys.executable, "-m", "reference_server", "serve", "--help")
assert "--tcp-port" in run(scripts / "bkvcodec-server", "serve", "--help")
assert "--once" in run(scripts / "bkvcodec-server", "monitor", "--help")

print(f"{lib_wheel.name}: bkvcodec/ only; {server_wheel.name}: reference_server/ only; "
      f"{lib_sdist.name}, {server_sdist.name}; version {version}")
