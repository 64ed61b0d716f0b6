# The server's version. It is always the library's (bkvcodec/_version.py, the one
# version source: change that one first), and pyproject.toml pins bkvcodec to it;
# tests/test_packaging.py fails while the three differ. A literal, not an import of
# bkvcodec: the build reads it without bkvcodec installed.
__version__ = "0.1.0"
