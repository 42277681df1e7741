"""What pyproject.toml cannot declare: capsock's WIT and guest library in the wheel.

They stay at ``wit/`` and ``guest/capsock_guest/`` in the checkout (the
contract and the guest library are read there by other hosts and guests),
and are mapped into the package as ``capsock/toolchain/wit/`` and
``capsock/toolchain/guest/capsock_guest/``, where
``capsock.toolchain.sources.find_sources`` finds them in an installed wheel.
``[tool.setuptools.packages.find]`` cannot add packages from outside its
``where``, hence this file; everything else is in pyproject.toml.
"""

from setuptools import find_namespace_packages, setup

#: Package name in the wheel -> its folder in the checkout.
SHIPPED = {
    "capsock.toolchain.wit": "wit",
    "capsock.toolchain.guest.capsock_guest": "guest/capsock_guest",
}

setup(
    # Namespace packages too (as pyproject's packages.find does by default).
    packages=[*find_namespace_packages("host", include=["capsock*"], exclude=["*.__pycache__"]),
              *SHIPPED],
    package_dir={"": "host", **SHIPPED},
    package_data={
        "capsock": ["py.typed"],
        # The conformance probe guest: `capsock conformance` builds it.
        "capsock.conformance": ["probe/*.py"],
        # The wasi:sockets probe: `capsock conformance --wasi-sockets` builds it.
        "capsock.conformance.wasi": ["probe/*.py"],
        "capsock.toolchain.wit": ["*.wit"],
        "capsock.toolchain.guest.capsock_guest": ["*.py", "py.typed"],
    },
)
