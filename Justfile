# capsock tasks. Run from a virtualenv made by the README's Quickstart
# (`.venv/bin/just ...`); PYTHON overrides the interpreter.

python := env_var_or_default("PYTHON", if path_exists(".venv/bin/python") == "true" { ".venv/bin/python" } else { "python3" })

# list the recipes
default:
    @just --list

# build guest apps (default: all) into build/<app>.wasm and compile them into the compilation cache (skips unchanged apps)
build *APPS:
    {{python}} guest/build.py {{APPS}}

# typing stubs of the guest world (build/bindings), for mypy on the guest library
bindings:
    {{python}} guest/build.py --bindings

# run the whole test suite (builds the guests first)
test *ARGS: build
    {{python}} -m pytest {{ARGS}}

# the echo guest serving a native client and a guest client (builds only those two guests)
demo: (build "echo" "client")
    {{python}} examples/demo.py

# one echo program natively, on the wasmtime CLI, jco and capsock, side by side, then the serving benchmarks (HTTP and HTTPS under wrk, kv under redis-benchmark) (not a test); installs the `bench` extra (the wasmtime CLI) first
bench *ARGS: build
    {{python}} -m pip install -q -e '.[bench]'
    {{python}} bench/compare.py {{ARGS}}
    PYTHONPATH=host {{python}} bench/http_wrk.py
    PYTHONPATH=host {{python}} bench/https_wrk.py
    PYTHONPATH=host {{python}} bench/kv_redis_benchmark.py

# the wasi:sockets conformance cases on capsock, the wasmtime CLI and jco, side by side (not a test)
wasi-conformance *ARGS:
    {{python}} bench/wasi_conformance.py {{ARGS}}

# type-check (mypy --strict) the host and the guest library, lint everything (ruff); .ci/run runs this
check: bindings
    {{python}} -m mypy --strict host/capsock
    {{python}} -m mypy --strict guest/capsock_guest
    {{python}} -m ruff check host guest tests bench examples setup.py
