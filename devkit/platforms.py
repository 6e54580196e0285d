"""Platform names: the two the images are built for, and the host's own."""

import platform as _platform

from devkit.errors import UserError

AMD64 = "linux/amd64"
ARM64 = "linux/arm64"
SUPPORTED = (AMD64, ARM64)

# Other spellings people and tools use for the same two platforms.
_ALIASES = {
    "linux/x86_64": AMD64,
    "linux/x86-64": AMD64,
    "linux/arm64/v8": ARM64,
    "linux/aarch64": ARM64,
    # The architecture alone: the images are Linux images.
    "amd64": AMD64,
    "x86_64": AMD64,
    "arm64": ARM64,
    "aarch64": ARM64,
}

# platform.machine() on macOS (arm64, x86_64), Linux (x86_64, aarch64) and Windows (AMD64, ARM64);
# also Docker's own `docker info` Architecture names.
_MACHINES = {
    "x86_64": AMD64,
    "amd64": AMD64,
    "arm64": ARM64,
    "aarch64": ARM64,
}


def normalize_platform(value: str) -> str:
    """`linux/amd64` or `linux/arm64` for any common spelling of them; anything else is refused."""
    name = value.strip().lower()
    name = _ALIASES.get(name, name)
    if name not in SUPPORTED:
        raise UserError(f"unknown platform {value!r}: choose {' or '.join(SUPPORTED)}")
    return name


def platform_of_machine(machine: str) -> str:
    """The image platform that runs natively on a machine of this architecture."""
    try:
        return _MACHINES[machine.strip().lower()]
    except KeyError:
        raise UserError(
            f"unsupported host architecture {machine!r}: "
            "TensorFlow images exist for x86-64 and arm64"
        ) from None


def host_platform(engine_platform: str | None = None) -> str:
    """The platform native to this host: the engine's own where known (see
    `engine.native_platform`), else the one of the machine Python runs on."""
    return engine_platform or platform_of_machine(_platform.machine())


def arch(platform_name: str) -> str:
    """`amd64` for `linux/amd64`."""
    return platform_name.rsplit("/", 1)[-1]
