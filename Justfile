# capsock tasks. Run from a virtualenv made by the README's Quickstart
# (`.venv/bin/just ...`); PYTHON overrides the interpreter.

python := env_var_or_default("PYTHON", if path_exists(".venv/bin/python") == "true" { ".venv/bin/python" } else { "python3" })

# list the recipes
default:
    @just --list

# build every guest app into build/<app>.wasm (skips unchanged apps)
build *APPS:
    {{python}} guest/build.py {{APPS}}

# run the whole test suite (builds the guests first)
test *ARGS: build
    {{python}} -m pytest {{ARGS}}

# the echo guest serving a native client and a guest client
demo: build
    {{python}} examples/demo.py

# one echo program natively, on the wasmtime CLI, jco and capsock, side by side (not a test)
bench *ARGS: build
    {{python}} bench/compare.py {{ARGS}}

# type-check and lint the host, guest library and tests
check:
    {{python}} -m mypy host/capsock
    {{python}} -m ruff check host guest tests bench examples
