"""The C extension; everything else is in pyproject.toml."""

from setuptools import Extension, setup

#: The walk's shared definitions: _wires.c lends the walk, _otlp.c borrows it (a capsule).
WALK = ["src/eventlog_speedups/_walk.h"]

setup(
    ext_modules=[
        Extension(
            "eventlog_speedups._wires",
            ["src/eventlog_speedups/_wires.c"],
            depends=WALK,
            extra_compile_args=["-O2", "-Wall", "-Werror=implicit-function-declaration"],
        ),
        Extension(
            "eventlog_speedups._caps",
            ["src/eventlog_speedups/_caps.c"],
            extra_compile_args=["-O2", "-Wall", "-Werror=implicit-function-declaration"],
        ),
        Extension(
            "eventlog_speedups._otlp",
            ["src/eventlog_speedups/_otlp.c"],
            depends=WALK,
            extra_compile_args=["-O2", "-Wall", "-Werror=implicit-function-declaration"],
        ),
    ]
)
