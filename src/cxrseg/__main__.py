"""Run the command line as ``python -m cxrseg``."""

from cxrseg.cli import main

if __name__ == "__main__":
    main()
