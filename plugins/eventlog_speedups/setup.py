"""The C extension; everything else is in pyproject.toml."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "eventlog_speedups._wires",
            ["src/eventlog_speedups/_wires.c"],
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
            extra_compile_args=["-O2", "-Wall", "-Werror=implicit-function-declaration"],
        ),
    ]
)
