"""atheris harness for the `override` target of fuzz/targets.py (see there for the input format)."""

from harness import main

if __name__ == "__main__":
    main("override")
