"""atheris harness for the `plan` target of fuzz/targets.py (see there for the input format)."""

from harness import main

if __name__ == "__main__":
    main("plan")
